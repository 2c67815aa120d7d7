"""``%mixcv resume``: finish an interrupted stored run with the DataFrame it ran on."""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING, Any

import pandas as pd
from IPython.core.error import UsageError

from mixcv_core import MixcvError

from ._common import OUTPUT, STORE, check_output_name, command, open_store

if TYPE_CHECKING:
    from ..magic import MixcvMagic

__all__ = ["COMMAND"]


def _resume(magic: MixcvMagic, args: argparse.Namespace) -> Any:
    from mixcv_core import CrossValidation
    name = check_output_name(args.output, magic.shell.user_ns)
    store = open_store(magic, args.store)
    try:
        stored = store.load(args.run_id)
        frame_name = stored.spec.data.frame
        if not frame_name:
            raise UsageError(f"run {stored.run_id} was made from Python, not from a cell, so it names no DataFrame; "
                             f"resume it in Python: CrossValidation.resume(store, {stored.run_id!r}, frame)")
        frame = magic.shell.user_ns.get(frame_name)
        if not isinstance(frame, pd.DataFrame):
            raise UsageError(f"run {stored.run_id} ran on the DataFrame {frame_name!r}, which is not in this notebook; "
                             "load the same data under that name first")
        results = CrossValidation.resume(store, stored.run_id, frame)
    except MixcvError as exc:
        raise UsageError(str(exc)) from None
    magic.shell.user_ns[name] = results
    print(f"run {results.run_id} resumed ({results.status}); results stored as {name!r}")
    return results


COMMAND = command("resume", "finish an interrupted stored run: fit only what it lacks, with the data it ran on",
                  _resume, (("run_id",), {"metavar": "RUN_ID", "help": "the run's id, or a unique start of it"}),
                  OUTPUT, STORE)
