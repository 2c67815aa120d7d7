"""`scrub` removes a secret in every form a client library or a user's model puts it in
(issue 22, item 4): quoted pairs, JSON, HTTP credentials, user-info with '/' in the password,
keys that contain a secret word; checked by example, end to end, and as a property."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn.base import BaseEstimator, RegressorMixin

from mixcv_core import CrossValidation, RunStore
from mixcv_core.secrets import scrub

#: Each form with ``{s}`` where the secret goes.
FORMS = [
    "password='{s}'", 'password="{s}"', "password={s}", "password: {s}", "PASSWORD = {s}",
    '{{"api_key": "{s}", "user": "ann"}}', "{{'password': '{s}'}}", "Authorization: Bearer {s}",
    "Authorization: Basic {s}", "postgresql://ann:{s}@db:5432/runs", "https://ann:{s}@host/x",
    "aws_secret_access_key={s}", "pwd={s}", "client_secret: {s}", "X-Api-Key: {s}", "db_password={s}&x=1",
    "token={s}", "connect(host='db', password='{s}', port=5432)",
]


@pytest.mark.parametrize("form", FORMS)
def test_a_secret_in_each_common_form_is_scrubbed(form):
    text = "could not connect: " + form.format(s="hunter2") + " (retrying)"
    out = scrub(text)
    assert "hunter2" not in out and "***" in out and out.endswith("(retrying)")


def test_a_slash_in_a_url_password_does_not_leak_its_tail():
    assert scrub("postgresql://ann:pa/ss@db/x") == "postgresql://***@db/x"


def test_words_that_only_look_like_secret_keys_are_kept():
    assert scrub("author: Jane, max_depth=3, n_estimators=100") == "author: Jane, max_depth=3, n_estimators=100"


# Secrets of the characters a password or token is made of. A bare (unquoted) value ends at
# white space or a separator, so the bare forms get secrets without those; quoted forms may
# hold spaces and anything but their own quote; a bearer token is RFC 6750's alphabet.
_BARE = st.text(st.sampled_from("abcXYZ0189-_.~+/!$%^*@:#?"), min_size=4, max_size=30)
_TOKEN = st.from_regex(r"[A-Za-z0-9._~+/-]{4,30}={0,2}", fullmatch=True)   # token68


def _quoted(quote):
    return st.text(st.characters(blacklist_characters=quote + "\\", blacklist_categories=("Cs",)),
                   min_size=4, max_size=30).filter(lambda s: s.strip())


@settings(max_examples=300, deadline=None)
@given(data=st.data())
def test_a_secret_embedded_in_any_form_never_survives(data):
    form, secret = data.draw(st.one_of(
        st.tuples(st.sampled_from(["password={s}", "aws_secret_access_key={s}", "pwd={s}", "api_key: {s}",
                                   "token = {s}"]), _BARE.filter(lambda s: not s.startswith("***"))),
        st.tuples(st.sampled_from(["password='{s}'", "{{'password': '{s}'}}"]), _quoted("'")),
        st.tuples(st.sampled_from(['password="{s}"', '{{"api_key": "{s}"}}']), _quoted('"')),
        st.tuples(st.sampled_from(["Authorization: Bearer {s}", "Authorization: Basic {s}"]), _TOKEN),
        st.tuples(st.sampled_from(["postgresql://ann:{s}@db/x", "http://{s}@host:5000/"]),
                  _BARE.filter(lambda s: "@" not in s[-1:])),
    ))
    before = data.draw(st.sampled_from(["", "error: ", "ConnectionError(\"", "x " * 3]))
    after = data.draw(st.sampled_from(["", " failed", "\")", ", retrying\n"]))
    out = scrub(before + form.format(s=secret) + after)
    assert secret not in out, (form, secret, out)


class _Refused(RegressorMixin, BaseEstimator):
    def fit(self, X, y):
        raise ConnectionError("could not reach db: connect(host='db', password='hunter2', "
                              "dsn='postgresql://ann:pa/ss@db') Authorization: Bearer tok3n.xyz")

    def predict(self, X):
        return np.zeros(len(X))


def test_a_quoted_password_in_a_fit_error_reaches_no_warning_store_or_report(grouped, tmp_path):
    X, y, g, _ = grouped
    store = RunStore(tmp_path / "store")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        res = (CrossValidation().set_data(X, y, g).set_splits(n_splits_out=2).add_model(_Refused)
               .set_run(store=store).perform().get_results())
    texts = [str(w.message) for w in caught] + [*res.failures["error"], *res.failures["traceback"],
                                                  res._repr_html_(), *store.folds(res.run_id)["error"].dropna()]
    assert len(texts) > 3
    for secret in ("hunter2", "pa/ss", "tok3n.xyz"):
        assert all(secret not in t for t in texts), secret


class _Tracker:
    """A tracker whose client fails with the connection string in its message."""

    def on_event(self, event):
        raise ConnectionError("could not log: connect(host='db', password='hunter2') Authorization: Bearer tok3n")


def test_a_quoted_password_in_a_tracker_failure_reaches_no_warning(grouped):
    from mixcv_core import ObserverWarning
    X, y, g, _ = grouped
    with pytest.warns(ObserverWarning) as caught:
        CrossValidation().set_data(X, y, g).set_splits(n_splits_out=2).add_model("LinearModel") \
            .set_run(store=False, observers=[_Tracker()]).perform()
    texts = [str(w.message) for w in caught]
    assert texts and all("hunter2" not in t and "tok3n" not in t for t in texts)
