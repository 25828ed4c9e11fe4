"""Where market and news data come from: one interface, three modes.

``simulated`` (default, offline) generates a deterministic market; ``replay`` reads recorded
files; ``live`` asks the exchanges through ccxt and news sites through their RSS/Atom feeds.
All three implement the same :class:`~sentinance_assets.lib.sources.base.Source` protocol
(batch, incremental, stream), so the assets, contracts and marts downstream never know which
one ran.
"""

from __future__ import annotations

from sentinance_assets.lib.markets import markets_for
from sentinance_assets.lib.sources.base import Source, TradeFeed
from sentinance_assets.lib.sources.simulated import SimulatedSource
from sentinance_assets.settings import Settings


class SourceUnavailableError(RuntimeError):
    pass


def build_source(settings: Settings) -> Source:
    """The source ``SENTINANCE_SOURCE`` names (replay and live are imported only when used:
    ccxt is slow to import and the offline modes never need it)."""
    if settings.source == "simulated":
        return SimulatedSource(
            markets_for(settings.exchanges, settings.symbols),
            seed=settings.seed,
            trade_rate=settings.sim_trade_rate,
        )
    if settings.source == "replay":
        from sentinance_assets.lib.sources.replay import ReplaySource

        if settings.replay_dir is None:
            raise SourceUnavailableError("SENTINANCE_SOURCE=replay needs SENTINANCE_REPLAY_DIR")
        return ReplaySource(settings.replay_dir, window=(settings.start, settings.end))
    if settings.source == "live":
        from sentinance_assets.lib.sources.live import LiveSource

        return LiveSource.from_settings(settings)
    raise SourceUnavailableError(f"SENTINANCE_SOURCE={settings.source} is not a known source")


__all__ = ["SimulatedSource", "Source", "SourceUnavailableError", "TradeFeed", "build_source"]
