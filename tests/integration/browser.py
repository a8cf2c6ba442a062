"""A small browser for the real-application tests: keeps cookies, never follows a redirect by
itself (so every ``Location`` can be checked), and lists the URLs a page links to."""

from __future__ import annotations

import http.client
import http.cookies
from dataclasses import dataclass, field
from html.parser import HTMLParser
from urllib.parse import urlencode, urljoin, urlsplit

from .harness import HOST, http_request


@dataclass
class Page:
    url: str
    status: int
    headers: http.client.HTTPMessage
    body: bytes

    @property
    def text(self) -> str:
        return self.body.decode("utf-8", "replace")

    @property
    def location(self) -> str:
        return self.headers.get("Location", "")


class _Links(HTMLParser):
    """Every ``href``, ``src`` and form ``action``, and the hidden inputs of forms."""

    def __init__(self) -> None:
        super().__init__()
        self.urls: list[tuple[str, str]] = []  # (attribute, value)
        self.hidden: dict[str, str] = {}

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = dict(attrs)
        for name in ("href", "src", "action"):
            value = values.get(name)
            if value is not None:
                self.urls.append((f"{tag} {name}", value))
        if tag == "input" and values.get("type") == "hidden" and values.get("name"):
            self.hidden[str(values["name"])] = values.get("value") or ""


def links(page: Page) -> list[tuple[str, str]]:
    """(where, absolute path) for every link, image, script and form target of ``page`` on
    the same site; ``javascript:``, ``mailto:``, fragment-only and other sites' links are
    left out."""
    parser = _Links()
    parser.feed(page.text)
    site = urlsplit(page.url).netloc
    found = []
    for where, value in parser.urls:
        if value.startswith(("javascript:", "mailto:", "#", "data:")):
            continue
        target = urlsplit(urljoin(page.url, value))
        if target.netloc != site:
            continue
        found.append((where, target.path + (f"?{target.query}" if target.query else "")))
    return found


def under_mount(target: str, mount: str) -> bool:
    """Whether a link's path is the mount itself or below it."""
    path = target.partition("?")[0]
    return path == mount or path.startswith(f"{mount}/")


def hidden_inputs(page: Page) -> dict[str, str]:
    parser = _Links()
    parser.feed(page.text)
    return parser.hidden


@dataclass
class Browser:
    port: int
    cookies: http.cookies.SimpleCookie = field(default_factory=http.cookies.SimpleCookie)

    @property
    def origin(self) -> str:
        return f"http://{HOST}:{self.port}"

    def request(
        self,
        method: str,
        target: str,
        body: bytes | None = None,
        headers: dict[str, str] | None = None,
    ) -> Page:
        sent = dict(headers or {})
        if self.cookies:
            sent["Cookie"] = "; ".join(f"{k}={m.value}" for k, m in self.cookies.items())
        response = http_request(self.port, method, target, body, sent)
        page = Page(f"{self.origin}{target}", response.status, response.headers, response.body)
        for value in page.headers.get_all("Set-Cookie") or []:
            self.cookies.load(value)
        return page

    def get(self, target: str) -> Page:
        return self.request("GET", target)

    def post_form(self, target: str, fields: dict[str, str]) -> Page:
        """A form POST as a browser sends it, ``Origin`` included."""
        headers = {
            "Content-Type": "application/x-www-form-urlencoded",
            "Origin": self.origin,
            "Referer": f"{self.origin}{target}",
        }
        return self.request("POST", target, urlencode(fields).encode(), headers)
