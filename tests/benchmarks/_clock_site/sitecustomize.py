"""Run at the start of every Python process whose PYTHONPATH begins with this folder.

``bench_overhead.py --n-jobs N`` puts it there (and ``$MIXCV_BENCH_ESTIMATOR_CLOCK``) for the
worker processes of a parallel run: each then times its estimators' ``fit``/``predict`` calls
as the serial run does and writes its totals where the parent reads them. Without the variable
it does nothing.
"""

import os

if os.environ.get("MIXCV_BENCH_ESTIMATOR_CLOCK"):
    import sys

    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    from bench_overhead import clock_from_environment

    _CLOCK = clock_from_environment()
