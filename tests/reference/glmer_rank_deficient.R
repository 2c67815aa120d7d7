# Reference values for glmer() with a rank-deficient fixed-effects design: like lmer, glmer drops
# the aliased columns ("fixed-effect model matrix is rank deficient so dropping N columns /
# coefficients") and fits the rest; mixcv's glmer() must drop the same columns and reach the same fit.
#
#   Rscript tests/reference/glmer_rank_deficient.R      (from the repository root; a few seconds)
#
# Data: mlmRev::Exam, the file lmer_rank_deficient.R writes (tests/data/lmer_rank_deficient/exam.csv:
# 4,059 London pupils in 65 schools). The binary outcome is `pass = normexam > 0` (an exam score
# above the normalised mean), a derived outcome on real data; the design is aliased for the same
# real reasons as for lmer: boys' schools have no girls and girls' schools no boys.
#
# Writes tests/data/lmer_rank_deficient/glmer_rank_deficient.json: per case, lme4's message, the
# dropped columns (attr(X, "col.dropped")), the kept fixed effects and standard errors, theta,
# the deviance and log-likelihood (Laplace), and the fitted probabilities of the first 25 rows.
# Tight optimiser (bobyqa, rhoend 1e-12) in both stages. Made with R 4.2.2, lme4 1.1.31.
suppressPackageStartupMessages({
  library(lme4)
  library(jsonlite)
})

out_dir <- file.path("tests", "data", "lmer_rank_deficient")
options(contrasts = c("contr.treatment", "contr.treatment"))
tight <- glmerControl(optimizer = "bobyqa", optCtrl = list(rhoend = 1e-12, maxfun = 1e5))

exam <- read.csv(file.path(out_dir, "exam.csv"), stringsAsFactors = FALSE)
ref_lmer <- fromJSON(file.path(out_dir, "lmer_rank_deficient.json"))
for (v in names(ref_lmer$factor_levels)) exam[[v]] <- factor(exam[[v]], levels = ref_lmer$factor_levels[[v]])
exam$school <- factor(exam$school)
exam$pass <- as.integer(exam$normexam > 0)

cases <- list(
  sex_by_schgend = list(
    formula = "pass ~ sex * schgend + standLRT + (1 | school)",
    note = "empty cells of sex x schgend: the last two interaction columns are dropped"),
  type_and_schgend = list(
    formula = "pass ~ standLRT + type + schgend + (1 | school)",
    note = "typeSngl = schgendboys + schgendgirls: schgendgirls is dropped (a combination, not a copy)")
)

fit_case <- function(cs) {
  said <- character(0)
  m <- withCallingHandlers(glmer(as.formula(cs$formula), data = exam, family = binomial, control = tight),
                           message = function(e) { said <<- c(said, conditionMessage(e))
                                                   invokeRestart("muffleMessage") })
  dropped <- attr(getME(m, "X"), "col.dropped")
  list(formula = cs$formula, note = cs$note,
       message = I(trimws(said)),
       dropped = I(names(dropped)),
       deviance = unname(-2 * as.numeric(logLik(m))),
       loglik = as.numeric(logLik(m)),
       fixef = as.list(fixef(m)),
       se = as.list(sqrt(diag(as.matrix(vcov(m))))),
       theta = as.list(getME(m, "theta")),
       fitted_first_25 = unname(fitted(m)[1:25]))
}

out <- list(
  provenance = sprintf(paste("mlmRev::Exam via exam.csv (see lmer_rank_deficient.R), pass = normexam > 0;",
                             "fitted by lme4 %s glmer(binomial, Laplace) with bobyqa, rhoend 1e-12"),
                       packageVersion("lme4")),
  csv = "exam.csv", n = nrow(exam), n_pass = sum(exam$pass),
  cases = lapply(cases, fit_case)
)
writeLines(toJSON(out, auto_unbox = TRUE, digits = NA, pretty = TRUE),
           file.path(out_dir, "glmer_rank_deficient.json"))
cat("wrote", file.path(out_dir, "glmer_rank_deficient.json"), "\n")
