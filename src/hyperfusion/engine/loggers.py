"""Live training curves through Lightning's own loggers (CSV, TensorBoard, MLflow): only the wiring is ours.

The training module logs one row per epoch (the ``history`` fields: train and validation loss, the selection
metric, seconds) at ``step = epoch``; the logger chosen here decides where the row goes. None of them draws a
random number, so a model trains to the same weights with any logger or none.
"""

from __future__ import annotations

import contextlib
import importlib.util
import logging
import shutil
import warnings
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

#: The loggers ``training.logger`` can name besides ``none``.
LOGGERS = ("csv", "tensorboard", "mlflow")


@dataclass(frozen=True)
class Tracking:
    """Where one training's curves and settings go.

    ``log_dir`` holds the CSV (metrics.csv, hparams.yaml) or TensorBoard (events.out.tfevents.*, hparams.yaml)
    files and is emptied first, so a retrained model's curves start fresh. MLflow writes nothing there: it logs
    to ``tracking_uri`` as one MLflow run named ``run_name`` in ``experiment``, tagged with ``tags``.
    """

    kind: str
    log_dir: Path
    hyperparameters: Mapping[str, Any] = field(default_factory=dict)
    tracking_uri: str | None = None
    experiment: str | None = None
    run_name: str | None = None
    tags: Mapping[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.kind not in LOGGERS:
            raise ValueError(f"logger {self.kind!r} is not one of {', '.join(LOGGERS)}")
        if self.kind == "mlflow" and (self.tracking_uri is None or self.experiment is None):
            raise ValueError("the mlflow logger needs a tracking_uri and an experiment name")


#: The package each logger needs (the ``tracking`` extra; Lightning's CSV logger needs none).
PACKAGES = {"tensorboard": "tensorboard", "mlflow": "mlflow"}


def check_installed(kind: str) -> None:
    """Fail before any training when the logger's package is missing, saying how to install it.

    Raises:
        ValueError: naming the logger and the package.
    """
    package = PACKAGES.get(kind)
    if package is not None and importlib.util.find_spec(package) is None:
        raise ValueError(
            f"training.logger: {kind} needs the {package} package, which is not installed; "
            "pip install 'hyperfusion[tracking]' (or choose logger: csv)"
        )


@contextlib.contextmanager
def quiet_mlflow() -> Iterator[None]:
    """MLflow's and Alembic's INFO lines (a new database's migrations) off: our output stays one line a step."""
    loggers = [logging.getLogger(name) for name in ("mlflow", "alembic")]
    levels = [lg.level for lg in loggers]
    for lg in loggers:
        lg.setLevel(logging.WARNING)
    try:
        with warnings.catch_warnings():  # SQLAlchemy's deprecations inside MLflow's SQL store
            warnings.filterwarnings("ignore", category=DeprecationWarning, module=r"mlflow(\.|$)")
            yield
    finally:
        for lg, level in zip(loggers, levels):
            lg.setLevel(level)


def make_logger(tracking: Tracking):
    """The Lightning logger ``tracking`` asks for, with the hyper-parameters already logged."""
    if tracking.kind == "mlflow":
        import mlflow  # noqa: F401 - importing it sets its loggers to INFO: first, so quiet_mlflow can lower them
        from lightning.pytorch.loggers import MLFlowLogger

        logger = MLFlowLogger(
            experiment_name=tracking.experiment,  # type: ignore[arg-type]
            run_name=tracking.run_name,
            tracking_uri=tracking.tracking_uri,
            tags=dict(tracking.tags),
        )
        with quiet_mlflow():
            logger.log_hyperparams(dict(tracking.hyperparameters))
        return logger
    shutil.rmtree(tracking.log_dir, ignore_errors=True)
    if tracking.kind == "tensorboard":
        from lightning.pytorch.loggers import TensorBoardLogger

        logger = TensorBoardLogger(tracking.log_dir, name="", version="", default_hp_metric=False)
    else:
        from lightning.pytorch.loggers import CSVLogger

        logger = CSVLogger(tracking.log_dir, name="", version="")
    logger.log_hyperparams(dict(tracking.hyperparameters))
    return logger


__all__ = ["LOGGERS", "Tracking", "check_installed", "make_logger", "quiet_mlflow"]
