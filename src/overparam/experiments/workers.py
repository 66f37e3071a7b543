"""Worker processes of the runner: each trial in a process of its own, killed on a time limit.

A trial can take its process down (a segmentation fault in native code, ``os._exit``, the
out-of-memory killer) or never return. Running it in the driving process, or in a pool that
breaks as a whole when one worker dies (joblib's loky, :mod:`concurrent.futures`), loses the
sweep. :class:`pebble.ProcessPool` runs one task at a time per worker, tells which task a dead
worker was running, kills a worker whose task runs past its time limit and starts a new one.
This module turns each outcome into a :class:`~overparam.experiments.store.TrialRecord`.
"""

from __future__ import annotations

import functools
import json
import logging
import multiprocessing
import multiprocessing.util
import os
import platform
import signal
import sys
import threading
import time
import traceback
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import as_completed

import cloudpickle
from threadpoolctl import ThreadpoolController

from .store import TrialRecord, package_version, to_jsonable

__all__ = ["TIMEOUT", "crash_message", "dask_trial", "iter_pool", "pickled", "trial_pool"]

logger = logging.getLogger(__name__)

#: Status of a trial killed at its time limit (the others are ``"ok"`` and ``"error"``).
TIMEOUT = "timeout"

_SIGNAL_HINTS = {
    "SIGKILL": "killed from outside, e.g. by the out-of-memory killer",
    "SIGSEGV": "segmentation fault in native code",
    "SIGBUS": "bus error in native code",
    "SIGABRT": "aborted by native code",
    "SIGFPE": "floating-point exception in native code",
    "SIGTERM": "terminated from outside",
}


def crash_message(exitcode: int | None) -> str:
    """Why a worker process ended while it ran a trial, from its exit code."""
    if exitcode is not None and exitcode < 0:
        try:
            name = signal.Signals(-exitcode).name
        except ValueError:
            name = f"signal {-exitcode}"
        hint = _SIGNAL_HINTS.get(name, "killed by a signal")
        return f"the worker process running this trial died: {name} ({hint})"
    return (f"the worker process running this trial exited with code {exitcode} before it "
            "returned (os._exit, sys.exit in a child, or a crash in native code)")


def die_with_parent() -> None:
    """Pool initializer: have the kernel kill this worker when its parent process dies.

    A worker stuck in a trial would otherwise outlive a driving process killed by ``kill -9``.
    The parent is the fork server, which ends with the driving process. Linux only
    (``prctl(PR_SET_PDEATHSIG)``); elsewhere a worker ends when its pipe closes, i.e. after
    its current trial.
    """
    _release_fork_server()
    if not sys.platform.startswith("linux"):
        return
    import ctypes

    try:
        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)  # 1 = PR_SET_PDEATHSIG
    except (OSError, AttributeError):  # no libc to call: the pipe rule above still holds
        pass


def _release_fork_server() -> None:
    # A child of the fork server inherits the write end of the pipe by which the server sees
    # its parent alive, so the server, and with it this worker (its child), would outlive a
    # killed driver. The worker never asks the server for processes: close its copy.
    from multiprocessing import forkserver

    server = getattr(forkserver, "_forkserver", None)
    fd = getattr(server, "_forkserver_alive_fd", None)
    if isinstance(fd, int):
        try:
            os.close(fd)
        except OSError:
            pass
        server._forkserver_alive_fd = None


def _mp_context(modules: Sequence[str] = ()):
    # forkserver: workers fork from a clean single-threaded server (forking this process,
    # which has threads, can deadlock), and a new worker after a crash starts at once. The
    # server (started once per process) imports this module and the experiments' modules,
    # so that workers do not each import them again; not __main__ (the default), so a script
    # that calls the runner is not run again there.
    if "forkserver" not in multiprocessing.get_all_start_methods():
        return multiprocessing.get_context("spawn")
    ctx = multiprocessing.get_context("forkserver")
    ours = sorted({m for m in modules if m.startswith("overparam.")})
    ctx.set_forkserver_preload([__name__, *ours])
    return ctx


