"""A form that builds an experiment from a DataFrame: `Configurator(df)` or ``%mixcv ui df``.

The form is a view of an `ExperimentSpec`: `Configurator.to_spec` reads the controls
into a spec, `Configurator.from_spec` fills them from one, and everything is checked
as the user edits, with each message next to its control and **Run** disabled until
the form is valid. **Show cell** shows the ``%%mixcv`` text that reproduces the form,
so the form teaches the cell syntax; parameter values are written in that syntax too
(``int(2, 20)``, ``float(1e-4, 1, log)``, ``choice(a, b)`` or a fixed value).

Several grouping factors (subjects x items, classes in schools) are ``groups`` plus more
factors as tags; a second factor writes lme4's random part it implies into its field for the
user to edit, and the split's factors say which of them the test folds hold new levels of.

One module per panel, lowest first: ``_controls`` and ``_labels`` (shared pieces), then
``_data``, ``_splits``, ``_models``, ``_tuning``, ``_run`` and ``_tracking`` (each panel's
controls, knowing nothing of the others) and ``_settings`` (the magic's settings the form opens
with), ``_spec`` (controls <-> `ExperimentSpec`), and ``_form`` (the `Configurator` that composes
the panels, keeps them consistent and runs).
"""

from __future__ import annotations

from ._form import Configurator
from ._models import CLASSIFIER_MODELS, COMMON_MODELS

__all__ = ["Configurator", "COMMON_MODELS", "CLASSIFIER_MODELS"]
