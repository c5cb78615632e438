"""Application services: the leader loop (scheduler), the worker loop, and the engine that
wires them to the plugins. They talk to storage and election only through the ports."""
