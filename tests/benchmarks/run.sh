#!/usr/bin/env bash
# Run a benchmark in the anchors' venv (merf 1.0, flexcv 24.0b0 and mixcv side by side).
#   tests/benchmarks/run.sh bench_merf.py [--quick]
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
py="$(bash "$here/setup_anchors.sh")"
script="$1"; shift
exec "$py" "$here/$script" "$@"
