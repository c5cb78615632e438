"""Errors about plugins. Each names the plugin and the distribution it came from."""

from __future__ import annotations

from ..model.errors import DistschedError


class PluginError(DistschedError):
    """A plugin failed: it did not import, a hook raised, or it returned something unusable."""


class PluginLoadError(PluginError):
    """A plugin's entry point could not be loaded."""


class DuplicateRegistration(PluginError):
    """Two plugins registered the same name in the same family."""


class UnknownName(PluginError, LookupError):
    """A configuration names an executor, balancer, storage scheme... nobody registered."""
