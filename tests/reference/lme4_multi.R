# Reference values for mixcv's mixed models with several random-effect terms (issue 25): crossed,
# nested and partially crossed grouping factors, random slopes next to other factors, fitted by
# lme4 on real datasets from R packages.
#
#   Rscript tests/reference/lme4_multi.R            (from the repository root; ~10 minutes,
#                                                    most of it timing lme4 on InstEval)
#   Rscript tests/reference/lme4_multi.R --no-time  (one timing run per fit: for a quick check)
#   Rscript tests/reference/lme4_multi.R --only=a,b (refit cases a and b in the existing JSON)
#
# Writes
#   tests/data/lmm_multi/<dataset>.csv[.gz]  the rows and columns the models use: the response,
#       the fixed-effect columns as R codes them (treatment contrasts, first level as baseline,
#       named by model.matrix with every character that is not a letter, digit or "_" made "_"),
#       the raw factors of the fixed part and the grouping factors as character labels, and the
#       slope covariates. Big datasets are gzipped (pandas reads them by the suffix).
#   tests/data/lmm_multi/lme4_multi.json     per case, by REML and ML, lme4's fit (see below).
#
# The reference fit is lme4 with a tight optimiser (bobyqa, rhoend 1e-12, maxfun 1e5), as in
# tests/reference/lme4_battery.R, on `formula` (the numeric columns, so Python reads exactly
# the design lme4 fitted). `formula_factor` is the same model written with R's factors; R fits
# it too and the script stops if its criterion differs (so a formula parser can be tested on
# it: the factor levels in R's order, i.e. the baseline, are in `factor_levels`). Where lme4
# accepts other spellings of the same model (`a/b`, `||`), they are in `equivalent_formulas`,
# each checked here to give the same criterion.
#
# Per fit: criterion (REMLcrit for REML, deviance for ML), logLik, theta with lme4's names,
# the terms in lme4's order with their columns, levels and theta entries, fixed effects, their
# standard errors and covariance, sigma^2, VarCorr per term (names exactly as lme4 gives them,
# e.g. "cask:batch", and "Subject.1" for a second term on Subject), the number of levels per
# grouping factor, whether the fit is singular, and for datasets of at most 10,000 rows the
# conditional modes and conditional sds (ranef(condVar = TRUE)) per grouping factor.
# ORDER: theta, `terms` and VarCorr are in lme4's order. lme4 (mkReTrms) first expands the
# formula's terms (findbars: `(1 | a/b)` becomes `(1 | b:a)`, `(1 | a)`, in that order); if
# any term then has more levels than the one before it, it reorders them by rev(order(levels)):
# decreasing numbers of levels, ties in REVERSE expanded order; otherwise it keeps them. Each
# entry of `terms` gives its 0-based place in the expanded formula (`formula_index`).
#
# lme4's default optimiser (nloptwrap in lme4 1.1-31) is also run: its criterion, its
# convergence messages and warnings, whether it found a singular fit, and its fit time
# (median of several system.time runs: the lme4 side of tests/benchmarks/bench_lmer_multi.py
# redoes the timing next to mixcv; the figures here are what this script measured).
#
# Per-fold references (`folds`): lme4 fitted by REML on the training rows of fixed folds made
# here deterministically (levels dealt to folds in order of first appearance; row indices are
# 0-based rows of the CSV), with each fold's estimates and predict(m, newdata, allow.new.levels
# = TRUE) on the held-out rows (a new level gets zero for its factor, a known one its BLUP).
#
# Made with R 4.2.2, lme4 1.1.31, nlme 3.1.162, mlmRev 1.0.8, lmerTest 3.1.3 (Debian r-base-core,
# r-cran-lme4, r-cran-mlmrev, r-cran-lmertest).
suppressPackageStartupMessages({
  library(lme4)
  library(jsonlite)
})

source(file.path("tests", "reference", "lme4_helpers.R"))   # safe, group_vars, terms_of, ranef_of

args <- commandArgs(trailingOnly = TRUE)
quick_time <- "--no-time" %in% args
out_dir <- file.path("tests", "data", "lmm_multi")
dir.create(out_dir, showWarnings = FALSE, recursive = TRUE)
options(contrasts = c("contr.treatment", "contr.treatment"))   # ordered factors too: as formulaic
set.seed(1)                                                    # nothing random below; for safety

