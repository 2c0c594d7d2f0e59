"""Equal budgets: one Optuna study per method, in one SQLite file, with the same number of trials for each.

Each method gets its own seeded TPE sampler (seed from the config's first split seed and the method's name, so
methods do not share one sampler state) and the same shared search space. Trial 0 of every method is the config's
own settings, so "default" and "best" validation scores come from the same study. A trial's sampler is re-seeded
from its trial number, so the suggestion for trial k depends only on the finished trials before it: an interrupted
tuning resumed later makes the same suggestions and reaches the same best trial as one that was never stopped.

The members a fused method is warm-started from (its tabular-only model; its imaging-only one too under
``warm_start: both``) are tuned first, and every trial of the fused method starts from them trained at their best
settings — what the tuned run trains. A fused method's default (trial 0) score is therefore its own default
settings on tuned members: the difference to its best is what tuning its own settings bought.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import optuna
import yaml
from optuna.trial import TrialState

from hyperfusion.atomic import write_text_atomic
from hyperfusion.config import RunConfig
from hyperfusion.data import ImageCache, load_manifest
from hyperfusion.models import model_arguments
from hyperfusion.models.registry import family_member
from hyperfusion.run.executors import _import_ray, _init_ray
from hyperfusion.run.plan import Unit, warm_sources, warm_start_conflict
from hyperfusion.run.runner import check_cohort
from hyperfusion.run.setup import member_kwargs, static_kwargs, static_model_kwargs
from hyperfusion.run.store import FREE_KEYS, resolved_differences
from hyperfusion.tasks import get_task
from hyperfusion.tune import space as spaces
from hyperfusion.tune.objective import (
    Members,
    PruneOnValidation,
    fold_data,
    train_on_fold,
    tunable,
    with_trial,
)

Echo = Callable[[str], None]
STORAGE = "study.sqlite3"


class TuningError(ValueError):
    """A tuning directory that cannot be resumed as asked (another budget or search space); one line."""


def sampler_seed(config: RunConfig, method: str, trial_number: int) -> int:
    text = f"{config.protocol.split_seeds[0]}:{method}:{trial_number}"
    return int.from_bytes(hashlib.sha256(text.encode()).digest()[:4], "little")


def tune(
    config: RunConfig,
    out: str | Path,
    n_trials: int,
    *,
    echo: Echo = print,
    executor: str | None = None,
) -> dict[str, dict[str, Any]]:
    """Tune every trainable method of ``config`` with ``n_trials`` trials each; write ``out/tuned.yaml``.

    ``executor`` (default: ``protocol.executor``): ``local`` tunes the methods one after another in this process;
    ``ray`` tunes each method's study as one Ray task (``protocol.num_cpus``/``num_gpus`` per task), the members
    first and then every method warm-started from them side by side. A method's study is sequential either way
    (its sampler is seeded from the trial number), so both give the same trials.

    Returns per method: the budget, the default (trial 0) and best validation scores and the best settings.

    Raises:
        TuningError: ``n_trials`` < 1, or a resumed study with another budget or search space.
    """
    if n_trials < 1:
        raise TuningError(f"--trials must be >= 1, got {n_trials}")
    name = executor or config.protocol.executor
    if name not in ("local", "ray"):
        raise TuningError(f"executor must be local or ray, got {name!r}")
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    cohort = load_manifest(config.cohort)
    check_cohort(config, cohort)
    task = get_task(cohort.task)
    cache = ImageCache(out / "cache")
    split_seed = config.protocol.split_seeds[0]
    folds = list(range(task.folds(config.protocol)))
    data = {fold: fold_data(config, cohort, cache, split_seed, fold) for fold in folds}
    results: dict[str, dict[str, Any]] = {}
    members = Members()  # local: a member trained once per fold and settings serves every method
    tuned = config  # the members' best settings, for the methods warm-started from them
    for level in method_levels(config):
        jobs = []
        for method in level:
            why = tunable(method)
            if why is not None:
                echo(f"{method}: not tuned ({why})")
                results[method] = {"tuned": False, "why": why}
            else:
                jobs.append(MethodJob(config, tuned, method, n_trials, out, split_seed, cohort, data))
        outcomes = _on_ray(jobs, config) if name == "ray" else [tune_method(job, members) for job in jobs]
        for job, (result, line) in zip(jobs, outcomes):
            echo(line)
            results[job.method] = result
        for job in jobs:
            result = results[job.method]
            tuned = with_trial(tuned, job.method, result["training"], result["model"])
        tuned = follow_members(tuned)
    results = {method: results[method] for method in config.methods}  # reported in the config's order
    write_text_atomic(
        out / "tuning.json", json.dumps({"metric": task.selection.name, "methods": results}, indent=2)
    )
    write_text_atomic(out / "tuned.yaml", tuned_yaml(tuned, results, task.selection.name))
    return results


@dataclass(frozen=True)
class MethodJob:
    """One method's study: the config, the members' tuned settings (``tuned``), the budget, the cohort and the fold
    data."""

    config: RunConfig
    tuned: RunConfig
    method: str
    n_trials: int
    out: Path
    split_seed: int
    cohort: Any  # the cohort read once by `tune` (a Ray task gets it with the job)
    data: dict[int, Any]


def storage_of(out: Path) -> optuna.storages.RDBStorage:
    """The tuning's SQLite store; a writer waits up to a minute for another's lock (Ray tasks share the file)."""
    return optuna.storages.RDBStorage(
        f"sqlite:///{(out / STORAGE).resolve()}", engine_kwargs={"connect_args": {"timeout": 60}}
    )


def tune_method(job: MethodJob, members: Members) -> tuple[dict[str, Any], str]:
    """Run (or resume) ``job.method``'s study to its budget; its result and the line that reports it."""
    config, method, out, n_trials, split_seed = job.config, job.method, job.out, job.n_trials, job.split_seed
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    cohort = job.cohort
    task = get_task(cohort.task)
    folds = sorted(job.data)
    space = {**spaces.shared_space(config), **spaces.method_space(config, method)}
    study = optuna.create_study(
        study_name=method,
        storage=storage_of(out),
        load_if_exists=True,
        direction="maximize" if task.selection.higher_is_better else "minimize",
        pruner=optuna.pruners.MedianPruner(n_startup_trials=2),  # warm-up per fold: PruneOnValidation
    )
    _check_budget(study, method, n_trials, space, out)
    _check_settings(study, method, "config", trial_settings(config), out)
    _check_settings(study, method, "members", member_settings(job.tuned, method), out)
    for trial in study.get_trials(deepcopy=False, states=(TrialState.RUNNING, TrialState.WAITING)):
        study._storage.set_trial_state_values(trial._trial_id, TrialState.FAIL)  # left by an interrupted run
    if not study.trials:
        study.enqueue_trial(spaces.defaults(config, method, space))
    # a fold's epochs are reported after the longest the space allows, so step k is one epoch for every trial
    steps = space["training.epochs"].high  # type: ignore[attr-defined]
    warmup = space["training.epochs"].low  # type: ignore[attr-defined]  # no fold judged before its shortest schedule

    def objective(trial: optuna.Trial) -> float:
        params = {name: trial._suggest(name, dist) for name, dist in space.items()}
        training, model = spaces.as_settings(params)
        trial_config = with_trial(job.tuned, method, training, model)
        scores, losses = [], []
        for fold in folds:
            unit = Unit(method, split_seed, 0, fold)
            callback = PruneOnValidation(trial, task.selection.name, fold * steps, warmup)
            with tempfile.TemporaryDirectory(dir=out) as workdir:
                score, history = train_on_fold(
                    trial_config, cohort, job.data[fold], method, unit, Path(workdir), [callback], members
                )
            scores.append(score)
            losses.append([float(h["val_loss"]) for h in history])
        trial.set_user_attr("val_loss", losses)
        return float(sum(scores) / len(scores))

    while (done := _counted(study)) < n_trials:
        study.sampler = optuna.samplers.TPESampler(seed=sampler_seed(config, method, done))
        study.optimize(objective, n_trials=1, catch=())
    finished = [t for t in study.trials if t.state == TrialState.COMPLETE]
    best = study.best_trial
    training, model = spaces.as_settings(best.params)
    result = {
        "tuned": True,
        "budget": n_trials,
        "pruned": sum(t.state == TrialState.PRUNED for t in study.trials),
        "default_score": finished[0].value if finished and finished[0].number == 0 else None,
        "best_score": best.value,
        "best_trial": best.number,
        "training": training,
        "model": model,
    }
    line = f"{method}: best validation {task.selection.name} {best.value:.3f} (trial {best.number} of {n_trials})"
    return result, line


