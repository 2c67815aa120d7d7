"""A fitted linear mixed model summarised the way a researcher reports it, as lme4 prints it.

`LMMSummary` holds the tables — fixed effects with standard errors, t values and Wald
confidence intervals; random-effect standard deviations and correlations; the residual;
the variance decomposition — and renders them as text (``str``, like lme4's ``summary``)
and as HTML (``_repr_html_``, for notebooks). It is built by
`LinearMixedEffectsModel.summary` and knows nothing of how the model was fitted.

The variance decomposition follows Nakagawa & Schielzeth (2013) and Nakagawa, Johnson &
Schielzeth (2017, J. R. Soc. Interface 14: 20170213): over the rows the model was
fitted on, the fixed effects explain ``var(X beta)``, the random effects on average
``mean_i(z_i' D z_i)`` and the residual ``sigma^2``; the intraclass correlation (ICC) is
the random effects' share of the variance the fixed effects leave, and the marginal and
conditional R² are the shares of the total explained by the fixed part and by both parts.
"""

from __future__ import annotations

import html
from dataclasses import dataclass

import numpy as np
import pandas as pd

__all__ = ["LMMSummary", "decomposition_table", "fmt_column", "variance_decomposition", "variance_parts"]


def variance_parts(fixed_part: np.ndarray, random: dict[str, tuple[np.ndarray, np.ndarray]]) -> tuple[
        float, dict[str, float]]:
    """The variances `variance_decomposition` tabulates: ``var(X beta)`` and, per factor, ``mean_i(z_i' D z_i)``.

    Numbers only, so a fit can keep them and build the table when it is first asked for.
    """
    v_fixed = float(np.var(fixed_part))
    # mean_i z_i'D z_i = tr(D Z'Z) / n: one small product instead of a pass over the rows per entry of D.
    parts = {f: float(np.sum(D * (Z.T @ Z)) / len(Z)) for f, (Z, D) in random.items()}
    return v_fixed, parts


def decomposition_table(v_fixed: float, parts: dict[str, float], sigma2: float) -> pd.DataFrame:
    """The table of `variance_decomposition` from its numbers (`variance_parts`) and the residual variance."""
    v_random = sum(parts.values())
    total = v_fixed + v_random + sigma2
    names = ["fixed effects", "random effects", "residual", "total"]
    values = [v_fixed, v_random, sigma2, total]
    if len(parts) > 1:
        names += [f"random effects: {f}" for f in parts]
        values += list(parts.values())
    variance = np.asarray(values, dtype=float)
    # Built in one go (adding a column afterwards cost as much as the whole decomposition).
    return pd.DataFrame({"variance": variance, "share": variance / total}, index=pd.Index(names, name="component"))


def variance_decomposition(fixed_part: np.ndarray, random: dict[str, tuple[np.ndarray, np.ndarray]],
                           sigma2: float) -> pd.DataFrame:
    """Variance explained by the fixed effects, the random effects (per factor) and the residual.

    Parameters
    ----------
    fixed_part : (n,) ``X beta`` on the fitting rows (intercept included; its variance is used).
    random : per grouping factor, ``(Z, D)``: its random-effects design on those rows ``(n, q)``
        and the covariance of its random effects ``(q, q)``. Factors are independent, so their
        variances add up.
    sigma2 : residual variance.

    Returns
    -------
    DataFrame
        Rows ``fixed effects``, ``random effects``, ``residual``, ``total`` and, with several
        factors, ``random effects: <factor>`` for each (they split ``random effects``);
        columns ``variance`` and ``share`` (of the total).
    """
    return decomposition_table(*variance_parts(fixed_part, random), sigma2)


