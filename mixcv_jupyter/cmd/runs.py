"""``%mixcv runs``: the runs in the run store, newest first."""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING, Any

from ._common import STORE, command, open_store

if TYPE_CHECKING:
    from ..magic import MixcvMagic

__all__ = ["COMMAND"]


def _runs(magic: MixcvMagic, args: argparse.Namespace) -> Any:
    return open_store(magic, args.store or args.folder).runs()


COMMAND = command("runs", "the runs in the run store, newest first", _runs,
                  (("folder",), {"nargs": "?", "default": None, "metavar": "DIR", "help": "run store folder"}), STORE)
