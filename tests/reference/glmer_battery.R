# Reference values for mixcv's generalised linear mixed model (issue 26): lme4's glmer on real
# datasets from R packages -- binomial with trials, Bernoulli, Poisson with and without an
# offset, logit and probit links, one and several grouping factors (crossed and nested), a
# random slope, Laplace (nAGQ = 1) and adaptive Gauss-Hermite quadrature (nAGQ = 9, 25).
#
#   Rscript tests/reference/glmer_battery.R              (from the repository root; ~15 minutes on
#                                                         2 cores: the tight fits of Contraception,
#                                                         VerbAgg and raw grouseticks take 20-60 s each)
#
# The one glmer reference of the repository: it replaced glmer_tight.R (whose cases -- cbpp
# Laplace, AGQ 9 and 25, probit, cbpp as a Poisson rate with an offset, Contraception, a random
# slope, VerbAgg, grouseticks -- are all here, at the same or a tighter control).
#   Rscript tests/reference/glmer_battery.R --no-time    (one timing run per fit)
#   Rscript tests/reference/glmer_battery.R --only=cbpp,contraception [--extras]
#       (writes glmer_battery_partial.json; --extras adds bad_inputs and marginal)
#
# Writes
#   tests/data/glmm/<dataset>.csv      the rows and columns the models use: the response (0/1 for
#       a Bernoulli outcome, successes and trials for a binomial with trials, counts for Poisson),
#       the fixed-effect columns as R codes them (model.matrix, treatment contrasts, first level
#       the baseline; names with every character that is not a letter, digit or "_" made "_", so
#       I(age^2) is I_age_2_), an offset column where the model has one, the raw factors of the
#       fixed part and the grouping factors as character labels.
#   tests/data/glmm/glmer_battery.json per case (see below), plus `bad_inputs` (complete
#       separation, a group whose outcomes are all 0) and `marginal` (population-averaged means
#       for new groups by numerical integration).
#   tests/data/glmm/PROVENANCE.md      per CSV: the R package and version it comes from, the
#       source publication, how the rows and columns were extracted, its size.
#
# The reference fit is glmer with bobyqa in both stages (nAGQ = 0 start, then Laplace or AGQ)
# and a tight tolerance (rhoend 1e-12, maxfun 1e5) AND a tight PIRLS tolerance (tolPwrss 1e-12):
# with lme4's default tolPwrss = 1e-7 the inner PIRLS loop stops early and the Laplace objective
# it reports is too high (cbpp: 184.053133 instead of 184.052564, fixed effects off by ~2e-4;
# with tolPwrss = 1e-12 lme4 reaches the Laplace optimum that MixedModels.jl and the PyPI
# mixedlm report: -1.39853, -0.99233, -1.12867, -1.58031, herd variance 0.41250). The default
# control's fit is recorded apart (`default`). The fit is on `formula` (the numeric columns, so
# Python reads exactly the design lme4 fitted); `formula_factor` is the same model with R's
# factors, refitted here and checked to reach the same objective. The offset is written in the
# formula as offset(<column>); the script checks that glmer(..., offset = <column>) gives the
# same fit. Each fit is also checked against a second optimiser (`check_second`: Nelder-Mead
# through nloptwrap, tight), its objective minus the reference's recorded: negative would mean
# the reference is not at the optimum (every case: between +4e-8 and +1e-3, i.e. the reference
# is the better optimum).
#
# WHICH DEVIANCE. lme4 reports several numbers for a glmer fit, and they differ:
#   objective      m@devcomp$cmp[["dev"]]: the Laplace / AGQ approximation the fit minimises.
#                  For nAGQ = 1 it is -2 logLik(m) with every constant (binomial: the log
#                  binomial coefficients; Poisson: -log y!; a Bernoulli outcome has none).
#                  For nAGQ > 1 lme4 sums deviance residuals instead, so the objective and
#                  logLik(m) leave out the saturated model's log-likelihood: they are
#                  -2 (logLik - saturated), about 84 lower than Laplace on cbpp.
#   minus2loglik   -2 * logLik(m): equal to the objective for every nAGQ.
#   minus2loglik_with_constants   objective - 2 * saturated_loglik for nAGQ > 1 (the objective
#                  for nAGQ = 1): comparable across nAGQ and with other software.
#   deviance       deviance(m): NOT -2 logLik; the sum of squared deviance residuals at the
#                  conditional modes (devcomp "drsum"). Recorded because users compare with it.
# The issue's "VerbAgg deviance 8151.40" is the objective (8151.399720).
# `converged` is FALSE when lme4's checks print any message on convergence, the gradient, the
# Hessian or its eigenvalues; on Contraception that is "Model is nearly unidentifiable: very
# large eigenvalue - Rescale variables?" (I(age^2) is in years squared), a scaling message at a
# fit a second optimiser does not improve, so read `messages` with the flag.
#
# Per fit: objective, minus2loglik, deviance, loglik, AIC, theta with lme4's names, terms in
# lme4's order (group, columns, levels, theta entries, 0-based place in the formula), fixed
# effects and standard errors (sqrt(diag(vcov))) and vcov, VarCorr per term (lme4's names,
# variances and covariances; standard deviations too), levels per factor, isSingular,
# `converged` (no convergence message from lme4's checks), lme4's warnings and messages as
# text (`said`), conditional modes and conditional sds per factor (ranef(condVar = TRUE)),
# the linear predictor, fitted mean (fitted(m), conditional on the modes) and the population
# mean with zero random effects (predict(re.form = NA, type = "response")) for a few rows,
# and lme4's default control: objective, warnings, convergence, and fit time (median of
# several system.time runs; tests/benchmarks/bench_glmer.py redoes the timing side by side).
#
# Made with R 4.2.2, lme4 1.1.31, Matrix 1.5.3, mlmRev 1.0.8, MASS 7.3.58.2, jsonlite (Debian
# r-base-core, r-cran-lme4, r-cran-mlmrev).
suppressPackageStartupMessages({
  library(lme4)
  library(jsonlite)
})