tight <- lmerControl(optimizer = "bobyqa", optCtrl = list(rhoend = 1e-12, maxfun = 1e5),
                     check.conv.singular = "ignore")

pkg <- function(p) as.character(packageVersion(p))

# ---- the datasets, each as a data frame with factors; columns are chosen per case below ----
datasets <- list(
  penicillin = list(data = lme4::Penicillin, file = "penicillin.csv",
    provenance = sprintf(paste("lme4::Penicillin (lme4 %s; Davies & Goldsmith 1972, Statistical Methods",
      "in Research and Production): diameter of growth-inhibition zones, 24 plates x 6 penicillin",
      "samples, fully crossed, 144 rows"), pkg("lme4"))),
  pastes = list(data = lme4::Pastes, file = "pastes.csv",
    provenance = sprintf(paste("lme4::Pastes (lme4 %s; Davies & Goldsmith 1972): paste strength, 10",
      "batches, 3 casks per batch (cask labels a-c repeat in every batch), 2 assays per cask, 60 rows"),
      pkg("lme4"))),
  insteval = list(data = lme4::InstEval, file = "insteval.csv.gz",
    provenance = sprintf(paste("lme4::InstEval (lme4 %s; ETH Zurich lecture evaluations 1999-2003):",
      "73,421 ratings, 2,972 students x 1,128 lecturers x 14 departments, crossed"), pkg("lme4"))),
  sleepstudy = list(data = lme4::sleepstudy, file = "sleepstudy.csv",
    provenance = sprintf(paste("lme4::sleepstudy (lme4 %s; Belenky et al. 2003, J. Sleep Res. 12:1-12):",
      "reaction times of 18 subjects over 10 days of sleep restriction, 180 rows"), pkg("lme4"))),
  scotssec = list(data = mlmRev::ScotsSec, file = "scotssec.csv",
    provenance = sprintf(paste("mlmRev::ScotsSec (mlmRev %s; Paterson 1991, via Goldstein, Multilevel",
      "Statistical Models): attainment of 3,435 Scottish pupils, 148 primary x 19 secondary schools,",
      "partially crossed"), pkg("mlmRev"))),
  machines = list(data = as.data.frame(nlme::Machines), file = "machines.csv",
    provenance = sprintf(paste("nlme::Machines (nlme %s; Milliken & Johnson 1992, Analysis of Messy",
      "Data): productivity scores of 6 workers on 3 machines, 3 repeats, 54 rows"), pkg("nlme"))),
  oats = list(data = as.data.frame(nlme::Oats), file = "oats.csv",
    provenance = sprintf(paste("nlme::Oats (nlme %s; Yates 1935): split-plot yield of 3 oat varieties",
      "in 6 blocks at 4 nitrogen levels, 72 rows"), pkg("nlme"))),
  cake = list(data = lme4::cake, file = "cake.csv",
    provenance = sprintf(paste("lme4::cake (lme4 %s; Cook 1938): breaking angle of chocolate cakes,",
      "3 recipes x 15 replicates (replicate labels 1-15 repeat in every recipe) x 6 temperatures,",
      "270 rows; temperature as an unordered factor (treatment contrasts)"), pkg("lme4"))),
  carrots = list(data = lmerTest::carrots[!is.na(lmerTest::carrots$Preference), ], file = "carrots.csv",
    provenance = sprintf(paste("lmerTest::carrots (lmerTest %s; Kuznetsova et al. 2017, J. Stat. Softw.",
      "82(13); Danish consumer study): preference of 103 consumers x 12 carrot products, crossed,",
      "1,233 rows (3 without a preference dropped)"), pkg("lmerTest"))),
  egsingle = list(data = mlmRev::egsingle, file = "egsingle.csv",
    provenance = sprintf(paste("mlmRev::egsingle (mlmRev %s; Chicago Public Schools via HLM 6,",
      "Raudenbush & Bryk 2002): mathematics scores of 1,721 pupils in 60 schools over up to 6",
      "years, nested, 7,230 rows"), pkg("mlmRev"))),
  star = list(data = mlmRev::star[!is.na(mlmRev::star$math), ], file = "star.csv.gz",
    provenance = sprintf(paste("mlmRev::star (mlmRev %s; Tennessee STAR class-size experiment, Word et",
      "al. 1990): mathematics scores of 10,767 pupils taught by 1,374 teachers in 80 schools over",
      "grades K-3 (rows with a score: 24,613), partially crossed"), pkg("mlmRev")))
)
datasets$cake$data$temperature <- factor(as.character(datasets$cake$data$temperature))

