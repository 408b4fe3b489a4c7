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

Export work yields the CPU to the API: each worker, and each pipeline thread of
the engine, raises its own niceness by ``EXPORTD_EXPORT_NICE`` (default 10) as
it starts (`lower_priority`). On Linux niceness belongs to a thread, so the
event loop's thread, which answers every request, keeps its own; a CPU that an
export saturates still runs a request as soon as one arrives.
"""

from __future__ import annotations

import ctypes
import multiprocessing
import multiprocessing.forkserver
import os
import signal
import sys
import threading
from concurrent.futures import ProcessPoolExecutor

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
    context.set_forkserver_preload(["__main__", PRELOAD])  # "__main__": the default preload
    multiprocessing.forkserver.ensure_running()  # from this thread: the forkserver's parent thread
    return ProcessPoolExecutor(workers, mp_context=context, initializer=start_worker,
                               initargs=(os.getpid(), nice))
