"""How long will a run take on this machine? A few timed training steps of each method, scaled by the plan.

Each trained method gets one untimed step, then a few timed training steps and evaluation batches on real batches
of the cohort, taken in turns across methods so a burst of load from other programs spreads over all of them; the
median is kept. One short real training (2 epochs on 2 batches) measures what a model costs beyond its steps
(trainer start-up, per-epoch work, building datasets). ``hyperfusion validate`` reports the result as an estimate
from N timed steps; it is only as steady as the machine it was measured on.
"""

from __future__ import annotations

import dataclasses
import math
import statistics
import tempfile
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader

from hyperfusion.config import RunConfig
from hyperfusion.data import Cohort, ImageCache, TabularPreprocessor, build_dataset, collate_items
from hyperfusion.engine.devices import torch_device
from hyperfusion.engine.module import balanced_class_weights
from hyperfusion.run.plan import PlannedUnit
from hyperfusion.run.setup import build_model, image_spec
from hyperfusion.run.store import RunDirectory
from hyperfusion.tasks import get_task

#: Scoring passes over the test set after training, as each unit makes them: as is, with its tabular rows
#: permuted and with its images permuted (the sensitivities); the validation set is scored once more too.
TEST_PASSES = 3


@dataclass(frozen=True)
class StepTimes:
    """Median seconds of one training step and one evaluation batch of a method, at the run's settings."""

    train: float
    evaluate: float
    build: float = 0.0  # building the model: once per model
    first: float = (
        0.0  # the first steps' extra time (kernel selection, allocation): once per method and process
    )


@dataclass(frozen=True)
class Overhead:
    """What a model costs beyond its steps, the same for every method.

    ``start``: the trainer's start-up and tear-down; ``per_epoch``: each epoch's own work (hooks, the metric,
    the checkpoint); ``per_row``: building the datasets, per row (cache look-ups, the tabular transform).
    """

    start: float
    per_epoch: float
    per_row: float = 0.0


@dataclass(frozen=True)
class MethodEstimate:
    method: str
    models: int  # still to train (or compose) in this run
    kind: str  # train | compose | fit
    helper: bool  # trained only because another method needs it
    steps: StepTimes | None  # None for composed and closed-form models (nothing is trained by gradient)
    seconds: float


@dataclass(frozen=True)
class Estimate:
    """The run's time on this machine, from a few timed steps of each method."""

    methods: tuple[MethodEstimate, ...]
    timed_steps: int
    device: str
    precision: str
    batch_size: int
    epochs: int
    finished: int  # models already finished in the work folder (not counted)
    overhead: Overhead = Overhead(0.0, 0.0)  # measured with one short real training
    prepare: float = 0.0  # fitting each fold's tabular preprocessing, which the run does before training

    @property
    def seconds(self) -> float:
        return self.prepare + sum(m.seconds for m in self.methods)


# ----------------------------------------------------------------------------------------------------------
# the time estimate


def unit_seconds(
    times: StepTimes,
    *,
    epochs: int,
    batch_size: int,
    n_train: int,
    n_val: int,
    n_test: int,
    overhead: Overhead | None = None,
) -> float:
    """Seconds of one trained model: building it and its datasets, every epoch, then the scoring passes.

    start + t_build + per_row · (n_train + 2 n_val + 4 n_test)
        + epochs · (per_epoch + ⌈n_train / B⌉ · t_train + ⌈n_val / B⌉ · t_eval)
        + (⌈n_val / B⌉ + 3 · ⌈n_test / B⌉) · t_eval

    (a unit builds its training, validation and test datasets, then one dataset per scoring pass).
    """
    overhead = overhead or Overhead(0.0, 0.0)
    batches = {
        k: math.ceil(n / batch_size) for k, n in (("train", n_train), ("val", n_val), ("test", n_test))
    }
    rows = n_train + 2 * n_val + (1 + TEST_PASSES) * n_test
    setup = overhead.start + times.build + overhead.per_row * rows
    per_epoch = overhead.per_epoch + batches["train"] * times.train + batches["val"] * times.evaluate
    scoring = (batches["val"] + TEST_PASSES * batches["test"]) * times.evaluate
    return setup + epochs * per_epoch + scoring


