"""Running an experiment: events, fitting one estimator, tuning, fold tasks, executors.

A task is one model on one outer fold (`task.run_task`); it tunes (`tuning`), fits
(`fitting`) and reports what happens as typed events (`events`). Tasks run inline or
in worker processes (`parallel`); results never depend on which.
"""