# ---- the cases: response, fixed part (R's factors), random part, spellings lme4 also takes ----
case <- function(name, dataset, response, fixed, random, note, equivalent = character(0),
                 reml = c(TRUE, FALSE))
  list(name = name, dataset = dataset, response = response, fixed = fixed, random = random,
       note = note, equivalent = equivalent, reml = reml)
cases <- list(
  case("penicillin", "penicillin", "diameter", "1", "(1 | plate) + (1 | sample)",
       "crossed: every plate with every sample"),
  case("pastes_nested", "pastes", "strength", "1", "(1 | batch/cask)",
       "nested: cask within batch, written a/b", c("strength ~ 1 + (1 | batch) + (1 | batch:cask)")),
  case("pastes_crossed", "pastes", "strength", "1", "(1 | batch) + (1 | cask)",
       "the nesting trap: cask labels a-c repeat in every batch, so (1 | cask) treats 30 casks as 3"),
  case("insteval", "insteval", "y", "service", "(1 | s) + (1 | d) + (1 | dept)",
       "large crossed: students x lecturers, plus departments"),
  case("sleepstudy_uncorrelated", "sleepstudy", "Reaction", "Days", "(1 | Subject) + (0 + Days | Subject)",
       "two terms on one factor: uncorrelated intercept and slope", c("Reaction ~ Days + (Days || Subject)")),
  case("scotssec", "scotssec", "attain", "verbal + sex", "(1 | primary) + (1 | second)",
       "partially crossed: pupils of a primary school go to several secondary schools"),
  case("scotssec_slope", "scotssec", "attain", "verbal + sex", "(1 + verbal | primary) + (1 | second)",
       "partially crossed with a random slope; singular: the slope's variance is nearly zero and the correlation at -1"),
  case("machines", "machines", "score", "Machine", "(1 | Worker) + (1 | Worker:Machine)",
       "nested: worker-machine interaction within worker", c("score ~ Machine + (1 | Worker/Machine)")),
  case("oats", "oats", "yield", "nitro", "(1 | Block/Variety)",
       "nested split plot: variety plots within blocks", c("yield ~ nitro + (1 | Block) + (1 | Block:Variety)")),
  case("cake", "cake", "angle", "recipe * temperature", "(1 | recipe:replicate)",
       "nested by an interaction factor: replicate labels repeat across recipes"),
  case("carrots", "carrots", "Preference", "sens2 + Homesize", "(1 + sens2 | Consumer) + (1 | Product)",
       "crossed with a random slope: consumers x products"),
  case("egsingle", "egsingle", "math", "year", "(1 + year | childid) + (1 + year | schoolid)",
       "nested with random slopes on both factors: pupils within schools, growth over years"),
  case("star", "star", "math", "yrs + cltype", "(1 | id) + (1 | tch) + (1 | sch)",
       "partially crossed and large: pupils x teachers within schools"),
  case("star_slope", "star", "math", "yrs + cltype", "(1 + yrs | id) + (1 | tch) + (1 | sch)",
       "partially crossed with a random slope, large"),
  # lme4's default optimiser reports failure on these two; the tight one does not (a test holds
  # mixcv's converged_ to the truth, not to lme4's default).
  case("scotssec_social", "scotssec", "attain", "verbal + social", "(1 + social | primary) + (1 | second)",
       paste("partially crossed with a badly scaled slope (social class codes 0-20):",
             "lme4's default fails (REML max|grad| 0.13; ML degenerate Hessian)")),
  case("carrots_slopes", "carrots", "Preference", "sens1 + sens2", "(1 + sens1 + sens2 | Consumer) + (1 | Product)",
       "crossed with two correlated slopes (q = 3): lme4's default fails by REML (max|grad|) and is singular by ML")
)
all_cases <- cases
# --only=a,b refits those cases and replaces them in the existing JSON (the CSVs are always
# written whole).
only <- sub("^--only=", "", grep("^--only=", args, value = TRUE))
if (length(only)) cases <- Filter(function(cs) cs$name %in% strsplit(only, ",")[[1]], cases)


