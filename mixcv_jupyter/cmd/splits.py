"""``%mixcv splits``: the split methods, with what each keeps apart."""

from __future__ import annotations

import argparse
import html
from typing import TYPE_CHECKING, Any

from ._common import command, rendered

if TYPE_CHECKING:
    from ..magic import MixcvMagic

__all__ = ["COMMAND"]


def _splits(magic: MixcvMagic, args: argparse.Namespace) -> Any:
    from mixcv_core.experiment.splits import describe_methods
    methods = describe_methods()
    return rendered("<ul>" + "".join(f"<li><code>{k}</code>: {html.escape(v)}</li>" for k, v in methods.items())
                    + "</ul>", "\n".join(f"{k}: {v}" for k, v in methods.items()))


COMMAND = command("splits", "the split methods, with what each keeps apart", _splits)
