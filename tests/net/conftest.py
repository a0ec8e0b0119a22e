from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from loopkit import backend_params, free_native, make_loop, require
from wsloop.loops import Loop


class Backend:
    def __init__(self, name: str, mode: str) -> None:
        self.name = name
        self.mode = mode
        self.loop: Loop
        self.loop, self.native = make_loop(name, mode == "native")

    def run_until(self, done: Any, timeout: float = 10.0) -> bool:
        from loopkit import drive

        return drive(self.loop, self.native, self.name, done, timeout)

    def close(self) -> None:
        self.loop.close()
        free_native(self.name, self.native)


@pytest.fixture(params=backend_params())
def backend(request: pytest.FixtureRequest) -> Iterator[Backend]:
    """Each backend, on a loop wsloop owns and runs."""
    require(request.param)
    b = Backend(request.param, "owned")
    yield b
    b.close()


@pytest.fixture(
    params=[
        (n, m)
        for n in backend_params()
        for m in ("owned", "native")
        if (n, m) != ("builtin", "native")
    ],
    ids=lambda p: f"{p[0]}-{p[1]}",
)
def any_backend(request: pytest.FixtureRequest) -> Iterator[Backend]:
    """Each backend, owned, and (but builtin) an application's native loop run natively."""
    name, mode = request.param
    require(name)
    b = Backend(name, mode)
    yield b
    b.close()