# The numeric design of a case: model.matrix of the fixed part, its columns renamed to be
# plain identifiers, and the numeric formula that lme4 fits as the reference.
design <- function(cs, d) {
  ff <- as.formula(paste("~", cs$fixed))
  mm <- model.matrix(ff, d)
  cols <- setdiff(colnames(mm), "(Intercept)")
  num <- as.data.frame(mm[, cols, drop = FALSE])
  names(num) <- safe(cols)
  fixed_num <- if (length(cols)) paste(safe(cols), collapse = " + ") else "1"
  factors <- Filter(function(v) is.factor(d[[v]]), all.vars(ff))
  levels_of <- setNames(lapply(factors, function(v) I(levels(d[[v]]))), factors)
  list(num = num, cols = cols, formula = sprintf("%s ~ %s + %s", cs$response, fixed_num, cs$random),
       formula_factor = sprintf("%s ~ %s + %s", cs$response, cs$fixed, cs$random),
       factors = factors, levels = levels_of,
       fixed_names = setNames(as.list(c("(Intercept)", safe(cols))), c("(Intercept)", cols)))
}


# A case's CSV as Python reads it: grouping factors and the fixed part's factors as character
# labels (InstEval's numeric ids too), the latter turned back into R factors with R's levels.
read_case <- function(cs, ds) {
  path <- file.path(out_dir, datasets[[cs$dataset]]$file)
  chr <- unique(c(group_vars(cs$random), ds$factors))
  hdr <- names(read.csv(path, nrows = 1, check.names = FALSE))
  d <- read.csv(path, stringsAsFactors = FALSE, check.names = FALSE,
                colClasses = ifelse(hdr %in% chr, "character", NA))
  for (v in ds$factors) d[[v]] <- factor(d[[v]], levels = ds$levels[[v]])
  d
}

crit <- function(m, reml) if (reml) unname(REMLcrit(m)) else unname(deviance(m))

# Fit, keeping lme4's warnings and messages as text (the default optimiser's are part of the
# reference: a test checks that mixcv says "not converged" where lme4's default says so).
fit_logged <- function(f, d, reml, control, start = NULL) {
  said <- character(0)
  m <- withCallingHandlers(lmer(f, data = d, REML = reml, control = control, start = start),
    warning = function(w) { said <<- c(said, conditionMessage(w)); invokeRestart("muffleWarning") },
    message = function(w) { said <<- c(said, trimws(conditionMessage(w))); invokeRestart("muffleMessage") })
  list(m = m, said = said)
}

varcorr_of <- function(m) {
  vc <- VarCorr(m)
  lapply(vc, function(v) list(columns = I(colnames(v)), cov = unname(matrix(as.numeric(v), nrow(v)))))
}

summary_of <- function(m, reml, small) {
  s <- list(
    criterion = crit(m, reml),
    loglik = as.numeric(logLik(m)),
    theta = as.list(getME(m, "theta")),
    terms = terms_of(m),
    fixef = as.list(fixef(m)),
    se = as.list(sqrt(diag(as.matrix(vcov(m))))),
    vcov = unname(as.matrix(vcov(m))),
    sigma2 = sigma(m)^2,
    varcorr = varcorr_of(m),
    n_levels = as.list(ngrps(m)),
    singular = isSingular(m),
    messages = I(as.character(unlist(m@optinfo$conv$lme4$messages))),
    optimizer_code = m@optinfo$conv$opt)
  if (small) s$ranef <- ranef_of(m)
  s
}

time_fit <- function(f, d, reml, control, reps) {
  t <- replicate(reps, system.time(suppressWarnings(suppressMessages(
    lmer(f, data = d, REML = reml, control = control))))[["elapsed"]])
  list(median = median(t), runs = I(t))
}

# ---- the datasets' CSVs: the union of the columns their cases use ----
frames <- list()
for (cs in all_cases) {
  d <- datasets[[cs$dataset]]$data
  ds <- design(cs, d)
  rvars <- all.vars(as.formula(paste("~", cs$random)))
  cols <- cbind(d[, c(cs$response), drop = FALSE], ds$num, d[, unique(c(ds$factors, rvars)), drop = FALSE])
  cols <- cols[, !duplicated(names(cols)), drop = FALSE]   # a slope that is also a fixed column
  prev <- frames[[cs$dataset]]
  frames[[cs$dataset]] <- if (is.null(prev)) cols else cbind(prev, cols[, setdiff(names(cols), names(prev)), drop = FALSE])
}
for (nm in names(frames)) {
  d <- frames[[nm]]
  for (v in names(d)) if (is.factor(d[[v]])) d[[v]] <- as.character(d[[v]])
  rownames(d) <- NULL
  path <- file.path(out_dir, datasets[[nm]]$file)
  con <- if (grepl("\\.gz$", path)) gzfile(path, "w") else file(path, "w")
  write.csv(d, con, row.names = FALSE)
  close(con)
  frames[[nm]] <- d
}

