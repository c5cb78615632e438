"""Built-in distsched plugin: http (work in progress)."""
