"""The works mixcv's methods paragraph may cite, as data: key, short form, full reference, BibTeX.

One table (`REFERENCES`) that the paragraph (`methods`), its reference lists (`prose`) and
``Results.citations()`` all read, so a citation in the text and its BibTeX entry cannot
disagree.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

__all__ = ["Reference", "REFERENCES", "bibtex"]


@dataclass(frozen=True)
class Reference:
    """One work the methods paragraph may cite."""

    key: str        # the BibTeX key (``\\cite{key}`` in LaTeX)
    short: str      # how the text cites it: "Pedregosa et al. 2011"
    text: str       # the full reference, for a reference list
    bibtex: str


def _ref(key: str, short: str, text: str, kind: str, **fields: str) -> Reference:
    body = ",\n".join(f"  {k} = {{{v}}}" for k, v in fields.items())
    return Reference(key, short, text, f"@{kind}{{{key},\n{body}\n}}")


#: Every citation the paragraph can make, by key: the data `bibtex` and the reference lists are written from.
REFERENCES: dict[str, Reference] = {r.key: r for r in (
    _ref("pedregosa2011", "Pedregosa et al. 2011",
         "Pedregosa, F., Varoquaux, G., Gramfort, A., et al. (2011). Scikit-learn: Machine learning in Python. "
         "Journal of Machine Learning Research, 12, 2825-2830.",
         "article", author="Pedregosa, F. and Varoquaux, G. and Gramfort, A. and Michel, V. and Thirion, B. and "
                           "Grisel, O. and Blondel, M. and Prettenhofer, P. and Weiss, R. and Dubourg, V. and "
                           "Vanderplas, J. and Passos, A. and Cournapeau, D. and Brucher, M. and Perrot, M. and "
                           "Duchesnay, E.",
         title="Scikit-learn: Machine Learning in {P}ython", journal="Journal of Machine Learning Research",
         volume="12", pages="2825--2830", year="2011"),
    _ref("akiba2019", "Akiba et al. 2019",
         "Akiba, T., Sano, S., Yanase, T., Ohta, T., & Koyama, M. (2019). Optuna: A next-generation hyperparameter "
         "optimization framework. Proceedings of the 25th ACM SIGKDD International Conference on Knowledge "
         "Discovery & Data Mining, 2623-2631. https://doi.org/10.1145/3292500.3330701",
         "inproceedings", author="Akiba, Takuya and Sano, Shotaro and Yanase, Toshihiko and Ohta, Takeru and "
                                 "Koyama, Masanori",
         title="Optuna: A Next-generation Hyperparameter Optimization Framework",
         booktitle="Proceedings of the 25th ACM SIGKDD International Conference on Knowledge Discovery \\& "
                   "Data Mining", pages="2623--2631", year="2019", doi="10.1145/3292500.3330701"),
    _ref("bates2015", "Bates et al. 2015",
         "Bates, D., Mächler, M., Bolker, B., & Walker, S. (2015). Fitting linear mixed-effects models using lme4. "
         "Journal of Statistical Software, 67(1), 1-48. https://doi.org/10.18637/jss.v067.i01",
         "article", author="Bates, Douglas and M{\\\"a}chler, Martin and Bolker, Ben and Walker, Steve",
         title="Fitting Linear Mixed-Effects Models Using {lme4}", journal="Journal of Statistical Software",
         volume="67", number="1", pages="1--48", year="2015", doi="10.18637/jss.v067.i01"),
    _ref("hajjem2014", "Hajjem et al. 2014",
         "Hajjem, A., Bellavance, F., & Larocque, D. (2014). Mixed-effects random forest for clustered data. "
         "Journal of Statistical Computation and Simulation, 84(6), 1313-1328. "
         "https://doi.org/10.1080/00949655.2012.741599",
         "article", author="Hajjem, Ahlem and Bellavance, Fran{\\c{c}}ois and Larocque, Denis",
         title="Mixed-effects random forest for clustered data",
         journal="Journal of Statistical Computation and Simulation", volume="84", number="6",
         pages="1313--1328", year="2014", doi="10.1080/00949655.2012.741599"),
    _ref("pellagatti2021", "Pellagatti et al. 2021",
         "Pellagatti, M., Masci, C., Ieva, F., & Paganoni, A. M. (2021). Generalized mixed-effects random forest: "
         "A flexible approach to predict university student dropout. Statistical Analysis and Data Mining, "
         "14(3), 241-257. https://doi.org/10.1002/sam.11505",
         "article", author="Pellagatti, Massimo and Masci, Chiara and Ieva, Francesca and Paganoni, Anna M.",
         title="Generalized mixed-effects random forest: A flexible approach to predict university student dropout",
         journal="Statistical Analysis and Data Mining", volume="14", number="3", pages="241--257", year="2021",
         doi="10.1002/sam.11505"),
    _ref("nadeau2003", "Nadeau & Bengio 2003",
         "Nadeau, C., & Bengio, Y. (2003). Inference for the generalization error. Machine Learning, 52(3), "
         "239-281. https://doi.org/10.1023/A:1024068626366",
         "article", author="Nadeau, Claude and Bengio, Yoshua", title="Inference for the Generalization Error",
         journal="Machine Learning", volume="52", number="3", pages="239--281", year="2003",
         doi="10.1023/A:1024068626366"),
    _ref("bouckaert2004", "Bouckaert & Frank 2004",
         "Bouckaert, R. R., & Frank, E. (2004). Evaluating the replicability of significance tests for comparing "
         "learning algorithms. Advances in Knowledge Discovery and Data Mining (PAKDD 2004), LNCS 3056, 3-12. "
         "https://doi.org/10.1007/978-3-540-24775-3_3",
         "inproceedings", author="Bouckaert, Remco R. and Frank, Eibe",
         title="Evaluating the Replicability of Significance Tests for Comparing Learning Algorithms",
         booktitle="Advances in Knowledge Discovery and Data Mining (PAKDD 2004)", series="LNCS",
         volume="3056", pages="3--12", year="2004", doi="10.1007/978-3-540-24775-3_3"),
    _ref("holm1979", "Holm 1979",
         "Holm, S. (1979). A simple sequentially rejective multiple test procedure. Scandinavian Journal of "
         "Statistics, 6(2), 65-70.",
         "article", author="Holm, Sture", title="A Simple Sequentially Rejective Multiple Test Procedure",
         journal="Scandinavian Journal of Statistics", volume="6", number="2", pages="65--70", year="1979"),
    _ref("sigrist2022", "Sigrist 2022",
         "Sigrist, F. (2022). Gaussian process boosting. Journal of Machine Learning Research, 23(232), 1-46.",
         "article", author="Sigrist, Fabio", title="Gaussian Process Boosting",
         journal="Journal of Machine Learning Research", volume="23", number="232", pages="1--46", year="2022"),
)}


def bibtex(keys: Iterable[str]) -> str:
    """The BibTeX entries of ``keys`` (`REFERENCES`), one after the other."""
    return "\n\n".join(REFERENCES[k].bibtex for k in keys) + "\n"
