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


# -- layers and import loops ---------------------------------------------------------------
ENGINE = ROOT / "engine"


def _module_name(path):
    parts = list(path.relative_to(ENGINE).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _module_level_imports(tree):
    """Import statements run when the module is imported - at module level, including those
    under ``if TYPE_CHECKING:`` and ``try:`` - but not those inside functions (lazy)."""
    found = []

    def visit(statements):
        for node in statements:
            if isinstance(node, (ast.Import, ast.ImportFrom)):
                found.append(node)
            elif isinstance(node, ast.If):
                visit(node.body)
                visit(node.orelse)
            elif isinstance(node, ast.Try):
                visit(node.body)
                visit(node.orelse)
                visit(node.finalbody)
                for handler in node.handlers:
                    visit(handler.body)

    visit(tree.body)
    return found


def _import_graph(*, lazy=False):
    """distsched module -> the distsched modules it imports (relative imports resolved;
    ``from pkg import sub`` counts as importing ``pkg.sub``)."""
    modules = {_module_name(p): p for p in sorted((ENGINE / "distsched").rglob("*.py"))}
    graph = {}
    for name, path in modules.items():
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        tree = ast.parse(path.read_text())
        nodes = [n for n in ast.walk(tree) if isinstance(n, (ast.Import, ast.ImportFrom))] if lazy \
            else _module_level_imports(tree)
        targets = set()
        for node in nodes:
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            else:
                if node.level:
                    base = package.split(".")[: len(package.split(".")) - node.level + 1]
                    module = ".".join(base + ([node.module] if node.module else []))
                else:
                    module = node.module or ""
                names = [f"{module}.{a.name}" if f"{module}.{a.name}" in modules else module for a in node.names]
            for target in names:
                while target and target not in modules:
                    target = target.rpartition(".")[0]
                if target and target != name:
                    targets.add(target)
        graph[name] = targets
    return graph


def _cycles(graph):
    """The strongly connected components with more than one node (Tarjan)."""
    index, low, stack, on_stack, out = {}, {}, [], set(), []

    def visit(v):
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in graph.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                out.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return out


def test_the_application_layer_knows_the_plugin_manager_only_in_its_composition_root():
    graph = _import_graph(lazy=True)  # lazy imports count too
    offenders = [f"{name} imports {target}" for name, targets in sorted(graph.items())
                 if name.startswith("distsched.app.") and name != "distsched.app.engine"
                 for target in sorted(targets)
                 if target.startswith(("distsched.plugin", "distsched.registry"))]
    assert offenders == []
    assert any(t.startswith("distsched.plugin") for t in graph["distsched.app.engine"]), \
        "the check looks at the wrong modules: app/engine.py is the composition root"


def test_no_import_loop_even_under_type_checking():
    graph = _import_graph()
    # A package importing its own submodules at its end (how cli/__init__.py registers the
    # command groups of cli/<name>.py) is not a loop between modules: Python always runs the
    # package first, and the submodule uses what the package defined above that line.
    modules = {name: {t for t in targets if not t.startswith(name + ".")} for name, targets in graph.items()}
    assert _cycles(modules) == []
    # Nor between the parts of the package (hookspecs, plugin, app, model, ...): the package
    # root (which re-exports) and __main__ aside.
    def part(module):
        return ".".join(module.split(".")[:2])

    parts = {}
    for name, targets in graph.items():
        if name in ("distsched", "distsched.__main__"):
            continue
        for target in targets:
            if target != "distsched" and part(target) != part(name):
                parts.setdefault(part(name), set()).add(part(target))
    assert _cycles(parts) == []
    # The check can see a loop: hookspecs -> registry, and a made-up registry -> hookspecs.
    assert _cycles({**parts, "distsched.registry": {"distsched.hookspecs"}})


# -- the public plugin API -------------------------------------------------------------------
#: The modules a plugin may import from (docs/plugins.md, "The public plugin API"), and only
#: the names in their ``__all__``.
PUBLIC_MODULES = (
    "distsched", "distsched.hookspecs", "distsched.ports", "distsched.registry", "distsched.config", "distsched.model",
    "distsched.model.events", "distsched.model.times", "distsched.model.trusted",
    "distsched.model.words", "distsched.plugin.manager",
    "distsched.asyncutil", "distsched.context",
    "distsched.urls", "distsched.masking",
    "distsched.history", "distsched.testing", "distsched.testing.contracts", "distsched.testing.poison",
    "distsched.testing.processes", "distsched.testing.redis_server", "distsched.testing.redis_cluster",
    "distsched.testing.postgres_server", "distsched.testing.pytest_plugin",
)
PLUGIN_SOURCES = ("plugins", "examples/plugins")


def _import_guards(tree):
    """Import nodes -> "try" (in a try whose handler catches ImportError: it may name what
    does not exist yet) or "fallback" (in that handler: runs only when the first failed)."""
    guards = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.Try) and any(
                isinstance(h.type, ast.Name) and h.type.id in ("ImportError", "ModuleNotFoundError")
                for h in node.handlers):
            for part, statements in (("try", node.body), *(("fallback", h.body) for h in node.handlers)):
                for statement in statements:
                    for inner in ast.walk(statement):
                        guards.setdefault(inner, part)
    return guards


