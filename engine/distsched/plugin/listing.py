"""The lines ``distsched plugins`` prints about what one plugin provides, beyond its names:
each registration's description and declared settings, the other kinds it is (observer,
server, ...) and its warnings. Reads :meth:`PluginInfo.to_dict` (what ``--json`` prints)."""

from __future__ import annotations

from typing import Any

#: The hook that makes a plugin each kind of :attr:`PluginInfo.roles`.
ROLE_HOOKS = {"observer": "distsched_event", "server": "distsched_serve", "commands": "distsched_cli_commands",
              "web routes": "distsched_web_routes"}


def registration_lines(item: dict[str, Any], family: str) -> list[str]:
    """One line per registration of ``family`` that says more than its name: its description
    and, for an executor, the worker settings it declared."""
    lines = []
    for reg in item.get("registered", {}).get(family, ()):
        parts = [reg["description"]] if reg.get("description") else []
        if "settings" in reg:
            settings = reg["settings"]
            parts.append("settings: " + ("not declared" if settings is None else ", ".join(settings) or "none"))
        if parts:
            lines.append(f"        {reg['name']}: {'; '.join(parts)}")
    return lines


def settings_lines(item: dict[str, Any], source: str) -> list[str]:
    """The keys of the plugin's ``[plugins.<name>]`` table in the config file ``source`` -
    never the values, which may be secrets."""
    keys = item.get("settings")
    if keys is None:
        return []
    return [f"    {'settings':<10} {source}: {', '.join(keys) or '(empty table)'}"]


def role_lines(item: dict[str, Any]) -> list[str]:
    """What the plugin is besides its registrations (``observer   distsched_event``), then its
    warnings."""
    lines = [f"    {role:<10} {ROLE_HOOKS.get(role, '')}".rstrip() for role in item.get("roles", ())]
    lines += [f"    warning: {warning}" for warning in item.get("warnings", ())]
    return lines


__all__ = ["ROLE_HOOKS", "registration_lines", "role_lines", "settings_lines"]
