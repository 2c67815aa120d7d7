# Reference values for mixcv's native linear mixed model, from lme4 on R's own datasets.
#
#   Rscript tests/reference/lme4_battery.R        (from the repository root)
#
# Writes, for every case below:
#   tests/data/lmm/<dataset>.csv     the rows and columns the model uses (numeric codings made
#                                    here, so Python reads exactly what lme4 fitted)
#   tests/data/lmm/lme4_battery.json the fits, REML and ML, with lme4's tight optimiser
#
# The reference is lme4 with a tight optimiser, not its default: bobyqa with rhoend 1e-12.
# lme4's default stops early on some of these models; its criterion is recorded too
# ("default_criterion"), so a test can say where the default stops short instead of loosening
# its tolerance. On badly scaled designs (cake with the temperature in degrees, Orange with age
# in days) even the tight optimiser stops short on the raw scale, so for those cases the same
# model is also fitted with the covariate centred and the estimates are mapped exactly back to
# the raw scale ("via_centred": beta = A beta_c, V = A V_c A', Sigma = A Sigma_c A', b = A b_c,
# with A the identity plus -mean in the intercept row of each centred column). Made with R 4.2.2, lme4 1.1.31, nlme 3.1.162 (Debian r-base-core, r-cran-lme4).
suppressPackageStartupMessages({
  library(lme4)
  library(nlme, include.only = NULL)
  library(jsonlite)
})

out_dir <- file.path("tests", "data", "lmm")
dir.create(out_dir, showWarnings = FALSE, recursive = TRUE)

tight <- lmerControl(optimizer = "bobyqa", optCtrl = list(rhoend = 1e-12, maxfun = 1e5),
                     check.conv.singular = "ignore")

# Numeric codings, the same treatment contrasts R would build (first level as baseline).
sleep <- lme4::sleepstudy
ortho <- as.data.frame(nlme::Orthodont)
ortho$female <- as.numeric(ortho$Sex == "Female")
ortho$Subject <- as.character(ortho$Subject)
oxboys <- as.data.frame(nlme::Oxboys)
oxboys$Subject <- as.character(oxboys$Subject)
oxboys$age2 <- oxboys$age^2
chick <- as.data.frame(datasets::ChickWeight)
for (k in 2:4) chick[[paste0("diet", k)]] <- as.numeric(chick$Diet == as.character(k))
chick$Chick <- as.character(chick$Chick)
math <- as.data.frame(nlme::MathAchieve)
math$minority <- as.numeric(math$Minority == "Yes")
math$female <- as.numeric(math$Sex == "Female")
math$School <- as.character(math$School)
dye <- lme4::Dyestuff
dye2 <- lme4::Dyestuff2
cake <- lme4::cake
cake$temp_c <- cake$temp - mean(cake$temp)
cake$replicate <- as.character(cake$replicate)
body <- as.data.frame(nlme::BodyWeight)
for (k in 2:3) body[[paste0("diet", k)]] <- as.numeric(body$Diet == as.character(k))
body$Rat <- as.character(body$Rat)
machines <- as.data.frame(nlme::Machines)
machines$machineB <- as.numeric(machines$Machine == "B")
machines$machineC <- as.numeric(machines$Machine == "C")
machines$Worker <- as.character(machines$Worker)
orange <- as.data.frame(datasets::Orange)
orange$Tree <- as.character(orange$Tree)

