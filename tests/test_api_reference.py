"""The API reference (docs/api, Sphinx autodoc + napoleon) builds without a
warning, every type reference in it resolves, and it documents every
public name of every public module, each with a docstring.

It builds from the sources, so it runs once, in the pure pass of
scripts/test.
"""

from __future__ import annotations

import importlib
import importlib.util
import inspect
import os
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

#: The modules whose ``__all__`` is wsloop's public API. (The others are
#: private: underscored, or the implementation these re-export.)
PUBLIC_MODULES = [
    "wsloop",
    "wsloop.aio",
    "wsloop.sync",
    "wsloop.options",
    "wsloop.loops",
    "wsloop.loops.builtin",
    "wsloop.loops.asyncio",
    "wsloop.loops.libev",
    "wsloop.loops.libuv",
    "wsloop.loops.glib",
    "wsloop.protocol",
]


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
