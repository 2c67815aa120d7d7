"""No secret is ever shown: URL user-info, tokens from the environment and password pairs are
scrubbed from every message, warning, stored error and report; trackers fail fast."""

from __future__ import annotations

import socket
import time

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


def test_an_mlflow_password_in_the_uri_is_not_printed_and_an_unreachable_server_fails_fast():
    pytest.importorskip("mlflow")
    from mixcv_core.tracking.mirrors import MlflowMirror
    t0 = time.perf_counter()
    with pytest.raises(MixcvError) as info:
        MlflowMirror(tracking_uri=f"http://ann:{SECRET}@127.0.0.1:{_closed_port()}/")
    assert time.perf_counter() - t0 < 30          # was 248 s of retries
    assert SECRET not in str(info.value)


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
