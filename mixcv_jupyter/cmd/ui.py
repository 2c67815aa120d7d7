"""``%mixcv ui``: the widget form on a DataFrame, or reopened on results."""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING, Any

import pandas as pd
from IPython.core.error import UsageError

from mixcv_core import MixcvError, Results

from ._common import command

if TYPE_CHECKING:
    from ..magic import MixcvMagic

__all__ = ["COMMAND"]


def _ui(magic: MixcvMagic, args: argparse.Namespace) -> Any:
    from ..form import Configurator
    obj = magic.shell.user_ns.get(args.name)
    if isinstance(obj, Results):
        try:
            return Configurator.from_spec(obj, shell=magic.shell)
        except MixcvError as exc:
            raise UsageError(str(exc)) from None
    if not isinstance(obj, pd.DataFrame):
        raise UsageError(f"{args.name!r} is not a DataFrame (or mixcv results) in this notebook")
    return Configurator(obj, name=args.name, shell=magic.shell)


COMMAND = command("ui", "a form that builds (and runs) an experiment on a DataFrame, or reopens results", _ui,
                  (("name",), {"metavar": "DF", "help": "a DataFrame (or Results) in the notebook"}))
