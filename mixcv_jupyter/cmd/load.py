"""``%mixcv load``: a stored run back as Results."""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING

from IPython.core.error import UsageError

from mixcv_core import MixcvError

from ._common import OUTPUT, STORE, check_output_name, command, open_store

if TYPE_CHECKING:
    from ..magic import MixcvMagic

__all__ = ["COMMAND"]


def _load(magic: MixcvMagic, args: argparse.Namespace) -> None:
    name = check_output_name(args.output, magic.shell.user_ns)
    try:
        results = open_store(magic, args.store).load(args.run_id, models=args.models)
    except MixcvError as exc:
        raise UsageError(str(exc)) from None
    magic.shell.user_ns[name] = results
    print(f"run {results.run_id} ({results.status}) loaded as {name!r}")


COMMAND = command("load", "bring a stored run back as Results", _load,
                  (("run_id",), {"metavar": "RUN_ID", "help": "the run's id, or a unique start of it"}),
                  OUTPUT, STORE,
                  (("--models",), {"action": "store_true",
                                   "help": "also unpickle the saved models: runs their code, so only for a store you "
                                           "trust (checked: inside the store, checksum as saved)"}))
