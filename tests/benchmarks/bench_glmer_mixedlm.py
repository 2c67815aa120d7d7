"""The PyPI ``mixedlm`` side of bench_glmer.py, run in the anchors' venv (not mixcv's).

    .venv-anchors/bin/python tests/benchmarks/bench_glmer_mixedlm.py JOBS.json

Prints one JSON line per job (the jobs bench_glmer.py writes): the median CPU time (``time``, all
threads) and wall time (``wall``) of ``repeats`` fits after one untimed warm-up, ``-2 logLik``, the fixed effects and whether mixedlm says it
converged. mixedlm's formula parser does not take ``cbind(successes, failures)`` (1.3.0:
"Unexpected character ','"), so a binomial with trials is given as the proportion with the
trials as prior weights, which is the same likelihood; an offset is given as ``offset=``.
"""

from __future__ import annotations

import json
import statistics
import sys
import time

import mixedlm
import pandas as pd
from mixedlm import families


def main() -> None:
    jobs = json.loads(open(sys.argv[1]).read())
    for job in jobs:
        data = pd.read_csv(job["csv"], dtype={c: str for c in job["character"]})
        family = (families.Binomial(link=job["link"]) if job["family"] == "binomial"
                  else families.Poisson(link=job["link"]))
        kwargs = {}
        if job["trials"]:
            data["_proportion"] = data[job["successes"]] / data[job["trials"]]
            kwargs["weights"] = data[job["trials"]].to_numpy(float)
        if job["offset"]:
            kwargs["offset"] = data[job["offset"]].to_numpy(float)

        def fit(data=data, family=family, kwargs=kwargs, job=job):
            return mixedlm.glmer(job["formula_py"], data, family=family, nAGQ=job["nAGQ"], **kwargs)

        try:
            m = fit()
            times, cpu = [], []
            for _ in range(job["repeats"]):
                t, c = time.perf_counter(), time.process_time()
                fit()
                times.append(time.perf_counter() - t)
                cpu.append(time.process_time() - c)
            out = {"name": job["name"], "time": statistics.median(cpu), "wall": statistics.median(times),
                   "minus2loglik": -2.0 * float(m.logLik().value if hasattr(m.logLik(), "value") else m.logLik()),
                   "fixef": {k: float(v) for k, v in m.fixef().items()},
                   "converged": bool(m.converged), "mixedlm": mixedlm.__version__ if hasattr(mixedlm, "__version__") else "?"}
        except Exception as exc:  # noqa: BLE001 - a benchmark reports a failing fit and goes on
            out = {"name": job["name"], "error": f"{type(exc).__name__}: {str(exc)[:300]}"}
        print(json.dumps(out), flush=True)


if __name__ == "__main__":
    main()
