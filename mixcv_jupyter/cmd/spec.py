"""``%mixcv spec``: print the ``%%mixcv`` cell that reproduces results."""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING

from IPython.core.error import UsageError

from mixcv_core import MixcvError
from mixcv_core.experiment.cell import spec_to_cell

from ._common import NAME, command, results_named

if TYPE_CHECKING:
    from ..magic import MixcvMagic

__all__ = ["COMMAND"]


def _spec(magic: MixcvMagic, args: argparse.Namespace) -> None:
    results = results_named(magic, args.name)
    try:
        text = f"%%mixcv -o {args.name}\n" + spec_to_cell(results.spec)
    except MixcvError as exc:
        raise UsageError(f"{args.name} cannot be written as a cell: {exc.message}") from None
    print(text, end="")


COMMAND = command("spec", "print the %%mixcv cell that reproduces results", _spec, NAME)
