"""Experiment tracking of a run (``training.logger``): which logger each unit gets, and MLflow's run-level side.

With ``logger: mlflow`` the run (or the study) is one MLflow experiment — named ``training.experiment`` or else
the run directory's name — in the store ``training.tracking_uri`` names, or else a SQLite database
``RUN/logs/mlflow.db`` with artifacts beside it. Every trained unit is one MLflow run (its curves per epoch and
its settings as parameters, tagged with the run directory and the unit); at the end of the run each unit's run
gets its test metrics, and one more MLflow run named ``report`` holds the report, the tables and the figures as
artifacts and the reported metrics per method. The experiment is created before any unit starts, so units
running in parallel never race to create it.
"""

from __future__ import annotations

import urllib.parse
from pathlib import Path
from typing import Any

import pandas as pd

from hyperfusion.config import RunConfig
from hyperfusion.engine.loggers import Tracking, check_installed, quiet_mlflow
from hyperfusion.run.plan import Unit
from hyperfusion.run.store import RunDirectory

#: The tags that tie an MLflow run to its run directory and unit (the summary finds unit runs by them).
RUN_TAG, UNIT_TAG, KIND_TAG = "hyperfusion.run_dir", "hyperfusion.unit", "hyperfusion.kind"
#: The files of a finished run logged as the report run's artifacts (those present).
ARTIFACTS = ("report.md", "results.csv", "predictions.csv", "skill.csv")


def tracking_uri(config: RunConfig, run: RunDirectory) -> str:
    """The configured MLflow store, or the run's own SQLite database."""
    if config.training.tracking_uri is not None:
        return config.training.tracking_uri
    return f"sqlite:///{run.tracking_store.resolve()}"


def experiment_name(config: RunConfig, run: RunDirectory) -> str:
    return config.training.experiment or run.root.resolve().name


def unit_tracking(
    config: RunConfig, run: RunDirectory, unit: Unit, hyperparameters: dict[str, Any]
) -> Tracking | None:
    """The logger one unit trains with, or None for ``logger: none``."""
    kind = config.training.logger
    if kind == "none":
        return None
    if kind != "mlflow":
        return Tracking(kind, run.log_dir(unit), hyperparameters)
    # a study's cells share one experiment: their unit runs are told apart by the cell (the run directory's name)
    prefix = f"{run.root.resolve().name}/" if config.training.experiment is not None else ""
    return Tracking(
        "mlflow",
        run.log_dir(unit),
        hyperparameters,
        tracking_uri=tracking_uri(config, run),
        experiment=experiment_name(config, run),
        run_name=f"{prefix}{unit.method}/{unit.key}",
        tags=_tags(run, "unit", unit),
    )


def _tags(run: RunDirectory, kind: str, unit: Unit | None = None) -> dict[str, str]:
    tags = {RUN_TAG: str(run.root.resolve()), KIND_TAG: kind}
    if unit is not None:
        tags[UNIT_TAG] = f"{unit.method}/{unit.key}"
    return tags


def _artifact_location(uri: str) -> str | None:
    """Beside a SQLite database (MLflow's default is ./mlruns under the working directory); a server decides its own."""
    if not uri.startswith("sqlite:///"):
        return None
    database = Path(urllib.parse.unquote(uri[len("sqlite:///") :]))
    return (database.resolve().parent / "mlflow-artifacts").as_uri()


def _client(uri: str):
    from mlflow.tracking import MlflowClient

    return MlflowClient(tracking_uri=uri)


