"""News item helpers shared by every news source: stable ids and asset tagging."""

from __future__ import annotations

import hashlib
import re

# Names by which news refers to an asset; matched as whole words, case-insensitively,
# except bare tickers, which must be upper case to avoid "sol" (Spanish sun) and "eth"-like noise.
ASSET_ALIASES: dict[str, tuple[str, ...]] = {
    "BTC": ("bitcoin", "btc", "xbt"),
    "ETH": ("ethereum", "ether", "eth"),
    "SOL": ("solana", "sol"),
    "XRP": ("xrp", "ripple"),
    "ADA": ("cardano", "ada"),
    "DOGE": ("dogecoin", "doge"),
    "USDT": ("tether", "usdt"),
    "USDC": ("usdc", "usd coin"),
}
_ALIAS_RE = {
    asset: re.compile(r"\b(" + "|".join(re.escape(a) for a in aliases) + r")\b", re.IGNORECASE)
    for asset, aliases in ASSET_ALIASES.items()
}


def tag_assets(text: str, known: tuple[str, ...] | None = None) -> list[str]:
    """Base assets a text mentions, in a stable order (that of ``ASSET_ALIASES``)."""
    found: list[str] = []
    for asset, pattern in _ALIAS_RE.items():
        if known is not None and asset not in known:
            continue
        for match in pattern.finditer(text or ""):
            word = match.group(0)
            # Short tickers only count in upper case ("SOL", not "sol").
            if len(word) <= 4 and word.lower() == word and word.lower() != "usd coin":
                continue
            found.append(asset)
            break
    return found


def news_id(guid: str | None, link: str | None, title: str | None) -> str:
    """A stable id: from the guid, else the link, else the normalised title."""
    key = (guid or "").strip() or (link or "").strip() or normalise_title(title or "")
    return hashlib.sha1(key.encode("utf-8")).hexdigest()[:20]


def normalise_title(title: str) -> str:
    return re.sub(r"[^a-z0-9]+", " ", title.lower()).strip()
