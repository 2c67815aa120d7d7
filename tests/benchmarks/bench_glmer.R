# lme4's side of bench_glmer.py: times glmer on each job and prints one JSON line per job.
#
#   Rscript tests/benchmarks/bench_glmer.R JOBS.json
#
# JOBS.json: a list of {name, csv, formula, family, link, nAGQ, repeats, character}: the CSV is
# read with the columns in `character` as text (grouping factors are labels, also when they look
# like numbers), which glmer turns into factors as for any user. The formula is the reference's
# (tests/data/glmm/glmer_battery.json): numeric fixed columns, offset(<column>) where the model
# has one, cbind(successes, failures) for a binomial with trials. Timed: lme4's default control
# (what an R user runs), median of `repeats` system.time runs after one untimed warm-up fit.
# Reported: time, the median CPU time of R (user + system); wall, the median elapsed time;
# the objective it reached (m@devcomp$cmp["dev"], the Laplace/AGQ criterion =
# -2 logLik), whether lme4 says it converged, and its warnings.
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
  fam <- if (job$family == "binomial") binomial(link = job$link) else poisson(link = job$link)
  fit <- function() glmer(f, data = d, family = fam, nAGQ = job$nAGQ)
  said <- character(0)
  m <- withCallingHandlers(tryCatch(fit(), error = function(e) e),
    warning = function(w) { said <<- c(said, conditionMessage(w)); invokeRestart("muffleWarning") },
    message = function(w) { said <<- c(said, trimws(conditionMessage(w))); invokeRestart("muffleMessage") })
  if (inherits(m, "error")) {
    cat(toJSON(list(name = job$name, error = conditionMessage(m)), auto_unbox = TRUE), "\n")
    next
  }
  st <- replicate(job$repeats, system.time(suppressWarnings(suppressMessages(fit()))))
  times <- st["elapsed", ]
  user <- st["user.self", ] + st["sys.self", ]
  msgs <- unlist(m@optinfo$conv$lme4$messages)
  cat(toJSON(list(name = job$name, time = median(user), wall = median(times), times = times,
                  objective = unname(m@devcomp$cmp[["dev"]]),
                  converged = !any(grepl("converge|Hessian|eigenvalue", msgs)),
                  singular = isSingular(m), said = I(said), lme4 = as.character(packageVersion("lme4")),
                  r = R.version.string),
              auto_unbox = TRUE, digits = NA), "\n")
}
