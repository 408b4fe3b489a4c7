"""The process pool for CPU-heavy export steps, whose processes never outlive the server.

The pool runs on a forkserver: the server starts one small process, the
forkserver, and every pool worker is forked from it; a resource tracker watches
their shared resources. None of them notices on its own that the server died:
a worker waits for its next task forever, and the forkserver and the tracker
wait for the workers. So each is tied to its parent by the kernel: with
``PR_SET_PDEATHSIG`` a process is sent SIGKILL when its parent dies, however
the parent died (``kill -9`` included), whatever the process is doing (a long
computation that holds the GIL included).

* The forkserver sets it for itself on start (it imports ``exportd.engine.forkserver``
  as its preload), so it dies with the server.
* Each worker sets it in the pool's initializer, so it dies with the forkserver;
  it then checks that the server is still alive, in case the server died
  before the signal was armed.
* The tracker then reads end-of-file from every process that held its pipe,
  and exits by itself.

The kernel ties the signal to the parent *thread*: the forkserver must be
started by a thread that lives as long as the server, so the engine starts it
from the event loop's thread when it starts, not lazily from a pipeline thread.

One pool serves every CPU-heavy step of the server: the exports' per-image
parts and the tracing of imported label images (`SharedPool`). A worker that
dies (killed, out of memory, a crash in a C library) breaks a
`ProcessPoolExecutor` for good: every future it held fails with
`BrokenProcessPool`, and so would every later submit. The shared pool then
starts a fresh executor on the next submit, from the same forkserver, so one
crash fails only the work that was in the pool at the time.

A pool process needs nothing of the script that started the server, yet
multiprocessing re-runs that script in every new process before its first
task (as `__mp_main__`, to find functions defined in it; the forkserver's own
preload of `__main__`, meant to save this, does not happen on CPython 3.11).
For the `exportd` command that script imports the CLI, the client and
everything they import: about 35 MB and most of a second of CPU in each pool
process. `process_pool` marks a script that was run as such (`__main__` without
a module spec) as not to be re-run, as it would be had it been started with
``python -m``; the server sends the pool only functions of its modules.

Export work yields the CPU to the API: each worker, and each pipeline thread of
the engine, raises its own niceness by ``EXPORTD_EXPORT_NICE`` (default 10) as
it starts (`lower_priority`). On Linux niceness belongs to a thread, so the
event loop's thread, which answers every request, keeps its own; a CPU that an
export saturates still runs a request as soon as one arrives.
"""

from __future__ import annotations

import ctypes
import importlib.machinery
import multiprocessing
import multiprocessing.forkserver
import os
import signal
import sys
import threading
from collections.abc import Callable
from concurrent.futures import Executor, Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from typing import Any

PR_SET_PDEATHSIG = 1  #: from <linux/prctl.h>
PRELOAD = "exportd.engine.forkserver"


def die_with_parent() -> None:
    """Have the kernel SIGKILL this process when its parent (thread) dies. Linux only; elsewhere nothing."""
    if not sys.platform.startswith("linux"):
        return
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0) != 0:
        error = ctypes.get_errno()
        raise OSError(error, os.strerror(error))


def lower_priority(nice: int) -> None:
    """Add `nice` to the calling thread's niceness (at most 19), so that it runs only when threads of
    lower niceness leave the CPU free. Linux gives each thread its own; 0 changes nothing."""
    if nice <= 0:
        return
    thread = threading.get_native_id()
    os.setpriority(os.PRIO_PROCESS, thread, min(19, os.getpriority(os.PRIO_PROCESS, thread) + nice))


def start_worker(server_pid: int, nice: int = 0) -> None:
    """The pool's initializer, in each worker: die with the forkserver, and at once if the server is gone;
    then yield the CPU to the server (the worker computes in this, its main, thread)."""
    die_with_parent()
    try:
        os.kill(server_pid, 0)
    except ProcessLookupError:
        os._exit(1)
    lower_priority(nice)


def process_pool(workers: int, nice: int = 0) -> ProcessPoolExecutor:
    """A forkserver pool of `workers` processes that die with this one, each `nice` steps below it.
    Call it from a long-lived thread."""
    context = multiprocessing.get_context("forkserver")  # never fork this multi-threaded process itself
    context.set_forkserver_preload([PRELOAD])
    _keep_script_out_of_children()
    multiprocessing.forkserver.ensure_running()  # from this thread: the forkserver's parent thread
    return ProcessPoolExecutor(workers, mp_context=context, initializer=start_worker,
                               initargs=(os.getpid(), nice))


def _keep_script_out_of_children() -> None:
    """Have multiprocessing's new processes skip re-running the script this process was started as."""
    main = sys.modules.get("__main__")
    if main is not None and getattr(main, "__spec__", None) is None and getattr(main, "__file__", None):
        main.__spec__ = importlib.machinery.ModuleSpec("__main__", None)  # spawn skips a main named so


class SharedPool(Executor):
    """The server's process pool, started by the engine, shared by exports and imports, and replaced
    by a fresh one when a worker died (see the module's docstring). Before `start` and after
    `shutdown` it is not `running`, and `submit` raises RuntimeError."""

    def __init__(self, workers: int, nice: int = 0) -> None:
        self.workers = workers  #: processes; sizes how much work a caller keeps in flight
        self.nice = nice
        self.replaced = 0  #: executors started again after a worker died
        self._executor: ProcessPoolExecutor | None = None
        self._lock = threading.Lock()

    @property
    def running(self) -> bool:
        return self._executor is not None

    def start(self) -> None:
        """Start the forkserver and the executor; call it from a thread that lives as long as the server."""
        with self._lock:
            if self._executor is None:
                self._executor = process_pool(self.workers, self.nice)

    def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Future:
        with self._lock:
            executor = self._executor
            if executor is None:
                raise RuntimeError("the process pool is not running")
            try:
                return executor.submit(fn, *args, **kwargs)
            except BrokenProcessPool:  # a worker died: what it held failed; later work goes to a fresh pool
                executor.shutdown(wait=False, cancel_futures=True)
                self._executor = process_pool(self.workers, self.nice)
                self.replaced += 1
                return self._executor.submit(fn, *args, **kwargs)

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        with self._lock:
            executor, self._executor = self._executor, None
        if executor is not None:
            executor.shutdown(wait=wait, cancel_futures=cancel_futures)