def trial_pool(workers: int, modules: Sequence[str] = ()):
    """A :class:`pebble.ProcessPool` of ``workers`` processes that die with this process.

    ``modules``: modules the trials need, imported once in the fork server if it is not yet
    running.
    """
    from pebble import ProcessPool

    return ProcessPool(max_workers=workers, initializer=die_with_parent,
                       context=_mp_context(modules))


def call_trial(run_trial: Callable[[dict, int], dict], params: dict, seed: int):
    """``run_trial(params, seed)`` with one BLAS thread.

    Trials solve small problems, where threaded BLAS gains nothing, and the runner already
    runs one trial per core: on a shared machine threaded BLAS spin-waits and was measured
    many times slower.
    """
    with _one_blas_thread():
        return run_trial(dict(params), seed)


_CONTROLLER: list = [None, -1]  # the BLAS controller and len(sys.modules) when it was made


def _one_blas_thread():
    """``threadpool_limits(1, "blas")`` without inspecting the loaded libraries every trial.

    ``threadpool_limits`` lists the process's shared libraries at each call, which costs more
    than a small trial's solve (docs/experiments.md, cost of a full reproduction). The
    controller is kept and made again only when modules were imported since (a new BLAS
    comes with its Python module), so a library that a trial loads is limited from the next
    trial on, as with ``threadpool_limits``.
    """
    if _CONTROLLER[0] is None or _CONTROLLER[1] != len(sys.modules):
        _CONTROLLER[:] = [ThreadpoolController(), len(sys.modules)]
    return _CONTROLLER[0].limit(limits=1, user_api="blas")


def execute_trial(run_trial: Callable[[dict, int], dict], task) -> TrialRecord:
    """Run one trial (a :class:`~overparam.experiments.runner.Task`) and return its record; an
    exception becomes an ``"error"`` record.

    This is what runs in a worker. Metrics must be a dict of JSON-serializable values (NumPy
    scalars and arrays are converted); anything else is recorded as an error.
    """
    start, cpu_start = time.perf_counter(), time.process_time()
    try:
        metrics = call_trial(run_trial, task.params, task.seed)
        if not isinstance(metrics, dict):
            raise TypeError(f"run_trial must return a dict of metrics, got {type(metrics)}")
        metrics = to_jsonable(metrics)
        json.dumps(metrics)  # fail here, in the trial, rather than in the store
        status, error = "ok", None
    except Exception:
        metrics, status = None, "error"
        error = traceback.format_exc()[-8000:]
    return TrialRecord(experiment=task.experiment, params=dict(task.params), trial=task.trial,
                       quick=task.quick, seed=task.seed, status=status, metrics=metrics,
                       error=error, time=time.perf_counter() - start, finished_at=time.time(),
                       version=package_version(), host=platform.node(),
                       cpu_time=time.process_time() - cpu_start)


def run_pickled(payload: bytes, task):
    """Worker side: unpickle ``run_trial`` (cloudpickle: lambdas and closures too), run it."""
    return execute_trial(cloudpickle.loads(payload), task)


def failed_record(task, status: str, message: str, elapsed: float = 0.0) -> TrialRecord:
    """The record of a trial that gave no result of its own (crash, timeout, lost worker)."""
    return TrialRecord(experiment=task.experiment, params=dict(task.params), trial=task.trial,
                       quick=task.quick, seed=task.seed, status=status, metrics=None,
                       error=message, time=elapsed, finished_at=time.time(),
                       version=package_version(), host=platform.node())


