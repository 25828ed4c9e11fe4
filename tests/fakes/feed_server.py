"""A local feed server: RSS 2.0, Atom, malformed and hostile documents, ETag/Last-Modified.

Routes are registered as ``server.feeds[path] = (body, content_type)`` (``body`` text, sent
as UTF-8, or ``bytes`` sent as they are, e.g. Latin-1 or broken encodings); every response carries
an ETag (hash of the body) and a Last-Modified, and a matching ``If-None-Match`` gets a 304.
``server.faults[path]`` scripts failures (``"500"``, ``"404"``, ``"hang"``), used once each.
"""

from __future__ import annotations

import hashlib
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

RSS = """<?xml version="1.0" encoding="UTF-8"?>
<rss version="2.0"><channel><title>Coin Wire</title><link>https://wire.example</link>
<item><guid isPermaLink="false">cw-1</guid><title>Bitcoin tops $90k as ETF flows surge</title>
<link>https://wire.example/btc-90k</link>
<description><![CDATA[<p>BTC rallied <b>4%</b> &amp; more.<script>alert(1)</script></p>]]>
</description>
<pubDate>Tue, 10 Nov 2026 09:30:00 -0500</pubDate></item>
<item><guid isPermaLink="false">cw-2</guid><title>Solana validators ship upgrade</title>
<link>https://wire.example/sol</link><description>SOL network upgrade.</description>
<pubDate>Tue, 10 Nov 2026 16:00:00 GMT</pubDate></item>
<item><guid isPermaLink="false">cw-3</guid><title>Undated: Ether staking notes</title>
<link>https://wire.example/eth-notes</link><description>Ethereum staking.</description></item>
</channel></rss>"""

ATOM = """<?xml version="1.0" encoding="utf-8"?>
<feed xmlns="http://www.w3.org/2005/Atom"><title>Chain Daily</title>
<id>urn:chain-daily</id><updated>2026-11-10T18:00:00Z</updated>
<entry><id>urn:cd:1</id><title>Ethereum gas falls to a year low</title>
<link href="https://chain.example/eth-gas"/><updated>2026-11-10T12:00:00+01:00</updated>
<summary type="html">&lt;p&gt;ETH fees &lt;i&gt;drop&lt;/i&gt;&lt;/p&gt;</summary></entry>
<entry><id>urn:cd:2</id><title>BITCOIN TOPS $90K AS ETF FLOWS SURGE!</title>
<link href="https://chain.example/syndicated-btc"/><published>2026-11-10T15:00:00Z</published>
<summary>Syndicated copy of the Coin Wire story.</summary></entry>
<entry><id>urn:cd:3</id><title>Coin Wire piece, re-linked</title>
<link href="https://wire.example/sol"/><published>2026-11-10T17:00:00Z</published>
<summary>Same link as a Coin Wire item.</summary></entry>
</feed>"""

MALFORMED = "<html><body><h1>502 Bad Gateway</h1><p>upstream error</body>"

BILLION_LAUGHS = (
    '<?xml version="1.0"?><!DOCTYPE rss [<!ENTITY lol "lol">'
    + "".join(
        f'<!ENTITY lol{i} "{("&lol;" if i == 1 else f"&lol{i - 1};") * 10}">' for i in range(1, 10)
    )
    + ']><rss version="2.0"><channel><title>t</title><item><title>&lol9;</title>'
    "<link>https://evil.example/</link></item></channel></rss>"
)


class FeedServer:
    def __init__(self, hang_s: float = 1.0) -> None:
        self.feeds: dict[str, tuple[str | bytes, str]] = {}
        self.faults: dict[str, list[str]] = {}
        self.requests: list[tuple[str, dict[str, str]]] = []
        self.hang_s = hang_s
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.server.daemon_threads = True
        self.thread = threading.Thread(
            target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )

    def url(self, path: str) -> str:
        host, port = self.server.server_address[:2]
        return f"http://{host}:{port}{path}"

    def statuses(self, path: str) -> list[dict[str, str]]:
        return [h for p, h in self.requests if p == path]

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        srv = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: object) -> None:
                pass

            def do_GET(self) -> None:  # noqa: N802
                srv.requests.append((self.path, dict(self.headers.items())))
                faults = srv.faults.get(self.path) or []
                fault = faults.pop(0) if faults else None
                if fault == "hang":
                    time.sleep(srv.hang_s)
                elif fault:
                    return self._send(int(fault), b"error", "text/plain", {})
                if self.path not in srv.feeds:
                    return self._send(404, b"not found", "text/plain", {})
                body, ctype = srv.feeds[self.path]
                data = body if isinstance(body, bytes) else body.encode("utf-8")
                etag = '"' + hashlib.sha1(data).hexdigest()[:12] + '"'
                if self.headers.get("If-None-Match") == etag:
                    return self._send(304, b"", ctype, {"ETag": etag})
                headers = {"ETag": etag, "Last-Modified": "Tue, 10 Nov 2026 18:00:00 GMT"}
                self._send(200, data, ctype, headers)

            def _send(self, status: int, body: bytes, ctype: str, headers: dict[str, str]) -> None:
                try:
                    self.send_response(status)
                    self.send_header("Content-Type", ctype)
                    self.send_header("Content-Length", str(len(body)))
                    for k, v in headers.items():
                        self.send_header(k, v)
                    self.end_headers()
                    self.wfile.write(body)
                except (BrokenPipeError, ConnectionResetError):
                    pass

        return Handler


@contextmanager
def feed_server(hang_s: float = 1.0) -> Iterator[FeedServer]:
    srv = FeedServer(hang_s)
    srv.feeds.update(
        {
            "/rss": (RSS, "application/rss+xml"),
            "/atom": (ATOM, "application/atom+xml"),
            "/broken": (MALFORMED, "text/html"),
            "/laughs": (BILLION_LAUGHS, "application/rss+xml"),
        }
    )
    srv.thread.start()
    try:
        yield srv
    finally:
        srv.server.shutdown()
        srv.server.server_close()
