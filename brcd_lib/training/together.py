"""Several training runs in one process, in step, epoch by epoch: :class:`Lockstep`.

Runs that read the same online banks (:meth:`brcd_lib.training.features.FeatureStore.online_bank`)
must reach each epoch together, so that the epoch's views are augmented and pushed through each
frozen backbone once and then read by all of them while they are in memory. A :class:`Lockstep`
runs each task (a callable that trains one run through the unchanged one-run path, e.g.
``lambda: exp.student(32, method="brcd", seed=0)``) in its own thread, but only one thread
executes at a time: a task hands over at the start of every epoch (:func:`gate`, called by
:func:`brcd_lib.training.engine.fit`) and the next turn goes to the task with the lowest epoch
(ties: the lowest task index). Set-ups (networks, teachers, clusters) therefore run one after
another before any epoch; then epoch 1 of every run, epoch 2 of every run, and so on.

Each run's result is the one it gets alone: only one task runs at a time, and every hand-over
saves the global random states (torch CPU and CUDA, NumPy, ``random``) of the task that stops and
restores those of the task that resumes. ``tests/test_together.py`` checks it against the one-run
path. Outside a :class:`Lockstep`, :func:`gate` does nothing.
"""
from __future__ import annotations

import random
import threading
from typing import Any, Callable, Sequence

import numpy as np
import torch

__all__ = ["Lockstep", "gate", "current_epoch", "AHEAD"]

AHEAD = 2
"""Epochs of online banks a process that feeds worker processes builds beyond the slowest of
them (:func:`brcd_lib.experiments.together.train_together`); with the epoch being read and the one
being written, at most ``AHEAD + 2`` epochs of banks are on disk at a time."""

_LOCAL = threading.local()


def gate(epoch: int) -> None:
    """Hand over to the other runs of the current :class:`Lockstep` before ``epoch`` starts
    (a no-op outside one)."""
    member = getattr(_LOCAL, "member", None)
    if member is not None:
        member.group._gate(member, int(epoch))


def current_epoch() -> int | None:
    """The epoch the calling task last reached (None outside a :class:`Lockstep`)."""
    member = getattr(_LOCAL, "member", None)
    return None if member is None else member.epoch


class _Member:
    def __init__(self, group: "Lockstep", index: int, task: Callable[[], Any]):
        self.group, self.index, self.task = group, index, task
        self.epoch = -1          # the epoch it waits to start (-1: its set-up)
        self.done = False
        self.result: Any = None
        self.error: BaseException | None = None
        self.rng: tuple | None = None


def _rng_state() -> tuple:
    cuda = torch.cuda.get_rng_state_all() if torch.cuda.is_available() and \
        torch.cuda.is_initialized() else None
    return torch.get_rng_state(), cuda, np.random.get_state(), random.getstate()


def _set_rng_state(state: tuple) -> None:
    cpu, cuda, np_state, py_state = state
    torch.set_rng_state(cpu)
    if cuda is not None:
        torch.cuda.set_rng_state_all(cuda)
    np.random.set_state(np_state)
    random.setstate(py_state)


class Lockstep:
    """Run ``tasks`` in step, one at a time (see the module doc).

    ``on_advance(epoch)`` is called (by whichever task holds the turn) each time the lowest
    epoch among the unfinished tasks grows, and with ``None`` when every task has finished.
    """

    def __init__(self, *, on_advance: Callable[[int | None], None] | None = None):
        self.on_advance = on_advance
        self._cond = threading.Condition()
        self._members: list[_Member] = []
        self._turn: _Member | None = None
        self._low: int | None = None
        self._stop = False

    def run(self, tasks: Sequence[Callable[[], Any]]) -> list[tuple[Any, BaseException | None]]:
        """``(result, error)`` of every task, in order; a task that raised has its exception as
        ``error`` (the others go on)."""
        if not tasks:
            return []
        if getattr(_LOCAL, "member", None) is not None:
            raise RuntimeError("a Lockstep cannot run inside another Lockstep's task")
        base = _rng_state()
        self._members = [_Member(self, i, t) for i, t in enumerate(tasks)]
        for m in self._members:
            m.rng = base  # every task starts from the caller's random state, as alone
        threads = [threading.Thread(target=self._main, args=(m,), daemon=True,
                                    name=f"lockstep-{m.index}") for m in self._members]
        with self._cond:
            self._turn = self._members[0]
        for t in threads:
            t.start()
        try:
            for t in threads:
                while t.is_alive():
                    t.join(timeout=0.5)
        except KeyboardInterrupt:  # stop every task at its next hand-over, then re-raise
            with self._cond:
                self._stop = True
                self._cond.notify_all()
            for t in threads:
                t.join()
            raise
        finally:
            _set_rng_state(base)
        return [(m.result, m.error) for m in self._members]

    # ------------------------------------------------------------------ turn taking
    def _main(self, member: _Member) -> None:
        _LOCAL.member = member
        try:
            self._wait_turn(member)
            try:
                if self._stop:
                    raise KeyboardInterrupt("the runs trained together were interrupted")
                member.result = member.task()
            except BaseException as exc:  # reported to the caller of run()
                member.error = exc
        finally:
            with self._cond:
                member.done = True
                member.rng = None
                self._pass_turn(member, save=False)
            _LOCAL.member = None

    def _gate(self, member: _Member, epoch: int) -> None:
        with self._cond:
            member.epoch = epoch
            self._pass_turn(member, save=True)
        self._wait_turn(member)
        if self._stop:
            raise KeyboardInterrupt("the runs trained together were interrupted")

    def _wait_turn(self, member: _Member) -> None:
        with self._cond:
            while self._turn is not member:
                self._cond.wait()
            _set_rng_state(member.rng)

    def _pass_turn(self, member: _Member, *, save: bool) -> None:
        """Choose the next task (lowest epoch, then index); called with the lock held by the
        task that holds the turn."""
        if save:
            member.rng = _rng_state()
        waiting = [m for m in self._members if not m.done]
        nxt = min(waiting, key=lambda m: (m.epoch, m.index)) if waiting else None
        low = None if nxt is None else nxt.epoch
        if low != self._low and (low is None or low >= 0) and self.on_advance is not None:
            self._low = low
            self.on_advance(low)
        self._turn = nxt
        self._cond.notify_all()
