"""``sentinance api``: serve the HTTP API (FastAPI on uvicorn) over this home's warehouse.

Binds ``SENTINANCE_API_HOST``:``SENTINANCE_API_PORT`` (default ``127.0.0.1:8000``); any address
but loopback is refused unless ``SENTINANCE_API_KEY`` is set. OpenAPI docs at ``/docs``;
``docs/api.md`` covers authentication, limits, the alert stream and a ``curl`` session.
Reads only the published read side, so it runs beside ``sentinance serve`` (which also starts
it as its ``api`` component) and beside the watch loop.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any


def register(subparsers: Any) -> None:
    """Add ``api`` to the CLI's sub-parsers."""
    parser = subparsers.add_parser(
        "api",
        help="serve the HTTP API (alerts, metrics, candles, forecasts, sentiment, models)",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--host", help="address to bind (default: SENTINANCE_API_HOST)")
    parser.add_argument("--port", type=int, help="port (default: SENTINANCE_API_PORT)")
    parser.add_argument(
        "--access-log", action="store_true", help="log every request (off by default)"
    )
    parser.set_defaults(func=cmd_api)


def cmd_api(settings: Any, args: argparse.Namespace) -> int:
    from sentinance_assets.api.auth import InsecureBind, check_bind

    host = args.host or settings.api_host
    port = args.port if args.port is not None else settings.api_port
    try:
        check_bind(host, settings)
    except InsecureBind as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if not 0 < port < 65536:
        print(f"error: --port {port} is not a port", file=sys.stderr)
        return 2

    import uvicorn

    from sentinance_assets.api.app import create_app

    app = create_app(settings)
    hub = app.state.api.hub

    class Server(uvicorn.Server):
        """Ends the open alert streams at the first stop signal, so that a stop is prompt."""

        def handle_exit(self, sig: int, frame: Any) -> None:
            hub.end_streams_threadsafe()
            super().handle_exit(sig, frame)

    config = uvicorn.Config(
        app,
        host=host,
        port=port,
        access_log=args.access_log,
        proxy_headers=False,  # client addresses (rate limits) are the socket's, never a header
        server_header=False,
        timeout_graceful_shutdown=5,  # open alert streams must not hold a stop for long
        log_level="info",
    )
    print(f"Sentinance API on http://{host}:{port} (docs: /docs), home {settings.home}", flush=True)
    server = Server(config)
    server.run()
    return 0 if server.started else 1
