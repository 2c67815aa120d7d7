"""The Models panel: a card per model (enabled, estimator, MERF, insight, fit arguments and
hyperparameters), the ready-made cards of each task, and any other registered model by name.

A card is controls only; `mixcv_jupyter.form._spec` reads it into a `ModelSpec` and fills it
from one.
"""

from __future__ import annotations

from collections.abc import Callable

import ipywidgets as w

from mixcv_core import MixcvError
from mixcv_core.experiment.registry import available_models, param_names, resolve_estimator

from ._controls import css_name, message_slot

__all__ = ["CLASSIFIER_MODELS", "COMMON_MODELS", "POST", "ModelCard", "ModelsPanel", "ParamRow"]

# Shown as ready-made cards; any other registered model can be added by name.
# Regression's cards; a classification shows CLASSIFIER_MODELS instead.
COMMON_MODELS: dict[str, dict[str, str]] = {
    "LinearModel": {},
    "LinearMixedEffectsModel": {},
    "RandomForestRegressor": {"n_estimators": "100", "max_depth": "int(2, 20)", "min_samples_leaf": "int(1, 20)"},
    "HistGradientBoostingRegressor": {"learning_rate": "float(0.01, 0.3, log)", "max_depth": "int(2, 10)"},
    "GPBoostRegressor": {"learning_rate": "float(0.01, 0.3, log)", "num_boost_round": "int(20, 300)"},
    "Ridge": {"alpha": "float(0.001, 100.0, log)"},
    "Lasso": {"alpha": "float(0.0001, 10.0, log)"},
}
#: The cards a classification shows (a binary target, or task: classification): each predicts
#: class probabilities, which every classification metric reads.
CLASSIFIER_MODELS: dict[str, dict[str, str]] = {
    "LogisticRegression": {"C": "float(0.001, 100.0, log)"},
    "GeneralizedLinearMixedModel": {},
    "RandomForestClassifier": {"n_estimators": "100", "max_depth": "int(2, 20)", "min_samples_leaf": "int(1, 20)"},
    "HistGradientBoostingClassifier": {"learning_rate": "float(0.01, 0.3, log)", "max_depth": "int(2, 10)"},
    "GPBoostClassifier": {"learning_rate": "float(0.01, 0.3, log)", "num_boost_round": "int(20, 300)"},
}
#: The post-processors a card offers by name ("" for none).
POST = ["", "LinearModelPostProcessor", "LMERModelPostProcessor", "RandomForestModelPostProcessor"]


class ParamRow:
    """One hyperparameter: its name and its value in cell syntax (a range is tuned)."""

    def __init__(self, names: list[str], name: str = "", value: str = "",
                 on_change: Callable[[], object] | None = None,
                 on_remove: Callable[[ParamRow], None] | None = None) -> None:
        self.name = w.Combobox(value=name, options=names, placeholder="parameter", ensure_option=False,
                               layout=w.Layout(width="180px"))
        self.value = w.Text(value=value, placeholder="100, int(2, 20), float(1e-3, 1, log), choice(a, b)",
                            layout=w.Layout(width="300px"))
        self.remove = w.Button(icon="times", tooltip="remove this parameter", layout=w.Layout(width="32px"))
        self.message = message_slot()
        self.box = w.HBox([self.name, self.value, self.remove, self.message])
        for c in (self.name, self.value):
            c.observe(lambda _: on_change(), "value")  # type: ignore[misc]
        self.remove.on_click(lambda _: on_remove(self))  # type: ignore[misc]


