"""Entry point of this plugin: hook implementations only (none yet)."""
