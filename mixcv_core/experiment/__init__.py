"""What an experiment is: the validated spec, its splits, the data checks, the cell text.

Everything here describes or checks an experiment; nothing runs one. Front ends
(the builder, the ``%%mixcv`` cell, the form) produce an `ExperimentSpec`
(`mixcv_core.experiment.spec`); `mixcv_core.experiment.data` checks a DataFrame against
it and makes every split before the first fit.
"""
