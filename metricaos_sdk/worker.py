"""The meter's background thread, and the rule that finalizers do no work.

The cyclic garbage collector may run on any thread at any allocation — also while that thread holds one of
our locks, in the middle of a SQLite transaction. A finalizer it runs (``__del__``, a weakref callback, the
``finally`` of a generator it closes — the provider SDK's stream reader closes its response there) must
therefore never take a lock or do I/O: re-entering a lock its own thread holds hangs that thread for good,
and with it every process waiting on the database. So code that may run in a finalizer hands its work to
:meth:`BackgroundWorker.put` — ``queue.SimpleQueue.put`` is reentrant, made for this — and returns;
:func:`in_finalizer_context` tells code that cannot know how it was reached whether a collection is running
on this thread.

The worker thread runs handed-over work in order, and periodic jobs (quota settlements waiting for their
store) while any is pending. ``drain()`` waits until everything handed over so far is done; it runs the work
itself when the thread is not running (at exit, after a fork, before the first stream).
"""

from __future__ import annotations

import gc
import logging
import queue
import threading
import time
from collections.abc import Callable
from typing import Any

from ._fork import renew_after_fork

__all__ = ["BackgroundWorker", "in_finalizer_context"]

log = logging.getLogger("metricaos_sdk")

_collecting: int | None = None  # the thread running a garbage collection, if any


def _on_collection(phase: str, info: dict[str, Any]) -> None:
    global _collecting
    _collecting = threading.get_ident() if phase == "start" else None


gc.callbacks.append(_on_collection)


def in_finalizer_context() -> bool:
    """Whether this thread is inside a garbage collection, where finalizers run: take no lock, do no I/O."""
    return _collecting is not None and _collecting == threading.get_ident()


_STOP = object()


class BackgroundWorker:
    """One daemon thread per meter for work that must not run where it was found, and periodic jobs."""

    def __init__(self, name: str, fault: Callable[[str], None]) -> None:
        self.name = name
        self._fault = fault
        self._queue: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._start_lock = threading.Lock()  # ordinary threads only: never taken by put()
        self._jobs: list[Callable[[], bool]] = []
        self.interval = 1.0
        """Seconds between runs of the periodic jobs while one of them says it has work pending."""
        renew_after_fork(self, _thread=lambda: None, _start_lock=threading.Lock, _queue=queue.SimpleQueue)

    def every(self, job: Callable[[], bool]) -> None:
        """Run ``job()`` periodically on the thread while it returns True (it has work left); ``poke()`` wakes it."""
        self._jobs.append(job)

    def put(self, work: Callable[[], Any]) -> None:
        """Run ``work()`` on the worker thread. Safe in a finalizer: takes no lock, does no I/O."""
        self._queue.put(work)

    def poke(self) -> None:
        """Run the periodic jobs soon (a settlement is now waiting for its store). Safe anywhere."""
        self._queue.put(None)

    def start(self) -> None:
        """Start the thread if it is not running. Call from ordinary code (a call being set up), never a finalizer."""
        thread = self._thread
        if thread is not None and thread.is_alive():
            return
        with self._start_lock:
            if self._thread is not None and self._thread.is_alive():
                return
            thread = threading.Thread(target=self._run, name=self.name, daemon=True)
            try:
                thread.start()
            except RuntimeError:  # no thread to be had (interpreter shutting down): drain() does the work
                return
            self._thread = thread

    @property
    def running(self) -> bool:
        thread = self._thread
        return thread is not None and thread.is_alive() and thread is not threading.current_thread()

    def _run(self) -> None:
        pending = False
        while True:
            try:
                work = self._queue.get(timeout=self.interval if pending else None)
            except queue.Empty:
                work = None
            if work is _STOP:
                return
            if work is not None:
                self._do(work)
            pending = self._run_jobs() if work is None or pending else pending

    def _do(self, work: Callable[[], Any]) -> None:
        try:
            work()
        except Exception:
            self._fault("background work failed")

    def _run_jobs(self) -> bool:
        pending = False
        for job in self._jobs:
            try:
                pending = bool(job()) or pending
            except Exception:
                self._fault("a periodic job failed")
        return pending

    def drain(self, timeout: float = 30.0) -> bool:
        """Wait until everything handed over so far is done (and the periodic jobs ran once). True if it was."""
        if self.running:
            done = threading.Event()
            self._queue.put(done.set)
            if not done.wait(timeout):
                log.warning("metricaos_sdk: background work still running after %.0f s", timeout)
                return False
            self._run_jobs()
            return True
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                work = self._queue.get_nowait()
            except queue.Empty:
                break
            if work is not None and work is not _STOP:
                self._do(work)
        self._run_jobs()
        return True

    def stop(self, timeout: float = 5.0) -> None:
        """Finish what was handed over, then stop the thread."""
        self.drain(timeout)
        thread = self._thread
        if thread is not None and thread.is_alive() and thread is not threading.current_thread():
            self._queue.put(_STOP)
            thread.join(timeout)
        self._thread = None
        self.drain(timeout)  # what arrived meanwhile

