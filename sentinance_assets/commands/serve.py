"""``sentinance serve``: run Sentinance as a service, supervised, until SIGINT/SIGTERM.

Starts the Dagster code server, daemon and UI, the watch loop, the Streamlit app and the HTTP
API under supervisord (``lib/operations/supervision.py``): each component's log in
``SENTINANCE_HOME/logs/<component>.log``, a crashed component restarted with back-off, Ctrl-C
or SIGTERM stops them all in reverse order. A second ``serve`` on the same home refuses to
start. In live mode (``SENTINANCE_SOURCE=live``) the refresh schedule and the automation
sensors run by default, so the service keeps itself fresh; ``sentinance status`` reports how.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

from sentinance_assets.lib.operations.supervision import (
    COMPONENTS,
    DRAIN_SECONDS,
    AlreadyServing,
    serve,
)


def register(subparsers: Any) -> None:
    """Add ``serve`` to the CLI's sub-parsers."""
    names = [c.name for c in COMPONENTS]
    parser = subparsers.add_parser(
        "serve",
        help="run the service: Dagster daemon + UI, watch loop and app, supervised",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--without",
        action="append",
        default=[],
        choices=names,
        metavar="COMPONENT",
        help=f"leave a component out (repeatable): {', '.join(names)}",
    )
    parser.add_argument(
        "--drain-seconds",
        type=float,
        default=DRAIN_SECONDS,
        help="on stop, how long runs in progress may take to finish before they are "
        f"interrupted (default {DRAIN_SECONDS:.0f}; a second Ctrl-C stops at once)",
    )
    parser.set_defaults(func=cmd_serve)


def cmd_serve(settings: Any, args: argparse.Namespace) -> int:
    components = [c for c in COMPONENTS if c.name not in set(args.without)]
    try:
        return serve(
            settings,
            components,
            announce=lambda line: print(line, flush=True),
            drain_seconds=args.drain_seconds,
        )
    except AlreadyServing as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 3
