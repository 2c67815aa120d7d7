# Reference values for the intervals of random effects: lme4's conditional modes and their
# conditional standard deviations (ranef(fit, condVar = TRUE)), on R's own datasets.
#
#   Rscript tests/reference/lme4_condvar.R        (from the repository root)
#
# Reads the CSVs that lme4_battery.R wrote (the same rows and codings) and writes
# tests/data/lmm/lme4_condvar.json: per case, the groups in lme4's order, the modes and the
# conditional sds of each random-effect term, with lme4's tight optimiser (as the battery).
# Made with R 4.2.2, lme4 1.1.31 (Debian r-base-core, r-cran-lme4).
suppressPackageStartupMessages({
  library(lme4)
  library(jsonlite)
})

dir <- file.path("tests", "data", "lmm")
tight <- lmerControl(optimizer = "bobyqa", optCtrl = list(rhoend = 1e-12, maxfun = 1e5),
                     check.conv.singular = "ignore")
read <- function(name, group) {
  d <- read.csv(file.path(dir, paste0(name, ".csv")))
  d[[group]] <- as.character(d[[group]])
  d
}
cases <- list(
  list(name = "sleepstudy", formula = Reaction ~ Days + (Days | Subject), group = "Subject"),
  list(name = "orthodont", formula = distance ~ age + female + (1 | Subject), group = "Subject"),
  list(name = "dyestuff", formula = Yield ~ 1 + (1 | Batch), group = "Batch")
)
out <- list()
for (case in cases) {
  d <- read(case$name, case$group)
  fit <- lmer(case$formula, data = d, REML = TRUE, control = tight)
  re <- ranef(fit, condVar = TRUE)[[case$group]]
  pv <- attr(re, "postVar")                      # q x q x K
  q <- dim(pv)[1]
  sds <- sapply(seq_len(q), function(j) sqrt(pv[j, j, ]))
  if (is.null(dim(sds))) sds <- matrix(sds, ncol = q)
  out[[case$name]] <- list(
    formula = deparse(case$formula), group = case$group, groups = rownames(re),
    terms = colnames(re), modes = unname(as.matrix(re)), sds = unname(sds))
}
write_json(out, file.path(dir, "lme4_condvar.json"), digits = NA, auto_unbox = TRUE, pretty = TRUE)
