"""A small crossed design for the several-factor tests: subjects x items."""

from __future__ import annotations

import numpy as np
import pandas as pd


def crossed(n_subjects: int = 12, n_items: int = 10, keep: float = 1.0, seed: int = 0) -> pd.DataFrame:
    """Every subject answers every item (``keep`` < 1 drops cells at random: partially crossed).

    ``rt`` has a fixed slope on ``days`` varying by subject, and a random intercept per
    subject and per item.
    """
    rng = np.random.default_rng(seed)
    s, i = np.meshgrid(np.arange(n_subjects), np.arange(n_items), indexing="ij")
    s, i = s.ravel(), i.ravel()
    mask = rng.random(s.size) < keep
    s, i = s[mask], i[mask]
    days = rng.normal(size=s.size)
    rt = (1 + (0.5 + 0.3 * rng.normal(size=n_subjects)[s]) * days + rng.normal(size=n_subjects)[s]
          + rng.normal(size=n_items)[i] + 0.5 * rng.normal(size=s.size))
    return pd.DataFrame({"rt": rt, "days": days, "subject": [f"s{k}" for k in s], "item": [f"i{k}" for k in i]})
