"""Figures follow JupyterLab's theme: the theme read from JupyterLab's settings, and figures
drawn for a dark page carry light text on a transparent background."""

from __future__ import annotations

import base64
import io
import re
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from matplotlib.colors import to_rgba
from matplotlib.image import imread

from mixcv_core import CrossValidation
from mixcv_core.results.plots import plot_theme
from mixcv_jupyter.explorer import Explorer
from mixcv_jupyter.theme import jupyter_theme

SLEEP = pd.read_csv(Path(__file__).parents[1] / "data" / "sleepstudy.csv")   # lme4's sleepstudy


def _luminance(colour) -> float:
    r, g, b, _ = to_rgba(colour)
    return 0.2126 * r + 0.7152 * g + 0.0722 * b


@pytest.fixture(scope="module")
def res():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return (CrossValidation().set_data(SLEEP[["Days"]], SLEEP["Reaction"], SLEEP["Subject"], "Days")
                .set_splits("GroupKFold", "GroupKFold", n_splits_out=3, n_splits_in=2)
                .add_model("LinearModel").add_model("LinearMixedEffectsModel")
                .set_run(store=False).perform().get_results())


def _write_settings(tmp_path: Path, text: str) -> None:
    where = tmp_path / "@jupyterlab" / "apputils-extension"
    where.mkdir(parents=True)
    (where / "themes.jupyterlab-settings").write_text(text)


@pytest.mark.parametrize("settings,theme", [
    ('{\n  // "theme": "JupyterLab Light",\n  "theme": "JupyterLab Dark"\n}', "dark"),
    ('{\n    // the user chose no theme\n    "theme-scrollbars": true\n}', "light"),
    ('{"theme": "JupyterLab Light"}', "light"),
    ('{"theme": "Darcula Dark Mode"}', "dark"),
])
def test_the_theme_is_read_from_jupyterlabs_settings(tmp_path, monkeypatch, settings, theme):
    monkeypatch.delenv("MIXCV_THEME", raising=False)
    monkeypatch.setenv("JUPYTERLAB_SETTINGS_DIR", str(tmp_path))
    assert jupyter_theme() is None            # no settings file: not known
    _write_settings(tmp_path, settings)
    assert jupyter_theme() == theme
    monkeypatch.setenv("MIXCV_THEME", "light" if theme == "dark" else "dark")   # said outright: wins
    assert jupyter_theme() != theme


def test_a_figure_drawn_for_a_dark_theme_has_light_text_and_no_background(res):
    light = res.plot_folds()
    with plot_theme("dark"):
        dark = res.plot_folds()
    for fig, bright in ((light, False), (dark, True)):
        ax = fig.axes[0]
        texts = [ax.title.get_color(), ax.xaxis.label.get_color(), ax.get_yticklabels()[0].get_color(),
                 fig.legends[0].get_texts()[0].get_color()]
        assert all((_luminance(c) > 0.6) == bright for c in texts), texts
    assert to_rgba(dark.get_facecolor())[3] == 0 and to_rgba(light.get_facecolor())[3] == 1


def _pngs(page: str) -> list[np.ndarray]:
    return [imread(io.BytesIO(base64.b64decode(b64)), format="png")
            for b64 in re.findall(r'src="data:image/png;base64,([^"]+)"', page)]


def test_the_explorer_draws_its_figures_for_the_notebooks_theme(res, tmp_path, monkeypatch):
    monkeypatch.delenv("MIXCV_THEME", raising=False)
    monkeypatch.setenv("JUPYTERLAB_SETTINGS_DIR", str(tmp_path))
    _write_settings(tmp_path, '{"theme": "JupyterLab Dark"}')
    dark = _pngs(Explorer(res).tab_html("Plots"))
    light = _pngs(Explorer(res, theme=None).tab_html("Plots"))
    assert len(dark) == len(light) >= 3
    for image in dark:
        assert image[0, 0, 3] == 0                              # the page shows through
        ink = image[image[..., 3] > 0.9][:, :3]
        grey = ink[(np.ptp(ink, axis=1) < 0.02)]                # text and axes: grey pixels
        assert (grey.mean(axis=1) > 0.7).mean() > 0.5           # ...mostly light on a dark page
    for image in light:
        assert image[0, 0, 3] == 1 and image[0, 0, :3].min() == 1   # a white figure
