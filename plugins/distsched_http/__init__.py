"""Built-in distsched plugin: the ``http`` and ``rpc`` executors (one shared httpx client per
worker, ``${NAME}`` secrets from the worker's environment, a host allow-list)."""
