"""Built-in distsched plugin: the ``local`` executor (functions the application registered)."""
