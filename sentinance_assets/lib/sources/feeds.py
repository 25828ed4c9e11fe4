"""News feeds: safe parsing (feedparser), normalisation, dedupe and a conditional-GET client.

Parsing is shared by the live source (HTTP) and the replay source (``DIR/news/*.xml``).
Every item gets a UTC ``published`` time (missing dates take the fetch time and
``published_missing=True``), a summary stripped of HTML, and the assets it mentions.
"""

from __future__ import annotations

import calendar
import hashlib
import html
import json
import re
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import urlparse

import feedparser
import polars as pl

from sentinance_assets.lib.news import news_id, normalise_title, tag_assets
from sentinance_assets.lib.schemas import RAW_NEWS, TS

USER_AGENT = "Sentinance/1.0 (+https://github.com/sentinance; feed reader)"
MAX_FEED_BYTES = 10 * 1024 * 1024
_DECL_RE = re.compile(rb"<!\s*(DOCTYPE[^>]*\[|ENTITY)", re.IGNORECASE)

NEWS_ITEM_COLUMNS = [c for c in RAW_NEWS.received_columns if c not in ("source", "ingested_at")]


class FeedError(RuntimeError):
    """A feed could not be fetched or parsed; the message says why."""


def guard_xml(data: bytes) -> None:
    """Reject documents that declare entities (billion laughs, external entities).

    RSS and Atom never need a DTD internal subset or entity declarations, so a feed that has
    one is refused before any XML parser (feedparser's strict sax parser or its loose
    fallback) sees it. UTF-16/32 documents are checked after decoding.
    """
    if len(data) > MAX_FEED_BYTES:
        raise FeedError(f"feed is larger than {MAX_FEED_BYTES} bytes")
    candidates = [data]
    for bom, codec in (
        (b"\xff\xfe\x00\x00", "utf-32-le"),
        (b"\x00\x00\xfe\xff", "utf-32-be"),
        (b"\xff\xfe", "utf-16-le"),
        (b"\xfe\xff", "utf-16-be"),
    ):
        if data.startswith(bom):
            candidates.append(data.decode(codec, errors="replace").encode("utf-8"))
            break
    else:
        if b"\x00" in data[:200]:  # BOM-less UTF-16
            for codec in ("utf-16-le", "utf-16-be"):
                candidates.append(data.decode(codec, errors="replace").encode("utf-8"))
    for blob in candidates:
        if _DECL_RE.search(blob):
            raise FeedError("feed declares a DTD internal subset or entities; refused as unsafe")


_BLOCKS = {"br", "p", "div", "li", "ul", "ol", "h1", "h2", "h3", "h4", "tr", "td", "blockquote"}


