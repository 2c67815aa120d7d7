"""Mirror a run to MLflow, by default into a local SQLite tracking store.

Parameters are the flat settings; metrics ``<model>.<metric>`` have one value per
outer fold (step = fold); EM series ``merf.<model>.fold<k>.{gll,sigma2}`` one value per
iteration (step = iteration), logged as they happen; the inner objective
``tuning.<model>.fold<k>`` per trial; summary metrics ``summary.<model>.<metric>.<stat>``;
the spec and cell as text artifacts and the convergence figure as an image.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import time
from collections.abc import Iterator
from pathlib import Path

from ...errors import SpecError
from ...run.events import (
    EMIteration,
    Event,
    FoldFailed,
    FoldFinished,
    RunFailed,
    RunFinished,
    RunStarted,
    TrialFinished,
)
from ._common import flat_params, safe_key, scrub, summary_rows

__all__ = ["MlflowMirror"]


@contextlib.contextmanager
def _quick_failure() -> Iterator[None]:
    """While the mirror connects, an unreachable server fails within seconds, not minutes.

    MLflow retries an HTTP request with back-off for minutes by default (248 s seen); a run
    should not wait that long to learn that its tracker is down. The user's own settings of
    these variables win; after connecting, MLflow's defaults apply again.
    """
    quick = {"MLFLOW_HTTP_REQUEST_MAX_RETRIES": "0", "MLFLOW_HTTP_REQUEST_TIMEOUT": "10"}
    added = [k for k in quick if k not in os.environ]
    os.environ.update({k: quick[k] for k in added})
    try:
        yield
    finally:
        for k in added:
            os.environ.pop(k, None)


def _key(name: str) -> str:
    return safe_key(name, r"[^A-Za-z0-9_\-. /]")


class MlflowMirror:
    """An observer that logs a run to MLflow.

    Parameters
    ----------
    tracking_uri : str, optional
        Default: ``sqlite:///<run store folder>/mlflow.db`` (``$MIXCV_STORE`` or ``.mixcv``).
        For a SQLite URI, new experiments keep their artifacts next to the database.
    experiment : str, default="mixcv"
    run_name : str, optional
    """

    def __init__(self, tracking_uri: str | None = None, experiment: str = "mixcv", run_name: str | None = None) -> None:
        try:
            from mlflow.tracking import MlflowClient
        except ImportError:
            raise SpecError("mlflow", "the MLflow mirror needs mlflow: pip install 'mixcv[mlflow]'") from None
        artifacts = None
        if tracking_uri is None:
            folder = Path(os.environ.get("MIXCV_STORE", ".mixcv"))
            if folder.name.lower() in ("off", "none"):
                folder = Path(".mixcv")
            folder.mkdir(parents=True, exist_ok=True)
            tracking_uri = f"sqlite:///{folder.resolve() / 'mlflow.db'}"
        if tracking_uri.startswith("sqlite:///"):
            # Artifacts next to the database, not in ./mlruns of whatever folder the
            # notebook happens to run in.
            db = Path(tracking_uri.removeprefix("sqlite:///"))
            artifacts = (db.resolve().parent / "mlflow-artifacts").as_uri()
        try:
            with _quick_failure():
                self.client = MlflowClient(tracking_uri=tracking_uri)
                exp = self.client.get_experiment_by_name(experiment)
                exp_id = exp.experiment_id if exp is not None else self.client.create_experiment(
                    experiment, artifact_location=artifacts)
                self.run_id = self.client.create_run(exp_id, run_name=run_name).info.run_id
        except Exception as exc:  # noqa: BLE001 - tracking backends raise many kinds
            raise SpecError("mlflow", f"could not start an MLflow run: {scrub(str(exc))[:500]}") from None
        self.tracking_uri = tracking_uri

    def _metric(self, key: str, value: float, step: int) -> None:
        if math.isfinite(value):
            self.client.log_metric(self.run_id, key, float(value), timestamp=int(time.time() * 1000), step=step)

    def on_event(self, event: Event) -> None:
        c, rid = self.client, self.run_id
        if isinstance(event, RunStarted):
            from mlflow.entities import Param
            params = [Param(_key(k), str(v)[:6000]) for k, v in flat_params(event.spec).items()]
            for i in range(0, len(params), 90):  # MLflow accepts 100 params per batch
                c.log_batch(rid, params=params[i:i + 90])
            try:
                c.log_text(rid, json.dumps(event.spec.to_dict(), indent=2), "mixcv/spec.json")
            except SpecError:
                c.log_text(rid, repr(event.spec), "mixcv/spec.txt")
            try:
                from ...experiment.cell import spec_to_cell
                c.log_text(rid, spec_to_cell(event.spec), "mixcv/cell.txt")
            except SpecError:
                pass
        elif isinstance(event, TrialFinished):
            self._metric(f"tuning.{_key(event.model)}.fold{event.fold}", event.value, event.trial)
        elif isinstance(event, EMIteration):
            base = f"merf.{_key(event.model)}.fold{event.fold}"
            self._metric(f"{base}.gll", event.gll, event.iteration)
            self._metric(f"{base}.sigma2", event.sigma2, event.iteration)
        elif isinstance(event, FoldFinished):
            for metric, value in event.metrics.items():
                self._metric(f"{_key(event.model)}.{metric}", value, event.fold)
        elif isinstance(event, FoldFailed):
            c.set_tag(rid, f"failed.{_key(event.model)}.fold{event.fold}", event.error[:5000])
        elif isinstance(event, RunFailed):
            c.set_tag(rid, "mixcv.error", event.error[:5000])
        elif isinstance(event, RunFinished):
            res = event.results
            for model, metric, stat, value in summary_rows(res):
                self._metric(f"summary.{_key(model)}.{metric}.{stat}", value, 0)
            if res.run_id:
                c.set_tag(rid, "mixcv.run_id", res.run_id)
            if res.histories:
                c.log_figure(rid, res.plot_convergence(), "figures/convergence.png")
            c.set_terminated(rid, "FINISHED" if res.status == "finished" else "KILLED")
