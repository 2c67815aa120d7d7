# glmer references at a TIGHT PIRLS tolerance, for mixcv's GLMM numerics (issue 26).
#
#   Rscript tests/reference/glmer_tight.R        (from the repository root; a few minutes)
#
# Why a second script next to glmer_battery.R: lme4's default PIRLS tolerance (tolPwrss = 1e-7,
# a relative change of the penalised deviance) leaves the conditional modes, and log|L|^2 taken
# at the previous iteration's weights, off by enough to move the Laplace deviance by ~3e-6
# relative and theta by ~3e-4 (cbpp: theta 0.642064 at the default, 0.642261 at 1e-12, which is
# the issue's herd variance 0.41246). Comparing to 1e-6 / 1e-4 needs the reference at the exact
# Laplace optimum, so here tolPwrss = 1e-12 and bobyqa's rhoend = 1e-10 in both stages.
#
# Writes tests/data/glmm/tight/<case>.csv (the rows and the numeric design columns each model
# uses) and tests/data/glmm/tight/glmer_tight.json: per case the formula, family, link, nAGQ,
# the objective (m@devcomp$cmp[["dev"]], lme4's criterion = -2 logLik), fixed effects, SEs,
# theta, isSingular, glmer's fit time; and `marginal`: for cbpp (logit) and its probit fit, the
# population-averaged probability of a new herd per period by numerical integration
# (integrate() over the random effect's normal density), next to the plug-in plogis(x'beta).
suppressPackageStartupMessages({library(lme4); library(mlmRev); library(jsonlite)})
dir <- file.path("tests", "data", "glmm", "tight")
dir.create(dir, showWarnings = FALSE, recursive = TRUE)
ctrl <- glmerControl(optimizer = c("bobyqa", "bobyqa"), optCtrl = list(maxfun = 1e5, rhoend = 1e-10),
                     tolPwrss = 1e-12, check.conv.singular = "ignore")
out <- list(meta = list(r = R.version.string, lme4 = as.character(packageVersion("lme4")),
                        control = "bobyqa x2, rhoend 1e-10, tolPwrss 1e-12"), cases = list())
run <- function(name, formula, data, family, nAGQ = 1L, csv) {
  t <- system.time(m <- glmer(as.formula(formula), data, family = family, nAGQ = nAGQ, control = ctrl))[["elapsed"]]
  out$cases[[name]] <<- list(formula = formula, csv = csv, family = family$family, link = family$link, nAGQ = nAGQ,
    objective = unname(m@devcomp$cmp[["dev"]]), loglik = as.numeric(logLik(m)),
    beta = as.list(fixef(m)), se = unname(sqrt(diag(as.matrix(vcov(m))))), theta = unname(getME(m, "theta")),
    singular = isSingular(m), time = t)
  m
}
# cbpp: binomial with trials; numeric period columns so Python builds the same design.
cb <- cbpp
for (k in 2:4) cb[[paste0("period", k)]] <- as.numeric(cb$period == k)
cb$herd <- as.character(cb$herd)
cb$logsize <- log(cb$size)
write.csv(cb[, c("incidence", "size", "logsize", "period2", "period3", "period4", "herd")],
          file.path(dir, "cbpp.csv"), row.names = FALSE)
f_cb <- "cbind(incidence, size - incidence) ~ period2 + period3 + period4 + (1 | herd)"
m_cb <- run("cbpp", f_cb, cb, binomial(), csv = "cbpp.csv")
run("cbpp_agq9", f_cb, cb, binomial(), 9L, csv = "cbpp.csv")
run("cbpp_agq25", f_cb, cb, binomial(), 25L, csv = "cbpp.csv")
m_pr <- run("cbpp_probit", f_cb, cb, binomial(link = "probit"), csv = "cbpp.csv")
# Poisson with an offset: new cases per animal at risk.
run("cbpp_poisson_offset", "incidence ~ period2 + period3 + period4 + offset(logsize) + (1 | herd)", cb, poisson(),
    csv = "cbpp.csv")
# Contraception (mlmRev): Bernoulli; a random intercept, then a random slope.
ct <- Contraception
ct <- data.frame(use = as.numeric(ct$use == "Y"), age = ct$age, age2 = ct$age^2, urbanY = as.numeric(ct$urban == "Y"),
                 livch1 = as.numeric(ct$livch == "1"), livch2 = as.numeric(ct$livch == "2"),
                 livch3 = as.numeric(ct$livch == "3+"), district = as.character(ct$district))
write.csv(ct, file.path(dir, "contraception.csv"), row.names = FALSE)
run("contraception", "use ~ age + age2 + urbanY + livch1 + livch2 + livch3 + (1 | district)", ct, binomial(),
    csv = "contraception.csv")
run("contraception_slope", "use ~ age + urbanY + (1 + urbanY | district)", ct, binomial(), csv = "contraception.csv")
# VerbAgg (lme4): binary, subjects x items crossed.
va <- VerbAgg
va <- data.frame(r2 = as.numeric(va$r2 == "Y"), Anger = va$Anger, GenderM = as.numeric(va$Gender == "M"),
                 btypescold = as.numeric(va$btype == "scold"), btypeshout = as.numeric(va$btype == "shout"),
                 situself = as.numeric(va$situ == "self"), id = as.character(va$id), item = as.character(va$item))
write.csv(va, file.path(dir, "verbagg.csv"), row.names = FALSE)
run("verbagg", "r2 ~ Anger + GenderM + btypescold + btypeshout + situself + (1 | id) + (1 | item)", va, binomial(),
    csv = "verbagg.csv")
# grouseticks (lme4): Poisson, three nested factors.
gt <- grouseticks
gt <- data.frame(TICKS = gt$TICKS, YEAR96 = as.numeric(gt$YEAR == "96"), YEAR97 = as.numeric(gt$YEAR == "97"),
                 HEIGHT = as.numeric(scale(gt$HEIGHT)), BROOD = as.character(gt$BROOD),
                 INDEX = as.character(gt$INDEX), LOCATION = as.character(gt$LOCATION))
write.csv(gt, file.path(dir, "grouseticks.csv"), row.names = FALSE)
run("grouseticks", "TICKS ~ YEAR96 + YEAR97 + HEIGHT + (1 | BROOD) + (1 | INDEX) + (1 | LOCATION)", gt, poisson(),
    csv = "grouseticks.csv")
# Marginal (population-averaged) means for a new herd, per period, by numerical integration.
marg <- function(m, inv) {
  X <- diag(4); X[, 1] <- 1
  eta <- drop(X %*% fixef(m)); s <- sqrt(VarCorr(m)$herd[1, 1])
  list(eta = eta, sd = s, plugin = inv(eta),
       marginal = sapply(eta, function(e) integrate(function(b) inv(e + b) * dnorm(b, 0, s), -Inf, Inf,
                                                    rel.tol = 1e-12)$value))
}
out$marginal <- list(cbpp = marg(m_cb, plogis), cbpp_probit = marg(m_pr, pnorm))
write(toJSON(out, digits = NA, auto_unbox = TRUE, pretty = TRUE), file.path(dir, "glmer_tight.json"))
