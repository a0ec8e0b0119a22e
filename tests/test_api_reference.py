"""The API reference (docs/api, Sphinx autodoc) builds without a warning,
every type reference in it resolves, and it documents every public module
(every loop backend of wsloop.loops.BACKENDS among them) and every public
name of each, with a docstring. A new module under wsloop is either in the
reference, only re-exported by it, or listed as internal.

It builds from the sources, so it runs once, in the pure pass of
scripts/test.
"""

from __future__ import annotations

import importlib
import importlib.util
import inspect
import os
import pkgutil
import subprocess
import sys
from pathlib import Path

import pytest
from sphinx.pycode import ModuleAnalyzer
from sphinx.util.inventory import InventoryFile

ROOT = Path(__file__).resolve().parent.parent
_spec = importlib.util.spec_from_file_location("wsloop_api_conf", ROOT / "docs" / "api" / "conf.py")
assert _spec is not None and _spec.loader is not None
CONF = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(CONF)


def loop_modules() -> list[str]:
    """One module per backend name of :data:`wsloop.loops.BACKENDS` (uvloop
    is a loop of the asyncio backend, in its module)."""
    from wsloop.loops import BACKENDS

    names = ("asyncio" if name == "uvloop" else name for name in BACKENDS)
    return [f"wsloop.loops.{name}" for name in dict.fromkeys(names)]


#: The modules whose ``__all__`` is wsloop's public API: the front-ends,
#: every loop backend, the broker and the sans-I/O core. (The others are
#: implementation: underscored, re-exported by these, or INTERNAL.)
PUBLIC_MODULES = [
    "wsloop",
    "wsloop.aio",
    "wsloop.sync",
    "wsloop.options",
    "wsloop.loops",
    *loop_modules(),
    "wsloop.broker",
    "wsloop.protocol",
]

#: Modules with names of their own (in ``__all__``) that are not API: what
#: the public modules are built from. Anything they export that users see
#: is re-exported by a public module or documented where it is used.
INTERNAL = {
    "wsloop.handler": "turns a handler into its callbacks (HandlerLike is documented)",
    "wsloop.transport": "the fd and TLS plumbing a WebSocket is given",
    "wsloop.protocol.assembler": "a part of Connection",
    "wsloop.protocol.connection": "Connection's implementation",
    "wsloop.protocol.deflate": "a part of Connection (Deflate is documented)",
    "wsloop.protocol.frames": "a part of Connection",
    "wsloop.protocol.handshake": "a part of Connection (check_origin is documented)",
    "wsloop.protocol.reader": "a part of Connection",
    "wsloop.protocol.writer": "a part of Connection",
    "wsloop.broker.fanout": "a broker's per-channel delivery",
    "wsloop.broker.redis_conn": "RedisBroker's connection",
    "wsloop.broker.resp": "RedisBroker's wire format and URL parsing",
    "wsloop.broker.scripts": "RedisBroker's Lua scripts",
}


def wsloop_modules(package: str = "wsloop") -> list[str]:
    """Every module of ``package`` and below whose name has no underscored
    part, but the ``wsloop`` command's (``wsloop.cli``, documented in
    docs/cli.md)."""
    found = [package]
    for info in pkgutil.iter_modules(importlib.import_module(package).__path__):
        name = f"{package}.{info.name}"
        if info.name.startswith("_") or name == "wsloop.cli":
            continue
        found.extend(wsloop_modules(name) if info.ispkg else [name])
    return found


def public_names() -> list[tuple[str, str]]:
    return [
        (module, name)
        for module in PUBLIC_MODULES
        for name in importlib.import_module(module).__all__
    ]


