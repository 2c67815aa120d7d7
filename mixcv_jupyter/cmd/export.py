"""``%mixcv export NAME FILE``: write a run to a file chosen by its extension (`mixcv_jupyter.export`)."""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING

from ._common import STORE, command, open_store

if TYPE_CHECKING:
    from ..magic import MixcvMagic

__all__ = ["COMMAND"]


def _export(magic: MixcvMagic, args: argparse.Namespace) -> None:
    from ..export import export_command
    export_command(magic.shell.user_ns, args.name, args.path, lambda: open_store(magic, args.store))


_NAME = (("name",), {"metavar": "NAME", "help": "a stored run's id (or a unique start), or a Results variable"})
_FILE = (("path",), {"metavar": "FILE", "help": "report.html, methods.md, methods.txt, methods.tex, tables.tex"})

COMMAND = command("export", "write a run to a file, chosen by its extension: report.html (self-contained), "
                  "methods.md, methods.tex (+ .bib), tables.tex (booktabs)", _export, _NAME, _FILE, STORE)
