"""Which market stands for an asset on each venue, with the quote currency kept explicit.

A bare asset such as ``BTC`` means each venue's main dollar market: ``BTC/USDT`` on Binance,
``BTC/USD`` on Coinbase and Kraken. A unified symbol (``BTC/USDT``) is taken as given on every
venue. The quote stays on every row so cross-venue comparisons can convert USDT to USD rather
than compare them blindly.
"""

from __future__ import annotations

from dataclasses import dataclass

# The dollar quote each venue lists first for majors; others fall back to USDT then USD.
QUOTE_PREFERENCE: dict[str, tuple[str, ...]] = {
    "binance": ("USDT", "USDC", "USD"),
    "binanceus": ("USD", "USDT"),
    "coinbase": ("USD", "USDC", "USDT"),
    "kraken": ("USD", "USDT", "USDC"),
}
DEFAULT_QUOTES = ("USDT", "USD", "USDC")


@dataclass(frozen=True, order=True)
class Market:
    exchange: str
    symbol: str  # ccxt unified symbol, e.g. BTC/USDT
    base: str
    quote: str


def market_for(exchange: str, symbol: str, available: set[str] | None = None) -> Market:
    """The market for ``symbol`` (bare asset or unified) on ``exchange``.

    ``available`` is the venue's listed unified symbols when known (live mode, from
    ``load_markets``): the first preferred quote that is listed wins.
    """
    if "/" in symbol:
        base, quote = symbol.split("/", 1)
        return Market(exchange, symbol, base, quote)
    quotes = QUOTE_PREFERENCE.get(exchange, DEFAULT_QUOTES)
    if available is not None:
        for quote in quotes:
            if f"{symbol}/{quote}" in available:
                return Market(exchange, f"{symbol}/{quote}", symbol, quote)
        raise LookupError(f"{exchange} lists no dollar market for {symbol} (tried {quotes})")
    return Market(exchange, f"{symbol}/{quotes[0]}", symbol, quotes[0])


def markets_for(exchanges: tuple[str, ...], symbols: tuple[str, ...]) -> list[Market]:
    return [market_for(ex, sym) for ex in exchanges for sym in symbols]
