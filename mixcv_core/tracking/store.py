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

from ..errors import SpecError, StoreWarning
from ..experiment.cell import spec_to_cell
from ..experiment.data import PreparedData, column_fingerprints
from ..experiment.spec import ExperimentSpec
from ..metrics import higher_is_better
from ..outcome import FoldOutcome
from ..results import Results
from ..results.methods import software_versions
from ..run.events import Event, FoldFailed, FoldFinished, RunFailed, RunFinished, RunStarted, TrialFinished
from ..run.tuning import quiet_optuna, study_direction
from ._labels import (
    LABELS_FORMAT,
    decode_classes,
    decode_group_frame,
    decode_index,
    decode_values,
    encode_classes,
    encode_group_frame,
    encode_index,
    encode_values,
)

__all__ = ["RunStore", "StoreObserver", "default_store", "resolve_store", "SCHEMA_VERSION"]

#: Version of the database layout below, kept in SQLite's ``PRAGMA user_version``. A
#: store written by a newer mixcv (a higher version) is refused on open rather than
#: misread; an older one is brought up to date by `_MIGRATIONS`. A store without a
#: version (mixcv 0.1) is version 1.
SCHEMA_VERSION = 5

_SCHEMA = """
CREATE TABLE IF NOT EXISTS runs (
    id TEXT PRIMARY KEY, created REAL, updated REAL, status TEXT, host TEXT, pid INTEGER,
    dataset TEXT, target TEXT, n_rows INTEGER, n_folds INTEGER, models TEXT, metrics TEXT,
    spec TEXT, cell TEXT, wall_time REAL, error TEXT);
CREATE TABLE IF NOT EXISTS run_data (
    run_id TEXT PRIMARY KEY, y BLOB, groups TEXT, row_index TEXT, meta TEXT, group_frame TEXT);
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
    4: ["ALTER TABLE run_data ADD COLUMN group_frame TEXT"],  # every grouping column (several factors)
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
        self.path = Path(path).expanduser()   # MIXCV_STORE=~/runs: the home folder, not a folder named '~'
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
            uri = self.db.resolve().as_uri()
            con = sqlite3.connect(f"{uri}?mode=ro", uri=True, timeout=60)
            try:
                con.execute("SELECT count(*) FROM sqlite_master").fetchone()
                return con
            except sqlite3.OperationalError:
                con.close()
            # A WAL store on a read-only file system: SQLite cannot create the -shm file its
            # readers share, and refuses to open. Nobody can write there either, so the file
            # is read as it stands (immutable: no locks, no shared memory).
            return sqlite3.connect(f"{uri}?mode=ro&immutable=1", uri=True, timeout=60)
        # WAL lets readers and one writer work at once; the timeout makes a second
        # writer wait its turn instead of failing with "database is locked".
        con = sqlite3.connect(self.db, timeout=60)
        con.execute("PRAGMA journal_mode=WAL")
        con.execute("PRAGMA busy_timeout=60000")
        # In WAL mode NORMAL syncs at checkpoints, not at every commit: a run commits each
        # trial and each fold, and an fsync apiece was most of the store's time. A commit still
        # survives the process dying (Ctrl-C, a crash, a killed kernel); only a power cut or an
        # OS crash can take the last few, and never leaves the database corrupt (SQLite's WAL
        # guarantee) — the stored run then reads as unfinished, as any run cut short does.
        con.execute("PRAGMA synchronous=NORMAL")
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

    def _columns(self, con: sqlite3.Connection, table: str, names: list[str]) -> str:
        """``names`` for a SELECT, with NULL for columns an older (read-only, unmigrated) layout lacks."""
        have = {r[1] for r in con.execute(f"PRAGMA table_info({table})")}
        return ", ".join(n if n in have else f"NULL AS {n}" for n in names)

    def __repr__(self) -> str:
        return f"RunStore({str(self.path)!r})"

    def run_dir(self, run_id: str) -> Path:
        """The folder of a run's files, refused unless it lies directly in ``runs/`` of this store.

        Run ids come from the database, which someone else may have written: an id such as
        ``../../victim``, or a ``runs/<id>`` that is a symlink out of the store, must not
        lead `delete` (or a write) to a folder elsewhere. Checked after resolving symlinks.
        """
        root = (self.path / "runs").resolve()
        folder = (root / str(run_id)).resolve()
        if folder.parent != root or not run_id or "/" in run_id or "\\" in run_id:
            raise SpecError("store", f"run id {run_id!r} in {str(self.db)!r} names a folder outside the store's "
                                     f"runs folder {str(root)!r}; the store was edited or damaged, nothing was touched")
        return folder

    # -- reading -----------------------------------------------------------------------
    def runs(self) -> pd.DataFrame:
        """One row per run, newest first: id, when, data, models, status, folds done, best."""
        with self._open() as con:
            rows = con.execute("SELECT id, created, status, host, pid, dataset, target, n_rows, n_folds, models, "
                               "metrics FROM runs ORDER BY created DESC").fetchall()
            done = dict(con.execute("SELECT run_id, COUNT(*) FROM folds WHERE ok = 1 GROUP BY run_id").fetchall())
            metric_rows = con.execute("SELECT run_id, model, metrics FROM folds WHERE ok = 1").fetchall()
        scores: dict[str, dict[str, list[float]]] = {}
        damaged: set[str] = set()
        for run_id, model, metrics in metric_rows:
            try:   # one run's damaged row must not hide every other run
                m = _mapping(metrics)
                key = "test_r2" if "test_r2" in m else next((k for k in m if k.startswith("test_")), None)
                if key is not None:
                    scores.setdefault(run_id, {}).setdefault(f"{model}|{key}", []).append(float(m[key]))
            except (ValueError, TypeError):
                damaged.add(run_id)
        out = []
        for rid, created, status, host, pid, dataset, target, n_rows, n_folds, models, _metrics in rows:
            try:
                out.append(self._listing(rid, created, status, host, pid, dataset, target, n_rows, n_folds, models,
                                         scores.get(rid), done.get(rid, 0), rid in damaged))
            except Exception:  # noqa: BLE001 - a damaged row is listed as such, never a traceback for all
                out.append({"id": str(rid), "created": pd.NaT, "data": "", "target": "", "models": "",
                            "status": "damaged", "fits": "", "best": ""})
        return pd.DataFrame(out, columns=["id", "created", "data", "target", "models", "status", "fits", "best"])

    def _listing(self, rid: str, created: float, status: str, host: str, pid: int, dataset: str, target: str,
                 n_rows: int, n_folds: int, models: str, scores: dict[str, list[float]] | None, done: int,
                 damaged: bool) -> dict[str, Any]:
        """One row of `runs`."""
        best = ""
        if scores:
            means = {k: float(np.mean(v)) for k, v in scores.items()}
            pick = max if higher_is_better(next(iter(means)).split("|")[1]) else min
            k = pick(means, key=lambda name: means[name])
            best = f"{k.split('|')[0]} ({k.split('|')[1].removeprefix('test_')} {means[k]:.3f})"
        models_list = json.loads(models)
        _require(isinstance(models_list, list), "models is not a list")
        return {"id": str(rid), "created": pd.Timestamp(float(created), unit="s").tz_localize("UTC").tz_convert(None)
                .floor("s"), "data": str(dataset or f"{n_rows} rows"), "target": str(target),
                "models": ", ".join(map(str, models_list)),
                "status": "damaged" if damaged else self._status(status, host, pid),
                "fits": f"{done}/{int(n_folds) * len(models_list)}", "best": best}

    @staticmethod
    def _status(status: str, host: str, pid: int) -> str:
        # A run whose process is gone without saying so was killed: its finished folds
        # are all there, the rest never will be.
        if status == "running" and host == socket.gethostname() and not _alive(pid):
            return "interrupted"
        return status

    def _resolve(self, con: sqlite3.Connection, run_id: str) -> str:
        # A prefix is compared as text, not with LIKE: '%' and '_' in what the user typed are
        # characters, never wildcards ('_' must not match, and so delete, some run).
        run_id = str(run_id)
        if not run_id:
            raise SpecError("run_id", f"no run id given; list the runs of {self} with store.runs() or %mixcv runs")
        exact = con.execute("SELECT id FROM runs WHERE id = ?", (run_id,)).fetchone()
        if exact is not None:
            return str(exact[0])
        ids = [r[0] for r in con.execute("SELECT id FROM runs WHERE substr(id, 1, ?) = ?",
                                         (len(run_id), run_id)).fetchall()]
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
            run = con.execute("SELECT status, host, pid, spec, wall_time, n_folds FROM runs WHERE id = ?",
                              (rid,)).fetchone()
            data_columns = self._columns(con, "run_data", ["y", "groups", "row_index", "meta", "group_frame"])
            data = con.execute(f"SELECT {data_columns} FROM run_data WHERE run_id = ?",  # noqa: S608
                               (rid,)).fetchone()
            splits = con.execute("SELECT fold, train, test FROM splits WHERE run_id = ? ORDER BY fold",
                                 (rid,)).fetchall()
            columns = self._columns(con, "folds", [
                "model", "fold", "ok", "metrics", "fit_time", "tune_time", "best_params", "converged", "error",
                "traceback", "warnings", "test_rows", "y_pred", "insight", "history", "model_file", "convergence",
                "model_sha256", "known_rows", "y_pred_known"])
            folds = con.execute(f"SELECT {columns} FROM folds WHERE run_id = ?", (rid,)).fetchall()  # noqa: S608
            trials = con.execute("SELECT model, fold, trial, value, params FROM trials WHERE run_id = ? "
                                 "ORDER BY model, fold, trial", (rid,)).fetchall()
        if run[3] is None:
            raise SpecError("run_id", f"run {rid} in {str(self.db)!r} used settings that cannot be written down "
                                      "(locally defined functions or splitter objects), or they were lost; its "
                                      f"folds are in store.folds({rid!r})")
        try:
            return self._rebuild(rid, run, data, splits, folds, trials, models)
        except SpecError as exc:
            if exc.field == "store":    # a model file refused: the message names it already
                raise
            raise self._damaged(rid, exc.message) from None
        except Exception as exc:  # noqa: BLE001 - any damage to the stored bytes becomes one clear refusal
            raise self._damaged(rid, f"{type(exc).__name__}: {str(exc)[:300]}") from None

    def fingerprints(self, run_id: str) -> dict[str, str] | None:
        """The column fingerprints a run was recorded with (`column_fingerprints`), or None
        for a run recorded before mixcv kept them."""
        with self._open() as con:
            rid = self._resolve(con, run_id)
            row = con.execute("SELECT meta FROM run_data WHERE run_id = ?", (rid,)).fetchone()
        try:
            columns = json.loads(row[0]).get("columns") if row is not None else None
        except (ValueError, TypeError, AttributeError):
            raise self._damaged(rid, "its data description is not JSON") from None
        return columns if isinstance(columns, dict) else None

    def _damaged(self, rid: str, what: str) -> SpecError:
        """The refusal of one run that cannot be rebuilt: names the run, the store and the way out."""
        return SpecError("store", f"run {rid} in the run store {str(self.db)!r} is damaged or was edited, so it "
                                  f"cannot be loaded ({what}). The other runs are untouched; this run's per-fold "
                                  f"rows may still be read with store.folds({rid!r}), and it can be removed with "
                                  f"store.delete({rid!r}) or %mixcv delete {rid}")

    def _rebuild(self, rid: str, run: tuple[Any, ...], data: tuple[Any, ...] | None, splits: list[tuple[Any, ...]],
                 folds: list[tuple[Any, ...]], trials: list[tuple[Any, ...]], models: bool) -> Results:
        """The `Results` of one run from its rows; raises on any row that is not as written."""
        status, host, pid, spec_json, wall_time, n_folds = run
        # Stored names stay names: nothing the store names is imported to read it.
        spec = ExperimentSpec.from_dict(json.loads(spec_json), keep_names=True)
        if models:   # restoring fitted models runs code: the names must be ones the user could have typed
            spec = spec.resolve_names()
        _require(data is not None, "its data row is missing")
        assert data is not None   # for the type checker: _require above
        y, groups, index, meta, frame_json = data
        meta = json.loads(meta)
        _require(isinstance(meta, dict), "its data description is not a JSON object")
        if meta.get("labels_format", 1) >= 2:
            row_index = decode_index(json.loads(index))
            group_labels = None if groups is None else decode_values(json.loads(groups))
        else:   # mixcv 0.1: plain JSON lists
            row_index = pd.Index(json.loads(index))
            group_labels = None if groups is None else np.asarray(
                json.loads(groups), dtype=object if meta.get("groups_object") else None)
        y_values = _from_npy(y)
        n = len(y_values)
        _require(y_values.ndim == 1 and len(row_index) == n and (group_labels is None or len(group_labels) == n),
                 "its target, row index and group labels differ in length")
        # Every grouping column of a run with several factors (the checks and the report read
        # them); None for one factor and for runs stored before schema 5, as they ran.
        group_frame = None if frame_json is None else decode_group_frame(json.loads(frame_json))
        _require(group_frame is None or len(group_frame) == n, "its grouping columns differ in length from its target")
        prepared = PreparedData(
            X=np.empty((n, 0)), y=y_values, groups=group_labels,
            feature_names=list(meta["feature_names"]), slope_names=list(meta["slope_names"]),
            index=row_index, target_name=meta["target_name"], groups_name=meta["groups_name"],
            group_frame=group_frame, random=spec.data.random_terms_text, split_by=spec.data.split_factors,
            # y holds the class codes of a classification (its spec's task), the labels in code order
            task=spec.task or "regression",
            classes=decode_classes(meta))
        _require([k for k, _, _ in splits] == list(range(len(splits))) and len(splits) == n_folds,
                 f"it has {len(splits)} stored splits for {n_folds} folds")
        outer = [(_rows(tr, n, "a split"), _rows(te, n, "a split")) for _, tr, te in splits]
        with quiet_optuna():   # no "A new study created" line per rebuilt study
            studies = self._studies(spec, trials)
        base_of = {name: m.name for m in spec.models for name in spec.task_names(m)}
        outcomes = []
        for (model, fold, ok, metrics, fit_time, tune_time, best_params, converged, error, tb, warns, test_rows,
             y_pred, insight, history, model_file, convergence, model_sha, known_rows, y_pred_known) in folds:
            _require(model in base_of and isinstance(fold, int) and 0 <= fold < len(outer),
                     f"a fit row names model {str(model)[:80]!r} fold {fold!r}, which the run does not have")
            estimator = None
            if model_file and models:
                estimator = self._load_model(model_file, model_sha)
            rows = None if test_rows is None else _rows(test_rows, n, "a fit's test rows")
            pred = None if y_pred is None else _from_npy(y_pred)
            _require((rows is None) == (pred is None) and (rows is None or pred is None or len(rows) == len(pred)),
                     f"{model} fold {fold} has {0 if pred is None else len(pred)} predictions for "
                     f"{0 if rows is None else len(rows)} rows")
            outcomes.append(FoldOutcome(
                model=model, fold=fold, ok=bool(ok), metrics=_mapping(metrics), fit_time=float("nan")
                if fit_time is None else float(fit_time), tune_time=float(tune_time or 0.0),
                best_params=_mapping(best_params), test_rows=rows, y_pred=pred, estimator=estimator,
                known_rows=None if known_rows is None else _rows(known_rows, n, "a fit's known-group rows"),
                y_pred_known=None if y_pred_known is None else _from_npy(y_pred_known),
                study=studies.get(base_of.get(model, model), {}).get(fold), insight=_frame_from(insight),
                history=_frame_from(history), converged=None if converged is None else bool(converged),
                convergence=str(convergence or ""),
                warnings=[str(w) for w in json.loads(warns or "[]")], error=str(error or ""), traceback=str(tb or "")))
        rank = spec.result_rank()
        outcomes.sort(key=lambda o: (o.fold, rank[o.model]))
        software = meta.get("software") or {}
        _require(isinstance(software, dict), "its recorded software versions are not a JSON object")
        res = Results(spec=spec, outcomes=outcomes, data=prepared, outer=outer, status=self._status(status, host, pid),
                      wall_time=float(wall_time) if wall_time is not None else float("nan"),
                      software={str(k): str(v) for k, v in software.items()})
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
                study = optuna.create_study(direction=study_direction(spec), study_name=f"{model} fold {fold}")
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
            folder = self.run_dir(rid)   # refused before anything is deleted if it lies outside the store
            con.execute("DELETE FROM runs WHERE id = ?", (rid,))
            for table in ("run_data", "splits", "folds", "trials"):
                con.execute(f"DELETE FROM {table} WHERE run_id = ?", (rid,))  # noqa: S608
        shutil.rmtree(folder, ignore_errors=True)

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
        # (data, its encoded labels): `encode_labels`'s last answer. An observer records one run,
        # and the engine never changes a run's validated data, so that object encodes the same.
        self._labels: tuple[PreparedData, tuple[str, str | None, str | None]] | None = None

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
            # No figure is drawn here: the EM histories are stored as data (with each fold), and
            # `store.load(run_id).plot_convergence()` draws them when someone looks — a PNG per
            # run cost a fifth of a small run's time (matplotlib's import and rendering).
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
        index_json, groups_json, frame_json = self.encode_labels(d)
        self._con = self.store._connect()
        meta = {"feature_names": d.feature_names, "slope_names": d.slope_names, "target_name": d.target_name,
                "groups_name": d.groups_name, "labels_format": LABELS_FORMAT,
                "columns": column_fingerprints(d),
                # The versions the run is made with, for its methods paragraph (`Results.methods`).
                "software": software_versions(spec)}
        if d.classes:
            # The class labels in code order (the figures, checks and predictions name them);
            # labels that are no number, text, bool or date are left out, and a loaded run shows codes.
            with contextlib.suppress(SpecError):
                meta.update(encode_classes(d.classes))
        now = time.time()
        with self._db:
            _insert(self._db, "runs", id=self.run_id, created=now, updated=now, status="running",
                    host=socket.gethostname(), pid=os.getpid(),
                    dataset=spec.data.dataset_name or spec.data.frame or "", target=d.target_name, n_rows=len(d.y),
                    n_folds=e.n_folds, models=_dumps(list(e.model_names)), metrics=_dumps(list(spec.metrics)),
                    spec=spec_json, cell=cell)
            _insert(self._db, "run_data", run_id=self.run_id, y=_npy(d.y), groups=groups_json,
                    row_index=index_json, meta=_dumps(meta), group_frame=frame_json)
            for k, (tr, te) in enumerate(e.outer):
                _insert(self._db, "splits", run_id=self.run_id, fold=k, train=_npy(tr), test=_npy(te))

    def encode_labels(self, data: PreparedData) -> tuple[str, str | None, str | None]:
        """The row index, the group labels and every grouping column as typed JSON; raises
        `SpecError` (before the run starts, when called by the engine) for labels the store
        cannot keep exactly.

        The encoding of the last data given is kept: the engine's check before the run and the
        run's record then encode it once (10,000 rows of two factors took 20 ms each time).
        """
        if self._labels is not None and self._labels[0] is data:
            return self._labels[1]
        groups = None if data.groups is None else _dumps(encode_values(data.groups, "group labels"))
        frame = None if data.group_frame is None else _dumps(encode_group_frame(data.group_frame))
        encoded = _dumps(encode_index(data.index)), groups, frame
        self._labels = (data, encoded)
        return encoded

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
                note = f"model not saved: {type(exc).__name__}: {str(exc)[:300]}"
                notes.append(note)
                # Said now, not only in the stored notes: save_models=True was asked for.
                import warnings
                warnings.warn(StoreWarning(f"{o.model} fold {o.fold}: {note}. Its results are stored; the fitted "
                                           "model cannot be restored with load(models=True)"), stacklevel=2)
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


def _require(condition: bool, what: str) -> None:
    if not condition:
        raise ValueError(what)


def _rows(blob: bytes, n: int, what: str) -> np.ndarray:
    """Stored row positions, checked to be whole numbers that index the run's ``n`` rows."""
    rows = _from_npy(blob)
    _require(rows.ndim == 1 and rows.dtype.kind in "iu" and (len(rows) == 0 or (rows.min() >= 0 and rows.max() < n)),
             f"{what} names rows the run does not have")
    return rows


def _mapping(text: str | None) -> dict[str, Any]:
    value = json.loads(text or "{}")
    _require(isinstance(value, dict), "a fit's metrics or parameters are not a JSON object")
    return value


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
    """A file name for a model name: readable, and unique per name (``m.1`` and ``m_1`` both
    read ``m_1``, so a short hash of the exact name tells their files apart)."""
    import hashlib
    readable = "".join(ch if ch.isalnum() or ch in "-_" else "_" for ch in name)[:60]
    return f"{readable}-{hashlib.sha256(name.encode()).hexdigest()[:10]}"


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
