"""Built-in distsched plugin: redis (work in progress)."""