class MethodTimer:
    """One method's model, built and trained as a unit builds it, stepping on given batches and timing each step.

    Same keyword arguments, loss, class weights, device, precision, memory format and compile as the run; a
    training step is forward, loss, backward and Adam's update, an evaluation batch is both views scored.
    """

    def __init__(
        self,
        config: RunConfig,
        method: str,
        cohort: Cohort,
        preprocessor: TabularPreprocessor,
        *,
        train_targets: np.ndarray,
        class_weights: Sequence[float] | None,
    ) -> None:
        from hyperfusion.engine.module import TrainingModule

        training = config.training
        self.task = cohort.task
        self.device = torch_device(training.device)
        self.channels_last = training.channels_last
        start = time.perf_counter()
        model = _seeded_model(config, method, cohort, preprocessor, train_targets)
        self.module = TrainingModule(
            model,
            task=cohort.task,  # type: ignore[arg-type]
            lr=training.lr,
            weight_decay=training.weight_decay,
            checkpoint_path=Path("unused.pt"),  # nothing is saved: no validation epoch ends here
            class_weights=class_weights,
            compile=training.compile,
            channels_last=training.channels_last,
        ).to(self.device)
        if training.channels_last:
            self.module.model.to(memory_format=torch.channels_last_3d)
        self.optimizer = self.module.configure_optimizers()
        self.autocast = {
            "device_type": self.device.type,
            "dtype": torch.bfloat16,
            "enabled": training.precision == "bf16",
        }
        self.build_seconds = self._elapsed(start)

    def train_step(self, batch: Sequence[Any]) -> float:
        """Seconds of one training step on ``batch``."""
        self.module.train()
        start = time.perf_counter()
        image, tabular, target = (t.to(self.device) for t in batch[:3])
        with torch.autocast(**self.autocast):
            loss = self.module.training_step((image, tabular, target), 0)
        loss.backward()
        self.optimizer.step()
        self.optimizer.zero_grad(set_to_none=True)
        return self._elapsed(start)

    def eval_step(self, batch: Sequence[Any]) -> float:
        """Seconds of scoring one evaluation batch (every view), as validation and the scoring passes do."""
        from hyperfusion.engine.module import score_batch

        self.module.eval()
        start = time.perf_counter()
        with torch.inference_mode(), torch.autocast(**self.autocast):
            score_batch(
                self.module._forward[0],
                batch[0].to(self.device),
                batch[1].to(self.device),
                self.task,  # type: ignore[arg-type]
                channels_last=self.channels_last,
            )
        return self._elapsed(start)

    def _elapsed(self, start: float) -> float:
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
        return time.perf_counter() - start


def time_methods(
    timers: Mapping[str, Any],
    train_batches: Sequence[Any],
    eval_batches: Sequence[Any],
    steps: int,
    echo: Callable[[str], None] = lambda line: None,
) -> dict[str, StepTimes]:
    """Median seconds of ``steps`` training steps and evaluation batches per method, taken round-robin.

    One untimed step of each kind per method comes first (allocation, autotuning, compilation). The methods
    take turns step by step, so a burst of load from another program slows every method a little rather than
    one method a lot; the batches are cycled, so two real batches serve any number of steps.
    """
    first = {}
    for i, (method, timer) in enumerate(timers.items(), 1):
        echo(f"timing: untimed first step of {method} ({i}/{len(timers)}) ...")
        first[method] = (timer.train_step(train_batches[0]), timer.eval_step(eval_batches[0]))
    train: dict[str, list[float]] = {m: [] for m in timers}
    evaluate: dict[str, list[float]] = {m: [] for m in timers}
    for step in range(steps):
        start = time.perf_counter()
        for method, timer in timers.items():
            train[method].append(timer.train_step(train_batches[step % len(train_batches)]))
            evaluate[method].append(timer.eval_step(eval_batches[step % len(eval_batches)]))
        echo(
            f"timing: step {step + 1}/{steps} of {len(timers)} method(s) took {time.perf_counter() - start:.1f} s"
        )
    out = {}
    for method, timer in timers.items():
        step, batch = statistics.median(train[method]), statistics.median(evaluate[method])
        extra = max(0.0, first[method][0] - step) + max(0.0, first[method][1] - batch)
        out[method] = StepTimes(step, batch, timer.build_seconds, extra)
    return out