def _tune_method_task(job: MethodJob) -> tuple[dict[str, Any], str]:
    """A Ray task body: one method's study, with its own member cache."""
    os.environ.setdefault("PYTHONHASHSEED", "0")
    return tune_method(job, Members())


def _on_ray(jobs: list[MethodJob], config: RunConfig) -> list[tuple[dict[str, Any], str]]:
    """Each job as one Ray task with the protocol's resources per unit; results in the jobs' order."""
    if not jobs:
        return []
    ray = _import_ray()
    started_here = not ray.is_initialized()
    if started_here:
        _init_ray(ray, config.protocol.address, None)
    try:
        remote = ray.remote(_tune_method_task).options(
            num_cpus=config.protocol.num_cpus, num_gpus=config.protocol.num_gpus, max_retries=0
        )
        return ray.get([remote.remote(job) for job in jobs])
    finally:
        if started_here:
            ray.shutdown()


def method_levels(config: RunConfig) -> list[list[str]]:
    """The config's methods in two levels: the members others are warm-started from, then the rest. A level's
    methods do not depend on each other, so they may be tuned side by side."""
    ordered = members_first(config)
    members = _members(config)
    levels = ([m for m in ordered if m in members], [m for m in ordered if m not in members])
    return [level for level in levels if level]


def follow_members(config: RunConfig) -> RunConfig:
    """``config`` with each warm-started method's embedding width set to its tabular member's hidden width.

    The encoder a fused method starts from is its member's hidden layers (paper §4.3.6), so the width is tuned
    once, in the member's study, and every method that starts from that member takes it alike.

    Raises:
        TuningError: a method whose encoder still cannot take the member's after the width is matched.
    """
    overrides = {method: dict(settings) for method, settings in config.model_overrides.items()}
    kwargs = member_kwargs(config)
    for method in config.methods:
        member = family_member(method, "tabular")
        if warm_start_conflict(method, config.training.warm_start, kwargs) is None or member is None:
            continue
        arguments = {**model_arguments(member), **kwargs[member]}
        if "embedding_dim" in model_arguments(method) and "hidden" in arguments:
            overrides[method] = {**overrides.get(method, {}), "embedding_dim": int(arguments["hidden"][-1])}
            kwargs[method] = {**kwargs.get(method, {}), "embedding_dim": int(arguments["hidden"][-1])}
        conflict = warm_start_conflict(method, config.training.warm_start, kwargs)
        if conflict is not None:
            raise TuningError(f"tuned settings: {conflict}")
    return dataclasses.replace(config, model_overrides=overrides)


