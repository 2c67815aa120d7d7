"""A point the sampler proposes again in one study is not refitted (issue 29, item 2).

TPE proposes points it has tried before on small integer and categorical spaces (2 of the 100
trials of bench_vs_flexcv's 100 x 100 experiment). Such a trial takes the value the point already
had: the same fits on the same inner folds with the same seeds would give it again. The reference
is the loop that evaluates every trial (the cache defeated by a key that never repeats): the same
trials, values and results, with fewer fits. Data: lme4's sleepstudy (tests/data/sleepstudy.csv).
"""

from __future__ import annotations

import itertools
from pathlib import Path

import pandas as pd
import pytest
from optuna.distributions import CategoricalDistribution
from sklearn.linear_model import Ridge

from mixcv_core import CrossValidation
from mixcv_core.run import tuning

SLEEP = pd.read_csv(Path(__file__).parents[1] / "data" / "sleepstudy.csv")
FITS: list[float] = []
N_TRIALS, N_OUTER, N_INNER = 8, 3, 2


class CountedRidge(Ridge):
    """Ridge that records the alpha of every fit."""

    def fit(self, X, y, sample_weight=None):
        FITS.append(self.alpha)
        return super().fit(X, y, sample_weight=sample_weight)


def _run(batch: int):
    FITS.clear()
    cv = (CrossValidation().set_data(SLEEP[["Days"]], SLEEP["Reaction"], SLEEP["Subject"], "Days")
          .set_splits("GroupKFold", "GroupKFold", n_splits_out=N_OUTER, n_splits_in=N_INNER)
          .add_model(CountedRidge, requires_inner_cv=True,
                     params={"alpha": CategoricalDistribution([0.1, 10.0, 1000.0])})
          .set_inner_cv(n_trials=N_TRIALS, trial_batch=batch).set_run(store=False))
    res = cv.perform().get_results()
    return res, list(FITS)


def _trials(res) -> dict:
    return {key: [(t.number, t.state, t.params, t.value) for t in s.trials] for key, s in sorted(res.studies.items())}


@pytest.mark.parametrize("batch", [1, 3])
def test_a_point_proposed_again_takes_its_value_without_a_fit_and_changes_nothing(batch, monkeypatch):
    cached, cached_fits = _run(batch)
    counter = itertools.count()
    monkeypatch.setattr(tuning, "_point", lambda params: next(counter))   # every trial a new point: all fitted
    every, every_fits = _run(batch)
    assert _trials(cached) == _trials(every)
    pd.testing.assert_frame_equal(cached.to_frame().drop(columns=["fit_time", "tune_time"]),
                                  every.to_frame().drop(columns=["fit_time", "tune_time"]))
    pd.testing.assert_frame_equal(cached.predictions, every.predictions)
    # Inner fits: each distinct point once per inner fold; the loop without the cache fits every trial.
    distinct = sum(len({t.params["alpha"] for t in s.trials}) for s in cached.studies.values())
    assert len(cached_fits) == distinct * N_INNER + N_OUTER          # + the outer fits
    assert len(every_fits) == N_OUTER * N_TRIALS * N_INNER + N_OUTER
    assert distinct < N_OUTER * N_TRIALS                              # three choices, eight trials: repeats
