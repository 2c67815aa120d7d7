"""Sentences as data, and their writing as plain text, Markdown, LaTeX or HTML.

A `Sentence` is a topic and a tuple of parts: plain text (ours), `Code` (a user's name: a
column, a model, a parameter value) and `Cite` (keys of `citations.REFERENCES`).
`render_methods` writes them in one of `FORMATS`, escaping every part for that format
(`latex_escape`, HTML escaping, Markdown code spans), so a user string can neither break
nor inject into the document it lands in.
"""

from __future__ import annotations

import html
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from ..errors import SpecError
from .citations import REFERENCES

__all__ = ["FORMATS", "Code", "Cite", "Part", "Sentence", "cited_keys", "latex_escape", "render_methods"]

#: What `render_methods` writes.
FORMATS = ("text", "markdown", "latex", "html")


# -- the parts of a sentence ------------------------------------------------------------------
@dataclass(frozen=True)
class Code:
    """A name or value that came from the user (column, model, parameter): shown as code, escaped."""

    text: str


@dataclass(frozen=True)
class Cite:
    """A parenthetical citation of one or more `REFERENCES` keys."""

    keys: tuple[str, ...]


Part = str | Code | Cite


@dataclass(frozen=True)
class Sentence:
    """One sentence of the paragraph: its topic and its parts (text, `Code`, `Cite`).

    Topics: ``data``, ``outer``, ``meaning``, ``known``, ``inner``, ``scaling``, ``tuning``,
    ``search_space``, ``models``, ``lmm``, ``glmm``, ``gpboost``, ``merf``, ``metrics``,
    ``comparison``, ``seeds``, ``status``, ``failures``, ``software``.
    """

    topic: str
    parts: tuple[Part, ...]
    #: For `Sentence`s about one model: its result name.
    model: str | None = field(default=None, compare=False)

    @property
    def text(self) -> str:
        return _render_parts(self.parts, "text")


#: Paragraph breaks: a new paragraph starts at these topics.
_PARAGRAPHS = ("data", "models", "metrics", "software")


def cited_keys(sentences: Sequence[Sentence]) -> list[str]:
    """The `REFERENCES` keys the sentences cite, in order of first citation."""
    keys = [k for s in sentences for p in s.parts if isinstance(p, Cite) for k in p.keys]
    return list(dict.fromkeys(keys))


# -- rendering -----------------------------------------------------------------------------
_LATEX_SPECIAL = {"\\": r"\textbackslash{}", "&": r"\&", "%": r"\%", "$": r"\$", "#": r"\#", "_": r"\_",
                  "{": r"\{", "}": r"\}", "~": r"\textasciitilde{}", "^": r"\textasciicircum{}",
                  # Typeset as ¡ ¿ and an em dash in LaTeX's default OT1 encoding.
                  "<": r"\textless{}", ">": r"\textgreater{}", "|": r"\textbar{}"}
# Characters our own sentences use that LaTeX's default font encoding cannot typeset as text.
_LATEX_TEXT = {"²": r"\textsuperscript{2}", "−": "--", "–": "--", "×": r"$\times$", "±": r"$\pm$"}


def latex_escape(text: str) -> str:
    """``text`` with every LaTeX special character escaped (user strings cannot inject commands)."""
    return "".join(_LATEX_SPECIAL.get(ch, _LATEX_TEXT.get(ch, ch)) for ch in text)


def _markdown_code(text: str) -> str:
    # A backtick inside code needs a longer fence, and a space when it starts or ends the text.
    fence = "`" * (max((len(run) for run in re.findall(r"`+", text)), default=0) + 1)
    pad = " " if text.startswith("`") or text.endswith("`") else ""
    return f"{fence}{pad}{text}{pad}{fence}"


_MARKDOWN_SPECIAL = re.compile(r"([\\`*_{}\[\]<>#|])")


def _render_part(p: Part, fmt: str) -> str:
    if isinstance(p, Cite):
        if fmt == "latex":
            return r"\cite{" + ",".join(p.keys) + "}"
        return "(" + "; ".join(REFERENCES[k].short for k in p.keys) + ")"
    if isinstance(p, Code):
        return {"text": p.text, "markdown": _markdown_code(p.text),
                "latex": r"\texttt{" + latex_escape(p.text) + "}",
                "html": f"<code>{html.escape(p.text)}</code>"}[fmt]
    return {"text": p, "markdown": _MARKDOWN_SPECIAL.sub(r"\\\1", p), "latex": latex_escape(p),
            "html": html.escape(p)}[fmt]


def _render_parts(parts: Iterable[Part], fmt: str) -> str:
    return "".join(_render_part(p, fmt) for p in parts)


def render_methods(sentences: Sequence[Sentence], fmt: str = "text", references: bool = True) -> str:
    """The sentences as paragraphs in ``fmt`` (`FORMATS`), then the references cited.

    ``text`` and ``markdown`` end with the reference list; ``latex`` cites with ``\\cite{key}``
    (the entries: `bibtex`); ``html`` is a ``<div>`` of ``<p>``s and a list.
    """
    if fmt not in FORMATS:
        raise SpecError("format", f"expected one of {', '.join(map(repr, FORMATS))}, got {fmt!r}")
    paragraphs: list[list[str]] = []
    for s in sentences:
        if not paragraphs or s.topic in _PARAGRAPHS and paragraphs[-1]:
            paragraphs.append([])
        paragraphs[-1].append(_render_parts(s.parts, fmt))
    keys = cited_keys(sentences) if references else []
    if fmt == "html":
        body = "".join(f"<p>{' '.join(p)}</p>" for p in paragraphs)
        refs = ("<p><b>References</b></p><ul>" + "".join(f"<li>{html.escape(REFERENCES[k].text)}</li>"
                                                          for k in keys) + "</ul>") if keys else ""
        return f'<div class="mixcv-methods">{body}{refs}</div>'
    text = "\n\n".join(" ".join(p) for p in paragraphs)
    if not keys or fmt == "latex":
        return text + "\n"
    if fmt == "markdown":
        refs = "\n".join("- " + _render_part(REFERENCES[k].text, "markdown") for k in keys)
        return f"{text}\n\n**References**\n\n{refs}\n"
    refs = "\n".join(REFERENCES[k].text for k in keys)
    return f"{text}\n\nReferences\n{refs}\n"
