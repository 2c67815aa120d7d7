"""The local run store: every run, fold by fold, in a SQLite database under ``.mixcv/``.

`RunStore` keeps the run index, specs, per-fold metrics, predictions, EM histories,
post-processor tables and tuning trials in one SQLite file (``runs.sqlite``), and
figures and (optionally) fitted models as files next to it. `StoreObserver` writes a
run as it happens: each (model, fold) is committed in its own transaction the moment
it finishes, so a kernel that dies keeps every finished fold, and its run is listed as
``interrupted``. SQLite in WAL mode with a busy timeout lets two notebooks in one
folder write at the same time.

Where: ``$MIXCV_STORE`` if set (``off`` disables the store), else ``./.mixcv``.

Examples
--------
>>> import tempfile, mixcv_core
>>> from mixcv_core.synthesizer import generate_grouped_regression
>>> X, y, g, _ = generate_grouped_regression(4, 10)
>>> store = RunStore(tempfile.mkdtemp())
>>> res = (mixcv_core.CrossValidation().set_data(X, y, g).set_splits(n_splits_out=2)
...        .add_model("LinearModel").set_run(store=store).perform().get_results())
>>> store.runs()["status"].tolist()
['finished']
>>> store.load(res.run_id).summary.equals(res.summary)
True
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import socket
import sqlite3
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ..errors import SpecError
from ..experiment.cell import spec_to_cell
from ..experiment.data import PreparedData
from ..experiment.spec import ExperimentSpec
from ..metrics import higher_is_better
from ..outcome import FoldOutcome
from ..results import Results
from ..run.events import Event, FoldFailed, FoldFinished, RunFailed, RunFinished, RunStarted, TrialFinished
from ..run.tuning import quiet_optuna
from ._labels import LABELS_FORMAT, decode_index, decode_values, encode_index, encode_values

__all__ = ["RunStore", "StoreObserver", "default_store", "resolve_store", "SCHEMA_VERSION"]

#: Version of the database layout below, kept in SQLite's ``PRAGMA user_version``. A
#: store written by a newer mixcv (a higher version) is refused on open rather than
#: misread; an older one is brought up to date by `_MIGRATIONS`. A store without a
#: version (mixcv 0.1) is version 1.
SCHEMA_VERSION = 4

_SCHEMA = """
CREATE TABLE IF NOT EXISTS runs (
    id TEXT PRIMARY KEY, created REAL, updated REAL, status TEXT, host TEXT, pid INTEGER,
    dataset TEXT, target TEXT, n_rows INTEGER, n_folds INTEGER, models TEXT, metrics TEXT,
    spec TEXT, cell TEXT, wall_time REAL, error TEXT);
CREATE TABLE IF NOT EXISTS run_data (
    run_id TEXT PRIMARY KEY, y BLOB, groups TEXT, row_index TEXT, meta TEXT);
CREATE TABLE IF NOT EXISTS splits (
    run_id TEXT, fold INTEGER, train BLOB, test BLOB, PRIMARY KEY (run_id, fold));
CREATE TABLE IF NOT EXISTS folds (
    run_id TEXT, model TEXT, fold INTEGER, ok INTEGER, metrics TEXT, fit_time REAL, tune_time REAL,
    best_params TEXT, converged INTEGER, error TEXT, traceback TEXT, warnings TEXT,
    test_rows BLOB, y_pred BLOB, insight TEXT, history TEXT, model_file TEXT, finished REAL,
    convergence TEXT, model_sha256 TEXT, known_rows BLOB, y_pred_known BLOB,
    PRIMARY KEY (run_id, model, fold));
CREATE TABLE IF NOT EXISTS trials (
    run_id TEXT, model TEXT, fold INTEGER, trial INTEGER, value REAL, params TEXT,
    PRIMARY KEY (run_id, model, fold, trial));
