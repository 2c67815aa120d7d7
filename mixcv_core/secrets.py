"""Credentials never leave mixcv in a message: one scrubber for every error, warning and report.

Credentials reach mixcv only through the environment (``NEPTUNE_API_TOKEN``,
``MLFLOW_TRACKING_PASSWORD``...) or inside a tracker URI (``http://user:password@host``).
Both can come back in the text of an exception from a client library; `scrub` removes
them from any text before mixcv shows it, stores it or passes it to a warning.
"""

from __future__ import annotations

import os
import re

__all__ = ["scrub", "SECRET_VARIABLES"]

#: Environment variables whose values are secrets wherever they appear.
SECRET_VARIABLES = ("NEPTUNE_API_TOKEN", "MLFLOW_TRACKING_PASSWORD", "MLFLOW_TRACKING_TOKEN",
                    "MLFLOW_TRACKING_CLIENT_CERT_PATH", "AWS_SECRET_ACCESS_KEY", "AZURE_STORAGE_ACCESS_KEY")

_USERINFO = re.compile(r"(?P<scheme>\b[a-zA-Z][a-zA-Z0-9+.-]*://)[^/\s@]+@")
_PAIRS = re.compile(r"(?P<key>api[_-]?token|token|password|passwd|secret|api[_-]?key)"
                    r"(?P<sep>\s*[=:]\s*)(?P<value>[^\s&,;'\"]+)", re.IGNORECASE)


def scrub(text: str, collapse: bool = False) -> str:
    """``text`` with credentials replaced by ``***``.

    Removes the values of `SECRET_VARIABLES` set in the environment, the user-info part of
    URLs (``scheme://user:password@host`` -> ``scheme://***@host``) and ``token=...``,
    ``password: ...`` style pairs. With ``collapse``, also terminal colour codes, banner
    rules and runs of white space (for one-line messages).

    Examples
    --------
    >>> scrub("could not reach http://ann:hunter2@mlflow.example:5000/api")
    'could not reach http://***@mlflow.example:5000/api'
    >>> scrub("auth failed: api_token=abc123")
    'auth failed: api_token=***'
    """
    for var in SECRET_VARIABLES:
        secret = os.environ.get(var)
        if secret and len(secret) >= 4:
            text = text.replace(secret, "***")
    text = _USERINFO.sub(lambda m: f"{m['scheme']}***@", text)
    text = _PAIRS.sub(lambda m: f"{m['key']}{m['sep']}***", text)
    if collapse:
        text = re.sub(r"\x1b\[[0-9;]*m", "", text)
        text = re.sub(r"-{4,}\w*-{4,}", "", text)
        text = " ".join(text.split())
    return text
