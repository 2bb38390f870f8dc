"""Where a data request may go: below the dataset's `baseUrl`, never beside or above it.

A consumer appends a sub-path and a query to the data plane's endpoint; the provider calls its backend
with the asset's secret. So the sub-path is read here, once, strictly: each segment percent-decoded once
(as UTF-8), and refused when it is, or could be read by some server as, a step out of the base path: a dot
segment (also as `%2e`, and as full-width dots once Unicode-normalised), an encoded `/` or a backslash
(some servers split on them), a `%` left after decoding (double encoding such as `%252e`, which a second
decoder turns into `.`), a `;` (path parameters: `..;/` is `..` to Tomcat), a control character or NUL,
or an empty segment. What passes is re-encoded from its decoded form, so the backend reads exactly the
segments that were checked. The query is taken as the consumer's decoded parameters and re-encoded,
so an encoded `&` or `#` stays part of a value; a parameter the base URL fixes cannot be given again.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Iterable
from urllib.parse import parse_qsl, quote, unquote_to_bytes, urlencode, urlsplit, urlunsplit

from connector.domain.errors import InvalidInput, Problem

# RFC 3986 pchar without ';' (refused) and '%' (escapes only): what a re-encoded segment may show as is.
_SEGMENT_SAFE = "!$&'()*+,=:@-._~"
_DOT_SEGMENTS = frozenset({".", ".."})
_SHOWN = 64


class PathRefused(InvalidInput):
    """A consumer's sub-path or query would leave, or could be read as leaving, the dataset's address."""


def _refuse(what: str, raw: str) -> PathRefused:
    shown = raw if len(raw) <= _SHOWN else raw[:_SHOWN] + "..."
    message = f"the request is refused: {what}; a data request may not leave the dataset's address"
    return PathRefused(message, [Problem(message, "path", shown)])


def _control(text: str) -> bool:
    return any(ord(c) < 0x20 or 0x7F <= ord(c) < 0xA0 for c in text)


def _segment_problem(decoded: str) -> str | None:
    if decoded in _DOT_SEGMENTS:
        return "holds a dot segment ('.' or '..', however encoded)"
    if "/" in decoded:
        return "holds an encoded '/' (%2F) inside a segment"
    if "\\" in decoded:
        return "holds a backslash (%5C)"
    if "%" in decoded:
        return "holds a '%' that is not an escape, or an escaped '%' (double encoding such as %252e)"
    if ";" in decoded:
        return "holds a ';' (path parameters are not passed on)"
    if _control(decoded):
        return "holds a control character (such as NUL)"
    folded = unicodedata.normalize("NFKC", decoded)
    if folded in _DOT_SEGMENTS or any(c in folded for c in "/\\%;"):
        return "holds characters that read as '.', '/', a backslash, '%' or ';' once Unicode-normalised"
    return None


def sub_path_segments(raw: str) -> list[str]:
    """Return the decoded segments of a consumer's raw (still percent-encoded) sub-path; raise PathRefused."""
    if not raw:
        return []
    parts = raw.split("/")
    segments: list[str] = []
    for index, part in enumerate(parts):
        if not part:
            if index == len(parts) - 1 and index > 0:
                segments.append("")  # a trailing slash
                continue
            raise _refuse("it holds an empty segment ('//')", raw)
        try:
            decoded = unquote_to_bytes(part).decode("utf-8")
        except UnicodeDecodeError:
            what = f"segment {index + 1} is not UTF-8 once percent-decoded (such as an overlong %c0%ae)"
            raise _refuse(what, raw) from None
        problem = _segment_problem(decoded)
        if problem is not None:
            raise _refuse(f"segment {index + 1} {problem}", raw)
        segments.append(decoded)
    return segments


def join_below(base_url: str, raw_sub_path: str = "", query: Iterable[tuple[str, str]] = ()) -> str:
    """Return `base_url` with a consumer's raw sub-path appended below its path and its query parameters added.

    `base_url` is the operator's (an encoded URL); `raw_sub_path` is the consumer's, as received (percent-encoded,
    without a leading '/'); `query` the consumer's decoded parameters. Raise PathRefused naming what is wrong
    when either could leave the base.
    """
    segments = sub_path_segments(raw_sub_path)
    pairs = list(query)
    if not segments and not pairs:
        return base_url
    parts = urlsplit(base_url)
    path = parts.path
    if segments:
        path = path.rstrip("/") + "/" + "/".join(quote(segment, safe=_SEGMENT_SAFE) for segment in segments)
    extra = ""
    if pairs:
        fixed = {name for name, _ in parse_qsl(parts.query, keep_blank_values=True)}
        for name, value in pairs:
            if _control(name) or _control(value):
                raise _refuse("a query parameter holds a control character (such as NUL)", name)
            if name in fixed:
                raise _refuse(f"the query parameter {name[:_SHOWN]!r} is fixed by the dataset", name)
        extra = urlencode(pairs, quote_via=quote)
    joined_query = "&".join(q for q in (parts.query, extra) if q)
    return urlunsplit((parts.scheme, parts.netloc, path, joined_query, ""))
