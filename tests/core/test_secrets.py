"""No secret is ever shown: URL user-info, tokens from the environment and password pairs are
scrubbed from every message, warning, stored error and report; trackers fail fast."""

from __future__ import annotations

import socket

import numpy as np
import pytest
from sklearn.base import BaseEstimator, RegressorMixin

from mixcv_core import CrossValidation, MixcvError, ObserverWarning
from mixcv_core.secrets import scrub

SECRET = "hunter2-s3cret"


@pytest.mark.parametrize("text", [
    f"http://ann:{SECRET}@tracking.example:5000/api/2.0",
    f"https://ann:{SECRET}@host/x", f"postgresql://u:{SECRET}@db/mlflow",
    f"failed: token={SECRET}", f"password: {SECRET}", f"api_key={SECRET}&x=1",
])
def test_credentials_are_scrubbed_from_text(text):
    out = scrub(text)
    assert SECRET not in out and "***" in out


def test_secrets_from_the_environment_are_scrubbed_anywhere(monkeypatch):
    monkeypatch.setenv("NEPTUNE_API_TOKEN", SECRET)
    assert SECRET not in scrub(f"the server said {SECRET!r} is not valid")


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_an_mlflow_password_in_the_uri_is_not_printed_when_the_server_is_unreachable():
    pytest.importorskip("mlflow")
    from mixcv_core.tracking.mirrors import MlflowMirror
    with pytest.raises(MixcvError) as info:
        MlflowMirror(tracking_uri=f"http://ann:{SECRET}@127.0.0.1:{_closed_port()}/")
    assert info.value.field == "mlflow" and SECRET not in str(info.value)


# How fast a tracker gives up is measured, not asserted (an unreachable server: MLflow 248 s
# -> 1 s, Neptune 62 s -> 9 s); the tests check the client's patience is lowered while the
# run is created, and given back once it is.

def test_mlflow_connects_without_retries_and_restores_its_defaults(monkeypatch):
    pytest.importorskip("mlflow")
    import os

    from mlflow import MlflowClient

    from mixcv_core.tracking.mirrors import MlflowMirror
    seen = {}

    def unreachable(self, name):
        seen.update({k: os.environ.get(k) for k in ("MLFLOW_HTTP_REQUEST_MAX_RETRIES",
                                                    "MLFLOW_HTTP_REQUEST_TIMEOUT")})
        raise ConnectionError("refused")

    monkeypatch.delenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", raising=False)
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_TIMEOUT", "42")       # the user's own setting wins
    monkeypatch.setattr(MlflowClient, "get_experiment_by_name", unreachable)
    with pytest.raises(MixcvError, match="could not start an MLflow run"):
        MlflowMirror(tracking_uri="http://127.0.0.1:1/")
    assert seen == {"MLFLOW_HTTP_REQUEST_MAX_RETRIES": "0", "MLFLOW_HTTP_REQUEST_TIMEOUT": "42"}
    assert "MLFLOW_HTTP_REQUEST_MAX_RETRIES" not in os.environ and os.environ["MLFLOW_HTTP_REQUEST_TIMEOUT"] == "42"


def test_neptune_connects_with_short_retries_and_restores_its_defaults(monkeypatch):
    neptune = pytest.importorskip("neptune")
    from neptune.common.backends import utils as retry_utils
    from neptune.internal.backends import hosted_client

    from mixcv_core.tracking.mirrors import NeptuneMirror
    from mixcv_core.tracking.mirrors.neptune import CONNECT_RETRIES_S, CONNECT_TIMEOUT_S
    options = hosted_client.DEFAULT_REQUEST_KWARGS["_request_options"]
    before = (retry_utils.retries_timeout, options["connect_timeout"])
    seen = []

    def unreachable(**kwargs):
        seen.append((retry_utils.retries_timeout, options["connect_timeout"]))
        raise ConnectionError("refused")

    monkeypatch.delenv("NEPTUNE_RETRIES_TIMEOUT", raising=False)
    monkeypatch.setattr(neptune, "init_run", unreachable)
    with pytest.raises(MixcvError, match="could not start a Neptune run"):
        NeptuneMirror(project="ws/proj", mode="async")
    assert seen == [(CONNECT_RETRIES_S, CONNECT_TIMEOUT_S)] and before[0] > CONNECT_RETRIES_S
    assert (retry_utils.retries_timeout, options["connect_timeout"]) == before


class _Observer:
    def on_event(self, event):
        raise ConnectionError(f"POST http://ann:{SECRET}@tracker/api failed")


def test_observer_warnings_are_scrubbed(grouped):
    X, y, g, _ = grouped
    with pytest.warns(ObserverWarning) as caught:
        CrossValidation().set_data(X, y, g).set_splits(n_splits_out=2).add_model("LinearModel") \
            .set_run(store=False, observers=[_Observer()]).perform()
    assert caught and all(SECRET not in str(w.message) for w in caught)


class _Leaks(RegressorMixin, BaseEstimator):
    def fit(self, X, y):
        raise RuntimeError(f"could not fetch weights from https://ann:{SECRET}@models.example/w")

    def predict(self, X):
        return np.zeros(len(X))


def test_stored_errors_and_the_report_carry_no_secret(grouped, tmp_path):
    from mixcv_core import RunStore
    X, y, g, _ = grouped
    store = RunStore(tmp_path / "store")
    with pytest.warns(UserWarning):
        res = (CrossValidation().set_data(X, y, g).set_splits(n_splits_out=2).add_model(_Leaks)
               .set_run(store=store).perform().get_results())
    texts = [*res.failures["error"], *res.failures["traceback"], res._repr_html_(),
             *store.folds(res.run_id)["error"].dropna()]
    assert texts and all(SECRET not in t for t in texts)
    assert any("https://***@models.example" in t for t in texts)