def outcome(future, task, timeout: float | None) -> TrialRecord:
    """The record of a finished pebble future: its result, a timeout, a crash or an error."""
    from pebble import ProcessExpired

    try:
        return future.result()
    except TimeoutError:
        return failed_record(task, TIMEOUT, f"the trial ran past its time limit of {timeout:g} s"
                             " and its worker process was killed (set the limit with the "
                             "spec's trial_timeout or --trial-timeout)", elapsed=float(timeout))
    except ProcessExpired as exc:
        return failed_record(task, "error", crash_message(exc.exitcode))
    except BaseException as exc:  # SystemExit from the trial, or its function did not pickle
        text = "".join(traceback.format_exception(exc))[-8000:]
        return failed_record(task, "error", text)


def pickled(fn: Callable) -> bytes:
    """``cloudpickle.dumps(fn)``, computed once per function, not once per trial."""
    try:
        return _pickled_cached(fn)
    except TypeError:  # an unhashable callable object
        return cloudpickle.dumps(fn)


@functools.lru_cache(maxsize=256)
def _pickled_cached(fn: Callable) -> bytes:
    return cloudpickle.dumps(fn)


def _limit(timeout: float | None) -> float | None:
    return None if timeout is None or timeout <= 0 else float(timeout)


def iter_pool(calls: Sequence[tuple[Callable, object, float | None]],
              workers: int) -> Iterator[TrialRecord]:
    """Run ``(run_trial, task, time limit)`` calls on a fresh pool; yield records as they end.

    The pool is stopped, and every worker killed, when the iteration ends or is abandoned
    (an exception, Ctrl-C, ``close()``).
    """
    if multiprocessing.current_process().daemon:  # cannot start processes: run them here
        logger.warning("daemonic process: trials run in it, without crash isolation or "
                       "time limits")
        for fn, task, _ in calls:
            yield execute_trial(fn, task)
        return
    if not calls:
        return
    modules = {getattr(fn, "__module__", None) or "" for fn, _, _ in calls}
    pool = trial_pool(max(1, min(workers, len(calls))), sorted(modules))
    try:
        futures = {}
        for fn, task, timeout in calls:
            futures[pool.schedule(run_pickled, args=(pickled(fn), task),
                                  timeout=_limit(timeout))] = (task, _limit(timeout))
        for future in as_completed(futures):
            task, timeout = futures[future]
            yield outcome(future, task, timeout)
    finally:
        pool.stop()
        pool.join()


# -- Dask: each Dask worker runs its trials in a pool of its own ----------------------------
_DASK_POOL = None
_DASK_LOCK = threading.Lock()


def _dask_pool(size: int):
    global _DASK_POOL
    with _DASK_LOCK:
        if _DASK_POOL is None or not _DASK_POOL.active:
            _DASK_POOL = trial_pool(size)
            # A Dask worker is a multiprocessing child: it runs no atexit hooks, and at exit
            # joins its (non-daemonic) children. A finalizer with a priority runs before that.
            multiprocessing.util.Finalize(None, _stop_dask_pool, exitpriority=10)
        return _DASK_POOL


def _stop_dask_pool() -> None:
    if _DASK_POOL is not None:
        _DASK_POOL.stop()
        _DASK_POOL.join()


def dask_trial(payload: bytes, task, timeout: float | None) -> TrialRecord:
    """Dask worker side: run one trial in a child process, with its time limit.

    A daemonic worker (the default of ``dask worker``) may not start processes: the trial
    then runs in the worker itself, where a crash kills the worker (Dask reports it and the
    runner stores an error) and the time limit is not enforced.
    """
    if multiprocessing.current_process().daemon:
        logger.warning("overparam: daemonic Dask worker (pid %d): trials run without crash "
                       "isolation or time limit; start workers with "
                       "DASK_DISTRIBUTED__WORKER__DAEMON=False", os.getpid())
        return execute_trial(cloudpickle.loads(payload), task)
    try:
        from distributed import get_worker

        size = max(1, int(get_worker().state.nthreads))
    except (ImportError, ValueError, AttributeError):
        size = 1
    future = _dask_pool(size).schedule(run_pickled, args=(payload, task),
                                       timeout=_limit(timeout))
    return outcome(future, task, _limit(timeout))