# I() keeps length-1 vectors as JSON arrays (jsonlite unboxes them otherwise).
# name, data, response, fixed-effect columns, random-effect columns (intercept implied), group,
# provenance.
cases <- list(
  list("sleepstudy", sleep, "Reaction", c("Days"), c("Days"), "Subject",
       "lme4::sleepstudy (Belenky et al. 2003): reaction time of 18 subjects over 10 days of sleep restriction"),
  list("orthodont", ortho, "distance", c("age", "female"), c("age"), "Subject",
       "nlme::Orthodont (Potthoff & Roy 1964): pituitary-pterygomaxillary distance of 27 children, ages 8-14"),
  list("oxboys", oxboys, "height", c("age"), c("age"), "Subject",
       "nlme::Oxboys: heights of 26 boys from Oxford at 9 occasions (age centred, in years)"),
  list("oxboys_quadratic", oxboys, "height", c("age", "age2"), c("age", "age2"), "Subject",
       "nlme::Oxboys with a quadratic growth curve: three random effects per boy (q = 3)"),
  list("chickweight", chick, "weight", c("Time", "diet2", "diet3", "diet4"), c("Time"), "Chick",
       "datasets::ChickWeight (Crowder & Hand 1990): weights of 50 chicks on 4 diets, days 0-21"),
  list("mathachieve", math, "MathAch", c("SES", "minority", "female"), c("SES"), "School",
       "nlme::MathAchieve (High School and Beyond 1982): 7185 students in 160 schools"),
  list("dyestuff", dye, "Yield", character(0), character(0), "Batch",
       "lme4::Dyestuff (Davies 1947): yield of dyestuff from 6 batches of an intermediate, 5 preparations each"),
  list("dyestuff2", dye2, "Yield", character(0), character(0), "Batch",
       "lme4::Dyestuff2 (Box & Tiao 1973): simulated like Dyestuff; the batch variance estimate is zero"),
  list("cake_centred", cake, "angle", c("temp_c"), c("temp_c"), "replicate",
       "lme4::cake (Cook 1938): breaking angle of chocolate cakes by baking temperature (centred), 15 replicates"),
  list("cake_raw", cake, "angle", c("temp"), c("temp"), "replicate",
       "lme4::cake with the raw temperature in degrees (175-225): the same model, badly scaled",
       c(temp = mean(cake$temp))),
  list("bodyweight", body, "weight", c("Time", "diet2", "diet3"), c("Time"), "Rat",
       "nlme::BodyWeight (Hand & Crowder 1996): body weights of 16 rats on 3 diets over 64 days"),
  list("machines", machines, "score", c("machineB", "machineC"), character(0), "Worker",
       "nlme::Machines (Milliken & Johnson 1992): productivity scores of 6 workers on 3 machines"),
  list("orange", orange, "circumference", c("age"), c("age"), "Tree",
       "datasets::Orange (Draper & Smith 1998): trunk circumference of 5 orange trees by age in days",
       c(age = mean(orange$age)))
)

fit_summary <- function(m, reml) {
  vc <- VarCorr(m)[[1]]
  re <- ranef(m, condVar = FALSE)[[1]]
  list(
    criterion = if (reml) unname(REMLcrit(m)) else unname(deviance(m)),
    loglik = as.numeric(logLik(m)),
    fixef = as.list(fixef(m)),
    se = as.list(sqrt(diag(as.matrix(vcov(m))))),
    vcov = unname(as.matrix(vcov(m))),
    wald_ci = unname(confint(m, parm = "beta_", method = "Wald", level = 0.95)),
    sigma2 = sigma(m)^2,
    cov_re = unname(as.matrix(vc)[, , drop = FALSE]),
    re_names = I(colnames(as.matrix(vc))),
    theta = I(unname(getME(m, "theta"))),
    singular = isSingular(m),
    blup_groups = I(rownames(re)),
    blups = unname(as.matrix(re))
  )
}

# Estimates of the model fitted with the columns in `centre` centred, mapped back to the raw scale.
via_centred <- function(f, d, centre, fe, re, reml) {
  dc <- d
  for (v in names(centre)) dc[[v]] <- d[[v]] - centre[[v]]
  m <- lmer(f, data = dc, REML = reml, control = tight)
  shift <- function(names) {
    A <- diag(length(names))
    for (v in names(centre)) A[1, match(v, names)] <- -centre[[v]]
    A
  }
  Afe <- shift(c("(Intercept)", fe))
  Are <- shift(c("(Intercept)", re))
  V <- Afe %*% as.matrix(vcov(m)) %*% t(Afe)
  list(criterion = if (reml) unname(REMLcrit(m)) else unname(deviance(m)),
       fixef = as.list(setNames(as.vector(Afe %*% fixef(m)), names(fixef(m)))),
       se = as.list(setNames(sqrt(diag(V)), names(fixef(m)))),
       sigma2 = sigma(m)^2,
       cov_re = unname(Are %*% as.matrix(VarCorr(m)[[1]]) %*% t(Are)),
       blups = unname(as.matrix(ranef(m)[[1]]) %*% t(Are)))
}

