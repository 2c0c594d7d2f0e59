"""The time estimate's arithmetic and its timing loop, without a cohort: hand-computed seconds of one model and
scripted step times (the estimate on a real cohort, through validate, is in test_preflight)."""

from __future__ import annotations

import dataclasses

import pytest

from hyperfusion.run import estimate as est


def test_unit_seconds_by_hand():
    times = est.StepTimes(train=0.5, evaluate=0.1)
    # 27 training rows in batches of 8: 4 steps; 13 validation and 13 test rows: 2 batches each
    expected = 3 * (4 * 0.5 + 2 * 0.1) + (2 + 3 * 2) * 0.1
    got = est.unit_seconds(times, epochs=3, batch_size=8, n_train=27, n_val=13, n_test=13)
    assert got == pytest.approx(expected)
    # start-up, building the model, 27 + 2·13 + 4·13 dataset rows built, and each epoch's own work
    times = est.StepTimes(train=0.5, evaluate=0.1, build=0.3)
    overhead = est.Overhead(start=2.0, per_epoch=0.25, per_row=0.01)
    got = est.unit_seconds(times, epochs=3, batch_size=8, n_train=27, n_val=13, n_test=13, overhead=overhead)
    assert got == pytest.approx(expected + 2.0 + 0.3 + 0.01 * (27 + 26 + 52) + 3 * 0.25)


class ScriptedTimer:
    """A stand-in for `MethodTimer` whose steps take the seconds it is given, in order."""

    def __init__(self, train: list[float], evaluate: list[float], log: list[str], name: str) -> None:
        self.train, self.evaluate, self.log, self.name = iter(train), iter(evaluate), log, name
        self.build_seconds = 0.5

    def train_step(self, batch) -> float:
        self.log.append(f"{self.name} train {batch}")
        return next(self.train)

    def eval_step(self, batch) -> float:
        self.log.append(f"{self.name} eval {batch}")
        return next(self.evaluate)


def test_timed_steps_leave_out_the_first_and_take_turns():
    log: list[str] = []
    timers = {  # the first (untimed) step is slow, like a first step on a CPU or GPU
        "a": ScriptedTimer([9.0, 1.0, 3.0, 2.0], [5.0, 0.1, 0.3, 0.2], log, "a"),
        "b": ScriptedTimer([9.0, 4.0, 4.0, 40.0], [5.0, 1.0, 1.0, 1.0], log, "b"),
    }
    times = est.time_methods(timers, ["t0", "t1"], ["v0"], steps=3)
    # medians of the timed three; the first steps' extra time: (9 − 2) + (5 − 0.2) and (9 − 4) + (5 − 1)
    assert {m: dataclasses.astuple(t) for m, t in times.items()} == {
        "a": pytest.approx((2.0, 0.2, 0.5, 11.8)),
        "b": pytest.approx((4.0, 1.0, 0.5, 9.0)),
    }
    assert log[4:8] == ["a train t0", "a eval v0", "b train t0", "b eval v0"]  # round-robin, batches cycled
    assert log[8:10] == ["a train t1", "a eval v0"]
