"""Ctrl-C and SIGTERM in the sweep driver: stop the Tune experiment the way Tune itself would, and remember it.

Tune stops an experiment on SIGINT by saving its state one last time and then stopping the running trials,
which it marks TERMINATED like trials that finished: after ``tuner.fit()`` returns, its trial statuses alone
cannot tell an interrupted sweep from a finished one. So the driver installs its own SIGINT and SIGTERM
handlers (``TUNE_DISABLE_SIGINT_HANDLER`` keeps Tune from replacing them), records the signal here, and,
while Tune is running, hands the stop to Tune's own handler (the one it registers for SIGUSR1). Outside
``tuner.fit()`` the signal raises KeyboardInterrupt as usual. The record is a module global of the driver
process, read by the runner and by the MLflow callback (Tune pickles callbacks, so they cannot hold it).
"""

from __future__ import annotations

import contextlib
import os
import signal
from typing import Any, Iterator

from ray import tune

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)
_received: list[str] = []  # names of the stop signals this driver got during the current sweep
_requested: list[str] = []  # why raysid itself stopped the current sweep (a full disk), one line each
_tuning = False  # inside tuner.fit(): Tune's SIGUSR1 handler is the one to call
_forwarded = False  # Tune has been told to stop
_stale: Any = None  # the SIGUSR1 handler an earlier tuner.fit() left behind (Tune never removes its own)


def received() -> str:
    """The first stop signal of the current sweep ("SIGINT", "SIGTERM"), or "" when none came."""
    return _received[0] if _received else ""


def requested() -> str:
    """Why raysid stopped the current sweep itself (``request_stop``), or "" when it did not."""
    return _requested[0] if _requested else ""


def request_stop(reason: str) -> None:
    """Stop the running sweep as a stop signal would (Tune saves its state, then stops the trials), for ``reason``."""
    _requested.append(reason)
    if _tuning:
        forward_to_tune()


def _handle(signum: int, frame: Any) -> None:
    _received.append(signal.Signals(signum).name)
    if not _tuning:
        raise KeyboardInterrupt(signal.Signals(signum).name)
    forward_to_tune()  # a repeated signal is ignored: Tune is already stopping


def forward_to_tune() -> None:
    """Tell Tune to stop (once), through the handler Tune registers for SIGUSR1 while it runs."""
    global _forwarded
    tune_handler = signal.getsignal(signal.SIGUSR1)
    if (_received or _requested) and not _forwarded and callable(tune_handler) and tune_handler is not _stale:
        _forwarded = True
        tune_handler(signal.SIGUSR1, None)  # Tune saves its state, then stops the trials


class ForwardStop(tune.Callback):
    """A signal that came while Tune was still setting up (before its handler existed) stops it at its first step."""

    def on_step_begin(self, iteration: int, trials: list, **info: Any) -> None:
        forward_to_tune()


@contextlib.contextmanager
def stop_signals() -> Iterator[None]:
    """Catch SIGINT and SIGTERM for one sweep (main thread only; elsewhere the defaults stay)."""
    global _forwarded
    _received.clear()
    _requested.clear()
    _forwarded = False
    os.environ["TUNE_DISABLE_SIGINT_HANDLER"] = "1"
    previous = claim()
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def claim() -> dict[int, Any]:
    """Install the stop handlers again (``ray.init`` replaces SIGTERM's with one that exits); the old ones."""
    try:
        return {sig: signal.signal(sig, _handle) for sig in STOP_SIGNALS}
    except ValueError:  # not the main thread: the defaults stay
        return {}


@contextlib.contextmanager
def tuning() -> Iterator[None]:
    """Mark ``tuner.fit()`` as running, so that a stop signal goes to Tune instead of raising."""
    global _tuning, _stale
    _stale, _tuning = signal.getsignal(signal.SIGUSR1), True
    try:
        yield
    finally:
        _tuning = False
