# Opt in to distsched's fixtures (distsched_plugin_manager, distsched_app, distsched_cli, ...).
# The contract suites themselves are plain classes imported from distsched.testing.contracts.
pytest_plugins = ["distsched.testing.pytest_plugin"]