# ---- the fits ----
results <- list()
for (cs in cases) {
  d0 <- datasets[[cs$dataset]]$data
  ds <- design(cs, d0)
  # Fit what Python reads: the CSV as written, grouping factors as character labels.
  d <- read_case(cs, ds)
  small <- nrow(d) <= 10000
  entry <- list(dataset = cs$dataset, csv = file.path(out_dir, datasets[[cs$dataset]]$file),
                provenance = datasets[[cs$dataset]]$provenance, note = cs$note,
                formula = ds$formula, formula_factor = ds$formula_factor,
                equivalent_formulas = I(cs$equivalent), factor_levels = ds$levels,
                fixed_names = ds$fixed_names, response = cs$response,
                group_columns = I(group_vars(cs$random)), n = nrow(d),
                y_sum = sum(d[[cs$response]]),
                formula_terms = I(trimws(strsplit(cs$random, "\\+")[[1]])))
  reps <- if (quick_time) 1 else if (nrow(d) > 20000) 3 else if (nrow(d) > 2000) 5 else 11
  for (reml in cs$reml) {
    f <- as.formula(ds$formula)
    df <- fit_logged(f, d, reml, lmerControl())
    t0 <- proc.time()[["elapsed"]]
    tf <- fit_logged(f, d, reml, tight)
    tight_time <- proc.time()[["elapsed"]] - t0
    # bobyqa from lme4's usual start can stop at a worse point than the default optimiser
    # (carrots_slopes by ML: 1.7 higher); then the tight fit is restarted where the default
    # stopped, and the reference is the lower of the two.
    start <- "lme4's default start"
    if (crit(df$m, reml) < crit(tf$m, reml) - 1e-10) {
      rf <- fit_logged(f, d, reml, tight, start = getME(df$m, "theta"))
      if (crit(rf$m, reml) < crit(tf$m, reml)) {
        tf <- rf
        start <- "the default optimiser's theta (lower than from lme4's default start)"
      }
    }
    s <- summary_of(tf$m, reml, small)
    s$start <- start
    s$said <- I(tf$said)
    s$time_tight <- tight_time
    # The same model through R's factors (from the reference's theta: the same terms), and
    # lme4's other spellings of it.
    ff <- fit_logged(as.formula(ds$formula_factor), d, reml, tight, start = getME(tf$m, "theta"))$m
    stopifnot(abs(crit(ff, reml) - s$criterion) < 1e-6)
    for (e in cs$equivalent) stopifnot(abs(crit(fit_logged(as.formula(e), d, reml, tight)$m, reml) - s$criterion) < 1e-6)
    s$fixef_factor <- as.list(fixef(ff))
    s$default <- list(optimizer = df$m@optinfo$optimizer, criterion = crit(df$m, reml),
                      said = I(df$said), messages = I(as.character(unlist(df$m@optinfo$conv$lme4$messages))),
                      # lme4 lists a singular fit among its messages too; that is not a failure.
                      converged = !any(grepl("converge|Hessian|eigenvalue", unlist(df$m@optinfo$conv$lme4$messages))),
                      singular = isSingular(df$m),
                      time = time_fit(f, d, reml, lmerControl(), reps))
    entry[[if (reml) "reml" else "ml"]] <- s
    cat(sprintf("%-24s %s n=%6d  %.10f  singular %-5s  default %+.2e %-9s  time default %.3fs tight %.3fs\n",
                cs$name, if (reml) "REML" else "ML  ", nrow(d), s$criterion, s$singular,
                s$default$criterion - s$criterion, if (s$default$converged) "converged" else "NOT conv.",
                s$default$time$median, tight_time))
    if (start != "lme4's default start") cat("    reference started from", start, "\n")
    for (w in unique(c(tf$said, df$said))) cat("    lme4 said:", w, "\n")
  }
  results[[cs$name]] <- entry
}

