# Reference for mixcv's formula layer (mixcv_core/models/mixed/terms.py, design.py): what lme4 and
# R make of a formula before any fit, and lme4's predictions for new levels.
#
#   Rscript tests/reference/mixed_design.R        (from the repository root)
#
# Writes tests/data/mixed_design/:
#   <dataset>.csv         the data as R holds it (factors written as their labels)
#   design.json           per case: R's model.matrix of the fixed part (column names and values),
#                         and lme4's lFormula: the terms in lme4's order, their VarCorr names,
#                         effect names (cnms), number of levels and each row's level label
#   predict.json          a tight lme4 fit and predict(..., allow.new.levels = TRUE) on rows with
#                         known and new levels of crossed factors
# Made with R 4.2.2, lme4 1.1.31 (Debian r-base-core, r-cran-lme4).
suppressPackageStartupMessages({
  library(lme4)
  library(jsonlite)
})
out_dir <- file.path("tests", "data", "mixed_design")
dir.create(out_dir, showWarnings = FALSE, recursive = TRUE)

warp <- datasets::warpbreaks
warp$tension <- factor(warp$tension, ordered = FALSE)   # unordered: treatment contrasts
cake <- lme4::cake
cake$temperature <- NULL                                 # ordered factor: R would use poly contrasts
cake$recipe <- as.character(cake$recipe)
cake$replicate <- as.character(cake$replicate)
pastes <- lme4::Pastes
pastes$x <- seq_len(nrow(pastes)) %% 7                  # a numeric slope that varies within casks
sleep <- lme4::sleepstudy
pen <- lme4::Penicillin

data <- list(warpbreaks = warp, cake = cake, pastes = pastes, sleepstudy = sleep, penicillin = pen)
for (name in names(data)) write.csv(data[[name]], file.path(out_dir, paste0(name, ".csv")), row.names = FALSE)

cases <- list(
  list(name = "warp_interaction", data = "warpbreaks", formula = "breaks ~ wool * tension + (1 | tension)"),
  list(name = "cake_recipe_temp", data = "cake",
       formula = "angle ~ recipe * temp + (1 | recipe:replicate) + (1 | replicate)"),
  list(name = "pastes_nested", data = "pastes", formula = "strength ~ 1 + (1 | batch/cask)"),
  list(name = "pastes_nested_slope", data = "pastes", formula = "strength ~ x + (1 | batch/cask) + (0 + x | batch)"),
  list(name = "sleep_double_bar", data = "sleepstudy", formula = "Reaction ~ Days + (Days || Subject)"),
  list(name = "penicillin_crossed", data = "penicillin", formula = "diameter ~ 1 + (1 | plate) + (1 | sample)"),
  list(name = "penicillin_reversed", data = "penicillin", formula = "diameter ~ 1 + (1 | sample) + (1 | plate)"),
  # Levels 18, 10, 18: lme4 reorders with rev(order(nl)), which puts the tied Subject terms last-first.
  list(name = "sleep_tied_levels", data = "sleepstudy",
       formula = "Reaction ~ 1 + (1 | Subject) + (1 | Days) + (0 + Days | Subject)")
)
ctrl <- lmerControl(check.nobs.vs.nRE = "ignore")
design <- list()
for (case in cases) {
  d <- data[[case$data]]
  f <- as.formula(case$formula)
  lf <- lFormula(f, d, control = ctrl)
  X <- lf$X
  fl <- lf$reTrms$flist
  asg <- attr(fl, "assign")
  nms <- names(fl)[asg]
  if (anyDuplicated(nms)) nms <- make.names(nms, unique = TRUE)
  terms <- lapply(seq_along(lf$reTrms$cnms), function(i) list(
    name = nms[i], factor = names(fl)[asg[i]], effects = I(lf$reTrms$cnms[[i]]),
    n_levels = nlevels(fl[[asg[i]]]), labels = as.character(fl[[asg[i]]])))
  design[[case$name]] <- list(data = case$data, formula = case$formula,
                              fixed_names = I(colnames(X)), fixed = unname(X), terms = terms)
}
write_json(design, file.path(out_dir, "design.json"), digits = NA, pretty = FALSE, matrix = "rowmajor")

# Prediction with new levels: lme4's predict(..., allow.new.levels = TRUE), whose new levels get a zero
# random effect for their factor while the row keeps its known factors' effects.
tight <- lmerControl(optimizer = "bobyqa", optCtrl = list(rhoend = 1e-12, maxfun = 1e5))
predict_case <- function(formula, train, test, factors) {
  fit <- lmer(as.formula(formula), train, REML = TRUE, control = tight)
  list(formula = formula, train = as.integer(rownames(train)), test = as.integer(rownames(test)),
       reml_criterion = REMLcrit(fit), fixef = fixef(fit),
       predict = unname(predict(fit, newdata = test, allow.new.levels = TRUE)),
       fixed_only = unname(predict(fit, newdata = test, re.form = NA)))
}
rownames(pen) <- NULL
rownames(sleep) <- NULL
# Penicillin's plates x samples (crossed), fitted without plate "x" and sample "F"; predicted on rows
# whose plate, sample, both or neither are new.
pred <- list(
  penicillin_crossed = predict_case("diameter ~ 1 + (1 | plate) + (1 | sample)",
                                    subset(pen, plate != "x" & sample != "F"),
                                    subset(pen, plate %in% c("a", "x") & sample %in% c("A", "F"))),
  # One factor with a slope: subject 372 held out, predicted with the known 308.
  sleep_one_factor = predict_case("Reaction ~ Days + (Days | Subject)", subset(sleep, Subject != "372"),
                                  subset(sleep, Subject %in% c("308", "372")))
)
# Row numbers in the JSON are 1-based rows of the CSV written above.
write_json(pred, file.path(out_dir, "predict.json"), digits = NA, pretty = FALSE)