@pytest.fixture(scope="module")
def inventory(tmp_path_factory: pytest.TempPathFactory) -> set[str]:
    if os.environ.get("WSLOOP_TEST_BUILD") == "compiled":
        pytest.skip("the reference is built from the sources, in the pure pass")
    out = tmp_path_factory.mktemp("api")
    # -W: a warning fails; -n: every cross-reference (types too) resolves.
    strict = ("-W", "-n", "--keep-going", "-q", "-b", "html")
    result = subprocess.run(
        [sys.executable, "-m", "sphinx", *strict, "docs/api", str(out)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, f"sphinx warned or failed:\n{result.stderr}{result.stdout}"
    with (out / "objects.inv").open("rb") as stream:
        data = InventoryFile.load(stream, "", lambda base, uri: uri)
    return {name for entries in data.values() for name in entries}


@pytest.mark.parametrize("module", PUBLIC_MODULES)
def test_each_public_module_is_in_the_reference(module: str, inventory: set[str]) -> None:
    assert module in inventory, f"{module} is not in the API reference (add it to docs/api)"


def test_each_module_is_public_or_implementation() -> None:
    """A new module with names of its own is either added to the reference
    (and PUBLIC_MODULES) or said here to be internal: never left out silently."""
    exported = {
        id(getattr(importlib.import_module(module), name))
        for module in PUBLIC_MODULES
        for name in importlib.import_module(module).__all__
    }
    undocumented = {}
    for module in wsloop_modules():
        if module in PUBLIC_MODULES or module in INTERNAL:
            continue
        imported = importlib.import_module(module)
        own = [
            n for n in getattr(imported, "__all__", ()) if id(getattr(imported, n)) not in exported
        ]
        if own or not hasattr(imported, "__all__"):
            undocumented[module] = own or "no __all__"
    assert not undocumented, (
        f"modules that are neither in the API reference nor re-exported by it: {undocumented} "
        "(document them in docs/api and PUBLIC_MODULES, or list them in INTERNAL with why)"
    )
    assert set(wsloop_modules()) >= set(INTERNAL), "INTERNAL names a module that is gone"


@pytest.mark.parametrize(("module", "name"), public_names(), ids=lambda v: v)
def test_each_public_name_is_in_the_reference(module: str, name: str, inventory: set[str]) -> None:
    value = getattr(importlib.import_module(module), name)
    if f"{module}.{name}" in inventory:
        return
    # A name re-exported by several public modules is documented once.
    for other in PUBLIC_MODULES:
        same = getattr(importlib.import_module(other), name, None) is value
        if same and f"{other}.{name}" in inventory:
            return
    raise AssertionError(f"{module}.{name} is not in the API reference")


def attribute_docs(module: str) -> set[str]:
    """The names of a module's data given a ``#:`` comment or a docstring."""
    analyzer = ModuleAnalyzer.for_module(module)
    return {name for (scope, name) in analyzer.find_attr_docs() if scope == ""}


@pytest.mark.skipif(
    os.environ.get("WSLOOP_TEST_BUILD") == "compiled",
    reason="the sources' docstrings, read in the pure pass (tests/test_compiled.py checks "
    "that the compiled build keeps them)",
)
@pytest.mark.parametrize(("module", "name"), public_names(), ids=lambda v: v)
def test_each_public_name_has_a_docstring(module: str, name: str) -> None:
    value = getattr(importlib.import_module(module), name)
    if inspect.isclass(value) or inspect.isroutine(value):
        doc = inspect.getdoc(value) or ""
        # (A dataclass without one gets its signature as its docstring.)
        assert doc and not doc.startswith(f"{name}("), f"{module}.{name} has no docstring"
        if inspect.isclass(value):
            for attr, member in vars(value).items():
                if attr.startswith("_") or CONF.internal(value.__name__, attr):
                    continue
                # Methods and properties (a dataclass's fields are in its docstring).
                if inspect.isroutine(member) or isinstance(member, property):
                    # (A method that overrides a documented one inherits its doc.)
                    doc = inspect.getdoc(getattr(value, attr, member)) or member.__doc__
                    assert doc, f"{module}.{name}.{attr} has no docstring"
    else:  # a constant: documented by a ``#:`` comment where it is defined
        package = ROOT / "src" / "wsloop"
        modules = [
            ".".join(p.relative_to(package.parent).with_suffix("").parts).removesuffix(".__init__")
            for p in package.rglob("*.py")
            if "cli" not in p.parts
        ]
        assert any(name in attribute_docs(m) for m in modules), (
            f"{module}.{name}: a constant with no #: comment"
        )
