"""The fuzzing suite's bounded part, in every run of the test suite:

* every input of the checked-in corpus (tests/fuzz/corpus/TARGET) replayed
  through its target, in this process;
* each target fuzzed by atheris for a few seconds from that corpus, in a
  subprocess, on whichever build this pass runs (its PYTHONPATH is
  inherited: the compiled pass fuzzes the compiled modules and the C
  accelerator, the pure pass the Python sources, instrumented).

A crash, a hang (libFuzzer's -timeout), an exception other than the core's
own errors, or a broken invariant (fuzz_targets.py) fails. Longer runs by
hand: tests/fuzz/fuzz-long (docs/testing.md).
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

import wsloop
from wsloop.protocol import frames

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from fuzz_targets import TARGETS  # noqa: E402

SECONDS = int(os.environ.get("WSLOOP_FUZZ_SECONDS", "2"))  # per target, per pass


@pytest.mark.parametrize("target", sorted(TARGETS))
def test_the_corpus_replays_cleanly(target: str) -> None:
    inputs = sorted((HERE / "corpus" / target).iterdir())
    assert len(inputs) >= 5, "the seed corpus is missing: run tests/fuzz/make_corpus.py"
    for path in inputs:
        TARGETS[target](path.read_bytes())


@pytest.mark.parametrize("target", sorted(TARGETS))
def test_a_short_fuzzing_run_finds_nothing(target: str, tmp_path: Path) -> None:
    scratch = tmp_path / "corpus"
    scratch.mkdir()
    command = [
        sys.executable,
        str(HERE / "run.py"),
        target,
        f"-max_total_time={SECONDS}",
        "-runs=1000000",
        "-timeout=5",  # seconds per input: a hang
        "-rss_limit_mb=1024",  # what a bomb would cost
        "-max_len=4096",
        f"-artifact_prefix={tmp_path}/",
        str(scratch),
        str(HERE / "corpus" / target),
    ]
    run = subprocess.run(command, capture_output=True, text=True, timeout=SECONDS + 60)
    found = sorted(p.name for p in tmp_path.iterdir() if p.name != "corpus")
    tail = "\n".join(run.stderr.splitlines()[-40:])
    assert run.returncode == 0 and not found, f"{target}: {found}\n{tail}"
    expected = f"wsloop build: compiled={wsloop.COMPILED} speedups={frames.SPEEDUPS}"
    assert expected in run.stderr, run.stderr[:2000]
    assert "Done" in run.stderr  # libFuzzer finished its runs, not the process cut short
