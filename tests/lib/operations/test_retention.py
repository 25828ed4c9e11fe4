"""Retention removes old raw trades, quarantine and alert files, and nothing else."""

import json
from datetime import UTC, date, datetime, timedelta

import dagster as dg
import polars as pl

from sentinance_assets.defs.operations.retention import retention
from sentinance_assets.lib import lake
from sentinance_assets.lib.detection.sinks import LakeSink
from sentinance_assets.lib.operations.retention import cleanup, summary
from sentinance_assets.lib.schemas import (
    ALERTS,
    FORECASTS,
    QUARANTINE_TRADES,
    RAW_CANDLES,
    RAW_TRADES,
)

TODAY = date(2026, 12, 1)


def _alerts(ts: list[datetime]) -> pl.DataFrame:
    n = len(ts)
    return ALERTS.conform(
        pl.DataFrame(
            {
                "alert_id": [f"a{i}-{t:%j}" for i, t in enumerate(ts)],
                "type": ["whale"] * n,
                "exchange": ["binance"] * n,
                "symbol": ["BTC/USDT"] * n,
                "severity": ["critical"] * n,
                "event_time": ts,
                "detected_at": ts,
                "value": [1.0] * n,
                "threshold": [1.0] * n,
                "message": ["m"] * n,
                "details": ["{}"] * n,
            }
        )
    )


def _ms(t: datetime) -> int:
    return int(t.timestamp() * 1000)


def test_old_days_go_recent_days_and_other_zones_stay(tiny_settings):
    s = tiny_settings.replace(retain_trades_days=3, retain_quarantine_days=5, retain_alerts_days=7)
    lake_dir = s.lake_dir
    days = [TODAY - timedelta(days=i) for i in range(10)]
    for d in days:
        day = d.isoformat()
        lake.write_partition(lake_dir, RAW_TRADES, RAW_TRADES.empty(), partition=day)
        lake.write_partition(lake_dir, RAW_CANDLES, RAW_CANDLES.empty(), partition=day)
        lake.write_partition(lake_dir, QUARANTINE_TRADES, QUARANTINE_TRADES.empty(), partition=day)
        lake.write_partition(lake_dir, ALERTS, ALERTS.empty(), partition=day, part="batch")
    lake.write_partition(lake_dir, FORECASTS, FORECASTS.empty(), part="origin-1")
    # a watch folder: one old batch file, one compacted file spanning the cut, one recent
    cut = datetime(2026, 11, 24, tzinfo=UTC)
    sink = LakeSink(lake_dir, folder="watch-live")
    old = cut - timedelta(days=2)
    sink.send(_alerts([old]), f"{_ms(old):015d}-{_ms(old) + 1000:015d}")
    span_lo, span_hi = cut - timedelta(days=1), cut + timedelta(days=1)
    sink.send(_alerts([span_lo, span_hi]), f"{_ms(span_lo):015d}-{_ms(span_hi):015d}")
    recent = cut + timedelta(days=3)
    sink.send(_alerts([recent]), f"{_ms(recent):015d}-{_ms(recent) + 1000:015d}")
    (s.home / "warehouse.duckdb").write_bytes(b"marts")

    removed = cleanup(s, TODAY)

    def kept(ds) -> list[str]:
        return sorted(p.name for p in lake.dataset_dir(lake_dir, ds).glob("date=*"))

    # today (still being written) plus the retained number of whole days before it
    want = [f"date={(TODAY - timedelta(days=i)).isoformat()}" for i in (3, 2, 1, 0)]
    assert kept(RAW_TRADES) == want
    assert len(kept(QUARANTINE_TRADES)) == 6
    assert len(kept(ALERTS)) == 8
    assert len(kept(RAW_CANDLES)) == 10  # not a retained zone
    assert lake.data_files(lake_dir, FORECASTS)  # ML outputs stay
    assert (s.home / "warehouse.duckdb").read_bytes() == b"marts"  # marts stay
    watch = sorted(f.name for f in sink.files())
    assert len(watch) == 2  # the old batch file went, the spanning one was rewritten
    spanning = ALERTS.conform(pl.read_parquet(sink.files()[0]))
    assert spanning["event_time"].to_list() == [span_hi]
    by_zone = summary(removed)
    assert by_zone["raw"]["removed"] == 6 and by_zone["quarantine"]["removed"] == 4
    assert by_zone["alerts"]["removed"] == 2 + 2  # 2 day folders, 1 file, 1 rewrite
    assert cleanup(s, TODAY) == []  # idempotent


def test_the_asset_records_what_it_removed(tiny_settings):
    s = tiny_settings.replace(retain_trades_days=1)
    old = (datetime.now(UTC).date() - timedelta(days=5)).isoformat()
    lake.write_partition(s.lake_dir, RAW_TRADES, RAW_TRADES.empty(), partition=old)
    result = dg.materialize([retention], resources={"settings": s})
    (event,) = result.get_asset_materialization_events()
    meta = event.step_materialization_data.materialization.metadata
    assert meta["removed"].value == 1
    assert meta["by_zone"].value["raw"]["removed"] == 1
    assert f"raw/trades/date={old}" in meta["removed_entries"].value
    assert json.dumps(meta["kept_from"].value)