def _batches(dataset, batch_size: int, count: int, *, workers: int) -> tuple[list[Any], float]:
    """The first ``count`` full-size batches of ``dataset`` (fewer when it is small) and the median load time."""
    loader = DataLoader(
        dataset,
        batch_size=batch_size,
        shuffle=True,
        generator=torch.Generator().manual_seed(0),
        num_workers=0,
        collate_fn=collate_items,
    )
    batches, seconds = [], []
    iterator = iter(loader)
    for _ in range(count):
        start = time.perf_counter()
        batch = next(iterator, None)
        if batch is None:
            break
        seconds.append(time.perf_counter() - start)
        if len(batch[0]) >= 2 or not batches:  # a batch of one cannot train a BatchNorm model
            batches.append(batch)
    load = statistics.median(seconds) if seconds and workers == 0 else 0.0  # with workers, loading overlaps
    return batches, load


def estimate_time(
    config: RunConfig,
    cohort: Cohort,
    cache: ImageCache,
    planned: list[PlannedUnit],
    roles: Mapping[tuple[int, int], np.ndarray],
    preprocessors: Mapping[tuple[int, int], TabularPreprocessor],
    *,
    work: Path,
    steps: int = 3,
    batches: int = 2,
    prepare: float = 0.0,
    echo: Callable[[str], None] = lambda line: None,
) -> Estimate:
    """Time ``steps`` steps of each trained method on ``batches`` real batches; scale to every model still to run.

    Each model's time is `unit_seconds` with its own fold's row counts; models already finished in ``work`` (a
    run directory being resumed) are left out, and composed models (late fusion) cost nothing to train.
    ``prepare``: the seconds the run spends before its first model (fitting the folds' preprocessing).
    ``echo`` gets a line as each part starts or each round of steps ends: timing is the slow part of validate.
    """
    training = config.training
    first = min(roles)
    fold_roles, preprocessor = roles[first], preprocessors[first]
    spec = image_spec(config)
    echo("timing: building the datasets and one model per method ...")
    start = time.perf_counter()
    datasets = {
        role: build_dataset(cohort, fold_roles == role, preprocessor, spec, cache, train=role == "train")
        for role in ("train", "val")
    }
    per_row = (time.perf_counter() - start) / max(1, len(datasets["train"]) + len(datasets["val"]))
    train_batches, train_load = _batches(
        datasets["train"], training.batch_size, batches, workers=training.num_workers
    )
    eval_batches, eval_load = _batches(
        datasets["val"], training.batch_size, batches, workers=training.num_workers
    )
    weights = None
    if (
        get_task(cohort.task).has_classes and training.loss == "weighted_ce"
    ):  # as train_model: train + val rows
        both = np.concatenate([datasets["train"].targets, datasets["val"].targets])
        weights = balanced_class_weights(both, len(cohort.classes)).tolist()
    kinds = {p.unit.method: p.kind for p in planned}
    timers = {
        method: MethodTimer(
            config,
            method,
            cohort,
            preprocessor,
            train_targets=datasets["train"].targets,
            class_weights=weights,
        )
        for method, kind in kinds.items()
        if kind == "train"
    }
    measured = time_methods(timers, train_batches, eval_batches, steps, echo)
    times = {
        m: dataclasses.replace(t, train=t.train + train_load, evaluate=t.evaluate + eval_load)
        for m, t in measured.items()
    }
    del timers  # the models and their optimiser states
    cheapest = min(times, key=lambda m: times[m].train)
    echo(f"timing: one short training of {cheapest} (2 epochs) for what a model costs besides its steps ...")
    overhead = time_overhead(config, cohort, cheapest, preprocessor, datasets, times[cheapest])
    overhead = dataclasses.replace(overhead, per_row=per_row)

    run = RunDirectory(work)
    resumed = run.is_run()
    todo = [p for p in planned if not (resumed and run.is_finished(p.unit))]
    if resumed:  # a resumed run loads the folds' preprocessing it has already fitted
        prepare *= 1 - sum(run.preprocessor(*key).is_file() for key in roles) / len(roles)
    out = []
    for method, kind in kinds.items():
        mine = [p for p in todo if p.unit.method == method]
        seconds = 0.0
        if kind == "train" and mine:
            seconds += times[method].first
        for p in mine if kind == "train" else []:
            unit_roles = roles[(p.unit.split_seed, p.unit.fold)]
            seconds += (
                unit_seconds(  # steps timed at the run's batch size: a method's own costs about as much
                    times[method],
                    epochs=config.training_for(method).epochs,
                    batch_size=training.batch_size,
                    n_train=int((unit_roles == "train").sum()),
                    n_val=int((unit_roles == "val").sum()),
                    n_test=int((unit_roles == "test").sum()),
                    overhead=overhead,
                )
            )
        helper = method not in config.methods
        out.append(MethodEstimate(method, len(mine), kind, helper, times.get(method), seconds))
    return Estimate(
        methods=tuple(out),
        timed_steps=steps,
        device=str(torch_device(training.device)),
        precision=training.precision,
        batch_size=training.batch_size,
        epochs=training.epochs,
        finished=len(planned) - len(todo),
        overhead=overhead,
        prepare=prepare,
    )


