"""Shared fixtures: a tiny, fast configuration of the simulated market."""

from __future__ import annotations

from pathlib import Path

import pytest

from sentinance_assets.settings import Settings

SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"

TINY_ENV = {
    "SENTINANCE_START": "2026-11-10",
    "SENTINANCE_END": "2026-11-13",
    "SENTINANCE_EXCHANGES": "binance,coinbase",
    "SENTINANCE_SYMBOLS": "BTC,ETH",
    "SENTINANCE_SIM_TRADE_RATE": "1.5",
    "SENTINANCE_SEED": "7",
}


@pytest.fixture
def tiny_env(tmp_path: Path) -> dict[str, str]:
    return {**TINY_ENV, "SENTINANCE_HOME": str(tmp_path / "home")}


@pytest.fixture
def tiny_settings(tiny_env: dict[str, str]) -> Settings:
    return Settings.from_env(tiny_env)


def shared_data(*parts: str) -> Path:
    """A path in ../shared/data, or skip the test with the reason when it is absent."""
    path = SHARED_DATA.joinpath(*parts)
    if not path.exists():
        pytest.skip(f"real data not available: {path} is absent (needs ../shared beside the repo)")
    return path
