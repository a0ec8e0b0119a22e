"""Build hook: compile wsloop's optional accelerators.

1. ``src/wsloop/_speedups.c``: masking and the whole-frame fast paths, in C.
2. The modules every message goes through (``COMPILED`` below), compiled
   from their own typed Python source by mypyc: the same code, without the
   interpreter's per-call and per-attribute cost. The ``.py`` files stay
   beside the compiled modules; ``wsloop/_accel.py`` imports them instead
   with ``WSLOOP_NO_SPEEDUPS=1`` or when one was edited since compiled.

Without a C compiler (or mypyc), or with ``WSLOOP_NO_EXTENSIONS=1``, the
build goes on and wsloop runs as pure Python.
"""

from __future__ import annotations

import hashlib
import json
import os
import shlex
import subprocess
import sys
import sysconfig
import tempfile
from pathlib import Path
from typing import Any

from hatchling.builders.hooks.plugin.interface import BuildHookInterface

#: Compiled with mypyc. Left out on purpose: options.py (its dataclasses
#: validate user input with their own messages, which compiled attribute
#: checks would pre-empt), errors.py (exception classes), loops/ (a
#: compiled Loop with interpreted backends crashed on weak references;
#: only its per-event helper, loops/_invoke.py, is compiled),
#: aio.py (async generators; its per-message half is _aiows.py), handler.py
#: (applications subclass Handler, duck-type it and call its methods with
#: stand-ins, which compiled argument checks would refuse), and the
#: front-ends that are not on the per-message path.
COMPILED = [
    "wsloop/protocol/connection.py",
    "wsloop/protocol/deflate.py",
    "wsloop/protocol/events.py",
    "wsloop/protocol/frames.py",
    "wsloop/protocol/handshake.py",
    "wsloop/_aiows.py",
    "wsloop/_inbox.py",
    "wsloop/loops/_invoke.py",
    "wsloop/client.py",
    "wsloop/server.py",
    "wsloop/transport.py",
    "wsloop/websocket.py",
]

# Run in src/ (so setuptools sees no pyproject.toml and writes the modules
# next to their sources); argv: mypy config, scratch dir, then the modules.
_MYPYC_SETUP = """
import sys
from setuptools import setup
from mypyc.build import mypycify
config, scratch, *modules = sys.argv[1:]
setup(
    name="wsloop-compiled",
    ext_modules=mypycify(
        ["--config-file", config, "--cache-dir", scratch, *modules],
        group_name="wsloop._compiled", target_dir=scratch
    ),
    script_args=["build_ext", "--inplace", "--build-temp", scratch, "--build-lib", scratch, "-q"],
)
"""


class SpeedupsBuildHook(BuildHookInterface):  # type: ignore[type-arg]
    PLUGIN_NAME = "custom"

    def initialize(self, version: str, build_data: dict[str, Any]) -> None:
        if self.target_name != "wheel" or os.environ.get("WSLOOP_NO_EXTENSIONS"):
            return
        src = Path(self.root) / "src"
        built = [*self._build_speedups(src), *self._build_compiled(src)]
        if not built:
            return
        build_data["pure_python"] = False
        build_data["infer_tag"] = True
        if version != "editable":
            for path in built:
                build_data["force_include"][str(path)] = str(path.relative_to(src))

    def _build_speedups(self, src: Path) -> list[Path]:
        package = src / "wsloop"
        target = package / f"_speedups{sysconfig.get_config_var('EXT_SUFFIX') or '.so'}"
        ldshared = sysconfig.get_config_var("LDSHARED") or "cc -shared"
        command = [
            *shlex.split(ldshared),
            "-O3",
            "-fPIC",
            f"-I{sysconfig.get_paths()['include']}",
            str(package / "_speedups.c"),
            "-o",
            str(target),
        ]
        if self._run(command, src, "C speedups"):
            return [target]
        return []

    def _build_compiled(self, src: Path) -> list[Path]:
        suffix = sysconfig.get_config_var("EXT_SUFFIX") or ".so"
        package = src / "wsloop"
        manifest = package / "_compiled.json"
        targets = [
            package / f"_compiled__mypyc{suffix}",
            *(src / (module[: -len(".py")] + suffix) for module in COMPILED),
        ]
        # Whatever an earlier build left must not outlive a failed one, nor a
        # module no longer compiled (its stale .so would shadow the source).
        try:
            earlier = [
                src / (name.replace(".", "/") + suffix) for name in json.loads(manifest.read_text())
            ]
        except (OSError, ValueError):
            earlier = []
        for path in (manifest, *targets, *earlier):
            path.unlink(missing_ok=True)
        # The hash of each source as compiled: wsloop/_accel.py runs the
        # sources instead when one was edited since.
        digests = {
            module[: -len(".py")].replace("/", "."): hashlib.sha256(
                (src / module).read_bytes()
            ).hexdigest()
            for module in COMPILED
        }
        config = str(Path(self.root) / "pyproject.toml")
        with tempfile.TemporaryDirectory(prefix="wsloop-mypyc-") as scratch:
            command = [sys.executable, "-c", _MYPYC_SETUP, config, scratch, *COMPILED]
            if not self._run(command, src, "compiled modules (mypyc)", timeout=900):
                for path in targets:
                    path.unlink(missing_ok=True)
                return []
        manifest.write_text(json.dumps(digests, indent=1, sort_keys=True) + "\n")
        return [manifest, *targets]

    def _run(self, command: list[str], cwd: Path, what: str, timeout: int = 120) -> bool:
        try:
            subprocess.run(command, cwd=cwd, check=True, capture_output=True, timeout=timeout)
        except (OSError, subprocess.SubprocessError) as exc:
            detail = getattr(exc, "stderr", b"") or b""
            self.app.display_warning(
                f"wsloop: {what} not built ({exc} {detail.decode(errors='replace')[-600:]}); "
                "using the pure-Python code"
            )
            return False
        return True
