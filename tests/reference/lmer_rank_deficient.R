# Reference values for lmer() with a rank-deficient fixed-effects design: lme4 drops the aliased
# columns ("fixed-effect model matrix is rank deficient so dropping N columns / coefficients")
# and fits the rest; mixcv's lmer() must drop the same columns and reach the same fit.
#
#   Rscript tests/reference/lmer_rank_deficient.R      (from the repository root; a few seconds)
#
# Data: mlmRev::Exam (Goldstein et al. 1993, via Goldstein, Multilevel Statistical Models):
# normalised exam scores of 4,059 London pupils in 65 schools. Its design is aliased for real
# reasons: boys' schools have no girls and girls' schools no boys (empty cells of sex x
# schgend), and `type` (mixed or single-sex school) is schgendboys + schgendgirls again.
#
# Writes
#   tests/data/lmer_rank_deficient/exam.csv    the columns the models use (school as a label;
#       sex, schgend, type as text, their R levels in the JSON's `factor_levels`).
#   tests/data/lmer_rank_deficient/lmer_rank_deficient.json   per case, by REML and ML: lme4's
#       message, the dropped columns (attr(X, "col.dropped"): names and 1-based positions in
#       the full model matrix), the full model matrix's column names, the kept fixed effects
#       and standard errors, sigma^2, theta, VarCorr, the criterion, and predict() with the
#       BLUPs on the first 25 rows (predict of a model with dropped columns uses the kept ones).
#
# lme4's tight optimiser (bobyqa, rhoend 1e-12), as in lme4_multi.R. Made with R 4.2.2,
# lme4 1.1.31, mlmRev 1.0.8.
suppressPackageStartupMessages({
  library(lme4)
  library(jsonlite)
})

out_dir <- file.path("tests", "data", "lmer_rank_deficient")
dir.create(out_dir, showWarnings = FALSE, recursive = TRUE)
options(contrasts = c("contr.treatment", "contr.treatment"))

tight <- lmerControl(optimizer = "bobyqa", optCtrl = list(rhoend = 1e-12, maxfun = 1e5))

exam <- mlmRev::Exam[, c("normexam", "standLRT", "sex", "schgend", "type", "school")]
factors <- c("sex", "schgend", "type")
write.csv(transform(exam, school = as.character(school), sex = as.character(sex),
                    schgend = as.character(schgend), type = as.character(type)),
          file.path(out_dir, "exam.csv"), row.names = FALSE)

cases <- list(
  sex_by_schgend = list(
    formula = "normexam ~ sex * schgend + standLRT + (1 | school)",
    note = paste("empty cells: sexM:schgendboys equals schgendboys (every pupil of a boys' school is a",
                 "boy) and sexM:schgendgirls is all zeros; the dropped columns are the last ones")),
  three_way = list(
    formula = "normexam ~ sex * schgend * standLRT + (1 + standLRT | school)",
    note = paste("the same empty cells twice, and a random slope: aliased columns in the middle of the",
                 "design, kept columns after them")),
  type_and_schgend = list(
    formula = "normexam ~ standLRT + type + schgend + (1 | school)",
    note = paste("a school-level variable coded twice: typeSngl = schgendboys + schgendgirls, so",
                 "schgendgirls (the last of the three) is dropped: a linear combination, not a copy"))
)

fit_case <- function(cs, reml) {
  said <- character(0)
  m <- withCallingHandlers(lmer(as.formula(cs$formula), data = exam, REML = reml, control = tight),
                           message = function(e) { said <<- c(said, conditionMessage(e))
                                                   invokeRestart("muffleMessage") })
  X <- getME(m, "X")
  full <- model.matrix(lme4::nobars(as.formula(cs$formula)), exam)
  dropped <- attr(X, "col.dropped")
  vc <- VarCorr(m)
  list(
    message = I(trimws(said)),
    full_columns = I(colnames(full)),
    dropped = I(names(dropped)),
    dropped_positions = I(unname(dropped)),
    criterion = if (reml) unname(REMLcrit(m)) else unname(deviance(m)),
    loglik = as.numeric(logLik(m)),
    fixef = as.list(fixef(m)),
    se = as.list(sqrt(diag(as.matrix(vcov(m))))),
    sigma2 = sigma(m)^2,
    theta = as.list(getME(m, "theta")),
    varcorr = lapply(vc, function(v) list(columns = I(colnames(v)), cov = as.vector(v))),
    predict_first_25 = unname(predict(m, newdata = exam[1:25, ]))
  )
}

out <- list(
  provenance = sprintf("mlmRev::Exam (mlmRev %s): 4,059 pupils in 65 London schools; fitted by lme4 %s with %s",
                       packageVersion("mlmRev"), packageVersion("lme4"), "bobyqa, rhoend 1e-12"),
  csv = "exam.csv", n = nrow(exam), y_sum = sum(exam$normexam),
  factor_levels = setNames(lapply(factors, function(v) I(levels(exam[[v]]))), factors),
  cases = lapply(cases, function(cs) list(formula = cs$formula, note = cs$note,
                                          reml = fit_case(cs, TRUE), ml = fit_case(cs, FALSE)))
)
writeLines(toJSON(out, auto_unbox = TRUE, digits = NA, pretty = TRUE),
           file.path(out_dir, "lmer_rank_deficient.json"))
cat("wrote", file.path(out_dir, "lmer_rank_deficient.json"), "\n")
