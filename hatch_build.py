"""Build hook: compile wsloop's optional accelerators into the wheel.

1. ``src/wsloop/_speedups.c``: masking, frame encoding, the whole-frame
   parser and the socket calls, in C. ``protocol/frames.py`` and
   ``transport.py`` each import it where they use it, with their Python
   twins as the fallback.
2. The modules every message goes through (``COMPILED`` below), compiled
   from their own typed Python source by mypyc: the same code, without the
   interpreter's per-call and per-attribute cost. Python imports an
   extension module in preference to the ``.py`` beside it, so the wheel is
   the one place that decides: a compiled wheel runs them compiled.

Only a regular wheel is compiled. An editable install (``pip install -e``)
is pure Python, so an edited source runs as it is, the way mypy and black
build; ``scripts/compiled`` builds and runs the compiled wheel from a
checkout. ``WSLOOP_NO_EXTENSIONS=1`` builds a pure-Python wheel.

When a compile fails (no C compiler, no Python headers, no mypyc), the
build fails, saying why and how to ask for the pure-Python wheel, rather
than falling back to it by itself: pip shows a build backend's output only
with ``-v`` or when the build fails, so a silent fallback would cost every
message a third of its CPU with nothing said. ``CC`` chooses the compiler,
as for any Python extension.

The build happens in a scratch copy of the sources, so nothing compiled is
ever left beside them.
"""

from __future__ import annotations

import os
import platform
import shlex
import shutil
import subprocess
import sys
import sysconfig
import tempfile
from pathlib import Path
from typing import Any

from hatchling.builders.hooks.plugin.interface import BuildHookInterface
from packaging.specifiers import SpecifierSet

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
    "wsloop/protocol/assembler.py",
    "wsloop/protocol/connection.py",
    "wsloop/protocol/deflate.py",
    "wsloop/protocol/events.py",
    "wsloop/protocol/frames.py",
    "wsloop/protocol/handshake.py",
    "wsloop/protocol/reader.py",
    "wsloop/protocol/writer.py",
    "wsloop/_aiows.py",
    "wsloop/_inbox.py",
    "wsloop/_view.py",
    "wsloop/loops/_invoke.py",
    "wsloop/client.py",
    "wsloop/server.py",
    "wsloop/transport.py",
    "wsloop/websocket.py",
]

