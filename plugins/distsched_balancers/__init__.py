"""Built-in distsched plugin: balancers (work in progress)."""
