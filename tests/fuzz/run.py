"""Coverage-guided fuzzing of wsloop's sans-I/O core with atheris.

    python tests/fuzz/run.py TARGET [libFuzzer options] [CORPUS_DIR ...]
    python tests/fuzz/run.py --list

TARGET is one of fuzz_targets.TARGETS. Options go to libFuzzer as they are:
``-runs=N``, ``-max_total_time=S``, ``-timeout=S`` (per input),
``-rss_limit_mb=M``, ``-artifact_prefix=DIR/``, ``-jobs=N``... libFuzzer
adds the inputs it finds interesting to the first corpus directory: give it
a scratch directory first and the repository's tests/fuzz/corpus/TARGET
after it, unless you mean to grow the checked-in corpus (keep it small).

The build that runs is whichever wsloop is first on the path: the pure
Python sources (instrumented, so coverage guides the fuzzer through them),
or the compiled wheel (``scripts/compiled python tests/fuzz/run.py ...``),
whose compiled modules and C accelerator are not instrumented: there the
fuzzer mutates blindly from the corpus and catches crashes and wrong
answers, not new paths. tests/fuzz/fuzz-long runs every target for longer.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import atheris

with atheris.instrument_imports(include=["wsloop"]):
    import fuzz_targets


def main() -> None:
    if len(sys.argv) < 2 or sys.argv[1] not in fuzz_targets.TARGETS:
        print("usage: run.py TARGET [libFuzzer options] [CORPUS_DIR ...]", file=sys.stderr)
        print("targets: " + " ".join(fuzz_targets.TARGETS), file=sys.stderr)
        sys.exit(0 if sys.argv[1:] == ["--list"] else 2)
    target = fuzz_targets.TARGETS[sys.argv[1]]
    import wsloop
    from wsloop.protocol import frames

    # Which build runs, for the test that starts this script to check.
    print(f"wsloop build: compiled={wsloop.COMPILED} speedups={frames.SPEEDUPS}", file=sys.stderr)
    atheris.Setup([sys.argv[0], *sys.argv[2:]], target)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