# Run in the scratch copy of src/ (so setuptools sees no pyproject.toml and
# writes the modules next to their sources there); argv: mypy config, then
# the modules. mypyc writes only a signature into each docstring slot of
# the C it generates; before that C is compiled, the docstrings of the
# source are appended there, so help(), IDEs and the API reference see
# the same text compiled or not (tests/test_compiled.py checks).
_MYPYC_SETUP = r"""
import ast, re, sys
from pathlib import Path
from setuptools import setup
from mypyc.build import mypycify

config, *modules = sys.argv[1:]
docs = {}  # (module's last name, class or None, name) -> docstring
properties = set()  # the same keys, for properties
for module in modules:
    short = Path(module).stem
    tree = ast.parse(Path(module).read_text())
    for node in tree.body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            docs[(short, None, node.name)] = ast.get_docstring(node)
        if isinstance(node, ast.ClassDef):
            for item in node.body:
                if isinstance(item, (ast.FunctionDef, ast.AsyncFunctionDef)):
                    key = (short, node.name, item.name)
                    if any(ast.unparse(d) == "property" for d in item.decorator_list):
                        properties.add(key)
                        docs[key] = ast.get_docstring(item)
                    elif key not in docs:  # a property's setter keeps the getter's doc
                        docs[key] = ast.get_docstring(item)

extensions = mypycify(["--config-file", config, *modules], group_name="wsloop._compiled")

def literal(text):
    out = []
    for byte in text.encode("utf-8"):
        char = chr(byte)
        if char in '"\\?':
            out.append("\\" + char)
        elif char == "\n":
            out.append("\\n")
        elif 32 <= byte < 127:
            out.append(char)
        else:
            out.append("\\%03o" % byte)
    return '"' + "".join(out) + '"'

# Where mypyc writes a docstring slot, and what names it:
# - method tables (static PyMethodDef <module>___<Class>_methods[]) and a
#   module's function table (<module>module_methods): entries with
#   PyDoc_STR("name(signature)\n--\n\n");
# - coroutines, wrapped in objects made by CPyFunction_New(..., "Class.name",
#   ...) with the module's C name on the line, whose doc is an attribute;
# - a class's .tp_doc = PyDoc_STR("Class(signature)\n--\n\n"), or
#   PyDoc_STR(NULL) when mypyc cannot write the signature, in the class's
#   "static PyTypeObject CPyType_<module>___<Class>_template_ = {";
# - property entries of getset tables (<module>___<Class>_getseters[]): a
#   {"name", line, then lines ending in "NULL, NULL, NULL}," (read-only: the
#   middle NULL is the doc) or "NULL, NULL}," after a setter (the first).
table = re.compile(r"static PyMethodDef (\w+?)(?:___(\w+)_methods|module_methods)\[\]")
getsets = re.compile(r"static PyGetSetDef (\w+?)___(\w+)_getseters\[\]")
signature = re.compile(r'PyDoc_STR\("(\w+)\(([^"]|\\")*?\\n--\\n\\n"\)')
coroutine = re.compile(r'CPyModule_(\w+)\), "[^"]*", "(\w+)\.(\w+)",')
wrapper = re.compile(r"PyObject\* (\w+) = CPyFunction_New\(")
prop_start = re.compile(r'^\s*\{"(\w+)",\s*$')
type_template = re.compile(r"static PyTypeObject CPyType_(\w+)___(\w+?)_template_ = \{")
null_doc = ".tp_doc = PyDoc_STR(NULL)"

def add_doc(line, match, doc):
    end = match.end() - 1
    return line[:end] + " " + literal(doc) + line[end:]

for path in {source for ext in extensions for source in ext.sources}:
    lines = Path(path).read_text().splitlines(keepends=True)
    where = (None, None)
    in_getset = None  # (module, class) while in a getset table
    prop = None
    in_type = None  # (module, class) in a type's template
    for i, line in enumerate(lines):
        started_type = type_template.search(line)
        if started_type:
            in_type = (started_type.group(1).split("___")[-1], started_type.group(2))
        elif null_doc in line and in_type is not None:
            doc = docs.get((in_type[0], None, in_type[1]))
            if doc:
                lines[i] = line.replace(null_doc, f".tp_doc = PyDoc_STR({literal(doc)})")
            in_type = None
            continue
        if table.search(line):
            found = table.search(line)
            where, in_getset = (found.group(1), found.group(2)), None
        elif getsets.search(line):
            found = getsets.search(line)
            in_getset, prop = (found.group(1), found.group(2)), None
        elif in_getset is not None:
            started = prop_start.match(line)
            if started:
                prop = started.group(1)
            elif line.strip() == "};":
                in_getset = None
            elif prop is not None and line.rstrip().endswith(("NULL, NULL, NULL},", "NULL, NULL},")):
                key = (in_getset[0], in_getset[1], prop)
                doc = docs.get(key) if key in properties else None
                if doc:
                    if line.rstrip().endswith("NULL, NULL, NULL},"):
                        line = line.replace("NULL, NULL, NULL},", f"NULL, {literal(doc)}, NULL}},")
                    else:
                        line = line.replace("NULL, NULL},", f"{literal(doc)}, NULL}},")
                prop = None
        wrapped = coroutine.search(line)
        if wrapped:
            # The wrapper object's type reads no doc from its C slot; its
            # __doc__ is an attribute of the object, set once made.
            module = wrapped.group(1).split("___")[-1]
            doc = docs.get((module, wrapped.group(2), wrapped.group(3)))
            made = wrapper.search(line)
            if doc and made:
                name = made.group(1)
                line = line.rstrip("\n") + (
                    f" if ({name} != NULL) {{ PyObject *doc = PyUnicode_FromString({literal(doc)});"
                    f' if (doc == NULL || PyObject_SetAttrString({name}, "__doc__", doc) < 0)'
                    " PyErr_Clear(); Py_XDECREF(doc); }\n"
                )
            lines[i] = line
            continue
        for match in reversed(list(signature.finditer(line))):
            if ".tp_doc" in line:
                name = match.group(1)
                doc = next((d for (m, c, n), d in docs.items() if c is None and n == name), None)
            else:
                doc = docs.get((where[0], where[1], match.group(1)))
            if doc:
                line = add_doc(line, match, doc)
        lines[i] = line
    Path(path).write_text("".join(lines))

setup(name="wsloop-compiled", ext_modules=extensions, script_args=["build_ext", "--inplace", "-q"])
"""