source(file.path("tests", "reference", "lme4_helpers.R"))   # safe, group_vars, terms_of, ranef_of

args <- commandArgs(trailingOnly = TRUE)
quick_time <- "--no-time" %in% args
out_dir <- file.path("tests", "data", "glmm")
dir.create(out_dir, showWarnings = FALSE, recursive = TRUE)
options(contrasts = c("contr.treatment", "contr.treatment"))
set.seed(1)                                                    # nothing random below; for safety

pkg <- function(p) as.character(packageVersion(p))
tight <- glmerControl(optimizer = c("bobyqa", "bobyqa"), optCtrl = list(rhoend = 1e-12, maxfun = 1e5), tolPwrss = 1e-12,
                      check.conv.singular = "ignore")
# A second optimiser for the check (nlminb fails on Contraception: PIRLS step halving).
tight_nm <- glmerControl(optimizer = c("bobyqa", "nloptwrap"), tolPwrss = 1e-12,
                         optCtrl = list(algorithm = "NLOPT_LN_NELDERMEAD", xtol_abs = 1e-12,
                                        ftol_abs = 1e-14, maxeval = 1e5),
                         check.conv.singular = "ignore")

# ---- the datasets ----
# Thall & Vail's epilepsy trial in the long form with the baseline as a period (Diggle, Heagerty,
# Liang & Zeger, Analysis of Longitudinal Data, 2nd ed., section 9.4): the baseline count covers
# 8 weeks, each of the four follow-up counts 2 weeks, so the rate model needs log(weeks) as offset.
epil_long <- local({
  e <- MASS::epil
  base <- e[e$period == 1, ]
  base$y <- base$base
  base$period <- 0L
  d <- rbind(base, e)
  d <- d[order(d$subject, d$period), ]
  data.frame(subject = factor(d$subject), y = d$y, trt = d$trt,
             post = as.integer(d$period > 0), weeks = ifelse(d$period > 0, 2, 8),
             log_weeks = log(ifelse(d$period > 0, 2, 8)), age = d$age)
})
contraception <- within(mlmRev::Contraception, {
  use <- as.integer(use == "Y")
  d11 <- as.integer(district == "11")   # for the bad-input case only (a fixed dummy of an all-0 group)
})
verbagg <- within(lme4::VerbAgg, {
  r2 <- as.integer(r2 == "Y")
  resp_no <- as.integer(resp == "no")   # for the bad-input case only: r2 is 1 - resp_no
})
guimmun <- within(mlmRev::guImmun, immun <- as.integer(immun == "Y"))
mmmec <- within(mlmRev::Mmmec, log_expected <- log(expected))
cbpp <- within(lme4::cbpp, log_size <- log(size))   # the exposure of the Poisson-rate case
grouse <- lme4::grouseticks

