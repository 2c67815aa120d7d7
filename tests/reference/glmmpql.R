# Reference values for mixcv's binary MERF (issue 27, item 4): with a linear base model binary
# MERF is penalised quasi-likelihood, i.e. MASS::glmmPQL (Breslow & Clayton 1993), which fits
#   zz = eta + (y - mu) / mu.eta,  wz = w mu.eta^2 / var(mu)   (w: prior weights)
# by nlme::lme(zz ~ fixed, random, method = "ML", weights = varFixed(~ 1 / wz)) and iterates.
#
#   Rscript tests/reference/glmmpql.R        (from the repository root; a few seconds)
#
# Reads the real data the GLMM battery ships (tests/data/glmm/*.csv, written by
# glmer_battery.R from mlmRev::Contraception and lme4::cbpp; see tests/data/glmm/PROVENANCE.md).
# Writes tests/data/gmerf/glmmpql.json and tests/data/gmerf/PROVENANCE.md.
#
# Each case is fitted twice:
#   `glmmPQL`: MASS::glmmPQL as shipped (niter = 50; it stops when
#              sum((eta - eta_old)^2) < 1e-6 sum(eta^2), i.e. a relative change of 1e-3);
#   `tight`:   the same PQL loop written out (glmmPQL's own steps: glm start, working response
#              and weights, lme with ML and varFixed), iterated until max |eta - eta_old| < 1e-8 (at most 100 iterations),
#              with lme's optimiser at tight tolerances. This is the fixed point mixcv's tests
#              compare with; the script checks that glmmPQL's answer is within 1e-3 of it.
# Cases:
#   contraception        use ~ age + I(age^2) + urban + livch, random = ~ 1 | district (1,934 rows)
#   contraception_slope  the same with random = ~ 1 + urbanY | district (a random slope)
#   contraception_wt     the intercept model with integer prior weights 1 + (row - 1) %% 3
#   cbpp_rows            lme4::cbpp as 0/1 rows (incidence ones, size - incidence zeros per
#                        herd-period, in the CSV's order), y ~ period, random = ~ 1 | herd (842 rows)
suppressPackageStartupMessages({library(MASS); library(nlme); library(jsonlite)})

dir <- "tests/data/gmerf"
dir.create(dir, showWarnings = FALSE, recursive = TRUE)
con <- read.csv("tests/data/glmm/contraception.csv", colClasses = c(district = "character"))
cb <- read.csv("tests/data/glmm/cbpp.csv", colClasses = c(herd = "character", period = "character"))
rows <- do.call(rbind, lapply(seq_len(nrow(cb)), function(i) {
  r <- cb[i, ]
  data.frame(y = c(rep(1, r$incidence), rep(0, r$size - r$incidence)), herd = r$herd,
             period2 = r$period2, period3 = r$period3, period4 = r$period4)
}))
con$wt <- 1 + (seq_len(nrow(con)) - 1) %% 3

tight_pql <- function(fixed, random, data, wts) {
  data$.pw <- wts
  fit0 <- glm(fixed, family = binomial, data = data, weights = .pw)
  eta <- fit0$linear.predictors
  ctrl <- lmeControl(maxIter = 500, msMaxIter = 500, tolerance = 1e-12, msTol = 1e-14, niterEM = 100,
                     opt = "nlminb", returnObject = TRUE)
  for (i in 1:100) {
    mu <- plogis(eta)
    data$zz <- eta + (data[[all.vars(fixed)[1]]] - mu) / (mu * (1 - mu))
    data$invwt <- 1 / (wts * mu * (1 - mu))
    f2 <- fixed
    f2[[2L]] <- quote(zz)
    fit <- lme(f2, random = random, data = data, method = "ML", weights = varFixed(~invwt), control = ctrl)
    old <- eta
    eta <- as.vector(fitted(fit))
    if (max(abs(eta - old)) < 1e-8) break
  }
  list(fit = fit, iterations = i)
}

record <- function(fit, iterations) {
  re <- ranef(fit)
  D <- unclass(getVarCov(fit))
  attr(D, "group.levels") <- NULL
  list(fixef = as.list(fixef(fit)), D = unname(matrix(D, nrow(D))), D_names = colnames(D), sigma = fit$sigma,
       ranef_levels = rownames(re), ranef = unname(as.matrix(re)), loglik = as.numeric(logLik(fit)),
       eta = as.vector(fitted(fit)), iterations = iterations)
}

