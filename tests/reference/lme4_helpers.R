# Helpers shared by the lme4 reference scripts (lme4_multi.R, glmer_battery.R): the pieces of a
# merMod fit that both record in the same form (terms in lme4's order, conditional modes and sds).
# Sourced from the repository root: source(file.path("tests", "reference", "lme4_helpers.R")).

# model.matrix column names made plain identifiers, as the CSVs and numeric formulas name them.
safe <- function(x) gsub("[^A-Za-z0-9_]", "_", x)

# The grouping factors named in the random part of a formula.
group_vars <- function(random)
  unique(unlist(lapply(findbars(as.formula(paste("~", random))), function(b) all.vars(b[[3]]))))

terms_of <- function(m) {
  cnms <- getME(m, "cnms")
  # Each term's place in the formula as lme4 expands it (findbars: `a/b` gives b:a, then a),
  # found by fitting nothing: the same terms built without lme4's reordering.
  raw <- mkReTrms(findbars(formula(m)), model.frame(m), reorder.terms = FALSE)$cnms
  key <- function(g, cols) paste0(g, "|", paste(cols, collapse = ","))
  raw_keys <- mapply(key, names(raw), raw)
  fl <- getME(m, "flist")
  asg <- attr(fl, "assign")
  th <- getME(m, "theta")
  at <- 0
  lapply(seq_along(cnms), function(i) {
    q <- length(cnms[[i]])
    k <- q * (q + 1) / 2
    out <- list(group = names(cnms)[i], columns = I(cnms[[i]]), n_levels = nlevels(fl[[asg[i]]]),
                formula_index = match(key(names(cnms)[i], cnms[[i]]), raw_keys) - 1L,
                theta = I(unname(th[at + seq_len(k)])), theta_names = I(names(th)[at + seq_len(k)]))
    at <<- at + k
    out
  })
}

ranef_of <- function(m) {
  re <- as.data.frame(ranef(m, condVar = TRUE))
  out <- list()
  for (g in unique(as.character(re$grpvar))) {
    r <- re[re$grpvar == g, ]
    terms <- unique(as.character(r$term))
    lv <- rownames(ranef(m)[[g]])
    modes <- sapply(terms, function(t) r$condval[r$term == t][match(lv, as.character(r$grp[r$term == t]))])
    sds <- sapply(terms, function(t) r$condsd[r$term == t][match(lv, as.character(r$grp[r$term == t]))])
    out[[g]] <- list(levels = I(lv), columns = I(terms),
                     modes = unname(matrix(modes, ncol = length(terms))),
                     sds = unname(matrix(sds, ncol = length(terms))))
  }
  out
}
