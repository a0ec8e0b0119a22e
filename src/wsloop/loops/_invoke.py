"""How every callback wsloop hands to a native loop runs: :func:`invoke`.

Apart from :mod:`wsloop.loops.base` so it can be compiled with the
per-message modules (``hatch_build.py``): every socket event of every
connection starts here, and an interpreted frame per event measured as
much as a tenth of a small round trip's Python work. Generic: it knows
only that a loop records the thread it runs on and reports exceptions.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any, Final

__all__ = ["invoke"]

# Final: a C static when compiled; typed object so the thread id is stored
# as it comes, not converted to a C int and back.
get_ident: Final[Callable[[], object]] = threading.get_ident


def invoke(loop: Any, callback: Callable[..., object], args: tuple[Any, ...]) -> None:
    """Run ``callback(*args)`` on ``loop``'s behalf: note the loop's thread,
    and catch and report whatever it raises, so no exception reaches (or
    stops) the native loop."""
    loop._thread_id = get_ident()
    try:
        callback(*args)
    except Exception as exc:
        loop._report(exc, callback)