cases <- list(
  contraception = list(fixed = use ~ age + I_age_2_ + urbanY + livch1 + livch2 + livch3_, random = ~ 1 | district,
                       data = con, wts = NULL, group = "district"),
  contraception_slope = list(fixed = use ~ age + I_age_2_ + urbanY + livch1 + livch2 + livch3_,
                             random = ~ 1 + urbanY | district, data = con, wts = NULL, group = "district"),
  contraception_wt = list(fixed = use ~ age + I_age_2_ + urbanY + livch1 + livch2 + livch3_, random = ~ 1 | district,
                          data = con, wts = "wt", group = "district"),
  cbpp_rows = list(fixed = y ~ period2 + period3 + period4, random = ~ 1 | herd, data = rows, wts = NULL,
                   group = "herd")
)
out <- list()
for (name in names(cases)) {
  cs <- cases[[name]]
  w <- if (is.null(cs$wts)) rep(1, nrow(cs$data)) else cs$data[[cs$wts]]
  d <- cs$data
  d$.w <- w
  pql <- if (is.null(cs$wts)) {
    glmmPQL(cs$fixed, random = cs$random, family = binomial, data = d, niter = 50, verbose = FALSE)
  } else {
    glmmPQL(cs$fixed, random = cs$random, family = binomial, data = d, weights = .w, niter = 50, verbose = FALSE)
  }
  tight <- tight_pql(cs$fixed, cs$random, d, w)
  a <- record(pql, NA)
  b <- record(tight$fit, tight$iterations)
  gap <- max(abs(unlist(a$fixef) - unlist(b$fixef)))
  stopifnot(gap < 1e-3)
  cat(sprintf("%-20s glmmPQL vs tight PQL: fixed effects within %.2g, D %.6g vs %.6g, %d iterations\n",
              name, gap, a$D[1, 1], b$D[1, 1], tight$iterations))
  b$eta <- NULL
  a$eta <- NULL
  out[[name]] <- list(formula = paste(deparse(cs$fixed), collapse = ""), random = paste(deparse(cs$random)),
                      group = cs$group, weights = if (is.null(cs$wts)) NULL else cs$wts, n = nrow(cs$data),
                      glmmPQL = a, tight = b)
}
out$versions <- list(R = R.version.string, MASS = as.character(packageVersion("MASS")),
                     nlme = as.character(packageVersion("nlme")))
writeLines(toJSON(out, auto_unbox = TRUE, digits = NA, pretty = TRUE, null = "null"),
           file.path(dir, "glmmpql.json"))

prov <- c(
  "# Provenance of the binary MERF (PQL) reference values",
  "",
  "Generated by `Rscript tests/reference/glmmpql.R` (from the repository root); do not edit by hand.",
  "",
  paste0("Made with ", R.version.string, "; MASS ", packageVersion("MASS"), ", nlme ", packageVersion("nlme"),
         ", jsonlite ", packageVersion("jsonlite"), "."),
  "",
  "The data are the real datasets the GLMM battery ships (tests/data/glmm/, see its PROVENANCE.md):",
  "mlmRev::Contraception (1988 Bangladesh Fertility Survey; 1,934 women in 60 districts) and lme4::cbpp",
  "(Lesnoff et al. 2004) expanded to one 0/1 row per animal: for each herd-period row of cbpp.csv, in",
  "order, `incidence` rows of 1 then `size - incidence` rows of 0 (842 rows, 15 herds).",
  "",
  "`glmmpql.json`, per case (`contraception`, `contraception_slope`: random = ~ 1 + urbanY | district,",
  "`contraception_wt`: integer prior weights `1 + (row - 1) %% 3`, `cbpp_rows`):",
  "`glmmPQL` is MASS::glmmPQL's fit as shipped (niter = 50); `tight` the same PQL loop (glm start, working",
  "response and weights, nlme::lme with method ML and varFixed(~1/wz)) iterated until max |delta eta| < 1e-8 (at most 100)",
  "with lme at tight tolerances. Fields: `fixef` (fixed effects), `D` (random-effect covariance, as",
  "getVarCov), `sigma` (lme's residual scale: PQL's dispersion, not fixed at 1), `ranef_levels` and `ranef`",
  "(the conditional modes, level order of R's factor), `loglik` (lme's ML log-likelihood of the working",
  "model), `iterations` (PQL iterations of the tight loop)."
)
writeLines(prov, file.path(dir, "PROVENANCE.md"))