def _distsched_imports(path):
    tree = ast.parse(path.read_text())
    guards = _import_guards(tree)
    for node in ast.walk(tree):
        if guards.get(node) == "fallback":
            continue
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.split(".")[0] == "distsched":
                    yield node.lineno, alias.name, None, node in guards
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module \
                and node.module.split(".")[0] == "distsched":
            for alias in node.names:
                yield node.lineno, node.module, alias.name, node in guards


def _exists(module, name):
    import importlib

    try:
        mod = importlib.import_module(module)
    except ImportError:
        return False
    return name is None or hasattr(mod, name)


def test_plugins_use_only_the_public_plugin_api():
    import importlib

    offenders = []
    seen = 0
    for folder in PLUGIN_SOURCES:
        for path in _python_files(folder):
            for lineno, module, name, guarded in _distsched_imports(path):
                seen += 1
                where = f"{path.relative_to(ROOT)}:{lineno}"
                if guarded and not _exists(module, name):
                    continue  # a forward-compatible import of what this version does not have yet
                if module not in PUBLIC_MODULES:
                    offenders.append(f"{where} imports the undocumented module {module}")
                    continue
                if name is None:
                    continue
                public = getattr(importlib.import_module(module), "__all__", ())
                if f"{module}.{name}" in PUBLIC_MODULES:  # from distsched.model import events
                    continue
                if name.startswith("_") and not name.endswith("__"):
                    offenders.append(f"{where} imports the private name {module}.{name}")
                elif name not in public:
                    offenders.append(f"{where} imports {module}.{name}, which is not in its __all__")
    assert seen > 30, "the scan found (almost) no imports: it looks in the wrong place"
    assert offenders == [], "\n".join(offenders)


def test_the_public_plugin_api_is_documented_and_complete():
    import importlib

    page = (ROOT / "docs" / "plugins.md").read_text()
    section = page.split("## The public plugin API", 1)[1].split("\n## ", 1)[0]
    for module in PUBLIC_MODULES:
        assert f"`{module}`" in section, f"docs/plugins.md: the public plugin API does not list {module}"
        mod = importlib.import_module(module)
        assert hasattr(mod, "__all__"), f"{module} has no __all__"
        missing = [name for name in mod.__all__ if not hasattr(mod, name)]
        assert missing == [], f"{module}.__all__ names what it does not have: {missing}"


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


def _event_classes():
    import attrs

    from distsched.model import events

    return {cls.kind: cls for cls in vars(events).values()
            if isinstance(cls, type) and issubclass(cls, events.Event) and cls is not events.Event
            and attrs.has(cls)}


def test_every_event_class_is_public_and_its_fields_are_documented():
    """docs/hooks.md's "Event fields" table lists every event kind with its class and its
    fields (besides ``at``), in the class's order; every class is in ``__all__``."""
    import attrs

    from distsched.model import events

    classes = _event_classes()
    assert len(classes) > 10
    assert sorted(cls.__name__ for cls in classes.values() if cls.__name__ not in events.__all__) == []
    page = (ROOT / "docs" / "hooks.md").read_text()
    table = page.split("### Event fields", 1)[1].split("\n\n", 2)[2].split("\n\n", 1)[0]
    rows = {}
    for line in table.splitlines()[2:]:
        kind, name, fields = (cell.strip() for cell in line.strip("|").split("|"))
        rows[kind.strip("`")] = (name.strip("`"), [f.strip().strip("`") for f in fields.split(",")])
    assert sorted(rows) == sorted(classes), "docs/hooks.md: the Event fields table and the event classes differ"
    for kind, cls in classes.items():
        fields = [f.name for f in attrs.fields(cls) if f.name != "at"]
        assert rows[kind] == (cls.__name__, fields), f"docs/hooks.md: the Event fields row of {kind}"


def test_every_event_kind_is_in_the_event_lists():
    """The lists of event kinds in docs/plugins.md (Observers), docs/architecture.md
    (Events) and docs/hooks.md (distsched_event) name every kind."""
    pages = {
        "docs/plugins.md": (ROOT / "docs/plugins.md").read_text().split("### Observers", 1)[1].split("\n* Observers", 1)[0],
        "docs/architecture.md": (ROOT / "docs/architecture.md").read_text().split("## Events", 1)[1].split("\n## ", 1)[0],
        "docs/hooks.md": (ROOT / "docs/hooks.md").read_text().split("## distsched_event(", 1)[1].split("* **Returns", 1)[0],
    }
    for page, text in pages.items():
        missing = sorted(kind for kind in _event_classes() if f"`{kind}`" not in text)
        assert missing == [], f"{page}: the list of event kinds lacks {missing}"
