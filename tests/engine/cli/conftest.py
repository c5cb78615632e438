"""Helpers for the tests that run `distsched` as real processes."""

from __future__ import annotations

import queue
import re
import threading
from typing import IO

import pytest


class Lines:
    """Reads a process's output stream on a thread, so waiting for a line has a deadline."""

    def __init__(self, stream: IO[str]) -> None:
        self.seen: list[str] = []
        self._queue: queue.Queue[str | None] = queue.Queue()
        threading.Thread(target=self._pump, args=(stream,), daemon=True).start()

    def _pump(self, stream: IO[str]) -> None:
        for line in iter(stream.readline, ""):
            self._queue.put(line)
        self._queue.put(None)

    def until(self, pattern: str, timeout: float = 30.0) -> str:
        """The first new line matching ``pattern``; AssertionError (with what was seen)
        when the stream ends or ``timeout`` seconds pass first."""
        import time

        deadline = time.monotonic() + timeout
        while True:
            try:
                line = self._queue.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                line = None
            if line is None:
                raise AssertionError(f"no line matching {pattern!r} within {timeout}s in:\n{''.join(self.seen)}")
            self.seen.append(line)
            if re.search(pattern, line):
                return line

    def rest(self, timeout: float = 30.0) -> str:
        """Everything until the stream ends (the process exited)."""
        import time

        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                line = self._queue.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                break
            if line is None:
                break
            self.seen.append(line)
        return "".join(self.seen)


@pytest.fixture
def lines():
    return Lines
