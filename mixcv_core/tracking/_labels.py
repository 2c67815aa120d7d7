"""Row labels and group labels stored exactly: what goes into the run store comes back as it was.

A run keeps the data's row index (for the predictions table), the group labels and, with
several grouping factors, every grouping column (for the checks and the report). JSON
alone would turn a MultiIndex into lists, datetimes into text and tuples into lists, and
pickle would run code from a store. So each array is written as typed JSON — its kind
(integer, float, boolean, text, datetime with its time zone), its dtype and its values —
and a MultiIndex level by level. Labels of any other kind (tuples, arbitrary objects,
a mix of numbers and text) cannot come back exactly and are refused before the run starts,
with the way out.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from ..errors import SpecError

__all__ = ["encode_index", "decode_index", "encode_values", "decode_values", "encode_group_frame",
           "decode_group_frame", "encode_classes", "decode_classes", "LABELS_FORMAT"]

#: Version of this encoding, kept in a run's metadata (format 1: plain JSON lists).
LABELS_FORMAT = 2


def encode_values(values: Any, what: str) -> dict[str, Any]:
    """A 1-D array of labels as typed JSON; raises `SpecError` naming ``what`` if it cannot be exact."""
    series = pd.Series(values)
    if isinstance(series.dtype, pd.CategoricalDtype):
        series = series.astype(series.cat.categories.dtype)
    dtype = series.dtype
    if pd.api.types.is_datetime64_any_dtype(dtype):
        tz = getattr(dtype, "tz", None)
        naive = series.dt.tz_convert("UTC").dt.tz_localize(None) if tz is not None else series
        ticks = naive.to_numpy()                       # datetime64 in the column's own unit (ns, us, ...)
        unit = np.datetime_data(ticks.dtype)[0]
        return {"type": "datetime", "tz": None if tz is None else str(tz), "unit": unit,
                "data": ticks.view("int64").tolist()}
    if pd.api.types.is_bool_dtype(dtype):
        return {"type": "bool", "data": series.astype(bool).tolist()}
    if pd.api.types.is_integer_dtype(dtype):
        return {"type": "int", "dtype": str(dtype), "data": series.astype("int64").tolist()}
    if pd.api.types.is_float_dtype(dtype):
        return {"type": "float", "dtype": str(dtype), "data": series.astype("float64").tolist()}
    kinds = {type(v) for v in series}
    if kinds <= {str}:
        return {"type": "str", "dtype": str(dtype), "data": series.tolist()}
    if kinds <= {pd.Timestamp}:
        return encode_values(pd.to_datetime(series), what)
    if kinds and all(issubclass(k, (int, np.integer)) and not issubclass(k, bool) for k in kinds):
        return {"type": "int", "dtype": "object", "data": [int(v) for v in series]}
    names = sorted(k.__name__ for k in kinds)
    raise SpecError("store", f"the {what} are of type(s) {names}, which the run store cannot keep exactly; make "
                             "them numbers, text or dates (e.g. .astype(str)), or do not record the run "
                             "(--no-store, store=False)")


def decode_values(enc: dict[str, Any]) -> np.ndarray:
    """The array `encode_values` wrote, with its type."""
    kind, data = enc["type"], enc["data"]
    if kind == "datetime":
        stamps = pd.DatetimeIndex(np.asarray(data, dtype="int64").view(f"datetime64[{enc.get('unit', 'ns')}]"))
        if enc.get("tz"):
            return stamps.tz_localize("UTC").tz_convert(enc["tz"]).to_numpy()   # Timestamps, as pandas hands them out
        return stamps.to_numpy()
    if kind == "bool":
        return np.asarray(data, dtype=bool)
    if kind in ("int", "float"):
        return np.asarray(data, dtype=object if enc.get("dtype") == "object" else enc["dtype"])
    return np.asarray(data, dtype=object)


def encode_index(index: pd.Index) -> dict[str, Any]:
    """A row index (a MultiIndex level by level) as typed JSON."""
    if isinstance(index, pd.RangeIndex):
        return {"kind": "range", "start": index.start, "stop": index.stop, "step": index.step,
                "name": index.name}
    if isinstance(index, pd.MultiIndex):
        return {"kind": "multi", "names": list(index.names),
                "levels": [encode_values(index.get_level_values(i), "row labels") for i in range(index.nlevels)]}
    return {"kind": "single", "name": index.name, "values": encode_values(index, "row labels")}


def decode_index(enc: dict[str, Any]) -> pd.Index:
    """The index `encode_index` wrote."""
    if enc["kind"] == "range":
        return pd.RangeIndex(enc["start"], enc["stop"], enc["step"], name=enc["name"])
    if enc["kind"] == "multi":
        return pd.MultiIndex.from_arrays([decode_values(level) for level in enc["levels"]], names=enc["names"])
    return pd.Index(decode_values(enc["values"]), name=enc["name"])


def encode_group_frame(frame: pd.DataFrame) -> dict[str, Any]:
    """Every grouping column of a run (several factors), column by column as `encode_values`.

    The names are a list beside the values, not the keys of a mapping, so their order (the
    order of ``groups``) comes back as it was.
    """
    return {"columns": [str(c) for c in frame.columns],
            "values": [encode_values(frame[c].to_numpy(), f"labels of the grouping column {str(c)!r}")
                       for c in frame.columns]}


def decode_group_frame(enc: dict[str, Any]) -> pd.DataFrame:
    """The grouping columns `encode_group_frame` wrote, in their order."""
    columns, values = enc["columns"], enc["values"]
    if not (isinstance(columns, list) and isinstance(values, list) and len(columns) == len(values)
            and all(isinstance(c, str) for c in columns) and len(set(columns)) == len(columns)):
        raise ValueError("its grouping columns are not a list of distinct names with one array each")
    return pd.DataFrame({c: decode_values(v) for c, v in zip(columns, values, strict=True)})


def encode_classes(classes: tuple[Any, ...]) -> dict[str, Any]:
    """A classification's labels, in code order, as typed JSON: the ``classes`` entry of a run's metadata.

    Labels of one Python type are one array (`encode_values`). A target may mix types (``0``,
    ``"one"``, ``"many"``, sorted by their text; ``0`` and ``1.5``) where a column of groups may
    not, so such labels are kept one by one, each with its own type, under ``classes_each``: a
    mixcv that predates it finds no labels there and shows codes, as it always did.

    Raises
    ------
    SpecError
        A label that is not a number, text, a bool or a date (a tuple, an object).
    """
    if len({type(c) for c in classes}) == 1:
        return {"classes": encode_values(list(classes), "class labels")}
    # Not one array: pandas would make floats of 0 and 1.5 and 0.0 would come back.
    return {"classes_each": [encode_values([c], "class labels") for c in classes]}


def decode_classes(meta: dict[str, Any]) -> tuple[Any, ...]:
    """The labels `encode_classes` wrote into ``meta`` (``()``: none kept, the run shows codes)."""
    if "classes" in meta:
        return tuple(decode_values(meta["classes"]).tolist())
    if "classes_each" in meta:
        return tuple(decode_values(enc).tolist()[0] for enc in meta["classes_each"])
    return ()