class ModelCard:
    """A model: enabled, its estimator, MERF, post-processor, tuning and parameters.

    ``on_change`` is called after any edit (the form checks itself again)."""

    def __init__(self, name: str, estimator: str, params: dict[str, str], on_change: Callable[[], object],
                 enabled: bool = False, task: str | None = None) -> None:
        self._on_change = on_change
        # The task whose ready-made card this is (None: a model the user added, shown for any).
        self.task = task
        self.enabled = w.Checkbox(value=enabled, description=name, indent=False,
                                  layout=w.Layout(width="280px"))
        self.enabled.add_class("mixcv-model-enable")
        self.enabled.add_class(f"mixcv-model-{css_name(name)}")
        self.label = name
        self.estimator = w.Text(value=estimator, description="estimator", layout=w.Layout(width="360px"))
        self.merf = w.Checkbox(value=False, description="MERF", indent=False, layout=w.Layout(width="80px"))
        self.tune = w.Checkbox(value=True, description="tune ranges", indent=False, layout=w.Layout(width="120px"),
                               tooltip="tune the parameters given as ranges in the inner loop")
        self.post = w.Dropdown(options=POST, value="", description="insight", layout=w.Layout(width="330px"))
        self.fit = w.Text(value="", description="fit args", placeholder="{sample_weight_col: w}",
                          layout=w.Layout(width="360px"))
        self.add = w.Button(description="parameter", icon="plus", layout=w.Layout(width="120px"))
        self.rows: list[ParamRow] = []
        # requires_inner_cv for a model without ranges means nothing; kept only so a spec
        # that says so survives spec -> form -> spec.
        self.tune_without_ranges = False
        self.rows_box = w.VBox([])
        self.message = message_slot()
        self.details = w.VBox([w.HBox([self.estimator, self.merf, self.tune]), w.HBox([self.post, self.fit]),
                               self.rows_box, self.add], layout=w.Layout(margin="0 0 0 24px"))
        self.box = w.VBox([w.HBox([self.enabled, self.message]), self.details],
                          layout=w.Layout(border="1px solid #ddd", padding="4px", margin="2px 0"))
        self.add.on_click(lambda _: self.add_param())
        for c in (self.enabled, self.estimator, self.merf, self.tune, self.post, self.fit):
            c.observe(lambda _: self.changed(), "value")
        for k, v in params.items():
            self.add_param(k, v, notify=False)
        self.show_details()

    def _names(self) -> list[str]:
        try:
            return sorted(param_names(resolve_estimator(self.estimator.value)) or [])
        except MixcvError:
            return []

    def add_param(self, name: str = "", value: str = "", notify: bool = True) -> ParamRow:
        row = ParamRow(self._names(), name, value, on_change=self.changed, on_remove=self.remove_param)
        self.rows.append(row)
        self.rows_box.children = [r.box for r in self.rows]
        if notify:
            self.changed()
        return row

    def remove_param(self, row: ParamRow) -> None:
        self.rows.remove(row)
        self.rows_box.children = [r.box for r in self.rows]
        self.changed()

    def show_details(self) -> None:
        """The card's settings are shown while it is enabled."""
        self.details.layout.display = None if self.enabled.value else "none"

    def changed(self) -> None:
        self.show_details()
        self._on_change()


class ModelsPanel:
    """The model cards: the ready-made ones of both tasks, then those added by name."""

    def __init__(self, on_change: Callable[[], object]) -> None:
        self._on_change = on_change
        self.cards: list[ModelCard] = [ModelCard(n, n, dict(p), on_change, task=task)
                                       for task, models in (("regression", COMMON_MODELS),
                                                            ("classification", CLASSIFIER_MODELS))
                                       for n, p in models.items()]
        self.cards_box = w.VBox([c.box for c in self.cards])
        self.add_model_name = w.Combobox(options=available_models(), placeholder="any model: name or dotted path",
                                         ensure_option=False, layout=w.Layout(width="330px"))
        self.add_model_button = w.Button(description="add model", icon="plus")

    def rows(self) -> list[w.Widget]:
        """The panel's rows in the form."""
        return [self.cards_box, w.HBox([self.add_model_name, self.add_model_button])]

    def card(self, name: str) -> ModelCard | None:
        """The card named ``name``, if there is one."""
        return next((c for c in self.cards if c.label == name), None)

    def add(self, name: str, estimator: str, enabled: bool = False) -> ModelCard:
        """A new card for ``estimator``, shown last."""
        card = ModelCard(name, estimator, {}, self._on_change, enabled=enabled)
        self.cards.append(card)
        self.cards_box.children = [c.box for c in self.cards]
        return card

    def put_first(self, cards: list[ModelCard]) -> None:
        """Show ``cards`` first, in their order (the order of result rows), then the others."""
        self.cards = cards + [c for c in self.cards if c not in cards]
        self.cards_box.children = [c.box for c in self.cards]

    def show_task(self, task: str) -> None:
        """Show the ready-made cards of ``task``; those of the other task are hidden unless ticked
        (a ticked one says on its card why it cannot run)."""
        for card in self.cards:
            other = card.task is not None and card.task != task and not card.enabled.value
            card.box.layout.display = "none" if other else None