# ---- per-fold references ----
fold_fits <- function(name, d, f, train, test, reml = TRUE) {
  m <- lmer(f, data = d[train, ], REML = reml, control = tight)
  s <- summary_of(m, reml, TRUE)
  s$predict <- I(unname(predict(m, newdata = d[test, ], allow.new.levels = TRUE)))
  s$predict_fixed <- I(unname(predict(m, newdata = d[test, ], re.form = NA)))
  s$train <- I(train - 1L)
  s$test <- I(test - 1L)
  s
}
deal <- function(labels, k) {
  u <- unique(labels)
  setNames((seq_along(u) - 1L) %% k, u)[labels]
}
fold_specs <- list(
  list(case = "penicillin", scheme = "plate",
       desc = "4 folds by plate (plates dealt in order of first appearance): test plates are new, samples known"),
  list(case = "penicillin", scheme = "plate_and_sample",
       desc = paste("4 folds, new plates AND new samples: plate fold k (4 folds) x sample fold k %% 2 (2 folds);",
                    "training rows have neither a held-out plate nor a held-out sample; rows mixing the two are in neither")),
  list(case = "carrots", scheme = "Consumer",
       desc = "5 folds by Consumer: test consumers are new (their slope and intercept zero), products known"),
  list(case = "scotssec", scheme = "primary",
       desc = "5 folds by primary school: test primaries are new, secondary schools mostly known")
)
for (fs in fold_specs) {
  if (is.null(results[[fs$case]])) next
  cs <- Filter(function(x) x$name == fs$case, cases)[[1]]
  d <- read_case(cs, design(cs, datasets[[cs$dataset]]$data))
  f <- as.formula(results[[fs$case]]$formula)
  fits <- list()
  if (fs$scheme == "plate_and_sample") {
    pf <- deal(d$plate, 4); sf <- deal(d$sample, 2)
    for (k in 0:3) {
      train <- which(pf != k & sf != k %% 2); test <- which(pf == k & sf == k %% 2)
      fits[[k + 1]] <- c(list(fold = k), fold_fits(fs$case, d, f, train, test))
    }
  } else {
    nf <- if (fs$scheme == "plate") 4 else 5
    fo <- deal(as.character(d[[fs$scheme]]), nf)
    for (k in seq_len(nf) - 1L)
      fits[[k + 1]] <- c(list(fold = k), fold_fits(fs$case, d, f, which(fo != k), which(fo == k)))
  }
  results[[fs$case]]$folds[[fs$scheme]] <- list(description = fs$desc, reml = TRUE, fits = fits)
  cat(sprintf("folds %-12s %-18s %s\n", fs$case, fs$scheme,
              paste(sprintf("%.6f", sapply(fits, `[[`, "criterion")), collapse = " ")))
}

meta <- list(r = R.version.string, lme4 = pkg("lme4"), Matrix = pkg("Matrix"), nlme = pkg("nlme"),
             mlmRev = pkg("mlmRev"), lmerTest = pkg("lmerTest"),
             optimizer = "bobyqa, rhoend = 1e-12, maxfun = 1e5 (lmerControl)",
             default_optimizer = "lmerControl() defaults (nloptwrap)",
             term_order = paste("theta, terms and varcorr in lme4's order (mkReTrms): the expanded formula's terms,",
                                "reordered by rev(order(n_levels)) if any term has more levels than the one before it;",
                                "terms[i]$formula_index is the term's 0-based place in the expanded formula"),
             row_indices = "0-based rows of the case's CSV",
             contrasts = "treatment for unordered and ordered factors (options(contrasts))",
             machine = paste(Sys.info()[["sysname"]], Sys.info()[["machine"]], parallel::detectCores(), "cores"),
             timing = if (quick_time) "one run per fit (--no-time)" else "median of 3 (n > 20,000), 5 (n > 2,000) or 11 system.time runs",
             script = "tests/reference/lme4_multi.R")
json_path <- file.path(out_dir, "lme4_multi.json")
if (length(only)) {
  old <- fromJSON(json_path, simplifyVector = FALSE)
  for (nm in names(results)) old$cases[[nm]] <- results[[nm]]
  order <- vapply(all_cases, `[[`, "", "name")
  results <- old$cases[intersect(order, names(old$cases))]
  meta$timing <- paste(old$meta$timing, "; refitted with --only:", only)
}
write_json(list(meta = meta, cases = results), json_path, digits = NA, auto_unbox = TRUE, pretty = TRUE)
cat("wrote", json_path, "\n")