def fmt_column(values: object, digits: int = 4) -> list[str]:
    """A column of numbers with one number of decimals, as R's ``format`` prints a column.

    Enough decimals for the smallest value to show ``digits`` significant digits, but at
    most three more than the largest needs (a near-zero value would otherwise pad every
    other with zeros); very large or very small columns in scientific notation. A column
    whose numbers have different decimals ("8.116" above "1.1") reads as if they had
    different precision.

    Examples
    --------
    >>> fmt_column([149.697, 4.13433, 0.316103])
    ['149.6970', '4.1343', '0.3161']
    >>> fmt_column([65.86, 1.1, float("nan")])
    ['65.860', '1.100', '–']
    """
    arr = np.asarray(values, dtype=float).ravel()
    mags = np.abs(arr[np.isfinite(arr) & (arr != 0)])
    if mags.size == 0:
        return ["–" if not np.isfinite(v) else "0" for v in arr]
    big, small = float(mags.max()), float(mags.min())
    if big >= 1e6 or big < 1e-4:
        return [f"{v:.{digits - 1}e}" if np.isfinite(v) else "–" for v in arr]
    need_big = max(digits - 1 - int(np.floor(np.log10(big))), 0)
    decimals = min(max(digits - 1 - int(np.floor(np.log10(small))), 0), need_big + 3)
    return [f"{v:.{decimals}f}" if np.isfinite(v) else "–" for v in arr]


def _formatted(frame: pd.DataFrame, digits: int = 4) -> pd.DataFrame:
    """Every numeric column of ``frame`` as text, each with its own common number of decimals
    (correlations with two, as lme4 prints them)."""
    out = frame.astype(object)
    for col in frame.columns:
        if pd.api.types.is_numeric_dtype(frame[col]):
            values = frame[col].to_numpy(dtype=float)
            out[col] = ([f"{v:.2f}" if np.isfinite(v) else "" for v in values] if str(col).startswith("corr_")
                        else fmt_column(values, digits))
    return out


def _html_table(frame: pd.DataFrame) -> str:
    # Names come from the user's columns: escaped in the index and header, not only the cells.
    styler = (frame.style.format(escape="html").format_index(escape="html", axis=0)
              .format_index(escape="html", axis=1))
    # A wide table (many random effects, their correlations) scrolls inside the output area.
    return f"<div class='mixcv-scroll'>{styler.to_html()}</div>"


