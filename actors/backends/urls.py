"""Endpoint URLs: joined correctly, and shown without their secrets.

A base URL may carry a query (Azure's ``?api-version=…``) or credentials
(``https://user:pass@host``, ``?key=…``). An endpoint's path goes before the
query, not after it; and whatever is printed, logged or stored — a health line,
an error that becomes a transcript's failure cause — shows the URL with its
password and query values masked, so a secret in a run config never leaves
the process that needs it.
"""

from __future__ import annotations

from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

MASK = "***"


def join(base: str, path: str) -> str:
    """``base`` with ``path`` appended to its path, its query and fragment kept."""
    parts = urlsplit(base)
    joined = f"{parts.path.rstrip('/')}/{path.lstrip('/')}" if path else parts.path
    return urlunsplit(parts._replace(path=joined))


def public(url: object) -> str:
    """The URL as it may be shown: the password and every query value replaced by ``***``."""
    text = str(url)
    try:
        parts = urlsplit(text)
    except ValueError:
        return text
    netloc = parts.netloc
    if "@" in netloc:
        userinfo, host = netloc.rsplit("@", 1)
        user = userinfo.split(":", 1)[0]
        netloc = f"{user}:{MASK}@{host}" if ":" in userinfo else f"{MASK}@{host}"
    query = parts.query
    if query:
        query = urlencode([(key, MASK) for key, _ in parse_qsl(query, keep_blank_values=True)], safe="*")
    return urlunsplit(parts._replace(netloc=netloc, query=query))


def mask_in(text: str, urls: list[str]) -> str:
    """``text`` with each of ``urls`` (and its base) replaced by its public form."""
    for url in sorted(urls, key=len, reverse=True):
        shown = public(url)
        if shown != url:
            text = text.replace(url, shown)
    return text
