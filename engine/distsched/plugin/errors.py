"""Errors about plugins. Each names the plugin and the distribution it came from.

Kept for code written against earlier versions: the classes are defined in
:mod:`distsched.model.errors` and exported by :mod:`distsched.model` (the public plugin
API), so that the application services can tell them apart without importing the plugin
layer.
"""

from __future__ import annotations

from ..model.errors import DuplicateRegistration as DuplicateRegistration
from ..model.errors import NameConflict as NameConflict
from ..model.errors import PluginError as PluginError
from ..model.errors import PluginLoadError as PluginLoadError
from ..model.errors import UnknownName as UnknownName
