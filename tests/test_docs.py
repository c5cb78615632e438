"""The docs keep up with the code: every hook and argument on the hooks page, every hook tested."""

import inspect
import re
from pathlib import Path

from distsched import hookspecs

ROOT = Path(__file__).resolve().parent.parent
HOOKS = [name for name in hookspecs.__all__ if name.startswith("distsched_")]


def test_every_hook_is_documented_with_its_signature():
    page = (ROOT / "docs" / "hooks.md").read_text()
    for name in HOOKS:
        args = ", ".join(inspect.signature(getattr(hookspecs, name)).parameters)
        assert f"## {name}({args})" in page, f"docs/hooks.md lacks the heading '## {name}({args})'"


def test_every_hook_has_a_docstring_that_says_when_it_is_called():
    for name in HOOKS:
        doc = getattr(hookspecs, name).__doc__ or ""
        assert "Called" in doc and "Returns" in doc or "Return value" in doc, name


def test_every_hook_is_exercised_by_a_test():
    sources = "\n".join(p.read_text() for p in (ROOT / "tests").rglob("test_*.py") if p.name != "test_docs.py")
    for name in HOOKS:
        assert re.search(rf"def {name}\(", sources), f"no test implements {name}"


def test_readme_commands_match_ci():
    readme = (ROOT / "README.md").read_text()
    ci = (ROOT / ".ci" / "run").read_text()
    assert "distsched run examples/jobs.toml --duration 8" in readme
    commands = [line.strip() for line in readme.splitlines() if "python -m pytest" in line]
    assert commands, "the README shows the test command"
    assert commands[0] in ci, ".ci/run runs the README's test command"
