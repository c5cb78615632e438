"""Guards on the shape of the code: the core never imports a plugin; no pickle, no eval."""

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
FORBIDDEN_MODULES = {"pickle", "marshal", "dill", "shelve", "cloudpickle"}
FORBIDDEN_CALLS = {"eval", "exec", "__import__"}


def _python_files(folder):
    return sorted((ROOT / folder).rglob("*.py"))


def _imports(tree):
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, alias.name
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            yield node.lineno, node.module


def test_the_core_never_imports_a_plugin():
    offenders = []
    for path in _python_files("engine"):
        tree = ast.parse(path.read_text())
        for lineno, module in _imports(tree):
            if module.split(".")[0].startswith("distsched_"):
                offenders.append(f"{path.relative_to(ROOT)}:{lineno} imports {module}")
        for node in ast.walk(tree):
            if isinstance(node, ast.Constant) and isinstance(node.value, str) and node.value.startswith("distsched_") \
                    and "." in node.value and not node.value.startswith("distsched_register") and "hooks" not in node.value:
                offenders.append(f"{path.relative_to(ROOT)}:{node.lineno} names {node.value!r}")
    assert offenders == []


def test_no_pickle_or_eval_anywhere():
    offenders = []
    for folder in ("engine", "plugins"):
        for path in _python_files(folder):
            tree = ast.parse(path.read_text())
            for lineno, module in _imports(tree):
                if module.split(".")[0] in FORBIDDEN_MODULES:
                    offenders.append(f"{path.relative_to(ROOT)}:{lineno} imports {module}")
            for node in ast.walk(tree):
                if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id in FORBIDDEN_CALLS:
                    offenders.append(f"{path.relative_to(ROOT)}:{node.lineno} calls {node.func.id}")
    assert offenders == []


def test_source_roots_hold_only_distsched_packages():
    for folder in ("engine", "plugins"):
        for entry in (ROOT / folder).iterdir():
            if entry.name in ("__pycache__",) or entry.name.endswith(".egg-info"):
                continue
            assert entry.is_dir() and entry.name.startswith("distsched") and (entry / "__init__.py").exists(), (
                f"{folder}/{entry.name}: only distsched* packages may live here (it would become a top-level module)")


def test_plugin_hook_modules_import_nothing_heavy():
    heavy = {"redis", "httpx", "hiredis"}
    for path in (ROOT / "plugins").glob("distsched_*/hooks.py"):
        tree = ast.parse(path.read_text())
        top_level = [node for node in tree.body if isinstance(node, (ast.Import, ast.ImportFrom))]
        for node in top_level:
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else [node.module or ""]
            assert not any(n.split(".")[0] in heavy for n in names), f"{path}: imports {names} at module level"


def test_the_jobs_file_loader_imports_only_the_model():
    """``distsched.jobs`` (and ``distsched explain`` through it) builds jobs with the model
    alone: importing it, in a fresh interpreter, loads no facade, engine or plugin module."""
    import subprocess
    import sys

    probe = ("import sys, distsched.jobs, distsched.model.build; "
             "print('\\n'.join(sorted(m for m in sys.modules if m.startswith('distsched'))))")
    loaded = subprocess.run([sys.executable, "-c", probe], check=True, capture_output=True, text=True).stdout.split()
    assert "distsched.model.build" in loaded
    forbidden = [m for m in loaded if m == "distsched.facade"
                 or m.startswith(("distsched.app", "distsched.plugin", "distsched.cli", "distsched_"))]
    assert forbidden == [], f"distsched.jobs pulls in {forbidden}"
    # The same, read from the source: no import of those modules anywhere in the loader or the model.
    offenders = []
    for path in [ROOT / "engine/distsched/jobs.py", *_python_files("engine/distsched/model")]:
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom):
                module = ("." * node.level) + (node.module or "")
                if any(part in ("facade", "app", "plugin", "cli") for part in module.lstrip(".").split(".")):
                    offenders.append(f"{path.relative_to(ROOT)}:{node.lineno} imports {module}")
    assert offenders == []
