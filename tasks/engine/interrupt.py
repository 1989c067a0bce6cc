"""Preemption: SIGTERM and SIGINT stop training with a backup and one line, never a traceback.

Cloud VMs, Kubernetes and batch schedulers send SIGTERM some seconds before they kill a process
(Kubernetes' default grace period and a GCE preemption notice are 30 s); Ctrl-C sends SIGINT.

- While a run trains (`training()`: around `model.fit`, the multi-replica loop and a search),
  the handler only records the signal. The training code looks at `received()` at safe points:
  before each call into TensorFlow in `model.fit` (`keras_backup.BackupAndRestore`,
  `keras_backup.StopOnSignal`), between chunks of steps in `distributed_fit`, before each trial
  of a search. There it saves a backup at once and raises `Interrupted`.
- Outside training (preprocessing, evaluating, exporting) there is nothing to save, so the
  handler raises `Interrupted` at once, as Python's own SIGINT handler raises KeyboardInterrupt.
  The CLI installs it around `pipeline.run` (`handling()`); without the CLI, only the training
  blocks catch signals.
- The CLI prints the exception as one line on stderr and exits with 128 + the signal's number,
  the shell's convention for a process ended by a signal: 143 for SIGTERM, 130 for SIGINT.

`Interrupted` derives from BaseException, like KeyboardInterrupt, so that `except Exception`
blocks on the way (keras-tuner's handling of a failing trial, for one) let it through.
"""

from __future__ import annotations

import signal
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from types import FrameType

SIGNALS = (signal.SIGTERM, signal.SIGINT)
RESUME = "run the same command to resume"
# `training` depth; the signal received in it (None: none yet); whether an `Interrupted` is on
# its way out (later signals must not replace it); handler installations and what they replaced.
_state: dict = {"training": 0, "received": None, "stopping": False, "installed": 0,
                "previous": {}}


class Interrupted(BaseException):
    """A signal stopped the run; the message says when and what was saved.

    Args:
        signal_number: `signal.SIGTERM` or `signal.SIGINT`.
        during: When it stopped, e.g. "during epoch 7 of 50".
        saved: What the next run resumes from, e.g. "backup saved in runs/x.partial/backup".
        elsewhere: The signal was sent to another task of the cluster, not to this process.
        agreed: Every task of the cluster stops here too (`tasks.engine.distributed_fit` agreed on
            it), so they leave the cluster together instead of aborting it.
    """

    def __init__(self, signal_number: int, during: str, saved: str, elsewhere: bool = False,
                 agreed: bool = False):
        super().__init__(signal_number, during, saved, elsewhere, agreed)
        self.signal_number, self.during, self.saved = signal_number, during, saved
        self.elsewhere, self.agreed = elsewhere, agreed

    @property
    def signal_name(self) -> str:
        return signal.Signals(self.signal_number).name

    @property
    def exit_code(self) -> int:
        """128 + the signal's number (143 for SIGTERM, 130 for SIGINT)."""
        return 128 + self.signal_number

    def where(self, during: str | None = None, saved: str | None = None) -> Interrupted:
        """The same interruption, told with more context (a search names its trial)."""
        return Interrupted(self.signal_number, during or self.during, saved or self.saved,
                           self.elsewhere, self.agreed)

    def __str__(self) -> str:
        sender = " (sent to another task of the cluster)" if self.elsewhere else ""
        return f"stopped by {self.signal_name}{sender} {self.during}: {self.saved}; {RESUME}"


def received() -> int | None:
    """The first SIGTERM or SIGINT received during training and not yet acted on, else None."""
    return _state["received"]


def clear() -> None:
    """Forgets a received signal (after acting on it, or when a block finished anyway)."""
    _state["received"] = None


def _handler(signal_number: int, frame: FrameType | None) -> None:
    """Records the signal during training; otherwise stops at once (nothing to save then)."""
    if _state["training"] or _state["stopping"]:
        if _state["received"] is None:
            _state["received"] = signal_number
        return
    _state["stopping"] = True
    raise Interrupted(signal_number, "outside training (nothing to back up)",
                      "no fit was running")


@contextmanager
def _installed() -> Iterator[None]:
    """Our handler for SIGTERM and SIGINT in the block; the previous ones after it."""
    if threading.current_thread() is not threading.main_thread():
        yield  # Python lets only the main thread set handlers
        return
    if not _state["installed"]:
        _state["previous"] = {number: signal.signal(number, _handler) for number in SIGNALS}
    else:
        # Again: native code may have replaced it meanwhile (TensorFlow's multi-worker runtime
        # installs its own SIGTERM handler when the strategy is made), unseen by Python.
        for number in SIGNALS:
            signal.signal(number, _handler)
    _state["installed"] += 1
    try:
        yield
    finally:
        _state["installed"] -= 1
        if not _state["installed"]:
            for number, previous in _state["previous"].items():
                signal.signal(number, previous)
            _state["stopping"] = False


@contextmanager
def handling() -> Iterator[None]:
    """The CLI's block: a signal outside training raises `Interrupted` at once.

    Example:
        >>> with handling():
        ...     pipeline.run(config)
    """
    with _installed():
        yield


@contextmanager
def training() -> Iterator[None]:
    """A fit or a search: a signal is only recorded, for the training code to act on.

    Blocks nest. When the outermost one ends normally with a signal still recorded (it came
    after the last check, e.g. during the last epoch's validation), the training it interrupted
    is complete: the run goes on to keep it (its evaluation and exports), says so, and a second
    signal stops it at once.
    """
    with _installed():
        _state["training"] += 1
        finished = False
        try:
            yield
            finished = True
        except Interrupted:
            # Acted on. A second signal while the run winds down is only recorded: it neither
            # cuts writes short nor replaces this exception.
            _state["stopping"] = True
            clear()
            raise
        finally:
            _state["training"] -= 1
            if not _state["training"]:
                if finished and _state["received"] is not None:
                    name = signal.Signals(_state["received"]).name
                    print(f"{name} came as training finished: the run goes on to keep it "
                          "(evaluation and exports); another signal stops it at once",
                          flush=True)
                clear()


def stop_if_received(during: str, saved: str) -> None:
    """Raises `Interrupted` if a signal was received (a check point of the training code)."""
    number = received()
    if number is not None:
        raise Interrupted(number, during, saved)


def report(stop: Interrupted | KeyboardInterrupt) -> int:
    """Prints the one line for a stopped run on stderr; returns the exit code.

    A KeyboardInterrupt is a SIGINT that came before the CLI's handler was in place.
    """
    if isinstance(stop, KeyboardInterrupt):
        stop = Interrupted(signal.SIGINT, "while starting", "nothing was trained yet")
    print(stop, file=sys.stderr, flush=True)
    return stop.exit_code