@dataclass
class LMMSummary:
    """The citable summary of one fitted `LinearMixedEffectsModel` (see the module docstring)."""

    title: str                    # "Linear mixed model fit by REML"
    formula: str                  # "Reaction ~ Days + (1 + Days | Subject)"
    fixed: pd.DataFrame           # estimate, std_error, t_value, ci_low, ci_high
    random: pd.DataFrame          # variance, std_dev, and corr_<name> columns, per random effect
    residual_variance: float
    decomposition: pd.DataFrame   # from `variance_decomposition`
    icc: float
    criterion_name: str           # "REML criterion" or "-2 log-likelihood"
    criterion: float
    loglik: float
    n_obs: int
    n_groups: int
    groups_name: str
    convergence: str              # the fit's own account ("optimum", ...)
    converged: bool
    boundary: list[str]
    confidence: float = 0.95
    levels: dict[str, int] | None = None   # levels per grouping factor (lme4's "groups:" line)
    icc_by_factor: dict[str, float] | None = None   # each factor's share (several factors)
    residual_name: str = "Residual"        # a GLMM's is the link's latent residual
    statistic_name: str = "t value"        # a GLMM's Wald statistic is a z value
    fitted_on: str = ""           # which fit this is: "outer fold 2 of 5 (repeat 0): its 150 training rows"

    def __str__(self) -> str:
        lines = [self.title, f" Formula: {self.formula}"]
        lines += [f" Fitted on: {self.fitted_on}"] if self.fitted_on else []
        lines += [f"{self.criterion_name} at convergence: "
                 f"{self.criterion:.4f}   log-likelihood: {self.loglik:.4f}", "", "Random effects:"]
        # lme4's layout: each term's group name on its first row only.
        groups = (list(self.random["group"]) if "group" in self.random.columns
                  else [self.groups_name] * len(self.random))
        shown = [g if i == 0 or groups[i - 1] != g else "" for i, g in enumerate(groups)]
        variances = [*self.random["variance"], self.residual_variance]
        rnd = pd.DataFrame({"Groups": shown + [self.residual_name],
                            "Name": list(self.random.index) + [""],
                            "Variance": fmt_column(variances),
                            "Std.Dev.": fmt_column(np.sqrt(np.clip(variances, 0, None)))})
        corr_cols = [c for c in self.random.columns if c.startswith("corr_")]
        if corr_cols:
            # lme4's layout: the lower triangle of the correlation matrix, row by row, two decimals.
            rnd["Corr"] = [" ".join(f"{v:5.2f}" for v in self.random.iloc[i][corr_cols] if np.isfinite(v))
                           for i in range(len(self.random))] + [""]
        for col in ("Groups", "Name"):   # names left-aligned, numbers right-aligned, as lme4 prints them
            width = max(len(col), *(len(str(v)) for v in rnd[col]))
            rnd[col] = [str(v).ljust(width) for v in rnd[col]]
        lines.append(" " + rnd.to_string(index=False, justify="left").replace("\n", "\n "))
        levels = self.levels or {self.groups_name: self.n_groups}
        lines.append(f"Number of obs: {self.n_obs}, groups: " + "; ".join(f"{g}, {k}" for g, k in levels.items()))
        lines += ["", f"Fixed effects (Wald {self.confidence:.0%} confidence intervals):"]
        fx = self.fixed.rename(columns={"estimate": "Estimate", "std_error": "Std. Error",
                                        "t_value": self.statistic_name, "ci_low": "CI low", "ci_high": "CI high"})
        lines.append(_formatted(fx).to_string())
        d = self.decomposition["share"]
        lines += ["", f"Variance: fixed effects {d['fixed effects']:.1%}, random effects {d['random effects']:.1%}, "
                      f"residual {d['residual']:.1%}; ICC {self.icc:.3f}{self._icc_parts()}; "
                      f"marginal R² {d['fixed effects']:.3f}, "
                      f"conditional R² {d['fixed effects'] + d['random effects']:.3f}"]
        status = self.convergence + ("" if self.converged else "  (NOT CONVERGED: estimates may be wrong)")
        lines.append(f"Convergence: {status}")
        if self.boundary:
            lines.append(f"Boundary (singular) fit: {', '.join(self.boundary)} at zero variance or perfect correlation")
        return "\n".join(lines)

    def _icc_parts(self) -> str:
        parts = self.icc_by_factor or {}
        return f" ({', '.join(f'{f} {v:.3f}' for f, v in parts.items())})" if len(parts) > 1 else ""

    def __repr__(self) -> str:
        return str(self)

    def _repr_html_(self) -> str:
        e = html.escape
        fixed = _html_table(_formatted(self.fixed))
        random = _html_table(_formatted(self.random))
        decomposition = _html_table(_formatted(self.decomposition).assign(
            share=[f"{v:.1%}" for v in self.decomposition["share"]]))
        flag = "" if self.converged else " <b class='mixcv-fail'>(not converged: estimates may be wrong)</b>"
        boundary = (f"<div>Boundary (singular) fit: {e(', '.join(self.boundary))}</div>" if self.boundary else "")
        fitted_on = f"<div class='mixcv-fitted-on'>Fitted on {e(self.fitted_on)}</div>" if self.fitted_on else ""
        return (f"<div class='mixcv-lmm-summary'><h4>{e(self.title)}</h4><div><code>{e(self.formula)}</code></div>"
                f"{fitted_on}"
                f"<div>{e(self.criterion_name)} {self.criterion:.4f}; log-likelihood {self.loglik:.4f}; "
                f"{self.n_obs} observations; "
                + e("; ".join(f"{k} levels of {g}"
                              for g, k in (self.levels or {self.groups_name: self.n_groups}).items()))
                + "</div>"
                f"<div>Fixed effects (Wald {self.confidence:.0%} intervals)</div>{fixed}"
                f"<div>Random effects (residual variance {fmt_column([self.residual_variance])[0]})</div>{random}"
                f"<div>Variance decomposition: ICC {self.icc:.3f}{e(self._icc_parts())}</div>{decomposition}"
                f"<div>Convergence: {e(self.convergence)}{flag}</div>{boundary}</div>")