"""


#: from-version -> the statements that bring a store to the next version.
_MIGRATIONS: dict[int, list[str]] = {
    1: ["ALTER TABLE folds ADD COLUMN convergence TEXT"],   # how each fit ended, in words
    2: ["ALTER TABLE folds ADD COLUMN model_sha256 TEXT"],  # checksum of a saved model file
    3: ["ALTER TABLE folds ADD COLUMN known_rows BLOB",     # the known-group holdout's rows
        "ALTER TABLE folds ADD COLUMN y_pred_known BLOB"],  # ...and their predictions
}


def _npy(a: np.ndarray) -> bytes:
    buf = io.BytesIO()
    np.save(buf, np.asarray(a), allow_pickle=False)
    return buf.getvalue()


def _from_npy(b: bytes) -> np.ndarray:
    return np.load(io.BytesIO(b), allow_pickle=False)


def _plain(v: Any) -> Any:
    """numpy scalars and arrays as JSON-able Python values."""
    if isinstance(v, np.generic):
        return v.item()
    if isinstance(v, np.ndarray):
        return v.tolist()
    return str(v)


def _dumps(v: Any) -> str:
    return json.dumps(v, default=_plain)


def _frame_json(df: pd.DataFrame | None) -> str | None:
    return None if df is None else df.to_json(orient="split", default_handler=str)


def _frame_from(text: str | None) -> pd.DataFrame | None:
    return None if text is None else pd.read_json(io.StringIO(text), orient="split")


def default_store() -> RunStore | None:
    """The store runs are written to unless told otherwise (``$MIXCV_STORE``, default ``./.mixcv``)."""
    where = os.environ.get("MIXCV_STORE", ".mixcv")
    if where.lower() in ("off", "none", "0", "false", ""):
        return None
    return RunStore(where)


class RunStore:
    """A folder holding ``runs.sqlite`` and per-run files.

    Parameters
    ----------
    path : str or Path, default=".mixcv"
    """

    def __init__(self, path: str | Path = ".mixcv", read_only: bool | None = None) -> None:
        self.path = Path(path)
        self.db = self.path / "runs.sqlite"
        if read_only is None:
            # A store the user can read but not write can still be listed and loaded.
            read_only = self.db.exists() and not (os.access(self.db, os.W_OK) and os.access(self.path, os.W_OK))
        self.read_only = bool(read_only)
        if self.read_only and not self.db.exists():
            raise SpecError("store", f"there is no run store at {str(self.path)!r} (no runs.sqlite)")
        if not self.read_only:
            try:
                self.path.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                raise SpecError("store", f"cannot create the run store at {str(self.path)!r}: {exc}") from None
        with self._open() as con:
            version = con.execute("PRAGMA user_version").fetchone()[0]
            if version > SCHEMA_VERSION:
                raise SpecError("store", f"the run store at {str(self.path)!r} was written by a newer mixcv "
                                         f"(schema version {version}; this mixcv reads up to {SCHEMA_VERSION}). "
                                         "Upgrade mixcv, or use another store: --store DIR, MIXCV_STORE=DIR, "
                                         "or MIXCV_STORE=off")
            fresh = con.execute("SELECT name FROM sqlite_master WHERE name = 'runs'").fetchone() is None
            if not fresh:
                have = {r[1] for r in con.execute("PRAGMA table_info(runs)")}
                if not {"id", "created", "status", "spec", "n_folds"} <= have:
                    raise SpecError("store", f"{str(self.db)!r} is an SQLite database of something else, not a "
                                             "mixcv run store; nothing was changed. Choose another folder: --store "
                                             "DIR or MIXCV_STORE=DIR; or do not record: --no-store or MIXCV_STORE=off")
            if self.read_only:
                return
            con.executescript(_SCHEMA)
            if fresh:
                con.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
            else:
                version = max(version, 1)   # mixcv 0.1 wrote no version: its layout is version 1
                while version < SCHEMA_VERSION:
                    for statement in _MIGRATIONS[version]:
                        con.execute(statement)
                    version += 1
                    con.execute(f"PRAGMA user_version = {version}")

    def _connect(self) -> sqlite3.Connection:
        if self.read_only:
            return sqlite3.connect(f"{self.db.resolve().as_uri()}?mode=ro", uri=True, timeout=60)
        # WAL lets readers and one writer work at once; the timeout makes a second
        # writer wait its turn instead of failing with "database is locked".
        con = sqlite3.connect(self.db, timeout=60)
        con.execute("PRAGMA journal_mode=WAL")
        con.execute("PRAGMA busy_timeout=60000")
        return con

    @contextlib.contextmanager
    def _open(self) -> Iterator[sqlite3.Connection]:
        """A connection whose database errors name this store and the way out."""
        try:
            with self._connect() as con:
                yield con
        except sqlite3.DatabaseError as exc:
            raise SpecError("store", f"{str(self.db)!r} is not a mixcv run store, or it is damaged ({exc}). Move it "
                                     "aside, or record elsewhere: --store DIR or MIXCV_STORE=DIR; or not at all: "
                                     "--no-store or MIXCV_STORE=off") from None

    def _fold_columns(self, con: sqlite3.Connection, names: list[str]) -> str:
        """``names`` for a SELECT, with NULL for columns an older (read-only, unmigrated) layout lacks."""
        have = {r[1] for r in con.execute("PRAGMA table_info(folds)")}
        return ", ".join(n if n in have else f"NULL AS {n}" for n in names)

    def __repr__(self) -> str:
        return f"RunStore({str(self.path)!r})"

    def run_dir(self, run_id: str) -> Path:
        return self.path / "runs" / run_id

    # -- reading -----------------------------------------------------------------------
    def runs(self) -> pd.DataFrame:
        """One row per run, newest first: id, when, data, models, status, folds done, best."""
        with self._open() as con:
            rows = con.execute("SELECT id, created, status, host, pid, dataset, target, n_rows, n_folds, models, "
                               "metrics FROM runs ORDER BY created DESC").fetchall()
            done = dict(con.execute("SELECT run_id, COUNT(*) FROM folds WHERE ok = 1 GROUP BY run_id").fetchall())
            metric_rows = con.execute("SELECT run_id, model, metrics FROM folds WHERE ok = 1").fetchall()
        scores: dict[str, dict[str, list[float]]] = {}
        for run_id, model, metrics in metric_rows:
            m = json.loads(metrics)
            key = "test_r2" if "test_r2" in m else next((k for k in m if k.startswith("test_")), None)
            if key is not None:
                scores.setdefault(run_id, {}).setdefault(f"{model}|{key}", []).append(m[key])
        out = []
        for rid, created, status, host, pid, dataset, target, n_rows, n_folds, models, _metrics in rows:
            best = ""
            if rid in scores:
                means = {k: float(np.mean(v)) for k, v in scores[rid].items()}
                pick = max if higher_is_better(next(iter(means)).split("|")[1]) else min
                k = pick(means, key=lambda name: means[name])
                best = f"{k.split('|')[0]} ({k.split('|')[1].removeprefix('test_')} {means[k]:.3f})"
            models_list = json.loads(models)
            out.append({"id": rid, "created": pd.Timestamp(created, unit="s").tz_localize("UTC").tz_convert(None)
                        .floor("s"), "data": dataset or f"{n_rows} rows", "target": target,
                        "models": ", ".join(models_list), "status": self._status(status, host, pid),
                        "fits": f"{done.get(rid, 0)}/{n_folds * len(models_list)}", "best": best})
        return pd.DataFrame(out, columns=["id", "created", "data", "target", "models", "status", "fits", "best"])

    @staticmethod
    def _status(status: str, host: str, pid: int) -> str:
        # A run whose process is gone without saying so was killed: its finished folds
        # are all there, the rest never will be.
        if status == "running" and host == socket.gethostname() and not _alive(pid):
            return "interrupted"
        return status

    def _resolve(self, con: sqlite3.Connection, run_id: str) -> str:
        ids = [r[0] for r in con.execute("SELECT id FROM runs WHERE id LIKE ?", (f"{run_id}%",)).fetchall()]
        if len(ids) == 1:
            return ids[0]
        if not ids:
            raise SpecError("run_id", f"no run {run_id!r} in {self}; list them with store.runs() or %mixcv runs")
        raise SpecError("run_id", f"{run_id!r} matches {len(ids)} runs; give more of the id")

    def load(self, run_id: str, models: bool = False) -> Results:
        """Rebuild the `Results` of a stored run (a unique prefix of the id is enough).

        Everything but the fitted models comes back by default: settings, per-fold metrics,
        predictions, EM histories, insight tables, and Optuna studies rebuilt from the
        stored trials. None of that can run code.

        Parameters
        ----------
        run_id : str
        models : bool, default=False
            Also restore the fitted models saved with ``save_models=True``. **This unpickles
            files (joblib), which runs whatever code they contain: only do it for a store you
            wrote yourself or trust.** Each file must lie inside the store's folder and match
            the checksum written when it was saved; otherwise nothing is unpickled and a
            `SpecError` names the file.
        """
        with self._open() as con:
            rid = self._resolve(con, run_id)
            run = con.execute("SELECT status, host, pid, spec, wall_time FROM runs WHERE id = ?", (rid,)).fetchone()
            data = con.execute("SELECT y, groups, row_index, meta FROM run_data WHERE run_id = ?", (rid,)).fetchone()
            splits = con.execute("SELECT train, test FROM splits WHERE run_id = ? ORDER BY fold", (rid,)).fetchall()
            columns = self._fold_columns(con, ["model", "fold", "ok", "metrics", "fit_time", "tune_time", "best_params",
                                               "converged", "error", "traceback", "warnings", "test_rows", "y_pred",
                                               "insight", "history", "model_file", "convergence", "model_sha256",
                                               "known_rows", "y_pred_known"])
            folds = con.execute(f"SELECT {columns} FROM folds WHERE run_id = ?", (rid,)).fetchall()  # noqa: S608
            trials = con.execute("SELECT model, fold, trial, value, params FROM trials WHERE run_id = ? "
                                 "ORDER BY model, fold, trial", (rid,)).fetchall()
        status, host, pid, spec_json, wall_time = run
        if spec_json is None:
            raise SpecError("run_id", f"run {rid} used settings that cannot be written down (locally defined "
                                      "functions or splitter objects); its folds are in store.folds(run_id)")
        spec = ExperimentSpec.from_dict(json.loads(spec_json))
        y, groups, index, meta = data
        meta = json.loads(meta)
        if meta.get("labels_format", 1) >= 2:
            row_index = decode_index(json.loads(index))
            group_labels = None if groups is None else decode_values(json.loads(groups))
        else:   # mixcv 0.1: plain JSON lists
            row_index = pd.Index(json.loads(index))
            group_labels = None if groups is None else np.asarray(
                json.loads(groups), dtype=object if meta.get("groups_object") else None)
        prepared = PreparedData(
            X=np.empty((len(_from_npy(y)), 0)), y=_from_npy(y), groups=group_labels,
            feature_names=meta["feature_names"], slope_names=meta["slope_names"],
            index=row_index, target_name=meta["target_name"], groups_name=meta["groups_name"])
        outer = [(_from_npy(tr), _from_npy(te)) for tr, te in splits]
        with quiet_optuna():   # no "A new study created" line per rebuilt study
            studies = self._studies(spec, trials)
        base_of = {name: m.name for m in spec.models for name in spec.task_names(m)}
        outcomes = []
        for (model, fold, ok, metrics, fit_time, tune_time, best_params, converged, error, tb, warns, test_rows,
             y_pred, insight, history, model_file, convergence, model_sha, known_rows, y_pred_known) in folds:
            estimator = None
            if model_file and models:
                estimator = self._load_model(model_file, model_sha)
            outcomes.append(FoldOutcome(
                model=model, fold=fold, ok=bool(ok), metrics=json.loads(metrics or "{}"),
                fit_time=float("nan") if fit_time is None else fit_time, tune_time=tune_time or 0.0,
                best_params=json.loads(best_params or "{}"),
                test_rows=None if test_rows is None else _from_npy(test_rows),
                y_pred=None if y_pred is None else _from_npy(y_pred), estimator=estimator,
                known_rows=None if known_rows is None else _from_npy(known_rows),
                y_pred_known=None if y_pred_known is None else _from_npy(y_pred_known),
                study=studies.get(base_of.get(model, model), {}).get(fold), insight=_frame_from(insight),
                history=_frame_from(history), converged=None if converged is None else bool(converged),
                convergence=convergence or "",
                warnings=json.loads(warns or "[]"), error=error or "", traceback=tb or ""))
        rank = spec.result_rank()
        outcomes.sort(key=lambda o: (o.fold, rank[o.model]))
        res = Results(spec=spec, outcomes=outcomes, data=prepared, outer=outer, status=self._status(status, host, pid),
                      wall_time=wall_time if wall_time is not None else float("nan"))
        res.run_id = rid
        return res

    def _load_model(self, model_file: str, sha256: str | None) -> Any:
        """Unpickle a saved model, only from inside the store and only if its checksum matches."""
        import joblib
        root = self.path.resolve()
        path = (self.path / model_file).resolve()
        if not path.is_relative_to(root):
            raise SpecError("store", f"the model file {model_file!r} named in {self.db} lies outside the store "
                                     f"folder {str(root)!r}; refusing to load it")
        if not path.is_file():
            raise SpecError("store", f"the model file {str(path)!r} is missing")
        if sha256 is None or _sha256(path) != sha256:
            raise SpecError("store", f"the model file {str(path)!r} does not match the checksum recorded when it "
                                     "was saved (changed since, or saved without one); refusing to unpickle it")
        return joblib.load(path)

    @staticmethod
    def _studies(spec: ExperimentSpec, trials: list[tuple[Any, ...]]) -> dict[str, dict[int, Any]]:
        """Optuna studies rebuilt from stored trial values (only completed trials are kept)."""
        import optuna
        out: dict[str, dict[int, Any]] = {}
        by_model = {m.name: m for m in spec.models}
        for model, fold, _trial, value, params in trials:
            m = by_model.get(model)
            if m is None or value is None or not np.isfinite(value):
                continue
            study = out.setdefault(model, {}).get(fold)
            if study is None:
                study = optuna.create_study(direction="minimize", study_name=f"{model} fold {fold}")
                out[model][fold] = study
            study.add_trial(optuna.trial.create_trial(params=json.loads(params), distributions=dict(m.params),
                                                      value=value))
        return out

    def delete(self, run_id: str) -> None:
        """Remove a run and its files."""
        import shutil
        if self.read_only:
            raise SpecError("store", f"the run store at {str(self.path)!r} is read-only")
        with self._open() as con:
            rid = self._resolve(con, run_id)
            con.execute("DELETE FROM runs WHERE id = ?", (rid,))
            for table in ("run_data", "splits", "folds", "trials"):
                con.execute(f"DELETE FROM {table} WHERE run_id = ?", (rid,))  # noqa: S608
        shutil.rmtree(self.run_dir(rid), ignore_errors=True)

    def folds(self, run_id: str) -> pd.DataFrame:
        """The stored per-fold rows of a run, metrics as columns (readable even when `load`
        cannot rebuild the run)."""
        with self._open() as con:
            rid = self._resolve(con, run_id)
            raw = pd.read_sql_query("SELECT model, fold, ok, metrics, fit_time, tune_time, best_params, converged, "
                                    "error FROM folds WHERE run_id = ? ORDER BY fold, model", con, params=(rid,))
        metrics = pd.DataFrame([json.loads(m or "{}") for m in raw["metrics"]], index=raw.index)
        table = pd.concat([raw[["model", "fold"]], metrics, raw[["fit_time", "tune_time"]]], axis=1)
        table["best_params"] = raw["best_params"].map(lambda t: json.loads(t or "{}"))
        table["ok"] = raw["ok"].astype(bool)
        table["converged"] = raw["converged"].map(lambda v: None if v is None or v != v else bool(v))
        table["error"] = raw["error"]
        return table


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class StoreObserver:
    """Writes a run into a `RunStore` as its events arrive.

    Parameters
    ----------
    store : RunStore
    save_models : bool, default=False
        Also write each fitted model with joblib (can be large).
    """

    def __init__(self, store: RunStore, save_models: bool = False, resume_id: str | None = None) -> None:
        if store.read_only:
            raise SpecError("store", f"the run store at {str(store.path)!r} is read-only: its runs can be listed and "
                                     "loaded, not added to. Record elsewhere (--store DIR, MIXCV_STORE=DIR) or not at "
                                     "all (--no-store, MIXCV_STORE=off)")
        self.store = store
        self.save_models = save_models
        self.run_id: str | None = None
        # A resumed run goes on writing into its stored run: same id, data and splits.
        self.resume_id = resume_id
        self._con: sqlite3.Connection | None = None

    @property
    def _db(self) -> sqlite3.Connection:
        if self._con is None:
            raise RuntimeError("the run store has no open run (RunStarted was not seen, or the run has ended)")
        return self._con

    @property
    def _rid(self) -> str:
        if self.run_id is None:
            raise RuntimeError("the run store has no open run")
        return self.run_id

    def on_event(self, event: Event) -> None:
        if isinstance(event, RunStarted):
            self._started(event)
        elif self.run_id is None:
            return
        elif isinstance(event, (FoldFinished, FoldFailed)) and event.outcome is not None:
            self._fold(event.outcome)
        elif isinstance(event, TrialFinished):
            with self._db:
                _insert(self._db, "trials", replace=True, run_id=self.run_id, model=event.model, fold=event.fold,
                        trial=event.trial, value=None if not np.isfinite(event.value) else event.value,
                        params=_dumps(event.params))
        elif isinstance(event, RunFailed):
            status = "interrupted" if event.error.startswith("interrupted") else "failed"
            self._set_status(status, error=event.error)
        elif isinstance(event, RunFinished):
            res = event.results
            res.run_id = self.run_id
            with self._db:
                self._db.execute("UPDATE runs SET status = ?, updated = ?, wall_time = ? WHERE id = ?",
                                  (res.status, time.time(), res.wall_time, self.run_id))
            if res.histories:
                try:
                    fig = res.plot_convergence()
                    d = self.store.run_dir(self._rid)
                    d.mkdir(parents=True, exist_ok=True)
                    fig.savefig(d / "convergence.png", dpi=100)
                except Exception:  # noqa: BLE001, S110 - a figure is a convenience; the data are stored
                    pass
            self._db.close()
            self._con = None

    def abandon(self, reason: str) -> None:
        """Recording failed: leave the stored run saying so (``incomplete: <reason>``), never ``running``.

        Best effort in a fresh connection: the failure may be the store itself.
        """
        if self.run_id is None:
            return
        try:
            with contextlib.closing(self.store._connect()) as con, con:
                con.execute("UPDATE runs SET status = ?, updated = ?, error = ? WHERE id = ?",
                            (f"incomplete: {reason}"[:500], time.time(), reason, self.run_id))
        except Exception:  # noqa: BLE001, S110 - nothing more can be written; the run's results say why
            pass
        if self._con is not None:
            with contextlib.suppress(Exception):
                self._con.close()
            self._con = None

    def _set_status(self, status: str, error: str = "") -> None:
        with self._db:
            self._db.execute("UPDATE runs SET status = ?, updated = ?, error = ? WHERE id = ?",
                              (status, time.time(), error, self.run_id))

    def _started(self, e: RunStarted) -> None:
        spec = e.spec
        if e.data is None or e.outer is None:
            raise RuntimeError("RunStarted without the validated data and splits; the store cannot record the run")
        if self.resume_id is not None:
            self.run_id = self.resume_id
            self._con = self.store._connect()
            self._set_status("running")
            return
        self.run_id = time.strftime("%Y%m%d-%H%M%S") + "-" + uuid.uuid4().hex[:6]
        try:
            spec_json = json.dumps(spec.to_dict())
        except SpecError:
            spec_json = None
        try:
            cell = spec_to_cell(spec)
        except SpecError:
            cell = None
        d = e.data
        index_json, groups_json = self.encode_labels(d)
        self._con = self.store._connect()
        meta = {"feature_names": d.feature_names, "slope_names": d.slope_names, "target_name": d.target_name,
                "groups_name": d.groups_name, "labels_format": LABELS_FORMAT}
        now = time.time()
        with self._db:
            _insert(self._db, "runs", id=self.run_id, created=now, updated=now, status="running",
                    host=socket.gethostname(), pid=os.getpid(),
                    dataset=spec.data.dataset_name or spec.data.frame or "", target=d.target_name, n_rows=len(d.y),
                    n_folds=e.n_folds, models=_dumps(list(e.model_names)), metrics=_dumps(list(spec.metrics)),
                    spec=spec_json, cell=cell)
            _insert(self._db, "run_data", run_id=self.run_id, y=_npy(d.y), groups=groups_json,
                    row_index=index_json, meta=_dumps(meta))
            for k, (tr, te) in enumerate(e.outer):
                _insert(self._db, "splits", run_id=self.run_id, fold=k, train=_npy(tr), test=_npy(te))

    @staticmethod
    def encode_labels(data: PreparedData) -> tuple[str, str | None]:
        """The row index and group labels as typed JSON; raises `SpecError` (before the run
        starts, when called by the engine) for labels the store cannot keep exactly."""
        groups = None if data.groups is None else _dumps(encode_values(data.groups, "group labels"))
        return _dumps(encode_index(data.index)), groups

    def _fold(self, o: FoldOutcome) -> None:
        model_file = model_sha = None
        notes = list(o.warnings)
        if self.save_models and o.ok and o.estimator is not None:
            import joblib
            d = self.store.run_dir(self._rid) / "models"
            d.mkdir(parents=True, exist_ok=True)
            rel = Path("runs") / self._rid / "models" / f"{_safe(o.model)}__fold{o.fold}.joblib"
            try:
                joblib.dump(o.estimator, self.store.path / rel)
                model_file, model_sha = str(rel), _sha256(self.store.path / rel)
            except Exception as exc:  # noqa: BLE001 - only this model's file is lost; its results are stored
                (self.store.path / rel).unlink(missing_ok=True)
                notes.append(f"model not saved: {type(exc).__name__}: {exc}")
        with self._db:
            _insert(self._db, "folds", replace=True,
                    run_id=self.run_id, model=o.model, fold=o.fold, ok=int(o.ok), metrics=_dumps(o.metrics),
                    fit_time=None if o.fit_time != o.fit_time else o.fit_time, tune_time=o.tune_time,
                    best_params=_dumps(o.best_params), converged=None if o.converged is None else int(o.converged),
                    error=o.error, traceback=o.traceback, warnings=_dumps(notes),
                    test_rows=None if o.test_rows is None else _npy(o.test_rows),
                    y_pred=None if o.y_pred is None else _npy(o.y_pred), insight=_frame_json(o.insight),
                    history=_frame_json(o.history), model_file=model_file, finished=time.time(),
                    convergence=o.convergence, model_sha256=model_sha,
                    known_rows=None if o.known_rows is None else _npy(o.known_rows),
                    y_pred_known=None if o.y_pred_known is None else _npy(o.y_pred_known))


def _sha256(path: Path) -> str:
    import hashlib
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _insert(con: sqlite3.Connection, table: str, replace: bool = False, **row: Any) -> None:
    """Insert one row by column name (never by position: a column added later cannot
    shift the others)."""
    cols = ", ".join(row)
    marks = ", ".join(f":{c}" for c in row)
    verb = "INSERT OR REPLACE" if replace else "INSERT"
    con.execute(f"{verb} INTO {table} ({cols}) VALUES ({marks})", row)  # noqa: S608 - names are ours


def _safe(name: str) -> str:
    return "".join(ch if ch.isalnum() or ch in "-_" else "_" for ch in name)


def resolve_store(store: RunStore | str | Path | bool | None) -> RunStore | None:
    """``None``: the default store; ``False``: none; a path or a `RunStore`: that one."""
    if store is None or store is True:
        return default_store()
    if store is False:
        return None
    if isinstance(store, RunStore):
        return store
    if isinstance(store, (str, Path)):
        return RunStore(store)
    raise SpecError("store", f"expected a RunStore, a folder path, True/False or None, got {store!r}")