datasets <- list(
  cbpp = list(data = cbpp, file = "cbpp.csv",
    provenance = sprintf(paste("lme4::cbpp (lme4 %s; Lesnoff et al. 2004, Am. J. Vet. Res. 65:1095-1100):",
      "new serological cases of contagious bovine pleuropneumonia in 15 herds of zebu cattle in",
      "Ethiopia over 4 periods; incidence (successes) out of size (herd size at the start of the",
      "period); log_size = log(size), the offset of the Poisson-rate case; 56 rows"), pkg("lme4"))),
  contraception = list(data = contraception, file = "contraception.csv",
    provenance = sprintf(paste("mlmRev::Contraception (mlmRev %s; 1988 Bangladesh Fertility Survey,",
      "Huq & Cleland 1990): contraceptive use of 1,934 women in 60 districts; use coded 1 = Y;",
      "age centred as in mlmRev; districts 11 and 49 have no user; d11 = district is 11"), pkg("mlmRev")),
    extra = "d11"),
  verbagg = list(data = verbagg, file = "verbagg.csv",
    provenance = sprintf(paste("lme4::VerbAgg (lme4 %s; De Boeck & Wilson 2004, Explanatory Item",
      "Response Models): verbal aggression answers of 316 respondents x 24 items, crossed; r2 coded",
      "1 = Y (answer 'perhaps' or 'yes'); resp_no = answer 'no' (so r2 = 1 - resp_no); 7,584 rows"),
      pkg("lme4")), extra = "resp_no"),
  grouseticks = list(data = grouse, file = "grouseticks.csv",
    provenance = sprintf(paste("lme4::grouseticks (lme4 %s; Elston et al. 2001, Parasitology",
      "122:563-569): ticks counted on 403 red grouse chicks (INDEX) in 118 broods at 63 locations,",
      "1995-1997; cHEIGHT is altitude centred (as shipped); HEIGHT raw"), pkg("lme4"))),
  epil = list(data = epil_long, file = "epil.csv",
    provenance = sprintf(paste("MASS::epil (MASS %s; Thall & Vail 1990, Biometrics 46:657-671):",
      "seizure counts of 59 epileptics, made long as in Diggle et al. (2002, section 9.4): the",
      "8-week baseline count (MASS's `base`, period 0) and the four 2-week counts; weeks is the",
      "length of the period, log_weeks its log (the offset); post = period > 0; 295 rows"),
      pkg("MASS"))),
  mmmec = list(data = mmmec, file = "mmmec.csv",
    provenance = sprintf(paste("mlmRev::Mmmec (mlmRev %s; Langford, Bentham & McDonald 1998, Atlas of",
      "Cancer Mortality in the EC): malignant melanoma deaths of males in 354 counties of 78",
      "regions in 9 nations, expected deaths (offset log_expected) and UVB dose; nested"),
      pkg("mlmRev"))),
  guimmun = list(data = guimmun, file = "guimmun.csv",
    provenance = sprintf(paste("mlmRev::guImmun (mlmRev %s; Pebley, Goldman & Rodriguez 1996,",
      "Demography 33:231-247; 1987 Guatemalan Survey of Family Health): complete immunisation of",
      "2,159 children of 1,595 mothers in 161 communities, nested; immun coded 1 = Y"), pkg("mlmRev")))
)

# family: "binomial" or "poisson"; response: the response as written in the formula.
case <- function(name, dataset, response, fixed, random, family, link, note, nAGQ = 1L,
                 offset = NULL, kind = c("bernoulli", "trials", "count"), trials = NULL,
                 rows = c(1L, 2L, 3L, 10L, 50L), equivalent = NULL)
  list(name = name, dataset = dataset, response = response, fixed = fixed, random = random,
       family = family, link = link, note = note, nAGQ = nAGQ, offset = offset,
       kind = match.arg(kind), trials = trials, rows = rows, equivalent = equivalent)
cases <- list(
  case("cbpp", "cbpp", "cbind(incidence, size - incidence)", "period", "(1 | herd)", "binomial", "logit",
       "binomial with trials; lme4's glmer example", kind = "trials", trials = "size"),
  case("cbpp_agq9", "cbpp", "cbind(incidence, size - incidence)", "period", "(1 | herd)", "binomial", "logit",
       "adaptive Gauss-Hermite quadrature, 9 nodes", nAGQ = 9L, kind = "trials", trials = "size"),
  case("cbpp_agq25", "cbpp", "cbind(incidence, size - incidence)", "period", "(1 | herd)", "binomial", "logit",
       "adaptive Gauss-Hermite quadrature, 25 nodes (lme4's maximum)", nAGQ = 25L, kind = "trials", trials = "size"),
  case("cbpp_probit", "cbpp", "cbind(incidence, size - incidence)", "period", "(1 | herd)", "binomial", "probit",
       "probit link, binomial with trials", kind = "trials", trials = "size"),
  case("cbpp_poisson_offset", "cbpp", "incidence", "period", "(1 | herd)", "poisson", "log",
       "new cases per animal at risk: Poisson with an offset (log herd size)", offset = "log_size",
       kind = "count"),
  case("contraception", "contraception", "use", "age + I(age^2) + urban + livch", "(1 | district)",
       "binomial", "logit", "Bernoulli; two districts have no user (outcomes all 0)"),
  case("contraception_agq9", "contraception", "use", "age + I(age^2) + urban + livch", "(1 | district)",
       "binomial", "logit", "Bernoulli with adaptive Gauss-Hermite quadrature, 9 nodes", nAGQ = 9L),
  case("contraception_slope", "contraception", "use", "age + I(age^2) + urban + livch", "(1 + urbanY | district)",
       "binomial", "logit", "Bernoulli with a correlated random slope of urban (urban | district)",
       equivalent = "use ~ age + I(age^2) + urban + livch + (urban | district)"),
  case("contraception_probit", "contraception", "use", "age + I(age^2) + urban + livch", "(1 | district)",
       "binomial", "probit", "Bernoulli, probit link"),
  case("verbagg", "verbagg", "r2", "Anger + Gender + btype + situ", "(1 | id) + (1 | item)",
       "binomial", "logit", "Bernoulli, respondents x items crossed (lme4's glmer example)"),
  case("grouseticks", "grouseticks", "TICKS", "YEAR + cHEIGHT", "(1 | BROOD) + (1 | INDEX) + (1 | LOCATION)",
       "poisson", "log", paste("Poisson, three factors, one level per observation for INDEX (an",
       "observation-level random effect); altitude centred; a stress case for the convergence checks"),
       kind = "count"),
  case("grouseticks_raw", "grouseticks", "TICKS", "YEAR + HEIGHT", "(1 | BROOD) + (1 | INDEX) + (1 | LOCATION)",
       "poisson", "log", paste("as grouseticks but with raw altitude (400-530 m), as in lme4's ?grouseticks",
       "example: lme4 warns about the scale of the predictors and the gradient"), kind = "count"),
  case("epil", "epil", "y", "post * trt", "(1 | subject)", "poisson", "log",
       "Poisson with an offset (log of the period's weeks): rate ratio after vs before treatment",
       offset = "log_weeks", kind = "count"),
  case("epil_agq9", "epil", "y", "post * trt", "(1 | subject)", "poisson", "log",
       "Poisson with an offset, adaptive Gauss-Hermite quadrature, 9 nodes",
       nAGQ = 9L, offset = "log_weeks", kind = "count"),
  case("epil_slope", "epil", "y", "post * trt", "(1 + post | subject)", "poisson", "log",
       "Poisson with an offset and a correlated random slope of post (Diggle et al. 2002, 9.4)",
       offset = "log_weeks", kind = "count"),
  case("mmmec", "mmmec", "deaths", "uvb", "(1 | region) + (1 | nation)", "poisson", "log",
       "Poisson with an offset (log expected deaths), regions nested in nations (labels unique)",
       offset = "log_expected", kind = "count"),
  case("guimmun", "guimmun", "immun", "kid2p + mom25p + ord + ethn + momEd + husEd + momWork + rural + pcInd81",
       "(1 | mom) + (1 | comm)", "binomial", "logit",
       "Bernoulli, children within mothers within communities; most mothers have 1-2 children")
)
only <- sub("^--only=", "", grep("^--only=", args, value = TRUE))
if (length(only)) cases <- Filter(function(cs) cs$name %in% strsplit(only, ",")[[1]], cases)