results <- list()
for (case in cases) {
  name <- case[[1]]; d <- case[[2]]; y <- case[[3]]; fe <- case[[4]]; re <- case[[5]]; g <- case[[6]]
  keep <- unique(c(y, fe, re, g))
  d <- d[, keep, drop = FALSE]
  write.csv(d, file.path(out_dir, paste0(name, ".csv")), row.names = FALSE)
  rhs_fe <- if (length(fe)) paste(fe, collapse = " + ") else "1"
  rhs_re <- if (length(re)) paste(c("1", re), collapse = " + ") else "1"
  f <- as.formula(sprintf("%s ~ %s + (%s | %s)", y, rhs_fe, rhs_re, g))
  entry <- list(dataset = name, provenance = case[[7]], formula = deparse(f), response = y, fixed = I(fe),
                random = I(re), group = g, n = nrow(d), n_groups = length(unique(d[[g]])),
                y_sum = sum(d[[y]]))
  for (reml in c(TRUE, FALSE)) {
    m <- lmer(f, data = d, REML = reml, control = tight)
    default <- suppressWarnings(suppressMessages(lmer(f, data = d, REML = reml)))
    s <- fit_summary(m, reml)
    s$default_criterion <- if (reml) unname(REMLcrit(default)) else unname(deviance(default))
    s$default_messages <- as.list(default@optinfo$conv$lme4$messages)
    if (length(case) >= 8) s$via_centred <- via_centred(f, d, case[[8]], fe, re, reml)
    entry[[if (reml) "reml" else "ml"]] <- s
  }
  results[[name]] <- entry
  cat(sprintf("%-18s n=%5d groups=%4d  REML %.10f (default +%.2e, singular %s)  ML %.10f (default +%.2e)\n",
              name, nrow(d), entry$n_groups, entry$reml$criterion, entry$reml$default_criterion - entry$reml$criterion,
              entry$reml$singular, entry$ml$criterion, entry$ml$default_criterion - entry$ml$criterion))
}

# Training folds, for the engine: groups dealt to 5 folds in order of first appearance; each
# fold's training rows fitted by REML (the engine's outer folds, given to it as fixed splits).
for (name in c("chickweight", "oxboys_quadratic")) {
  case <- Filter(function(cs) cs[[1]] == name, cases)[[1]]
  d <- read.csv(file.path(out_dir, paste0(name, ".csv")), stringsAsFactors = FALSE)
  g <- as.character(d[[case[[6]]]])
  fold_of <- setNames((seq_along(unique(g)) - 1) %% 5, unique(g))
  fold <- unname(fold_of[g])
  f <- as.formula(results[[name]]$formula)
  fits <- list()
  for (k in 0:4) {
    m <- lmer(f, data = d[fold != k, ], REML = TRUE, control = tight)
    fits[[k + 1]] <- list(fold = k, criterion = unname(REMLcrit(m)), fixef = as.list(fixef(m)),
                          sigma2 = sigma(m)^2, cov_re = unname(as.matrix(VarCorr(m)[[1]])),
                          singular = isSingular(m))
  }
  results[[name]]$folds <- list(row_fold = I(fold), fits = fits)
}

meta <- list(r = R.version.string, lme4 = as.character(packageVersion("lme4")),
             nlme = as.character(packageVersion("nlme")),
             optimizer = "bobyqa, rhoend = 1e-12, maxfun = 1e5",
             script = "tests/reference/lme4_battery.R")
write_json(list(meta = meta, cases = results), file.path(out_dir, "lme4_battery.json"),
           digits = NA, auto_unbox = TRUE, pretty = TRUE)
