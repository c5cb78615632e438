"""distsched's built-in PostgreSQL storage and election (``postgresql://``, ``postgres://``)."""
