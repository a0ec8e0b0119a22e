"""What wsloop logs: to the ``wsloop`` logger hierarchy only, silently
unless the application configures logging (a NullHandler), and every
message is listed in docs/logging.md."""

from __future__ import annotations

import ast
import logging
import subprocess
import sys
import threading
from pathlib import Path

import wsloop

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = Path(wsloop.__file__).parent
SOURCE = ROOT / "src" / "wsloop"  # compiled builds keep no .py: read the checkout's
DOC = (ROOT / "docs" / "logging.md").read_text()


def library_sources() -> list[Path]:
    return [p for p in SOURCE.rglob("*.py") if "cli" not in p.relative_to(SOURCE).parts]


def test_the_library_logger_has_a_null_handler() -> None:
    assert any(isinstance(h, logging.NullHandler) for h in logging.getLogger("wsloop").handlers)


def test_without_logging_configured_wsloop_prints_nothing() -> None:
    # Python's last-resort handler prints WARNING and above to stderr when
    # no handler is found; the NullHandler on "wsloop" is found first.
    code = (
        "import logging, wsloop\n"
        "logging.getLogger('wsloop').error('an error nobody configured logging for')\n"
        "logging.getLogger('wsloop.loops').warning('nor for this')\n"
        "logging.getLogger('other').warning('a logger of the application')\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    assert "nobody" not in result.stderr and "nor for this" not in result.stderr
    assert "a logger of the application" in result.stderr  # last resort still works for it


LOOP_NEVER_RUNS = """\
import sys
import wsloop

loop = wsloop.get_loop("builtin")  # never run
wsloop.connect("ws://127.0.0.1:9/", loop=loop, loop_warning=0.1)
sys.stdin.read()  # until the test has seen the report
"""


def test_a_loop_that_never_runs_is_reported_without_logging_configured(tmp_path: Path) -> None:
    # The NullHandler keeps wsloop's log records quiet in such a program;
    # the report of a loop that never runs is also a RuntimeWarning, which
    # Python prints by default, pointing at the application's connect().
    script = tmp_path / "app.py"
    script.write_text(LOOP_NEVER_RUNS)
    child = subprocess.Popen(
        [sys.executable, str(script)],
        stdin=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert child.stdin is not None and child.stderr is not None
    timer = threading.Timer(30, child.kill)  # a report that never comes fails, not hangs
    timer.start()
    try:
        first = child.stderr.readline()  # blocks until the report (or the kill)
        child.stdin.close()
        rest = child.stderr.read()
        assert child.wait(30) == 0, first + rest
    finally:
        timer.cancel()
        child.kill()
    assert first.startswith(f"{script}:5: RuntimeWarning: wsloop: connect('ws://127.0.0.1:9/')")
    assert "builtin loop" in first and "loop.run() or wsloop.run()" in first
    assert 'wsloop.connect("ws://127.0.0.1:9/"' in rest  # the source line, as Python shows it
    assert "was requested" not in rest  # once, not again through logging's last resort


def logger_names() -> set[str]:
    names = set()
    for path in library_sources():
        for node in ast.walk(ast.parse(path.read_text())):
            if (
                isinstance(node, ast.Call)
                and ast.unparse(node.func) == "logging.getLogger"
                and node.args
                and isinstance(node.args[0], ast.Constant)
            ):
                names.add(node.args[0].value)
    return names


def test_every_logger_is_in_the_hierarchy_and_documented() -> None:
    names = logger_names()
    assert "wsloop" in names and "wsloop.loops" in names
    for name in names:
        assert name == "wsloop" or name.startswith("wsloop."), name
        assert f"| `{name}` |" in DOC, f"logger {name} is not in docs/logging.md"


def logged_messages() -> list[tuple[str, str, str]]:
    """(where, level, message) of every ``logger.<level>("...")`` call."""
    levels = {"debug", "info", "warning", "error", "exception", "critical"}
    found = []
    for path in library_sources():
        tree = ast.parse(path.read_text())
        # A message kept in a module constant (to be reported another way too).
        constants = {
            target.id: node.value
            for node in tree.body
            if isinstance(node, ast.Assign) and isinstance(node.value, ast.Constant)
            for target in node.targets
            if isinstance(target, ast.Name)
        }
        for node in ast.walk(tree):
            if (
                isinstance(node, ast.Call)
                and isinstance(node.func, ast.Attribute)
                and node.func.attr in levels
                and ast.unparse(node.func.value) == "logger"
            ):
                message = node.args[0]
                if isinstance(message, ast.Name):
                    message = constants.get(message.id, message)
                assert isinstance(message, ast.Constant), f"{path}:{node.lineno}: not a literal"
                level = "ERROR" if node.func.attr == "exception" else node.func.attr.upper()
                found.append((f"{path.name}:{node.lineno}", level, message.value))
    return found


def test_every_logged_message_is_in_the_table_at_its_level() -> None:
    messages = logged_messages()
    assert len(messages) >= 20
    rows = [line for line in DOC.splitlines() if line.startswith("| ")]
    for where, level, message in messages:
        start = message.split("%")[0] if not message.startswith("%") else message
        start = start[:40]
        matching = [row for row in rows if f"`{start}" in row]
        assert matching, f"{where}: {message!r} is not in docs/logging.md"
        assert any(row.startswith(f"| {level} |") for row in matching), (
            f"{where}: {message!r} is logged at {level}, not at the level the table says"
        )