fam <- function(cs) if (cs$family == "binomial") binomial(link = cs$link) else poisson(link = cs$link)

design <- function(cs, d) {
  ff <- as.formula(paste("~", cs$fixed))
  mm <- model.matrix(ff, d)
  cols <- setdiff(colnames(mm), "(Intercept)")
  num <- as.data.frame(mm[, cols, drop = FALSE])
  names(num) <- safe(cols)
  fixed_num <- if (length(cols)) paste(safe(cols), collapse = " + ") else "1"
  off <- if (is.null(cs$offset)) "" else sprintf(" + offset(%s)", cs$offset)
  factors <- Filter(function(v) is.factor(d[[v]]), all.vars(ff))
  levels_of <- setNames(lapply(factors, function(v) I(levels(d[[v]]))), factors)
  list(num = num, cols = cols,
       formula = sprintf("%s ~ %s + %s%s", cs$response, fixed_num, cs$random, off),
       formula_factor = sprintf("%s ~ %s + %s%s", cs$response, cs$fixed, cs$random, off),
       formula_no_offset = sprintf("%s ~ %s + %s", cs$response, fixed_num, cs$random),
       factors = factors, levels = levels_of,
       fixed_names = setNames(as.list(c("(Intercept)", safe(cols))), c("(Intercept)", cols)))
}

response_vars <- function(cs) all.vars(as.formula(paste(cs$response, "~ 1")))
# Slope covariates of the random part that are not grouping factors (e.g. urbanY, post).
slope_vars <- function(cs) setdiff(all.vars(as.formula(paste("~", cs$random))), group_vars(cs$random))

read_case <- function(cs, ds) {
  path <- file.path(out_dir, datasets[[cs$dataset]]$file)
  chr <- unique(c(group_vars(cs$random), ds$factors))
  hdr <- names(read.csv(path, nrows = 1, check.names = FALSE))
  d <- read.csv(path, stringsAsFactors = FALSE, check.names = FALSE,
                colClasses = ifelse(hdr %in% chr, "character", NA))
  for (v in ds$factors) d[[v]] <- factor(d[[v]], levels = ds$levels[[v]])
  d
}

said_of <- function(expr) {
  said <- character(0)
  val <- withCallingHandlers(tryCatch(expr, error = function(e) e),
    warning = function(w) { said <<- c(said, conditionMessage(w)); invokeRestart("muffleWarning") },
    message = function(w) { said <<- c(said, trimws(conditionMessage(w))); invokeRestart("muffleMessage") })
  list(m = val, said = said)
}
fit_logged <- function(f, d, cs, control, nAGQ = cs$nAGQ, ...)
  said_of(glmer(f, data = d, family = fam(cs), nAGQ = nAGQ, control = control, ...))

objective <- function(m) unname(m@devcomp$cmp[["dev"]])
conv_msgs <- function(m) as.character(unlist(m@optinfo$conv$lme4$messages))
converged_of <- function(m) !any(grepl("converge|Hessian|eigenvalue", conv_msgs(m)))

