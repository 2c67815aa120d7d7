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

# scheme://user:password@host. The user-info runs to the last '@' before white space, since
# a password may hold '/', ':' or '@' (postgresql://ann:pa/ss@db); scrubbing a little too
# much of an odd URL is the safe way to be wrong.
_USERINFO = re.compile(r"(?P<scheme>\b[a-zA-Z][a-zA-Z0-9+.-]*://)[^\s'\"<>]*@")
# An HTTP credential after its scheme word: "Authorization: Bearer abc", "Basic dXNlcjpw".
_AUTH_SCHEME = re.compile(r"(?P<key>\b(?:Bearer|Basic|Digest|Token)\s+)(?P<value>[A-Za-z0-9._~+/-][A-Za-z0-9._~+/=-]*)",
                          re.IGNORECASE)
# Words that name a secret, alone or inside a longer key (aws_secret_access_key,
# db_password, X-Api-Key, client_secret, pwd).
_SENSITIVE_NAMES = (r"[\w.-]*(?:password|passwd|pwd|secret|token|api[_-]?key|access[_-]?key|private[_-]?key|"
               r"credentials?|authorization)[\w.-]*")
# key = value, key: value, 'key': 'value', "key": "value", key='value'; the value quoted
# (anything up to its closing quote) or bare (up to white space or a separator).
_PAIRS = re.compile(r"(?P<key>(?P<q>[\"']?)\b" + _SENSITIVE_NAMES + r"(?P=q))(?P<sep>\s*[=:]\s*)"
                    r"(?P<value>\"[^\"]*\"|'[^']*'|(?!\*\*\*|(?:Bearer|Basic|Digest|Token)\s)[^\s&,;'\"})\]]+)",
                    re.IGNORECASE)


def _pair(m: re.Match[str]) -> str:
    value = m["value"]
    quote = value[0] if value[:1] in ("'", '"') else ""
    return f"{m['key']}{m['sep']}{quote}***{quote}"


def scrub(text: str, collapse: bool = False) -> str:
    """``text`` with credentials replaced by ``***``.

    Removes the values of `SECRET_VARIABLES` set in the environment, the user-info part of
    URLs (``scheme://user:password@host`` -> ``scheme://***@host``), HTTP credentials
    (``Bearer ...``, ``Basic ...``) and pairs whose key names a secret, bare or quoted
    (``token=...``, ``password='...'``, ``"api_key": "..."``, ``aws_secret_access_key=...``,
    ``pwd=...``). With ``collapse``, also terminal colour codes, banner
    rules and runs of white space (for one-line messages).

    Examples
    --------
    >>> scrub("could not reach http://ann:hunter2@mlflow.example:5000/api")
    'could not reach http://***@mlflow.example:5000/api'
    >>> scrub("auth failed: api_token=abc123")
    'auth failed: api_token=***'
    >>> scrub("connect(password='hunter2', host='db')")
    "connect(password='***', host='db')"
    """
    for var in SECRET_VARIABLES:
        secret = os.environ.get(var)
        if secret and len(secret) >= 4:
            text = text.replace(secret, "***")
    text = _USERINFO.sub(lambda m: f"{m['scheme']}***@", text)
    text = _AUTH_SCHEME.sub(lambda m: f"{m['key']}***", text)
    text = _PAIRS.sub(_pair, text)
    if collapse:
        text = re.sub(r"\x1b\[[0-9;]*m", "", text)
        text = re.sub(r"-{4,}\w*-{4,}", "", text)
        text = " ".join(text.split())
    return text
