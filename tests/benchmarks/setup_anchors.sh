#!/usr/bin/env bash
# The anchors' own environment, next to mixcv, for side-by-side benchmarks:
#   merf==1.0 as is; flexcv==24.0b0 only with binary scipy 1.11 / numpy<2 / pandas<2.3;
#   mixedlm 1.3.0 for the LMM benchmark (lme4 itself runs through Rscript when installed)
#   (its scipy<1.12 pin otherwise triggers a Fortran source build on Python 3.11).
# mixcv is installed into the same venv, so one process times both.
set -euo pipefail
cd "$(dirname "$0")/../.."
VENV=.venv-anchors
if [ ! -x "$VENV/bin/python" ]; then
    python3 -m venv "$VENV"
    "$VENV/bin/python" -m pip install --quiet --upgrade pip >/dev/null
fi
if [ ! -f "$VENV/.ready" ] || [ pyproject.toml -nt "$VENV/.ready" ]; then
    echo "Installing merf 1.0, flexcv 24.0b0, statsmodels and mixcv into $VENV ..." >&2
    "$VENV/bin/python" -m pip install --quiet --only-binary=:all: "scipy==1.11.4" "numpy<2" "pandas<2.3" \
        "flexcv==24.0b0" "merf==1.0" >"$VENV/pip.log" 2>&1 || { tail -30 "$VENV/pip.log"; exit 1; }
    # mixedlm (Rust-backed lmer) declares scipy>=1.14 but its lmer runs on the 1.11 that
    # flexcv needs: install it, then put flexcv's scipy back.
    "$VENV/bin/python" -m pip install --quiet "mixedlm==1.3.0" >>"$VENV/pip.log" 2>&1 || { tail -30 "$VENV/pip.log"; exit 1; }
    "$VENV/bin/python" -m pip install --quiet --only-binary=:all: "scipy==1.11.4" >>"$VENV/pip.log" 2>&1 || { tail -30 "$VENV/pip.log"; exit 1; }
    "$VENV/bin/python" -m pip install --quiet -e ".[gpboost]" >>"$VENV/pip.log" 2>&1 || { tail -30 "$VENV/pip.log"; exit 1; }
    touch "$VENV/.ready"
fi
echo "$VENV/bin/python"
