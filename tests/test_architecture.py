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


def test_the_cli_uses_only_the_public_facade():
    """No private names (``_redact``, ``_check_names``...) and no reaching through
    ``app.engine`` / ``app.plugins`` from the CLI package: the facade is its whole face."""
    offenders = []
    for path in _python_files("engine/distsched/cli"):
        tree = ast.parse(path.read_text())
        where = path.relative_to(ROOT)
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom):
                module = node.module or ""
                if module.split(".")[0] in ("app", "engine") or ".app" in f".{module}":
                    offenders.append(f"{where}:{node.lineno} imports {module}")
                for alias in node.names:  # the CLI package's own helpers (from . import _app) are fine
                    if alias.name.startswith("_") and not alias.name.startswith("__") and node.level != 1:
                        offenders.append(f"{where}:{node.lineno} imports the private {alias.name}")
            elif isinstance(node, ast.Attribute):
                if node.attr in ("engine", "plugins") and isinstance(node.value, ast.Name) and node.value.id == "app":
                    offenders.append(f"{where}:{node.lineno} reaches through app.{node.attr}")
                if node.attr.startswith("_") and not node.attr.startswith("__") \
                        and not (isinstance(node.value, ast.Name) and node.value.id == "self"):  # its own classes
                    offenders.append(f"{where}:{node.lineno} uses the private .{node.attr}")
    assert offenders == []


def test_all_lists_only_what_a_module_defines():
    """``__all__`` of a module names its own definitions, not names it imported (a package's
    ``__init__`` re-exports its submodules' names on purpose)."""
    offenders = []
    for folder in ("engine", "plugins"):
        for path in _python_files(folder):
            if path.name == "__init__.py":
                continue
            tree = ast.parse(path.read_text())
            defined: set[str] = set()
            listed: list[str] = []
            for node in tree.body:
                if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                    defined.add(node.name)
                elif isinstance(node, ast.Assign):
                    for target in node.targets:
                        if isinstance(target, ast.Name):
                            defined.add(target.id)
                            if target.id == "__all__":
                                listed = [e.value for e in node.value.elts]
                elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
                    defined.add(node.target.id)
            offenders += [f"{path.relative_to(ROOT)}: {name}" for name in listed if name not in defined]
    assert offenders == []


def test_one_url_redactor():
    """Storage URLs are redacted by ``distsched.urls.redact_url`` only: no other module
    defines a redactor of its own."""
    offenders = []
    for folder in ("engine", "plugins"):
        for path in _python_files(folder):
            if path.relative_to(ROOT).as_posix() == "engine/distsched/urls.py":
                continue
            for node in ast.walk(ast.parse(path.read_text())):
                if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and "redact" in node.name.lower() \
                        and node.name != "redacted":
                    offenders.append(f"{path.relative_to(ROOT)}:{node.lineno} defines {node.name}")
    assert offenders == []


def test_distsched_explain_loads_no_facade_engine_or_plugin_manager():
    import subprocess
    import sys

    probe = ("import sys\nfrom distsched.cli import cli\n"
             "cli(['explain', 'examples/jobs.toml', '-n', '1'], standalone_mode=False)\n"
             "print('MODULES', ' '.join(sorted(m for m in sys.modules if m.startswith('distsched'))))")
    out = subprocess.run([sys.executable, "-c", probe], check=True, capture_output=True, text=True, cwd=ROOT).stdout
    assert "nightly-report" in out
    loaded = out.split("MODULES", 1)[1].split()
    forbidden = [m for m in loaded if m == "distsched.facade"
                 or m.startswith(("distsched.app", "distsched.plugin", "distsched_"))]
    assert "distsched.model.build" in loaded and forbidden == []
