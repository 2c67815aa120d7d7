"""A finished run as data (`Results`), its HTML report and its figures.

`Results` holds the outcomes; `report` renders them as HTML and `plots` draws them.
The rendering modules need `Results` only for type hints, so the report never imports
the class it renders (no import circle).
"""

from __future__ import annotations

from .results import Results

__all__ = ["Results"]
