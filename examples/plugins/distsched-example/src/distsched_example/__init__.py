"""distsched-example: a worked example of a third-party distsched plugin.

It provides

* the ``echo`` executor (:mod:`distsched_example.executor`): returns the task's target,
  args and kwargs as its result and runs nothing;
* the ``most-free`` balancer (:mod:`distsched_example.balancer`): the healthy worker with
  the most free slots;
* an event observer (:mod:`distsched_example.observer`): appends every engine event as a
  JSON line to the file named by ``$DISTSCHED_EXAMPLE_EVENTS``.

distsched finds it through the entry point ``example = "distsched_example.hooks"`` in the
``distsched`` group; importing this package imports nothing else.
"""

__version__ = "0.1.0"
