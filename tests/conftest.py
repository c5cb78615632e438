# Our own suite opts in to distsched's pytest plugin exactly as a plugin author would.
pytest_plugins = ["distsched.testing.pytest_plugin"]
