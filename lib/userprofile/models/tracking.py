"""Optional MLflow logging: used when the ``mlflow`` package is installed, never required.

The tracking URI is MLflow's own default resolution (``MLFLOW_TRACKING_URI``,
the workspace on Databricks); when nothing is set, a local file store under
``storage.models/mlruns``.
"""

from __future__ import annotations

import datetime as dt
import importlib.util
import logging
import os

from userprofile.io import locations
from userprofile.io.context import RunContext
from userprofile.io.session import on_databricks
from userprofile.models.registry import MODELS, model_path

log = logging.getLogger(__name__)
MetricKey = tuple[str, str, str]


_LOCAL_STORES: set[str] = set()


def experiment_name(app_name: str) -> str:
    """MLFLOW_EXPERIMENT_NAME if set; Databricks needs an absolute workspace path."""
    chosen = os.environ.get("MLFLOW_EXPERIMENT_NAME")
    if chosen:
        return chosen
    return f"/Shared/{app_name}" if on_databricks() else app_name


def mlflow_available() -> bool:
    return importlib.util.find_spec("mlflow") is not None


def metric_name(key: MetricKey) -> str:
    """MLflow metric names allow letters, digits, ``_-./:`` and spaces."""
    model, metric, slice_ = key
    name = f"{model}.{metric}" + (f".{slice_}" if slice_ else "")
    return "".join(ch if ch.isalnum() or ch in "_-./: " else "_" for ch in name)


def log_run(
    ctx: RunContext, as_of: dt.date, metrics: dict[MetricKey, float], config_hash: str
) -> str | None:
    """Log params, metrics and the saved models of a training run; the MLflow run id or None."""
    if not mlflow_available():
        return None
    import mlflow  # type: ignore[import-not-found, unused-ignore]  # optional

    configured = os.environ.get("MLFLOW_TRACKING_URI")
    models = locations.local_path(ctx.settings.storage.models)
    # set_tracking_uri also exports the variable: a store we chose earlier in this process
    # (another config's) is not the user's choice.
    if (not configured or configured in _LOCAL_STORES) and not on_databricks():
        if models is None:
            log.info("MLflow: set MLFLOW_TRACKING_URI to log training runs (models are not local)")
            return None
        store = "file://" + os.path.join(models, "mlruns")
        _LOCAL_STORES.add(store)
        # MLflow 3 keeps the file store working only on request; a server or database is
        # what a team shares, set through MLFLOW_TRACKING_URI.
        os.environ.setdefault("MLFLOW_ALLOW_FILE_STORE", "true")
        mlflow.set_tracking_uri(store)
    mlflow.set_experiment(experiment_name(ctx.settings.spark.app_name))
    with mlflow.start_run(run_name=ctx.run_id) as run:
        mlflow.log_params(
            {
                "model_version": ctx.run_id,
                "snapshot_date": str(as_of),
                "config_hash": config_hash,
                "label_days": ctx.settings.propensity.label_days,
                "hybrid": ctx.settings.propensity.hybrid,
            }
        )
        mlflow.log_metrics({metric_name(k): v for k, v in metrics.items()})
        for model in MODELS:
            saved = model_path(ctx.settings, model, ctx.run_id)
            mlflow.set_tag(f"{model}_model_uri", saved)
            local = locations.local_path(saved)
            # MLflow copies artifacts from the local disk: models in an object store stay
            # there, and the run records where (the tag above).
            if local is not None and os.path.isdir(local):
                mlflow.log_artifacts(local, artifact_path=model)
        log.info("logged training run to MLflow run %s", run.info.run_id)
        return str(run.info.run_id)