def tuned_yaml(tuned: RunConfig, results: dict[str, dict[str, Any]], metric: str) -> str:
    """An ordinary run config: ``tuned``, the config with each tuned method's best model settings under
    ``model_overrides`` and its best training settings (learning rate, epochs, batch size, weight decay) under
    ``method_training`` (and the embedding widths that follow a tuned member); ``tuning`` states the tuning
    (budgets, default and best validation scores) for the run's report, and the config refuses to load if its
    settings no longer match it."""
    raw = tuned.to_dict()
    raw["tuning"] = {"metric": metric, "methods": results}
    for key in ("model_overrides", "method_training"):
        raw[key] = {method: settings for method, settings in (raw.get(key) or {}).items() if settings}
    raw["simulate"] = None  # the cohort is already on disk
    header = "# Written by `hyperfusion tune`: each method's best settings; `tuning` says how (the report shows it).\n"
    return header + yaml.safe_dump(raw, sort_keys=False)


def members_first(config: RunConfig) -> list[str]:
    """The config's methods with the members others are warm-started from first: their studies finish before the
    trials that start from them, which then start from members at their tuned settings, as the tuned run does."""
    members = _members(config)
    return sorted(config.methods, key=lambda method: method not in members)


def _members(config: RunConfig) -> set[str]:
    """The methods some method of ``config`` is warm-started from."""
    kwargs = static_model_kwargs(config)
    return {
        twin.method
        for method in config.methods
        for twin in warm_sources(Unit(method, 0, 0, 0), config.training.warm_start, kwargs)
        if twin is not None
    }


