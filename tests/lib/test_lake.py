"""sentinance_assets.lib.lake: typed placeholders keep every declared column readable."""

from pathlib import Path

import duckdb
import polars as pl

from sentinance_assets.lib import lake
from sentinance_assets.lib.schemas import FORECASTS
from sentinance_assets.lib.warehouse import register_lake_views

OLD_COLUMNS = ["symbol", "exchange", "origin_ts", "horizon", "target", "prediction"]


def test_a_placeholder_from_an_older_release_is_rewritten_with_the_new_columns(tmp_path: Path):
    # a home upgraded from a release whose ml.forecasts had fewer columns: only old files
    folder = lake.dataset_dir(tmp_path, FORECASTS)
    folder.mkdir(parents=True)
    old = FORECASTS.empty().select(OLD_COLUMNS)
    old.write_parquet(folder / lake.PLACEHOLDER)
    row = {"symbol": "BTC/USDT", "exchange": "binance", "horizon": "1h", "target": "log_return"}
    legacy = pl.DataFrame([{**row, "prediction": 0.01}]).with_columns(
        pl.lit(None, FORECASTS.columns["origin_ts"]).alias("origin_ts")
    )
    legacy.select(OLD_COLUMNS).write_parquet(folder / "legacy.parquet")
    with duckdb.connect() as conn:
        register_lake_views(conn, tmp_path)
        got = conn.execute("select prediction, lower_95, model from ml.forecasts").fetchall()
    assert got == [(0.01, None, None)]  # the new columns read as nulls, not as an error
    assert pl.read_parquet_schema(folder / lake.PLACEHOLDER) == FORECASTS.empty().schema
    before = (folder / lake.PLACEHOLDER).stat().st_mtime_ns
    lake.ensure_placeholders(tmp_path)  # current placeholders are left alone
    assert (folder / lake.PLACEHOLDER).stat().st_mtime_ns == before