def start_experiment(config: RunConfig, run: RunDirectory) -> str | None:
    """Open the store and create the run's experiment once (before any unit); returns its id (None: not MLflow).

    Raises:
        ValueError: the logger's package is missing, the store cannot be opened or the experiment was deleted,
            naming the logger, the URI or the experiment.
    """
    check_installed(config.training.logger)
    if config.training.logger != "mlflow":
        return None
    import mlflow  # noqa: F401 - importing it sets its loggers to INFO: first, so quiet_mlflow can lower them

    uri, name = tracking_uri(config, run), experiment_name(config, run)
    try:
        if uri.startswith("sqlite:///"):
            Path(urllib.parse.unquote(uri[len("sqlite:///") :])).parent.mkdir(parents=True, exist_ok=True)
        with quiet_mlflow():
            client = _client(uri)
            experiment = client.get_experiment_by_name(name)
            if experiment is None:
                return client.create_experiment(name, artifact_location=_artifact_location(uri))
    except Exception as err:  # MLflow raises its own and the transport's errors; all mean "cannot track here"
        raise ValueError(
            f"training.tracking_uri: cannot open the MLflow store {uri!r} for experiment {name!r}: "
            f"{type(err).__name__}: {err}"
        ) from None
    if experiment.lifecycle_stage == "deleted":
        raise ValueError(
            f"training.experiment: the MLflow experiment {name!r} in {uri} was deleted; restore it "
            "(mlflow experiments restore) or name another experiment"
        )
    return experiment.experiment_id


def log_finished_run(config: RunConfig, run: RunDirectory, results: pd.DataFrame, reported_fold: Any) -> None:
    """Each unit's test metrics into its MLflow run, and the report run: the run's files and reported metrics."""
    if config.training.logger != "mlflow":
        return
    experiment_id = start_experiment(config, run)
    uri = tracking_uri(config, run)
    with quiet_mlflow():
        client = _client(uri)
        units = _unit_runs(client, experiment_id, run)
        for (method, split_seed, version, fold), rows in results.groupby(
            ["method", "split_seed", "version", "fold"], sort=False
        ):
            run_id = units.get(f"{method}/{Unit(method, split_seed, version, _fold(fold)).key}")
            if run_id is not None and _fold(fold) is not None:
                for metric, value in zip(rows["metric"], rows["value"]):
                    client.log_metric(run_id, f"test_{metric}", float(value))
        report_id = _report_run(client, experiment_id, config, run)
        reported = results[results["fold"].astype(str) == str(reported_fold)]
        for (method, metric), values in reported.groupby(["method", "metric"], sort=False)["value"]:
            client.log_metric(report_id, f"{method}.{metric}", float(values.mean()))
        for name in ARTIFACTS:
            if (run.root / name).is_file():
                client.log_artifact(report_id, str(run.root / name))
        for figure in sorted(run.root.glob("*.png")):
            client.log_artifact(report_id, str(figure))
        client.set_terminated(report_id)


def _fold(fold: Any) -> int | None:
    """A unit's fold from the results table's fold column (an ensemble row is no unit's)."""
    try:
        return int(fold)
    except (TypeError, ValueError):
        return None


def _unit_runs(client, experiment_id: str, run: RunDirectory) -> dict[str, str]:
    """Unit → the newest finished MLflow run of that unit in this run directory (a retrained unit has several)."""
    runs = client.search_runs(
        [experiment_id],
        filter_string=f"tags.`{RUN_TAG}` = '{run.root.resolve()}' and tags.`{KIND_TAG}` = 'unit' "
        "and attributes.status = 'FINISHED'",
        order_by=["attributes.start_time ASC"],
    )
    return {r.data.tags[UNIT_TAG]: r.info.run_id for r in runs}


def _report_run(client, experiment_id: str, config: RunConfig, run: RunDirectory) -> str:
    """The run directory's report run: the one a previous finish made, or a new one."""
    found = client.search_runs(
        [experiment_id],
        filter_string=f"tags.`{RUN_TAG}` = '{run.root.resolve()}' and tags.`{KIND_TAG}` = 'report'",
        max_results=1,
    )
    if found:
        return found[0].info.run_id
    prefix = f"{run.root.resolve().name}/" if config.training.experiment is not None else ""
    return client.create_run(experiment_id, run_name=f"{prefix}report", tags=_tags(run, "report")).info.run_id


__all__ = ["log_finished_run", "start_experiment", "tracking_uri", "unit_tracking"]