varcorr_of <- function(m) {
  vc <- VarCorr(m)
  lapply(vc, function(v) list(columns = I(colnames(v)), cov = unname(matrix(as.numeric(v), nrow(v))),
                              sd = I(unname(attr(v, "stddev")))))
}

# The log-likelihood of the saturated model (each mean equal to its observation): lme4's
# objective for nAGQ > 1 is -2 (logLik - saturated) (it sums deviance residuals), for nAGQ = 1
# it is -2 logLik with the constants; objective - 2 * saturated makes AGQ comparable to Laplace.
saturated_of <- function(m) {
  y <- m@resp$y
  w <- m@resp$weights
  if (family(m)$family == "binomial") sum(dbinom(round(y * w), round(w), y, log = TRUE))
  else sum(dpois(y, y, log = TRUE))
}

summary_of <- function(m, rows) {
  nagq <- m@devcomp$dims[["nAGQ"]]
  list(
    objective = objective(m),
    saturated_loglik = saturated_of(m),
    minus2loglik_with_constants = objective(m) - if (nagq > 1) 2 * saturated_of(m) else 0,
    minus2loglik = -2 * as.numeric(logLik(m)),
    deviance = unname(deviance(m)),
    loglik = as.numeric(logLik(m)),
    aic = AIC(m),
    df = attr(logLik(m), "df"),
    theta = as.list(getME(m, "theta")),
    terms = terms_of(m),
    fixef = as.list(fixef(m)),
    se = as.list(sqrt(diag(as.matrix(vcov(m))))),
    vcov = unname(as.matrix(vcov(m))),
    varcorr = varcorr_of(m),
    n_levels = as.list(ngrps(m)),
    singular = isSingular(m),
    converged = converged_of(m),
    messages = I(conv_msgs(m)),
    optimizer_code = m@optinfo$conv$opt,
    feval = m@optinfo$feval,
    ranef = ranef_of(m),
    rows = I(rows - 1L),
    eta = I(unname(predict(m)[rows])),
    fitted = I(unname(fitted(m)[rows])),
    fitted_population = I(unname(predict(m, re.form = NA, type = "response")[rows])))
}

# The standard errors a second way: lme4's vcov() inverts a finite-difference Hessian of the
# deviance in (theta, beta) taken by its deriv12() (step 1e-4, PIRLS restarted from the last
# modes), which on some fits is off in the third significant digit (grouseticks: the cHEIGHT
# SE 0.003490, where central differences at any step from 3e-4 to 1e-2 give 0.003439). Here
# the Hessian is recomputed by plain central differences (4 points per entry, step h = 1e-3)
# on glmer's own deviance function at the reference optimum.
se_fd_of <- function(m, f, d, cs, h = 1e-3) {
  dd <- glmer(f, data = d, family = fam(cs), nAGQ = cs$nAGQ, control = tight, devFunOnly = TRUE)
  k <- length(getME(m, "theta"))
  x <- c(getME(m, "theta"), fixef(m))
  if (any(x[seq_len(k)][getME(m, "lower") == 0] < 2 * h)) return(NULL)   # a variance at the boundary
  p <- length(x)
  H <- matrix(0, p, p)
  for (i in seq_len(p)) for (j in i:p) {
    ei <- replace(numeric(p), i, h)
    ej <- replace(numeric(p), j, h)
    H[i, j] <- H[j, i] <- (dd(x + ei + ej) - dd(x + ei - ej) - dd(x - ei + ej) + dd(x - ei - ej)) / (4 * h^2)
  }
  list(h = h, method = "2 * solve(H), H by central differences of glmer's devFunOnly at the optimum",
       se = as.list(setNames(sqrt(diag(2 * solve(H)))[-seq_len(k)], names(fixef(m)))))
}

time_fit <- function(f, d, cs, control, reps) {
  t <- replicate(reps, system.time(suppressWarnings(suppressMessages(
    glmer(f, data = d, family = fam(cs), nAGQ = cs$nAGQ, control = control))))[["elapsed"]])
  list(median = median(t), runs = I(t))
}

