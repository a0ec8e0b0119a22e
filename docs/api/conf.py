"""Sphinx configuration of wsloop's API reference, made from the docstrings.

Build it with ``python -m sphinx -W -n docs/api <out>`` (tests/test_api_reference.py
does, with warnings as errors and every type reference checked).
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "src"))

import wsloop  # noqa: E402
from wsloop.handler import EVENTS  # noqa: E402

project = "wsloop"
release = version = wsloop.__version__
# autodoc alone: the docstrings are reST prose with roles, no Google or NumPy
# sections (napoleon would read a property's "The X: ..." as a type).
extensions = ["sphinx.ext.autodoc"]
root_doc = "index"
exclude_patterns = ["_build"]
html_theme = "alabaster"
nitpicky = True

autodoc_default_options = {
    "members": True,
    "undoc-members": True,
    "show-inheritance": True,
    "member-order": "bysource",
    # What a class gets from wsloop's private bases (ConnectionView's
    # state, close_code...) is its own API: shown, but not what it gets
    # from Python's classes.
    "inherited-members": "object,BaseException,Exception,int,str,tuple,dict,Enum,IntEnum,Protocol",
}
autodoc_typehints = "signature"
autodoc_preserve_defaults = True
autoclass_content = "both"

# Types from outside wsloop: the standard library's and the backends' own
# loops. (The reference is built offline, without intersphinx.) Every
# wsloop type must resolve; these are the only misses allowed.
_OUTSIDE = (
    r"ssl|socket|re|collections|asyncio|concurrent|threading|types|typing_extensions|selectors"
    r"|enum|zlib|logging|dataclasses|io|os|abc|_io|_socket|_asyncio|gevent|gi|uvloop"
)
nitpick_ignore_regex = [
    (r"py:.*", rf"({_OUTSIDE})\..*"),
    (r"py:mod", "selectors|tkinter"),
    # Private: the bases that hold what the front-ends share, and what
    # wsloop makes a WebSocket with (users are given one, never make one).
    (r"py:class", r"wsloop\.((loops|broker)\.)?_.*"),
    (r"py:class", r"wsloop\.(websocket\.Owner|transport\.Transport)|Owner|Transport"),
]


def _public_name(app: Any, env: Any, node: Any, contnode: Any) -> Any:
    """Resolve a reference the way a reader of the docstring means it:
    ``wsloop.<private module>.Name`` (how annotations spell a type) or a
    short ``Name``/``Class.method`` to the object the reference documents
    under that name, preferring the referring class, then its module."""
    if node.get("refdomain") != "py":
        return None
    target = node["reftarget"].lstrip(".~")
    name = target.split(".", 1)[1] if target.startswith("wsloop.") else target
    name = name.rsplit(".", 1)[-1] if target.startswith("wsloop.") else name
    domain = env.get_domain("py")
    here = ".".join(p for p in (node.get("py:module"), node.get("py:class")) if p)
    module = node.get("py:module") or ""

    def rank(full: str) -> tuple[int, int, str]:
        return (not full.startswith(here + "."), not full.startswith(module + "."), len(full), full)

    candidates = sorted((full for full in domain.objects if full.endswith("." + name)), key=rank)
    for candidate in candidates:
        for role in (node["reftype"], "obj"):
            resolved = domain.resolve_xref(
                env, node["refdoc"], app.builder, role, candidate, node, contnode
            )
            if resolved is not None:
                return resolved
    return None


def _public_bases(app: Any, name: str, obj: Any, options: Any, bases: list[type]) -> None:
    """Leave private bases (ConnectionView...) out of "Bases:"."""
    bases[:] = [b for b in bases if not b.__module__.split(".")[-1].startswith("_")] or bases[-1:]


#: Methods that some public classes implement for wsloop itself: the
#: handler's callbacks on the front-ends' connections (each is its
#: connection's handler) and the transport's calls on ``WebSocket``.
#: :class:`wsloop.Handler` documents the callbacks; nothing else calls them.
INTERNAL_CALLBACKS = frozenset(
    (
        *EVENTS,
        "connection_made",
        "data_received",
        "eof_received",
        "write_drained",
        "connection_lost",
    )
)


def internal(owner: str, name: str) -> bool:
    """Whether method ``name`` of class ``owner`` is one of those."""
    return name in INTERNAL_CALLBACKS and owner != "Handler"


def _skip_member(app: Any, what: str, name: str, obj: Any, skip: bool, options: Any) -> bool | None:
    owner = getattr(obj, "__qualname__", "").partition(".")[0]
    if what == "class" and internal(owner, name):
        return True
    return None


def setup(app: Any) -> None:
    app.connect("missing-reference", _public_name)
    app.connect("autodoc-skip-member", _skip_member)
    app.connect("autodoc-process-bases", _public_bases)
