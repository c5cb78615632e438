"""distsched's web dashboard and REST API (built-in plugin ``web``; ``pip install 'distsched[web]'``).

``distsched web --storage URL`` serves it over any store; ``distsched run JOBS_FILE --web``
serves it beside the embedded engine. See docs/web.md.
"""