# ---- bad inputs: what glmer does with them (mixcv must refuse or warn, naming the cause) ----
drop_null <- function(x) Filter(Negate(is.null), x)   # jsonlite writes NULL as {}
bad_case <- function(name, dataset, formula, family, note, rows = NULL) {
  cs <- list(family = family$family, link = family$link, nAGQ = 1L)
  d <- read.csv(file.path(out_dir, datasets[[dataset]]$file), stringsAsFactors = FALSE, check.names = FALSE)
  for (g in group_vars(sub("^[^~]*~", "", formula))) d[[g]] <- as.character(d[[g]])
  if (!is.null(rows)) d <- d[rows, ]
  r <- fit_logged(as.formula(formula), d, cs, tight)
  d_def <- fit_logged(as.formula(formula), d, cs, glmerControl())
  base <- drop_null(list(dataset = dataset, csv = file.path(out_dir, datasets[[dataset]]$file), formula = formula,
               family = family$family, link = family$link, note = note,
               rows = if (is.null(rows)) NULL else I(rows - 1L), n = nrow(d),
               said = I(r$said), default_said = I(d_def$said)))
  if (inherits(r$m, "error")) return(c(base, list(error = conditionMessage(r$m))))
  m <- r$m
  v <- said_of(as.matrix(vcov(m)))   # lme4 warns here when the Hessian is not positive definite
  c(base, drop_null(list(objective = objective(m), fixef = as.list(fixef(m)),
               se = as.list(sqrt(diag(v$m))), vcov_said = I(v$said), theta = as.list(getME(m, "theta")),
               converged = converged_of(m), messages = I(conv_msgs(m)), singular = isSingular(m),
               default_objective = if (inherits(d_def$m, "error")) NULL else objective(d_def$m),
               default_fixef = if (inherits(d_def$m, "error")) NULL else as.list(fixef(d_def$m)))))
}
bad_inputs <- function() {
  ct <- read.csv(file.path(out_dir, "contraception.csv"), stringsAsFactors = FALSE)
  list(
    complete_separation = bad_case("complete_separation", "verbagg", "r2 ~ Anger + resp_no + (1 | item)",
      binomial(), paste("complete separation from real data: the predictor resp_no is the answer 'no',",
      "and r2 is 1 exactly when the answer is not 'no' (the outcome leaked into the predictors)")),
    quasi_separation_all_zero_group = bad_case("quasi_separation_all_zero_group", "contraception",
      "use ~ age + urbanY + d11 + (1 | district)", binomial(), paste("quasi-complete separation:",
      "a fixed dummy for district 11, whose 21 women all have use = 0; its coefficient has no finite",
      "maximum-likelihood value")),
    all_zero_outcome = bad_case("all_zero_outcome", "contraception", "use ~ age + (1 | district)",
      binomial(), "the rows of districts 11 and 49 only: every outcome is 0",
      rows = which(as.character(ct$district) %in% c("11", "49"))),
    all_zero_groups_in_a_fit = if (is.null(models$contraception)) NULL else {
      re <- ranef(models$contraception, condVar = TRUE)$district
      sds <- sqrt(attr(re, "postVar")[1, 1, ])
      k <- match(c("11", "49"), rownames(re))
      list(case = "contraception", group = "district", levels = I(c("11", "49")),
           n_rows = I(as.integer(table(ct$district)[c("11", "49")])),
           modes = I(re[k, 1]), sds = I(sds[k]),
           note = paste("districts whose outcomes are all 0 inside an ordinary fit: glmer gives them",
                        "finite, shrunken modes (no warning); a random intercept is not separated"))
    }) |> drop_null()
}

# ---- population-averaged means for new groups, by numerical integration ----
# For a row with fixed linear predictor eta (offset included) and a new level of every grouping
# factor, the random part z'b is N(0, v) with v = sum over factors of z_f' Sigma_f z_f, and the
# mean is  E[g^-1(eta + z'b)] = integral of g^-1(eta + s) dnorm(s, 0, sqrt(v)) ds.
# `integrate` (adaptive Gauss-Kronrod, QUADPACK) on the real line, independently of Gauss-Hermite;
# closed forms where they exist (log link: exp(eta + v/2); probit: pnorm(eta / sqrt(1 + v))).
marginal_means <- function() {
  out <- list()
  for (nm in intersect(c("cbpp", "cbpp_probit", "cbpp_poisson_offset", "contraception", "contraception_slope",
                         "contraception_probit", "verbagg", "epil", "epil_slope", "grouseticks", "mmmec",
                         "guimmun"), names(models))) {
    m <- models[[nm]]
    cs <- Filter(function(x) x$name == nm, cases)[[1]]
    X <- getME(m, "X")
    rows <- unique(c(cs$rows[cs$rows <= nrow(X)], nrow(X)))
    eta <- as.vector(X[rows, , drop = FALSE] %*% fixef(m)) + m@resp$offset[rows]
    vc <- VarCorr(m)
    fr <- model.frame(m)
    v <- vapply(seq_along(rows), function(i) {
      sum(vapply(names(vc), function(g) {
        S <- as.matrix(vc[[g]])
        z <- vapply(colnames(S), function(cn) if (cn == "(Intercept)") 1 else as.numeric(fr[rows[i], cn]), 0)
        as.numeric(t(z) %*% S %*% z)
      }, 0))
    }, 0)
    linkinv <- family(m)$linkinv
    # Finite limits: exp(s) * dnorm(s) is Inf * 0 far out. The integrand's mass lies within 15 sd
    # of its peak (0 for bounded links, s2 for the log link: exp(s) tilts the normal to N(s2, s2)).
    mean_of <- function(e, s2) {
      peak <- if (cs$link == "log") s2 else 0
      integrate(function(s) linkinv(e + s) * dnorm(s, 0, sqrt(s2)), peak - 15 * sqrt(s2), peak + 15 * sqrt(s2),
                rel.tol = 1e-12, abs.tol = 0, subdivisions = 1000L)$value
    }
    marg <- mapply(mean_of, eta, v)
    closed <- switch(cs$link, log = exp(eta + v / 2), probit = pnorm(eta / sqrt(1 + v)), NULL)
    if (!is.null(closed)) stopifnot(max(abs(marg / closed - 1)) < 1e-8)
    out[[nm]] <- drop_null(list(case = nm, link = cs$link, rows = I(rows - 1L), eta = I(eta),
                      random_variance = I(v), plug_in = I(linkinv(eta)), marginal = I(marg),
                      closed_form = if (is.null(closed)) NULL else I(closed),
                      method = paste("integrate(linkinv(eta + s) * dnorm(s, 0, sqrt(v)), peak - 15 sd, peak + 15 sd,",
                                     "rel.tol = 1e-12), peak v for the log link, 0 otherwise; eta = X beta + offset of the CSV row, every",
                                     "grouping factor at a new level (v sums their z' Sigma z)")))
  }
  out
}

