"""Build hook: compile the optional C accelerator (src/wsloop/_speedups.c).

Without a C compiler, or with WSLOOP_NO_EXTENSIONS=1, the build goes on and
wsloop uses its pure-Python code paths.
"""

from __future__ import annotations

import os
import shlex
import subprocess
import sysconfig
from pathlib import Path
from typing import Any

from hatchling.builders.hooks.plugin.interface import BuildHookInterface


class SpeedupsBuildHook(BuildHookInterface):  # type: ignore[type-arg]
    PLUGIN_NAME = "custom"

    def initialize(self, version: str, build_data: dict[str, Any]) -> None:
        if self.target_name != "wheel" or os.environ.get("WSLOOP_NO_EXTENSIONS"):
            return
        package = Path(self.root) / "src" / "wsloop"
        source = package / "_speedups.c"
        target = package / f"_speedups{sysconfig.get_config_var('EXT_SUFFIX') or '.so'}"
        ldshared = sysconfig.get_config_var("LDSHARED") or "cc -shared"
        command = [
            *shlex.split(ldshared),
            "-O3",
            "-fPIC",
            f"-I{sysconfig.get_paths()['include']}",
            str(source),
            "-o",
            str(target),
        ]
        try:
            subprocess.run(command, check=True, capture_output=True, timeout=120)
        except (OSError, subprocess.SubprocessError) as exc:
            detail = getattr(exc, "stderr", b"") or b""
            self.app.display_warning(
                f"wsloop: C speedups not built ({exc} {detail.decode(errors='replace')[:300]}); "
                "using the pure-Python code"
            )
            return
        build_data["pure_python"] = False
        build_data["infer_tag"] = True
        if version != "editable":
            build_data["force_include"][str(target)] = f"wsloop/{target.name}"
