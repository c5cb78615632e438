"""Errors about plugins. Each names the plugin and the distribution it came from.

Public module for plugin authors; the classes are defined in :mod:`distsched.model.errors`
(so that the application services can tell them apart without importing the plugin layer).
"""

from __future__ import annotations

from ..model.errors import (
    DuplicateRegistration,
    NameConflict,
    PluginError,
    PluginLoadError,
    UnknownName,
)

__all__ = ["DuplicateRegistration", "NameConflict", "PluginError", "PluginLoadError", "UnknownName"]
