"""In-process storage and election for distsched: the embedded default (``memory://``)."""
