"""``%mixcv show``: results in the explorer (summary, folds, comparison, plots, models, checks)."""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING, Any

from ._common import NAME, command, results_named

if TYPE_CHECKING:
    from ..magic import MixcvMagic

__all__ = ["COMMAND"]


def _show(magic: MixcvMagic, args: argparse.Namespace) -> Any:
    from ..explorer import Explorer
    return Explorer(results_named(magic, args.name))


COMMAND = command("show", "open results in the explorer: summary, folds, comparison, plots, models, checks", _show,
                  NAME)