# ---- the datasets' CSVs: the union of the columns their cases use ----
frames <- list()
for (cs in cases) {
  d <- datasets[[cs$dataset]]$data
  ds <- design(cs, d)
  keep <- unique(c(response_vars(cs), cs$offset, ds$factors, group_vars(cs$random)))
  cols <- cbind(d[, keep, drop = FALSE], ds$num)
  extra <- setdiff(slope_vars(cs), names(cols))
  if (length(extra)) cols <- cbind(cols, ds$num[, extra, drop = FALSE])
  if (length(datasets[[cs$dataset]]$extra)) cols <- cbind(cols, d[, datasets[[cs$dataset]]$extra, drop = FALSE])
  cols <- cols[, !duplicated(names(cols)), drop = FALSE]
  prev <- frames[[cs$dataset]]
  frames[[cs$dataset]] <- if (is.null(prev)) cols else cbind(prev, cols[, setdiff(names(cols), names(prev)), drop = FALSE])
}
for (nm in names(frames)) {
  d <- frames[[nm]]
  for (v in names(d)) if (is.factor(d[[v]])) d[[v]] <- as.character(d[[v]])
  rownames(d) <- NULL
  write.csv(d, file.path(out_dir, datasets[[nm]]$file), row.names = FALSE)
}

# ---- where each CSV comes from, next to it ----
extraction <- paste(
  "Each CSV holds the rows of the R dataset in R's order and the columns its models use: the",
  "response (0/1 for a Bernoulli outcome, successes and trials for a binomial with trials, counts",
  "for Poisson), the raw factors of the fixed part and the grouping factors as text labels, the",
  "offset column where a model has one, and the fixed-effect columns as `model.matrix` codes them",
  "(treatment contrasts, first level the baseline; every character of a column name that is not a",
  "letter, digit or `_` made `_`, so `I(age^2)` is `I_age_2_`). Written with `write.csv(row.names",
  "= FALSE)` by `Rscript tests/reference/glmer_battery.R` (run from the repository root), which",
  "also writes `glmer_battery.json` (lme4's `glmer` fits of these data) and this file.")
prov <- c("# Provenance of the glmm reference data", "",
          "Generated by `tests/reference/glmer_battery.R`; do not edit by hand.", "",
          strwrap(extraction, 100), "",
          sprintf("Made with %s; lme4 %s, Matrix %s, mlmRev %s, MASS %s, jsonlite %s.", R.version.string, pkg("lme4"),
                  pkg("Matrix"), pkg("mlmRev"), pkg("MASS"), pkg("jsonlite")), "")
for (nm in names(frames)) {
  d <- frames[[nm]]
  prov <- c(prov, sprintf("## `%s`", datasets[[nm]]$file), "",
            strwrap(sprintf("%s. The CSV: %d rows; columns %s.", datasets[[nm]]$provenance, nrow(d),
                            paste0("`", names(d), "`", collapse = ", ")), 100), "")
}
writeLines(prov, file.path(out_dir, "PROVENANCE.md"))