#: What the failure of a compile tells the user to do.
PURE_HINT = (
    "Install a C compiler and Python's headers (Debian: apt-get install gcc python3-dev), "
    "or set WSLOOP_NO_EXTENSIONS=1 to build the pure-Python wheel "
    "(the same behaviour, with more CPU per message)."
)


class SpeedupsBuildHook(BuildHookInterface):  # type: ignore[type-arg]
    PLUGIN_NAME = "custom"

    def initialize(self, version: str, build_data: dict[str, Any]) -> None:
        self._scratch: Path | None = None
        if self.target_name != "wheel" or version == "editable":
            return
        if os.environ.get("WSLOOP_NO_EXTENSIONS"):
            self.app.display_info("wsloop: WSLOOP_NO_EXTENSIONS is set: a pure-Python wheel")
            return
        supported = SpecifierSet(self.metadata.core.requires_python)
        if platform.python_version() not in supported:
            # Building metadata may build the wheel (old hatchling does): say
            # nothing about compilers, so that pip goes on to say which
            # Pythons wsloop supports.
            return
        self._scratch = Path(tempfile.mkdtemp(prefix="wsloop-build-"))
        src = self._scratch / "src"
        shutil.copytree(
            Path(self.root) / "src",
            src,
            ignore=shutil.ignore_patterns("__pycache__", "*.so", "*.pyd", "*.c.o", "build"),
        )
        try:
            built = [*self._build_speedups(src), *self._build_compiled(src)]
        except BaseException:
            shutil.rmtree(self._scratch, ignore_errors=True)  # finalize() will not run
            raise
        build_data["pure_python"] = False
        build_data["infer_tag"] = True
        for path in built:
            build_data["force_include"][str(path)] = str(path.relative_to(src))

    def finalize(self, version: str, build_data: dict[str, Any], artifact_path: str) -> None:
        if self._scratch is not None:
            shutil.rmtree(self._scratch, ignore_errors=True)

    def _build_speedups(self, src: Path) -> list[Path]:
        package = src / "wsloop"
        target = package / f"_speedups{sysconfig.get_config_var('EXT_SUFFIX') or '.so'}"
        command = [
            *link_command(),
            "-O3",
            "-fPIC",
            f"-I{sysconfig.get_paths()['include']}",
            str(package / "_speedups.c"),
            "-o",
            str(target),
        ]
        self._run(command, src, "the C speedups (_speedups.c)")
        return [target]

    def _build_compiled(self, src: Path) -> list[Path]:
        suffix = sysconfig.get_config_var("EXT_SUFFIX") or ".so"
        config = str(Path(self.root) / "pyproject.toml")
        command = [sys.executable, "-c", _MYPYC_SETUP, config, *COMPILED]
        self._run(command, src, "the compiled modules (mypyc)", timeout=900)
        return [
            src / "wsloop" / f"_compiled__mypyc{suffix}",
            *(src / (module[: -len(".py")] + suffix) for module in COMPILED),
        ]

    def _run(self, command: list[str], cwd: Path, what: str, timeout: int = 120) -> None:
        try:
            subprocess.run(command, cwd=cwd, check=True, capture_output=True, timeout=timeout)
        except subprocess.CalledProcessError as exc:
            detail = (exc.stderr or b"").decode(errors="replace").strip()[-1500:]
            reason = f"{command[0]} exited with status {exc.returncode}:\n{detail}"
        except subprocess.TimeoutExpired:
            reason = f"{command[0]} did not finish within {timeout} s"
        except OSError as exc:
            reason = f"{command[0]}: {exc}"
        else:
            return
        raise RuntimeError(f"wsloop: could not build {what}: {reason}\n\n{PURE_HINT}")


def link_command() -> list[str]:
    """Compile and link one C file into an extension: the interpreter's own
    ``LDSHARED``, with ``$CC`` (when set) in place of the compiler it names,
    as setuptools does for the modules mypyc writes."""
    ldshared = shlex.split(sysconfig.get_config_var("LDSHARED") or "cc -shared")
    cc = os.environ.get("CC")
    if not cc:
        return ldshared
    configured = shlex.split(sysconfig.get_config_var("CC") or "cc")
    if ldshared[: len(configured)] == configured:
        ldshared = ldshared[len(configured) :]
    else:  # LDSHARED names its own linker: keep its flags, compile with $CC
        ldshared = [arg for arg in ldshared[1:] if arg.startswith("-")]
    return [*shlex.split(cc), *ldshared]