def time_overhead(
    config: RunConfig,
    cohort: Cohort,
    method: str,
    preprocessor: TabularPreprocessor,
    datasets: Mapping[str, Any],
    times: StepTimes,
) -> Overhead:
    """One real training of ``method`` (2 epochs on 2 training batches and 1 validation batch), minus its steps.

    The trainer records each epoch's seconds: the start-up is the wall time outside the epochs (building the
    trainer, moving the model, saving and reloading the best weights), the per-epoch overhead is the last epoch's
    time beyond its three steps (hooks, the metric, the checkpoint). Both are the same for every method.
    """
    from torch.utils.data import Subset

    from hyperfusion.engine.trainer import train_model
    from hyperfusion.run.plan import Unit
    from hyperfusion.run.units import settings_for

    batch = config.training.batch_size
    n_train, n_val = (min(len(datasets[r]), n) for r, n in (("train", 2 * batch), ("val", batch)))
    loaders = [
        DataLoader(
            Subset(datasets[role], range(n)),
            batch_size=batch,
            shuffle=role == "train",
            collate_fn=collate_items,
        )
        for role, n in (("train", n_train), ("val", n_val))
    ]
    settings = settings_for(config, cohort.task, len(cohort.classes), Unit(method, 0, 0, 0))
    settings = dataclasses.replace(settings, epochs=2, progress_bar=False, devices=1)
    model = _seeded_model(config, method, cohort, preprocessor, np.asarray(datasets["train"].targets))
    with tempfile.TemporaryDirectory(prefix="hyperfusion-overhead-") as folder:
        start = time.perf_counter()
        result = train_model(model, loaders[0], loaders[1], settings, Path(folder) / "model.pt")
        wall = time.perf_counter() - start
    epochs = [float(e["seconds"]) for e in result.history]
    steps = math.ceil(n_train / batch) * times.train + math.ceil(n_val / batch) * times.evaluate
    return Overhead(start=max(0.0, wall - sum(epochs)), per_epoch=max(0.0, epochs[-1] - steps))


__all__ = [
    "Estimate",
    "MethodEstimate",
    "MethodTimer",
    "Overhead",
    "StepTimes",
    "estimate_time",
    "time_methods",
    "time_overhead",
    "unit_seconds",
]


def _seeded_model(
    config: RunConfig,
    method: str,
    cohort: Cohort,
    preprocessor: TabularPreprocessor,
    train_targets: np.ndarray,
) -> torch.nn.Module:
    """The method's model as a run builds it, from a fixed seed (timings do not depend on the draw)."""
    torch.manual_seed(0)
    return build_model(
        config,
        method,
        n_tabular=len(preprocessor.feature_names_out),
        classes=cohort.classes,
        train_targets=train_targets if get_task(cohort.task).standardises_target else None,
    )
