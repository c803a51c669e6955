"""Pagination links: absolute URLs that page through the same list.

The base URL is PUBLIC_BASE_URL when it is set. Otherwise it is the one the client called,
rebuilt from the request only where the request is trustworthy: the scheme only when it is
http or https, the host only when it is a valid host[:port]; anything else falls back to the
API's own host (no header value is echoed unchecked).
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from urllib.parse import quote, urlencode

from conversions_core.values import int_to_digits

_LABEL = r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
_HOST = re.compile(rf"(?:{_LABEL}(?:\.{_LABEL})*|\[[0-9A-Fa-f:.]+\])(?::(?P<port>[0-9]{{1,5}}))?")
_SCHEMES = ("http", "https")
_FALLBACK_HOST = "localhost"


def valid_host(value: str | None) -> bool:
    """A host name, IPv4 address or bracketed IPv6 address, with an optional port up to 65535."""
    if not value or len(value) > 255:
        return False
    match = _HOST.fullmatch(value)
    return match is not None and int(match["port"] or 0) <= 65535


def base_url(
    public_base_url: str | None,
    forwarded_proto: str | None,
    host: str | None,
    own_host: str | None,
    stage_prefix: str = "",
) -> str:
    """The URL prefix the endpoint's path is appended to."""
    if public_base_url:
        return public_base_url.rstrip("/")
    scheme = (forwarded_proto or "").split(",")[0].strip().lower()
    if scheme not in _SCHEMES:
        scheme = "https"
    chosen = next((h for h in (host, own_host) if valid_host(h)), _FALLBACK_HOST)
    return f"{scheme}://{chosen}{stage_prefix}"


@dataclass(frozen=True)
class PageLinks:
    """first, last, next, prev and self for page `number` of `total` results."""

    url: str  # the endpoint's absolute URL
    kept: dict[str, str]  # the list parameters the request sent, kept in every link
    number: int
    per_page: int
    total: int

    @property
    def total_pages(self) -> int:
        return math.ceil(self.total / self.per_page) if self.total else 0

    def link(self, page: int | None) -> str | None:
        if page is None:
            return None
        return f"{self.url}?{urlencode({**self.kept, 'page': int_to_digits(page)}, quote_via=quote)}"

    def as_dict(self) -> dict[str, str | None]:
        last, number = self.total_pages, self.number
        return {
            "first": self.link(1),
            "last": self.link(last or None),
            "next": self.link(number + 1 if number < last else None),
            "prev": self.link(number - 1 if number > 1 else None),
            "self": self.link(number),
        }
