"""``%mixcv models``: the model names a cell or the form can use."""

from __future__ import annotations

import argparse
import html
from typing import TYPE_CHECKING, Any

from ._common import command, rendered

if TYPE_CHECKING:
    from ..magic import MixcvMagic

__all__ = ["COMMAND"]


def _models(magic: MixcvMagic, args: argparse.Namespace) -> Any:
    from mixcv_core.experiment.registry import available_models
    names = available_models()
    return rendered("<div>" + ", ".join(f"<code>{html.escape(n)}</code>" for n in names) + "</div>",
                    "\n".join(names))


COMMAND = command("models", "the model names a cell or the form can use", _models)