class _TextExtractor(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self._skip = 0

    def handle_starttag(self, tag: str, attrs: object) -> None:
        if tag in ("script", "style"):
            self._skip += 1
        elif tag in _BLOCKS:
            self.parts.append(" ")

    def handle_endtag(self, tag: str) -> None:
        if tag in ("script", "style") and self._skip:
            self._skip -= 1
        elif tag in _BLOCKS:
            self.parts.append(" ")

    def handle_data(self, data: str) -> None:
        if not self._skip:
            self.parts.append(data)


def strip_html(text: str | None) -> str:
    """Plain text of an HTML fragment: tags, scripts and styles removed, entities decoded."""
    if not text:
        return ""
    parser = _TextExtractor()
    parser.feed(text)
    parser.close()
    return re.sub(r"\s+", " ", html.unescape("".join(parser.parts))).strip()


def _entry_time(entry: dict) -> datetime | None:
    for key in ("published_parsed", "updated_parsed", "created_parsed"):
        value = entry.get(key)
        if value:
            # feedparser normalises to a UTC struct_time
            return datetime.fromtimestamp(calendar.timegm(value), tz=UTC)
    return None


def parse_feed(data: bytes, *, feed_url: str, fetched_at: datetime) -> pl.DataFrame:
    """Items of one RSS/Atom document, in the RAW_NEWS layout (without source/ingested_at).

    Raises :class:`FeedError` for unsafe documents and for documents that are not feeds.
    """
    guard_xml(data)
    parsed = feedparser.parse(data, sanitize_html=True, resolve_relative_uris=False)
    if parsed.bozo and not parsed.entries:
        raise FeedError(f"{feed_url}: not a feed ({parsed.get('bozo_exception')!r})")
    if not parsed.get("version") and not parsed.entries:
        raise FeedError(f"{feed_url}: not an RSS or Atom document")
    publisher = strip_html(parsed.feed.get("title")) or urlparse(feed_url).netloc or feed_url
    rows = []
    for entry in parsed.entries:
        title = strip_html(entry.get("title"))
        summary = strip_html(entry.get("summary") or entry.get("description"))
        link = (entry.get("link") or "").strip() or None
        guid = (entry.get("id") or "").strip() or None
        published = _entry_time(entry)
        rows.append(
            {
                "news_id": news_id(guid, link, title),
                "guid": guid,
                "title": title,
                "summary": summary,
                "link": link,
                "published": published or fetched_at,
                "published_missing": published is None,
                "publisher": publisher,
                "assets": ",".join(tag_assets(f"{title} {summary}")),
            }
        )
    return _frame(rows)


def _frame(rows: list[dict]) -> pl.DataFrame:
    schema = {c: RAW_NEWS.columns[c] for c in NEWS_ITEM_COLUMNS}
    schema["guid"] = pl.String
    if not rows:
        return pl.DataFrame(schema=schema)
    return pl.DataFrame(
        rows, schema={**schema, "published": pl.Datetime("us", "UTC")}
    ).with_columns(pl.col("published").cast(TS))


def dedupe_items(frames: Iterable[pl.DataFrame]) -> tuple[pl.DataFrame, int]:
    """Concatenate feeds' items and drop repeats: the same item again (same ``news_id`` and the
    same content), or the same story under another id (same guid, else link, else title - a
    syndicated copy). The first occurrence wins (feeds are read in the configured order).

    An item with an id already seen but *different* content (title, summary, link or date) is
    kept: it is a conflicting duplicate, which the contracts quarantine together with the
    first copy, instead of silently keeping one version. Returns the frame (without the helper
    ``guid`` column) and how many repeats were dropped.
    """
    frames = [f for f in frames if f.height]
    if not frames:
        return _frame([]).drop("guid"), 0
    df = pl.concat(frames, how="vertical_relaxed")
    first: dict[str, tuple] = {}  # news_id -> content of its first copy
    seen_guid: set[str] = set()
    seen_link: set[str] = set()
    seen_title: set[str] = set()
    keep = []
    cols = ("news_id", "guid", "link", "title", "summary", "published")
    for nid, guid, link, title, summary, published in df.select(cols).iter_rows():
        content = (title, summary, link, published)
        if nid in first:
            keep.append(first[nid] != content)  # exact repeat: drop; conflict: keep
            continue
        norm = normalise_title(title or "")
        repeat = (
            (guid is not None and guid in seen_guid)
            or (link is not None and link in seen_link)
            or (norm != "" and norm in seen_title)
        )
        keep.append(not repeat)
        if not repeat:
            first[nid] = content
            if guid:
                seen_guid.add(guid)
            if link:
                seen_link.add(link)
            if norm:
                seen_title.add(norm)
    out = df.filter(pl.Series(keep)).drop("guid")
    return out, df.height - out.height


# ---------------------------------------------------------------- HTTP with conditional GET


@dataclass
class FetchResult:
    url: str
    status: int  # 200, or 304 when the cached copy was still current
    body: bytes
    fetched_at: datetime


@dataclass
class FeedClient:
    """A small HTTP client for feeds: timeout, bounded retries with backoff, ETag/Last-Modified.

    Validators and the last body are kept per feed under ``cache_dir`` so a 304 still yields
    the items (another day's partition may need them) without downloading them again.
    """

    cache_dir: Path
    timeout: float = 10.0
    retries: int = 2
    backoff: float = 0.5
    sleep: Callable[[float], None] = time.sleep
    opener: urllib.request.OpenerDirector = field(default_factory=urllib.request.build_opener)

    def _paths(self, url: str) -> tuple[Path, Path]:
        key = hashlib.sha1(url.encode()).hexdigest()[:16]
        return self.cache_dir / f"{key}.json", self.cache_dir / f"{key}.xml"

    def fetch(self, url: str) -> FetchResult:
        meta_path, body_path = self._paths(url)
        meta = json.loads(meta_path.read_text()) if meta_path.exists() else {}
        headers = {
            "User-Agent": USER_AGENT,
            "Accept": "application/rss+xml, application/atom+xml, application/xml;q=0.9, */*;q=0.5",
        }
        if body_path.exists():
            if meta.get("etag"):
                headers["If-None-Match"] = meta["etag"]
            if meta.get("last_modified"):
                headers["If-Modified-Since"] = meta["last_modified"]
        last_error: Exception | None = None
        for attempt in range(self.retries + 1):
            if attempt:
                self.sleep(self.backoff * 2 ** (attempt - 1))
            now = datetime.now(UTC)
            try:
                req = urllib.request.Request(url, headers=headers)
                with self.opener.open(req, timeout=self.timeout) as resp:
                    body = resp.read(MAX_FEED_BYTES + 1)
                    if len(body) > MAX_FEED_BYTES:
                        raise FeedError(f"{url}: feed larger than {MAX_FEED_BYTES} bytes")
                    self._store(url, resp.headers, body, now)
                    return FetchResult(url, resp.status, body, now)
            except urllib.error.HTTPError as exc:
                if exc.code == 304 and body_path.exists():
                    # items without a date keep the time they were first fetched
                    first = meta.get("fetched_at")
                    when = datetime.fromisoformat(first) if first else now
                    return FetchResult(url, 304, body_path.read_bytes(), when)
                last_error = exc
                if exc.code < 500 and exc.code != 429:
                    break  # a client error will not heal by retrying
            except FeedError:
                raise
            except (urllib.error.URLError, TimeoutError, OSError) as exc:
                last_error = exc
        raise FeedError(f"{url}: {last_error}") from last_error

    def _store(self, url: str, headers: object, body: bytes, fetched_at: datetime) -> None:
        meta_path, body_path = self._paths(url)
        self.cache_dir.mkdir(parents=True, exist_ok=True)
        meta = {
            "url": url,
            "etag": headers.get("ETag"),  # type: ignore[attr-defined]
            "last_modified": headers.get("Last-Modified"),  # type: ignore[attr-defined]
            "fetched_at": fetched_at.isoformat(),
        }
        tmp = body_path.with_suffix(".xml.tmp")
        tmp.write_bytes(body)
        tmp.replace(body_path)
        tmp = meta_path.with_suffix(".json.tmp")
        tmp.write_text(json.dumps(meta))
        tmp.replace(meta_path)


@dataclass
class FeedsReport:
    items: pl.DataFrame
    duplicates: int
    failures: list[dict[str, str]]
    not_modified: list[str]


def read_feeds(urls: Iterable[str], client: FeedClient) -> FeedsReport:
    """Fetch and parse every feed; one feed failing never stops the others."""
    frames: list[pl.DataFrame] = []
    failures: list[dict[str, str]] = []
    not_modified: list[str] = []
    for url in urls:
        try:
            result = client.fetch(url)
            if result.status == 304:
                not_modified.append(url)
            frames.append(parse_feed(result.body, feed_url=url, fetched_at=result.fetched_at))
        except Exception as exc:  # noqa: BLE001 - isolate every feed, report the reason
            failures.append({"feed": url, "error": f"{type(exc).__name__}: {exc}"[:500]})
    items, dups = dedupe_items(frames)
    return FeedsReport(items, dups, failures, not_modified)
