"""``%mixcv export NAME FILE``: a run written to a file for a paper or a colleague.

The file's extension says what is written (`EXPORTS`), checked before the run is loaded:

- ``.html`` / ``.htm``: the whole run as one self-contained HTML file (`Results.save_report`);
- ``.md``: the methods paragraph in Markdown, ``.txt`` in plain text (`Results.methods`);
- ``.tex``: the booktabs tables (`Results.to_latex`) when the file name has ``table`` in it
  (``tables.tex``), else the methods paragraph in LaTeX, with its BibTeX entries written
  next to it (``methods.tex`` -> ``methods.bib``).

``NAME`` is a stored run (its id, or a unique start of it) or a variable holding `Results`.
The subcommand (`mixcv_jupyter.cmd.export`) only calls `export_command`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from IPython.core.error import UsageError

from mixcv_core import MixcvError, Results

__all__ = ["EXPORTS", "export_kind", "export_results", "export_command"]

#: Extension -> what is written there.
EXPORTS: dict[str, str] = {
    ".html": "the report with every figure, one self-contained file",
    ".htm": "the report with every figure, one self-contained file",
    ".md": "the methods paragraph (Markdown)",
    ".txt": "the methods paragraph (plain text)",
    ".tex": "the tables (booktabs) for a name with 'table' in it, else the methods paragraph (LaTeX, with a .bib)",
}


def export_kind(path: str | Path) -> str:
    """What a file name asks for: ``report``, ``methods-markdown``, ``methods-text``, ``tables`` or ``methods-latex``.

    Raises
    ------
    UsageError
        An extension that is not in `EXPORTS`, naming the valid ones.
    """
    p = Path(path)
    suffix = p.suffix.lower()
    if suffix not in EXPORTS:
        valid = ", ".join(EXPORTS)
        raise UsageError(f"export: cannot tell what to write to {str(path)!r} from its extension "
                         f"{suffix or '(none)'!r}; use one of {valid} (report.html, methods.md, methods.tex, "
                         "tables.tex)")
    if suffix in (".html", ".htm"):
        return "report"
    if suffix == ".md":
        return "methods-markdown"
    if suffix == ".txt":
        return "methods-text"
    return "tables" if "table" in p.stem.lower() else "methods-latex"


def export_results(results: Results, path: str | Path) -> list[Path]:
    """Write ``results`` to ``path`` as its extension asks (`export_kind`); the files written."""
    path = Path(path).expanduser()
    kind = export_kind(path)
    if path.is_dir():
        raise UsageError(f"export: {str(path)!r} is a folder; give a file name such as report.html")
    if kind == "report":
        return [results.save_report(path)]
    if kind == "tables":
        path.write_text(results.to_latex(), encoding="utf-8")
        return [path]
    fmt = {"methods-markdown": "markdown", "methods-text": "text", "methods-latex": "latex"}[kind]
    path.write_text(results.methods(format=fmt), encoding="utf-8")
    if fmt != "latex":
        return [path]
    bib = path.with_suffix(".bib")
    bib.write_text("\n\n".join(results.citations()["bibtex"]) + "\n", encoding="utf-8")
    return [path, bib]


def export_command(user_ns: Mapping[str, Any], name: str, path: str, open_store: Callable[[], Any]) -> None:
    """``%mixcv export NAME FILE``: ``NAME`` a variable holding Results or a stored run's id.

    The extension is checked first, so a typo costs no loading; ``open_store`` gives the
    run store (the subcommand's ``--store``) only when ``NAME`` is not a variable.
    """
    export_kind(path)
    results = user_ns.get(name)
    if not isinstance(results, Results):
        try:
            results = open_store().load(name)
        except MixcvError as exc:
            raise UsageError(f"export: {exc}") from None
    try:
        written = export_results(results, path)
    except MixcvError as exc:
        raise UsageError(f"export: {exc}") from None
    except OSError as exc:
        raise UsageError(f"export: cannot write {path!r}: {exc.strerror or exc}") from None
    run = f"run {results.run_id}" if results.run_id else repr(name)
    print(f"{run} exported to {', '.join(str(p) for p in written)}")
