"""The random part of an lme4 formula, parsed: ``(1 + days | subject) + (1 | item)`` -> `RandomTerm`s.

mixcv parses only the random part itself (the fixed part goes to formulaic, see `design`);
this module follows lme4's ``findbars``/``expandSlash``/``expandDoubleVerts`` (R/utilities.R):

- ``(expr | factor)``: correlated random effects of ``expr``'s columns within each level of
  ``factor``; ``expr`` is a sum of column names, ``1`` (the intercept, implied as in R) and
  ``0``/``-1`` (no intercept).
- ``(expr || factor)``: uncorrelated effects, expanded to one term per column exactly as lme4
  does (``(1 + x || g)`` -> ``(1 | g) + (0 + x | g)``), so the algebra only ever sees full
  covariance blocks.
- ``a:b``: the interaction factor (its levels are the observed pairs); ``a/b`` is nesting,
  ``(1 | a/b)`` = ``(1 | b:a) + (1 | a)`` in lme4's order and naming, and ``a/b/c`` recurses
  (``c:(b:a)``, ``b:a``, ``a``).

Everything that lme4 refuses, or that cannot be read, raises `SpecError` naming the term and
what was expected, before any data is looked at.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from ...errors import SpecError

__all__ = ["Factor", "RandomTerm", "parse_random", "split_formula", "format_name"]

_IDENT = re.compile(r"[A-Za-z_.][A-Za-z0-9_.]*")


def format_name(name: str) -> str:
    """A column name as it is written in a formula: bare when R would read it so, else in backticks."""
    if _IDENT.fullmatch(name) and not re.match(r"\.[0-9]", name) and name not in ("0", "1"):
        return name
    return "`" + name + "`"


@dataclass(frozen=True)
class Factor:
    """A grouping factor: one column, or the interaction ``left:right`` of two factors.

    Its printed form is lme4's (``cask:batch``; a nested interaction on the right is in
    parentheses, ``sample:(cask:batch)``), which is also the name of the factor in
    ``VarCorr`` and ``ranef``.
    """

    column: str | None = None
    left: Factor | None = None
    right: Factor | None = None

    @property
    def columns(self) -> tuple[str, ...]:
        """The data columns whose combinations are the levels, left to right."""
        if self.column is not None:
            return (self.column,)
        assert self.left is not None and self.right is not None
        return self.left.columns + self.right.columns

    def __str__(self) -> str:
        if self.column is not None:
            return format_name(self.column)
        assert self.left is not None and self.right is not None
        right = str(self.right) if self.right.column is not None else f"({self.right})"
        return f"{self.left}:{right}"


@dataclass(frozen=True)
class RandomTerm:
    """One ``(expr | factor)`` term: an intercept (or not) and slope columns, within a factor.

    Attributes
    ----------
    intercept : bool
        Whether the term has a random intercept (R's implicit ``1``).
    columns : tuple of str
        The slope columns, in the order written.
    factor : Factor
        The grouping factor.
    """

    intercept: bool
    columns: tuple[str, ...]
    factor: Factor

    @property
    def name(self) -> str:
        """The grouping factor's name as lme4 prints it (``subject``, ``cask:batch``)."""
        return str(self.factor)

    @property
    def effect_names(self) -> list[str]:
        """The term's random effects in order: ``Intercept`` first (if any), then the slopes."""
        return (["Intercept"] if self.intercept else []) + list(self.columns)

    def __str__(self) -> str:
        parts = [format_name(c) for c in self.columns]
        lhs = " + ".join(["1", *parts] if self.intercept else ["0", *parts])
        return f"({lhs} | {self.factor})"


# -- tokenising ---------------------------------------------------------------------------
_TOKEN = re.compile(
    r"\s*(?:(`[^`]*`|\"[^\"]*\"|'[^']*')"                  # quoted: a `name`, or a string (fixed part)
    r"|(\|\||[|()+\-:/~*^])"                                # operators
    r"|([A-Za-z_.][A-Za-z0-9_.]*|[0-9]+(?:\.[0-9]*)?)"        # a bare name or a number
    r"|(\S))")                                              # anything else


def _spans(text: str, where: str, strict: bool = True) -> list[tuple[str, int, int]]:
    """The tokens of ``text`` with their start and end in it.

    ``strict``: only what a random term may hold; otherwise (the fixed part of a formula,
    which formulaic reads) any other character is a token of its own, and quoted strings are
    single tokens so that their parentheses do not count.
    """
    out: list[tuple[str, int, int]] = []
    pos = 0
    end = len(text.rstrip())
    while pos < end:
        m = _TOKEN.match(text, pos)
        assert m is not None   # the last alternative matches any non-space character
        quoted, op, word, other = m.groups()
        if other is not None and strict:
            raise SpecError("random", f"{where}: unexpected character {other!r} in {text.strip()!r}")
        if quoted is not None and strict and not quoted.startswith("`"):
            raise SpecError("random", f"{where}: unexpected quoted text {quoted} in {text.strip()!r}")
        if quoted is not None and len(quoted) == 2:
            raise SpecError("random", f"{where}: an empty `` name in {text.strip()!r}")
        tok = next(t for t in (quoted, op, word, other) if t is not None)
        out.append((tok, m.end() - len(tok), m.end()))
        pos = m.end()
    return out


def _unquote(token: str) -> str:
    return token[1:-1] if token.startswith("`") else token


def _is_name(token: str) -> bool:
    return token.startswith("`") or (bool(_IDENT.fullmatch(token)) and not token[0].isdigit())


# -- the grouping factor ------------------------------------------------------------------
class _FactorParser:
    """``nest := inter ('/' inter)*``, ``inter := atom (':' atom)*``, ``atom := name | '(' inter ')'``."""

    def __init__(self, tokens: list[str], term: str) -> None:
        self.tokens, self.pos, self.term = tokens, 0, term

    def fail(self, expected: str) -> SpecError:
        got = self.tokens[self.pos] if self.pos < len(self.tokens) else "the end of the term"
        return SpecError("random", f"term {self.term}: expected {expected} in the grouping factor, got {got!r}")

    def peek(self) -> str | None:
        return self.tokens[self.pos] if self.pos < len(self.tokens) else None

    def nest(self) -> list[Factor]:
        parts = [self.inter()]
        while self.peek() == "/":
            self.pos += 1
            parts.append(self.inter())
        if self.peek() is not None:
            raise self.fail("':' or '/' between column names")
        # lme4's expandSlash: a/b/c -> c:(b:a), b:a, a (innermost first).
        out = [parts[0]]
        for inner in parts[1:]:
            out.insert(0, Factor(left=inner, right=out[0]))
        return out

    def inter(self) -> Factor:
        f = self.atom()
        while self.peek() == ":":
            self.pos += 1
            f = Factor(left=f, right=self.atom())
        return f

    def atom(self) -> Factor:
        tok = self.peek()
        if tok == "(":
            self.pos += 1
            f = self.inter()
            if self.peek() == "/":
                # lme4: "unparseable formula for grouping factor" -- '/' only at the top.
                raise SpecError("random", f"term {self.term}: '/' (nesting) may only join whole factors, "
                                          "e.g. (1 | school/class), not appear inside parentheses")
            if self.peek() != ")":
                raise self.fail("')'")
            self.pos += 1
            return f
        if tok is None or not _is_name(tok):
            raise self.fail("a column name")
        self.pos += 1
        return Factor(column=_unquote(tok))


# -- the effects (left of the bar) --------------------------------------------------------
def _effects(tokens: list[str], term: str) -> tuple[bool, tuple[str, ...]]:
    """Intercept flag and slope columns of ``1 + x + z``, ``0 + x``, ``x - 1``, ``-1 + x``..."""
    if not tokens:
        raise SpecError("random", f"term {term}: nothing before the bar; write (1 | factor) for a random intercept")
    intercept, columns = True, []
    sign, expect_operand = "+", True
    for i, tok in enumerate(tokens):
        if expect_operand:
            if tok == "-" and i == 0:
                sign = "-"          # a leading '-1'
                continue
            if tok in ("0", "1"):
                # '+ 0' and '- 1' remove the intercept, '+ 1' and '- 0' keep it (R's reading).
                intercept = (tok == "1") == (sign == "+")
            elif _is_name(tok):
                if sign == "-":
                    raise SpecError("random", f"term {term}: only the intercept can be removed with '-' "
                                              f"(as '- 1'); got '- {tok}'")
                name = _unquote(tok)
                if name in columns:
                    raise SpecError("random", f"term {term}: the column {name!r} is written twice")
                columns.append(name)
            elif tok in (":", "*", "/", "^", "(", ")", "|", "||"):
                raise SpecError("random", f"term {term}: the effects before the bar must be a sum of column "
                                          f"names, 1 and 0 (interactions or functions of columns: make a column "
                                          f"for them first); got {tok!r}")
            else:
                raise SpecError("random", f"term {term}: expected a column name, 1 or 0 before the bar, got {tok!r}")
            expect_operand = False
        else:
            if tok not in ("+", "-"):
                raise SpecError("random", f"term {term}: the effects before the bar must be a sum of column "
                                          f"names, 1 and 0 joined by '+'; got {tok!r}")
            sign, expect_operand = tok, True
    if expect_operand:
        raise SpecError("random", f"term {term}: the effects end with {tokens[-1]!r}; a column name, 1 or 0 was "
                                  "expected after it")
    if not intercept and not columns:
        raise SpecError("random", f"term {term} has no random effect (no intercept, no slope); write "
                                  "(1 | factor) or (0 + x | factor), or drop the term")
    return intercept, tuple(columns)


def _term(tokens: list[str], text: str) -> list[RandomTerm]:
    """One parenthesised ``expr | factor`` (tokens inside the parentheses) -> its terms."""
    bars = [i for i, t in enumerate(tokens) if t in ("|", "||")]
    if len(bars) != 1:
        raise SpecError("random", f"term {text}: expected one '|' (or '||') between the effects and the grouping "
                                  f"factor, as in (1 + x | g); found {len(bars)}")
    bar = bars[0]
    intercept, columns = _effects(tokens[:bar], text)
    if bar == len(tokens) - 1:
        raise SpecError("random", f"term {text}: no grouping factor after the bar")
    factors = _FactorParser(tokens[bar + 1:], text).nest()
    pieces: list[tuple[bool, tuple[str, ...]]]
    if tokens[bar] == "||":
        # lme4's expandDoubleVerts: one term per effect, the intercept first.
        pieces = ([(True, ())] if intercept else []) + [(False, (c,)) for c in columns]
    else:
        pieces = [(intercept, columns)]
    return [RandomTerm(i, c, f) for f in factors for i, c in pieces]


def _bracketed(tokens: list[str], where: str) -> list[tuple[int, int]]:
    """Top-level ``( ... )`` spans (start, end inclusive) of a token list; checks the balance."""
    spans, depth, start = [], 0, 0
    for i, tok in enumerate(tokens):
        if tok == "(":
            if depth == 0:
                start = i
            depth += 1
        elif tok == ")":
            depth -= 1
            if depth < 0:
                raise SpecError("random", f"{where}: a ')' without its '('")
            if depth == 0:
                spans.append((start, i))
    if depth:
        raise SpecError("random", f"{where}: {depth} '(' not closed")
    return spans


def _text(tokens: list[str]) -> str:
    return " ".join(tokens).replace("( ", "(").replace(" )", ")")


def parse_random(text: str) -> list[RandomTerm]:
    """Parse the random part of an lme4 formula into terms, ``||`` and ``/`` expanded.

    Parameters
    ----------
    text : str
        Terms joined by ``+``, e.g. ``"(1 + days | subject) + (1 | item)"``.

    Returns
    -------
    list of RandomTerm
        In the order written (lme4 sorts them by number of levels once it has the data;
        `mixcv_core.models.mixed.design.build_remats` does the same).

    Raises
    ------
    SpecError
        Field ``random``, naming the term: unbalanced parentheses, a term without a bar,
        an empty term, a term lme4 would refuse.

    Examples
    --------
    >>> [str(t) for t in parse_random("(1 + days || subject) + (1 | batch/cask)")]
    ['(1 | subject)', '(0 + days | subject)', '(1 | cask:batch)', '(1 | batch)']
    """
    if not isinstance(text, str) or not text.strip():
        raise SpecError("random", f"expected random-effect terms such as '(1 | group)', got {text!r}")
    spans = _spans(text, "random part")
    tokens = [t for t, _, _ in spans]
    terms: list[RandomTerm] = []
    expect_term, pos = True, 0
    for start, end in _bracketed(tokens, f"random part {text.strip()!r}"):
        between = tokens[pos:start]
        if expect_term and between:
            raise SpecError("random", f"random part {text.strip()!r}: expected a term in parentheses, got "
                                      f"{_text(between)!r}")
        if not expect_term and between != ["+"]:
            raise SpecError("random", f"random part {text.strip()!r}: terms must be joined by '+', got "
                                      f"{_text(between) or 'nothing'!r} before {text[spans[start][1]:spans[end][2]]!r}")
        inner = tokens[start + 1:end]
        term_text = text[spans[start][1]:spans[end][2]]
        if not inner:
            raise SpecError("random", f"an empty term () in {text.strip()!r}")
        if inner[0] == "(" and _bracketed(inner, term_text)[0] == (0, len(inner) - 1):
            inner = inner[1:-1]    # ((1 | g)): R reads the same term
        terms.extend(_term(inner, term_text))
        expect_term, pos = False, end + 1
    rest = tokens[pos:]
    if rest or expect_term:
        raise SpecError("random", f"random part {text.strip()!r}: expected terms in parentheses such as "
                                  f"'(1 | group)' joined by '+'" + (f"; left over: {_text(rest)!r}" if rest else ""))
    return terms


def split_formula(formula: str) -> tuple[str, list[RandomTerm]]:
    """Split an lme4 formula into its fixed part (for formulaic) and its random terms.

    Parameters
    ----------
    formula : str
        ``"response ~ fixed terms + (effects | factor) + ..."``.

    Returns
    -------
    fixed : str
        The formula without its random terms (``"y ~ 1"`` if nothing else is left).
    terms : list of RandomTerm

    Raises
    ------
    SpecError
        Field ``formula``/``random``: no ``~``, a bar outside parentheses, no random term.

    Examples
    --------
    >>> fixed, terms = split_formula("y ~ x1 + x2 + (1 | g)")
    >>> fixed, [str(t) for t in terms]
    ('y ~ x1 + x2', ['(1 | g)'])
    """
    tildes = ([start for tok, start, _ in _spans(formula, "formula", strict=False) if tok == "~"]
              if isinstance(formula, str) else [])
    if len(tildes) != 1:
        raise SpecError("formula", f"expected one '~' between the response and the terms, e.g. "
                                   f"'y ~ x + (1 | g)'; got {formula!r}")
    lhs, rhs = formula[:tildes[0]], formula[tildes[0] + 1:]
    if not lhs.strip():
        raise SpecError("formula", f"no response before '~' in {formula!r}")
    spans = _spans(rhs, "formula", strict=False)
    tokens = [t for t, _, _ in spans]
    drop: list[tuple[int, int]] = []          # token ranges (inclusive) that leave the fixed part
    random_parts: list[str] = []
    for start, end in _bracketed(tokens, f"formula {formula!r}"):
        inner = tokens[start + 1:end]
        if "|" not in inner and "||" not in inner:
            continue
        # A random term is a whole summand: '+' (or the start) before it, '+'/'-' (or the end) after.
        before = tokens[start - 1] if start > 0 else "+"
        after = tokens[end + 1] if end + 1 < len(tokens) else "+"
        term_text = rhs[spans[start][1]:spans[end][2]]
        if before != "+" or after not in ("+", "-"):
            raise SpecError("formula", f"the random term {term_text!r} must be added to the fixed part with "
                                       "'+' (as in 'y ~ x + (1 | g)')")
        random_parts.append(term_text)
        if start > 0:
            drop.append((start - 1, end))
        elif end + 1 < len(tokens) and tokens[end + 1] == "+":
            drop.append((start, end + 1))
        else:
            drop.append((start, end))
    dropped = {i for a, b in drop for i in range(a, b + 1)}
    if any(t in ("|", "||") for i, t in enumerate(tokens) if i not in dropped):
        raise SpecError("formula", f"a '|' outside parentheses in {formula!r}: random terms are written "
                                   "in parentheses, (1 + x | g)")
    if not random_parts:
        raise SpecError("formula", f"no random-effect term such as (1 | g) in {formula!r}; for a model without "
                                   "random effects use a linear model")
    # The fixed part in the user's own spelling: the text between the dropped ranges.
    pieces, pos = [], 0
    for a, b in sorted(drop):
        pieces.append(rhs[pos:spans[a][1]])
        pos = spans[b][2]
    pieces.append(rhs[pos:])
    fixed_rhs = " ".join(" ".join(pieces).split())
    if fixed_rhs.startswith("+"):
        fixed_rhs = fixed_rhs[1:].strip()
    return f"{lhs.strip()} ~ {fixed_rhs or '1'}", parse_random(" + ".join(random_parts))
