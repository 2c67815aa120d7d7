"""Running an experiment: events, fitting one estimator, tuning, fold tasks, executors.

A task is one model, or its MERF variant, on one outer fold (`task.run_task`); it tunes
(`tuning`), fits (`fitting`) and reports what happens as typed events (`events`). Which
tasks a run has and which starts next is `schedule`'s. Tasks run inline, in worker
processes (`parallel`) or on a Dask cluster (`cluster`); results never depend on which.
"""
