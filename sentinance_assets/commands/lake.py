"""``sentinance lake check``: does the lake's file system give what the lake's safety rules need.

Tries atomic replace, hard links and ``flock`` between processes in a scratch folder of the
lake (``SENTINANCE_LAKE_DIR``, or ``--path``) and prints each with what it means. Run it on a
new mount (a shared file system, or object storage through JuiceFS: docs/scale-out.md) before
pointing a deployment at it. Exit status: 0 every feature works, 1 one is degraded (snapshots
copy instead of linking), 2 one fails (the lake is not safe for overlapping runs there).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from sentinance_assets.lib.lake_filesystem import check

EXIT = {"ok": 0, "degraded": 1, "fails": 2}


def register(subparsers: Any) -> None:
    """Add ``lake`` to the CLI's sub-parsers."""
    parser = subparsers.add_parser(
        "lake",
        help="check that the lake's file system has what the lake needs",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    actions = parser.add_subparsers(dest="action", required=True)
    chk = actions.add_parser(
        "check",
        help="atomic replace, hard links and flock on the lake's file system",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    chk.add_argument("--path", type=Path, help="a folder to check (default: the lake)")
    chk.set_defaults(func=cmd_check)


def cmd_check(settings: Any, args: argparse.Namespace) -> int:
    folder = Path(args.path or settings.lake_dir)
    try:
        folder.mkdir(parents=True, exist_ok=True)
        findings = check(folder)
    except OSError as exc:
        print(f"cannot check {folder}: {exc}", file=sys.stderr)
        return 2
    print(f"lake file system check of {folder}")
    for f in findings:
        print(f"  {f.status:<9} {f.feature:<15} {f.detail}")
    worst = max((EXIT[f.status] for f in findings), default=0)
    verdict = {0: "ready", 1: "usable, but snapshots copy files", 2: "not safe for the lake"}
    print(verdict[worst])
    return worst