# ---- the fits ----
results <- list()
models <- list()
for (cs in cases) {
  ds <- design(cs, datasets[[cs$dataset]]$data)
  d <- read_case(cs, ds)
  f <- as.formula(ds$formula)
  entry <- drop_null(list(dataset = cs$dataset, csv = file.path(out_dir, datasets[[cs$dataset]]$file),
                provenance = datasets[[cs$dataset]]$provenance, note = cs$note,
                formula = ds$formula, formula_factor = ds$formula_factor,
                formula_no_offset = ds$formula_no_offset,
                family = cs$family, link = cs$link, nAGQ = cs$nAGQ,
                response = drop_null(list(kind = cs$kind, formula = cs$response,
                                          columns = I(response_vars(cs)), trials = cs$trials)),
                offset = cs$offset, factor_levels = ds$levels, fixed_names = ds$fixed_names,
                group_columns = I(group_vars(cs$random)), n = nrow(d),
                formula_terms = I(trimws(strsplit(cs$random, "\\+")[[1]]))))
  reps <- if (quick_time) 1 else if (nrow(d) > 2000) 3 else 5
  t0 <- proc.time()[["elapsed"]]
  tf <- fit_logged(f, d, cs, tight)
  tight_time <- proc.time()[["elapsed"]] - t0
  if (inherits(tf$m, "error")) stop(cs$name, ": ", conditionMessage(tf$m))
  rows <- cs$rows[cs$rows <= nrow(d)]
  s <- summary_of(tf$m, rows)
  s$said <- I(tf$said)
  s$time_tight <- tight_time
  s$se_fd <- se_fd_of(tf$m, f, d, cs)
  # The same model through R's factors; the offset given as glmer's argument.
  ff <- fit_logged(as.formula(ds$formula_factor), d, cs, tight)$m
  stopifnot(abs(objective(ff) - s$objective) < 1e-6 * abs(s$objective))
  s$fixef_factor <- as.list(fixef(ff))
  if (!is.null(cs$offset)) {
    # glmer evaluates `offset` in the data's frame, so the column is named, not passed through `...`.
    fo <- said_of(eval(substitute(glmer(f0, data = d, family = fam(cs), nAGQ = cs$nAGQ, control = tight,
                                        offset = OFF), list(f0 = as.formula(ds$formula_no_offset),
                                                            OFF = as.name(cs$offset)))))$m
    stopifnot(abs(objective(fo) - s$objective) < 1e-6 * abs(s$objective))
  }
  nl <- fit_logged(f, d, cs, tight_nm)
  s$check_second <- if (inherits(nl$m, "error")) list(error = conditionMessage(nl$m)) else
    list(objective_minus_reference = objective(nl$m) - s$objective,
         max_abs_fixef_difference = max(abs(fixef(nl$m) - fixef(tf$m))),
         max_abs_theta_difference = max(abs(getME(nl$m, "theta") - getME(tf$m, "theta"))))
  df <- fit_logged(f, d, cs, glmerControl())
  s$default <- list(optimizer = I(df$m@optinfo$optimizer), objective = objective(df$m),
                    said = I(df$said), messages = I(conv_msgs(df$m)),
                    converged = converged_of(df$m), singular = isSingular(df$m),
                    fixef = as.list(fixef(df$m)), theta = as.list(getME(df$m, "theta")),
                    time = time_fit(f, d, cs, glmerControl(), reps))
  entry$fit <- s
  if (length(cs$equivalent)) {
    entry$equivalent_formulas <- I(cs$equivalent)
    for (e in cs$equivalent)
      stopifnot(abs(objective(fit_logged(as.formula(e), d, cs, tight)$m) - s$objective) < 1e-6 * abs(s$objective))
  }
  results[[cs$name]] <- entry
  models[[cs$name]] <- tf$m
  cat(sprintf("%-22s n=%5d nAGQ=%2d  objective %.8f  deviance %.6f  singular %-5s conv %-5s  default %+.2e %-9s  second %+.2e  time default %.3fs tight %.3fs\n",
              cs$name, nrow(d), cs$nAGQ, s$objective, s$deviance, s$singular, s$converged,
              s$default$objective - s$objective, if (s$default$converged) "converged" else "NOT conv.",
              if (is.null(s$check_second$objective_minus_reference)) NA else s$check_second$objective_minus_reference,
              s$default$time$median, tight_time))
  for (w in unique(c(tf$said, df$said))) cat("    lme4 said:", w, "\n")
}

meta <- list(r = R.version.string, lme4 = pkg("lme4"), Matrix = pkg("Matrix"), mlmRev = pkg("mlmRev"),
             MASS = pkg("MASS"), jsonlite = pkg("jsonlite"),
             optimizer = "glmerControl(optimizer = c('bobyqa', 'bobyqa'), optCtrl = list(rhoend = 1e-12, maxfun = 1e5), tolPwrss = 1e-12)",
             default_control = "glmerControl() defaults (bobyqa then Nelder_Mead in lme4 1.1-31)",
             deviances = paste("objective = m@devcomp$cmp['dev'] (the Laplace/AGQ criterion) = -2 logLik;",
                               "deviance = deviance(m), the sum of squared deviance residuals at the modes"),
             term_order = "theta, terms and varcorr in lme4's order (mkReTrms), as in lme4_multi.json",
             row_indices = "0-based rows of the case's CSV",
             contrasts = "treatment for unordered and ordered factors (options(contrasts))",
             machine = paste(Sys.info()[["sysname"]], Sys.info()[["machine"]], parallel::detectCores(), "cores"),
             timing = if (quick_time) "one run per fit (--no-time)" else "median of 3 (n > 2,000) or 5 system.time runs",
             script = "tests/reference/glmer_battery.R")
out <- list(meta = meta, cases = results)
if (!length(only) || "--extras" %in% args) {
  out$bad_inputs <- bad_inputs()
  out$marginal <- marginal_means()
}
json_path <- file.path(out_dir, if (length(only)) "glmer_battery_partial.json" else "glmer_battery.json")
write_json(out, json_path, digits = NA, auto_unbox = TRUE, pretty = TRUE)
cat("wrote", json_path, "\n")
