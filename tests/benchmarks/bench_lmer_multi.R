# lme4's side of bench_lmer_multi.py: times lmer on each job and prints one JSON line per job.
#
#   Rscript tests/benchmarks/bench_lmer_multi.R JOBS.json
#
# JOBS.json: a list of {name, csv, formula, reml, repeats, character}: the CSV is read with the
# columns in `character` as text (grouping factors are labels, also when they look like numbers),
# which lmer turns into factors as it would for any user. Timed: lme4's default optimiser (what
# an R user runs), median of `repeats` system.time runs after one untimed warm-up fit (the first
# call loads compiled code), and the median user (CPU) time of the same runs. Also reported: the
# criterion it reached and whether lme4 says it converged (a singular fit is reported apart, not
# as a failure).
suppressPackageStartupMessages({
  library(lme4)
  library(jsonlite)
})

jobs <- fromJSON(commandArgs(trailingOnly = TRUE)[1], simplifyVector = FALSE)
for (job in jobs) {
  hdr <- names(read.csv(job$csv, nrows = 1, check.names = FALSE))
  d <- read.csv(job$csv, check.names = FALSE, stringsAsFactors = FALSE,
                colClasses = ifelse(hdr %in% unlist(job$character), "character", NA))
  f <- as.formula(job$formula)
  fit <- function() suppressWarnings(suppressMessages(lmer(f, data = d, REML = job$reml)))
  m <- tryCatch(fit(), error = function(e) e)
  if (inherits(m, "error")) {
    cat(toJSON(list(name = job$name, reml = job$reml, error = conditionMessage(m)), auto_unbox = TRUE), "\n")
    next
  }
  timed <- replicate(job$repeats, system.time(fit()))
  times <- timed["elapsed", ]
  user <- timed["user.self", ]   # R's CPU time: on a loaded machine steadier than the wall time
  msgs <- unlist(m@optinfo$conv$lme4$messages)
  cat(toJSON(list(name = job$name, reml = job$reml, time = median(times), times = times, user = median(user),
                  criterion = if (job$reml) REMLcrit(m) else deviance(m),
                  converged = !any(grepl("converge|Hessian|eigenvalue", msgs)),
                  singular = isSingular(m), lme4 = as.character(packageVersion("lme4")),
                  r = R.version.string),
              auto_unbox = TRUE, digits = NA), "\n")
}