def member_settings(config: RunConfig, method: str) -> dict[str, str]:
    """What the members ``method`` is warm-started from are trained with (a resumed study refuses others)."""
    kwargs = static_model_kwargs(config)
    sources = warm_sources(Unit(method, 0, 0, 0), config.training.warm_start, kwargs)
    return {
        twin.method: repr(
            (config.training_for(twin.method), sorted(static_kwargs(config, twin.method).items()))
        )
        for twin in sources
        if twin is not None
    }


def trial_settings(config: RunConfig) -> dict[str, Any]:
    """The config's settings a study's trials depend on: all but the method list (a study may be resumed with
    more methods) and the free keys (where and how verbosely the trials run)."""
    raw = {k: v for k, v in config.to_dict().items() if k not in ("methods", "reference_method")}
    return json.loads(json.dumps(raw, default=str))  # as the study's storage gives it back


def _check_settings(study: optuna.Study, method: str, what: str, settings: dict[str, Any], out: Path) -> None:
    """Record ``settings`` on a new study; refuse a resumed one whose trials were made with others (named)."""
    recorded = study.user_attrs.get(what)
    if recorded is None:
        study.set_user_attr(what, settings)
        return
    if what == "members":
        changed = sorted(k for k in set(recorded) | set(settings) if recorded.get(k) != settings.get(k))
        if changed:
            raise TuningError(
                f"{out / STORAGE}: study {method!r} warm-starts from {changed} trained with other settings than "
                "when it was started (a member's study or the config changed); use a new --out"
            )
        return
    changed = [k for k in resolved_differences(recorded, settings) if k not in FREE_KEYS]
    if changed:
        detail = "; ".join(f"{k}: {_dotted(recorded, k)!r} → {_dotted(settings, k)!r}" for k in changed[:4])
        raise TuningError(
            f"{out / STORAGE}: study {method!r} was started with other settings ({detail}); use a new --out"
        )


def _dotted(data: dict[str, Any], key: str) -> Any:
    """``data["training"]["lr"]`` for ``"training.lr"`` (None where absent)."""
    for part in key.split("."):
        data = data.get(part) if isinstance(data, dict) else None  # type: ignore[assignment]
    return data


def _counted(study: optuna.Study) -> int:
    return sum(t.state in (TrialState.COMPLETE, TrialState.PRUNED) for t in study.get_trials(deepcopy=False))


def _check_budget(study: optuna.Study, method: str, n_trials: int, space: dict, out: Path) -> None:
    """Record the budget and space on a new study; refuse a resumed one whose budget or space differs."""
    described = spaces.describe(space)
    recorded = study.user_attrs
    if "budget" not in recorded:
        study.set_user_attr("budget", n_trials)
        study.set_user_attr("space", described)
        return
    if recorded["budget"] != n_trials:
        raise TuningError(
            f"{out / STORAGE}: study {method!r} was started with --trials {recorded['budget']}, not {n_trials}; "
            "every method keeps the same budget (use a new --out to change it)"
        )
    if recorded["space"] != described:
        changed = sorted(
            k for k in set(described) | set(recorded["space"]) if described.get(k) != recorded["space"].get(k)
        )
        raise TuningError(
            f"{out / STORAGE}: study {method!r} was started with another search space (differs in {changed}); "
            "use a new --out"
        )
