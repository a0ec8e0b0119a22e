"""Whether wsloop runs its compiled modules or their Python source, and
which C accelerator (if any) they use.

The build compiles the modules on the per-message path with mypyc (see
``hatch_build.py``) and records a hash of each source it compiled in
``_compiled.json``. Compiled modules call each other directly, so they are
used all together or not at all: this module, imported before any of them,
routes their imports to the ``.py`` files when

* ``WSLOOP_NO_SPEEDUPS=1`` asks for pure Python (tests run both ways), or
* a source changed since it was compiled (an edited editable install):
  running stale compiled code would silently ignore the edit, so wsloop
  warns and runs the sources until it is reinstalled.

Nothing here runs per message; it costs one small file read at import.
"""

from __future__ import annotations

import hashlib
import importlib.abc
import importlib.util
import json
import os
import sys
import warnings
from collections.abc import Sequence
from importlib.machinery import ModuleSpec
from pathlib import Path
from types import ModuleType

__all__ = ["COMPILED", "speedups"]

_PACKAGE = Path(__file__).parent
_MANIFEST = _PACKAGE / "_compiled.json"


def source_hash(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


class _SourceFinder(importlib.abc.MetaPathFinder):
    """Finds the listed modules as their ``.py`` files."""

    def __init__(self, sources: dict[str, Path]) -> None:
        self.sources = sources

    def find_spec(
        self, fullname: str, path: Sequence[str] | None, target: ModuleType | None = None
    ) -> ModuleSpec | None:
        source = self.sources.get(fullname)
        if source is None:
            return None
        return importlib.util.spec_from_file_location(fullname, source)


def _choose() -> bool:
    try:
        manifest: dict[str, str] = json.loads(_MANIFEST.read_text())
    except (OSError, ValueError):
        return False  # nothing was compiled
    sources = {
        name: _PACKAGE.parent.joinpath(*name.split(".")).with_suffix(".py") for name in manifest
    }
    if not all(path.exists() for path in sources.values()):
        return True  # no sources to fall back to (e.g. a frozen application)
    if not os.environ.get("WSLOOP_NO_SPEEDUPS"):
        changed = [
            name for name, digest in manifest.items() if source_hash(sources[name]) != digest
        ]
        if not changed:
            return True
        warnings.warn(
            f"wsloop: {', '.join(sorted(changed))} changed since compiled; running the Python "
            "sources of every compiled module (reinstall wsloop to compile them again)",
            RuntimeWarning,
            stacklevel=2,
        )
    sys.meta_path.insert(0, _SourceFinder(sources))
    return False


#: True when the mypyc-compiled modules are in use.
COMPILED = _choose()


def speedups() -> ModuleType | None:
    """The optional C accelerator, ``wsloop._speedups``: None when it was
    not built or ``WSLOOP_NO_SPEEDUPS=1`` asks for pure Python."""
    if os.environ.get("WSLOOP_NO_SPEEDUPS"):
        return None
    try:
        from . import _speedups
    except ImportError:
        return None
    return _speedups
