"""The house's layout, as the README describes it: the modules' imports
form no cycle, the library never imports the command line (``wsloop.cli``:
the command, the demo and the bench helper), and the sans-I/O core and the
loop backends import nothing above them (but the C accelerator, a leaf)."""

from __future__ import annotations

import ast
from pathlib import Path

import wsloop

PACKAGE = Path(wsloop.__file__).parent


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def is_module(name: str) -> bool:
    path = PACKAGE.parent / name.replace(".", "/")
    return path.is_dir() or any(path.with_suffix(ext).exists() for ext in (".py", ".pyi"))


def type_checking_only(tree: ast.Module) -> set[ast.AST]:
    """The statements under ``if TYPE_CHECKING:``: never run."""
    nodes: set[ast.AST] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            for child in node.body:
                nodes.update(ast.walk(child))
    return nodes


def imports(path: Path) -> set[str]:
    """The wsloop modules ``path`` imports, at load time or later (inside a
    function), but not under ``if TYPE_CHECKING``."""
    name = module_name(path)
    package = name if path.name == "__init__.py" else name.rsplit(".", 1)[0]
    found: set[str] = set()
    tree = ast.parse(path.read_text())
    skip = type_checking_only(tree)
    for node in ast.walk(tree):
        if node in skip:
            continue
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names if a.name.startswith("wsloop"))
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - (node.level - 1)]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            if not target.startswith("wsloop"):
                continue
            # from . import websocket: that module (and only it, when every
            # name is a module: the package itself is already loading).
            subs = [f"{target}.{alias.name}" for alias in node.names]
            modules = [sub for sub in subs if is_module(sub)]
            found.update(modules)
            if len(modules) < len(subs):
                found.add(target)
    found.discard(name)
    return found


GRAPH = {module_name(p): imports(p) for p in PACKAGE.rglob("*.py")}


def test_imports_form_no_cycle() -> None:
    done: set[str] = set()

    def visit(name: str, path: list[str]) -> None:
        if name in path:
            cycle = [*path[path.index(name) :], name]
            raise AssertionError("import cycle: " + " -> ".join(cycle))
        if name in done:
            return
        for target in sorted(GRAPH.get(name, ())):
            visit(target, [*path, name])
        done.add(name)

    for name in sorted(GRAPH):
        visit(name, [])


def is_cli(name: str) -> bool:
    return name == "wsloop.cli" or name.startswith("wsloop.cli.")


def test_the_library_does_not_import_the_command_line() -> None:
    for name, targets in GRAPH.items():
        if not is_cli(name) and name != "wsloop.__main__":
            assert not [t for t in targets if is_cli(t)], name


def test_the_core_and_the_loops_import_nothing_above_them() -> None:
    for name, targets in GRAPH.items():
        for layer in ("wsloop.protocol", "wsloop.loops"):
            if name.startswith(layer):
                # The C accelerator is a leaf behind its boundary (frames.py, transport.py).
                above = [t for t in targets if not t.startswith(layer) and t != "wsloop._speedups"]
                assert above == [], f"{name} imports {above}"


def test_the_callback_api_does_not_load_asyncio() -> None:
    # A program on libev, GLib or the builtin loop never pays asyncio's import.
    import subprocess
    import sys

    code = "import sys, wsloop; wsloop.Server; print('asyncio' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "False"
