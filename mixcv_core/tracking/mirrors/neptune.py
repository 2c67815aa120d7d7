"""Mirror a run to Neptune: settings, per-fold metrics, EM and tuning series, summary, figure.

Layout in the Neptune run::

    mixcv/spec, mixcv/cell, mixcv/status        the experiment and how it ended
    parameters/...                              flat settings (models, ranges, splits, seed)
    folds/<model>/<metric>                      one value per outer fold (step = fold)
    folds/<model>/fold_<k>/best_params          tuned parameters of that fold
    tuning/<model>/fold_<k>/objective           inner-loop objective per Optuna trial
    merf/<model>/fold_<k>/{gll,sigma2,D_ij}     one value per EM iteration, as it happens
    summary/<model>/<metric>/{mean,sd,median}
    figures/convergence                         the EM convergence figure

Credentials come only from the environment (``NEPTUNE_API_TOKEN``, ``NEPTUNE_PROJECT``)
and never appear in messages. The hosted service closed in March 2026: ``mode="offline"``
(synced later with ``neptune sync``) and self-hosted servers (``NEPTUNE_API_TOKEN`` for
them) are first-class.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
from collections.abc import Iterator
from typing import Any

from ...errors import SpecError
from ...results.plots import figure_bytes
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

__all__ = ["NeptuneMirror"]

#: While connecting: seconds of retries, and of waiting for a connection, before giving up.
CONNECT_RETRIES_S = 5
CONNECT_TIMEOUT_S = 5


@contextlib.contextmanager
def _quick_failure() -> Iterator[None]:
    """While the run is created, an unreachable server fails within about 10 s, not 65 s.

    The client retries for ``NEPTUNE_RETRIES_TIMEOUT`` (60 s) with a 30 s connect timeout,
    both read once when neptune is imported, so they are lowered on its modules for the
    duration of ``init_run`` and restored after: once connected, a run keeps the client's
    patience for a flaky network. A user who set ``NEPTUNE_RETRIES_TIMEOUT`` keeps it; a
    client without these internals is left as it is.
    """
    saved: list[tuple[Any, str, Any]] = []

    def lower(holder: Any, key: str, value: Any) -> None:
        if isinstance(holder, dict):
            if key in holder:
                saved.append((holder, key, holder[key]))
                holder[key] = min(holder[key], value)
        elif hasattr(holder, key):
            saved.append((holder, key, getattr(holder, key)))
            setattr(holder, key, min(getattr(holder, key), value))

    try:
        from neptune.common.backends import utils as retry_utils
        from neptune.internal.backends import hosted_client
    except ImportError:   # another layout of the client: its own defaults apply
        yield
        return
    if "NEPTUNE_RETRIES_TIMEOUT" not in os.environ:
        lower(retry_utils, "retries_timeout", CONNECT_RETRIES_S)
    options = getattr(hosted_client, "DEFAULT_REQUEST_KWARGS", {}).get("_request_options", {})
    lower(options, "connect_timeout", CONNECT_TIMEOUT_S)
    try:
        yield
    finally:
        for holder, key, value in reversed(saved):
            if isinstance(holder, dict):
                holder[key] = value
            else:
                setattr(holder, key, value)


class NeptuneMirror:
    """An observer that logs a run to Neptune.

    Parameters
    ----------
    run : neptune.Run, optional
        A run you created (it is left open afterwards). Otherwise one is created:
    project : str, optional
        ``workspace/project``; default ``$NEPTUNE_PROJECT``.
    mode : str, optional
        ``"async"`` (default), ``"offline"``, ``"debug"``, ``"sync"``, ``"read-only"``;
        default ``$NEPTUNE_MODE`` or async.
    name : str, optional
        The Neptune run's name.

    Raises
    ------
    SpecError
        ``neptune`` is not installed, or the run cannot be created (the message never
        contains the token).
    """

    def __init__(self, run: Any = None, project: str | None = None, mode: str | None = None,
                 name: str | None = None, diagnostics: bool = False) -> None:
        self.owned = run is None
        self.diagnostics = diagnostics
        if run is None:
            try:
                import neptune
            except ImportError:
                raise SpecError("neptune", "the Neptune mirror needs the neptune client: "
                                           "pip install 'mixcv[neptune]'") from None
            try:
                with _quick_failure():
                    run = neptune.init_run(project=project, mode=mode, name=name,  # type: ignore[arg-type]
                                           capture_stdout=False,
                                           capture_stderr=False, capture_hardware_metrics=False,
                                           capture_traceback=False, git_ref=False)
            except Exception as exc:  # noqa: BLE001 - neptune raises many kinds; report them alike
                raise SpecError("neptune", f"could not start a Neptune run ({type(exc).__name__}): "
                                           f"{scrub(str(exc))[:500]}") from None
        self.run = run

    def _figures(self, res: Any) -> Iterator[tuple[str, Any]]:
        """The figures uploaded at the end: EM convergence; with ``diagnostics`` every other
        one the run can draw (flexcv's "extended diagnostic plots")."""
        if res.histories:
            yield "convergence", res.plot_convergence()
        if not self.diagnostics or not res.model_names:
            return
        if len(res._outer) >= 2:
            yield "per_fold_scores", res.plot(res.metric_names[0])
        yield "predictions", res.plot_predictions()
        if res._data.groups is not None:
            yield "folds", res.plot_folds()
            yield "group_errors", res.plot_group_errors()
            for model in res.model_names:
                if any(hasattr(est, "random_effects_sd_") for (m, _), est in res.models.items() if m == model):
                    yield f"random_effects/{safe_key(model)}", res.plot_random_effects(model)
        if res.studies:
            yield "tuning", res.plot_tuning()

    def on_event(self, event: Event) -> None:
        r = self.run
        if isinstance(event, RunStarted):
            spec = event.spec
            try:
                r["mixcv/spec"] = json.dumps(spec.to_dict())
            except SpecError:
                r["mixcv/spec"] = repr(spec)
            try:
                from ...experiment.cell import spec_to_cell
                r["mixcv/cell"] = spec_to_cell(spec)
            except SpecError:
                pass
            for k, v in flat_params(spec).items():
                r[f"parameters/{k}"] = v
            r["mixcv/models"] = ", ".join(event.model_names)
            r["mixcv/n_rows"] = event.n_rows
            r["mixcv/status"] = "running"
        elif isinstance(event, TrialFinished):
            if math.isfinite(event.value):
                r[f"tuning/{safe_key(event.model)}/fold_{event.fold}/objective"].append(event.value, step=event.trial)
        elif isinstance(event, EMIteration):
            base = f"merf/{safe_key(event.model)}/fold_{event.fold}"
            r[f"{base}/gll"].append(event.gll, step=event.iteration)
            r[f"{base}/sigma2"].append(event.sigma2, step=event.iteration)
            D = event.D
            if D is not None:
                for i in range(len(D)):
                    for j in range(i + 1):
                        r[f"{base}/D_{i}{j}"].append(float(D[i][j]), step=event.iteration)
        elif isinstance(event, FoldFinished):
            model = safe_key(event.model)
            for metric, value in event.metrics.items():
                r[f"folds/{model}/{metric}"].append(value, step=event.fold)
            r[f"folds/{model}/fit_time"].append(event.fit_time, step=event.fold)
            if event.best_params:
                r[f"folds/{model}/fold_{event.fold}/best_params"] = json.dumps(event.best_params, default=str)
        elif isinstance(event, FoldFailed):
            r[f"folds/{safe_key(event.model)}/fold_{event.fold}/error"] = event.error
        elif isinstance(event, RunFailed):
            r["mixcv/error"] = event.error
        elif isinstance(event, RunFinished):
            res = event.results
            for model, metric, stat, value in summary_rows(res):
                r[f"summary/{safe_key(model)}/{metric}/{stat}"] = value
            r["mixcv/status"] = res.status
            if res.run_id:
                r["mixcv/run_id"] = res.run_id
            from neptune.types import File
            # As PNG bytes: Neptune recognises figures by their class name, and mixcv's
            # figures are a Figure subclass (they display themselves in notebooks).
            for key, fig in self._figures(res):
                r[f"figures/{key}"].upload(File.from_content(figure_bytes(fig), extension="png"))
            if self.owned:
                r.stop()
