"""Rules as configuration: stable ids, the rules file (validation with lines), per-market
overrides, the rules version, and re-detection beside the old set with a comparison."""

import hashlib
import json
from datetime import UTC, date, datetime

import polars as pl
import pytest

from sentinance_assets.cli import main
from sentinance_assets.lib.detection.engine import detect_all
from sentinance_assets.lib.detection.rules import (
    ALERT_TYPES,
    DetectorConfig,
    MarketOverride,
    alert_id,
    alert_ids,
)
from sentinance_assets.lib.detection.rules_file import (
    AlertType,
    RulesError,
    default_rules,
    default_rules_toml,
    load_rules,
)
from sentinance_assets.lib.detection.versions import compare_alerts, migrate_legacy_ids
from sentinance_assets.lib.markets import markets_for
from sentinance_assets.lib.schemas import ALERTS
from sentinance_assets.lib.simulator import MarketSimulator
from tests.lib.detection.trades import replay_layout, trades_of

NOW = datetime(2026, 11, 20, tzinfo=UTC)
T0 = int(datetime(2026, 11, 10, 12, tzinfo=UTC).timestamp() * 1000)


@pytest.fixture(scope="module")
def day():
    sim = MarketSimulator(
        markets_for(("binance", "coinbase", "kraken"), ("BTC", "ETH")), seed=3, trade_rate=4.0
    )
    return sim.day(date(2026, 11, 10))


_trades = trades_of


def _write(tmp_path, name: str, text: str):
    path = tmp_path / name
    path.write_text(text)
    return path


# ------------------------------------------------------------------------------ ids
def test_alert_ids_are_pinned_sha256_of_type_market_and_event_time():
    t = datetime(2026, 11, 10, 12, 0, 0, 123000, tzinfo=UTC)
    pinned = "f497c3773a8ba684ecf9151f9ad5aa1ff68639d0df71d7a9d1ba44df71721132"
    assert alert_id("whale", "binance", "BTC/USDT", t) == pinned
    documented = b"whale|binance|BTC/USDT|1794312000123"
    assert hashlib.sha256(documented).hexdigest() == pinned
    assert alert_id("divergence", "kraken", "ETH/USD", 1_700_000_000_000) == (
        "0fcc28739d20f20d2a8f15c7adbbcd68bbf72b63765cfadbcbf8fe2383535fb9"
    )
    # a detected alert carries exactly that id
    trades = _trades([("binance", "BTC/USDT", "a", 1794312000123, 60_000.0, 2.0, "buy")])
    (row,) = detect_all(trades, detected_at=NOW).iter_rows(named=True)
    assert row["alert_id"] == pinned
    assert row["rules_version"] == DetectorConfig().version == default_rules().version


def test_legacy_ids_in_the_lake_are_rewritten_once(tmp_path, day):
    found = detect_all(day.trades, detected_at=NOW)
    legacy = found.with_columns(pl.col("alert_id").str.slice(0, 20))  # the old 20-digit shape
    path = tmp_path / "alerts" / "alerts" / "watch-x" / "000-001.parquet"
    path.parent.mkdir(parents=True)
    legacy.drop("rules_version").write_parquet(path)
    assert migrate_legacy_ids(tmp_path) == 1
    assert migrate_legacy_ids(tmp_path) == 0  # idempotent
    again = ALERTS.conform(pl.read_parquet(path))
    assert sorted(again["alert_id"]) == sorted(found["alert_id"])
    assert alert_ids(found).to_list() == found["alert_id"].to_list()


# ------------------------------------------------------------------------------ the file
def test_defaults_file_is_the_built_in_rules_and_version_ignores_layout(tmp_path):
    text = default_rules_toml()
    assert load_rules(text=text).version == DetectorConfig().version
    same = "# comments and order do not matter\n[volume_spike]\nz = 0.25\n[whale]\nusd = 1e5\n"
    assert load_rules(text=same).version == DetectorConfig().version
    other = load_rules(text="[volume_spike]\nz = 3.0\n")
    assert other.version != DetectorConfig().version and other.detector.spike_z == 3.0
    yaml_path = _write(tmp_path, "rules.yaml", "volume_spike:\n  z: 3.0\n")
    assert load_rules(yaml_path).version == other.version  # TOML and YAML: same rules
    assert set(AlertType.__args__) == set(ALERT_TYPES)  # type: ignore[attr-defined]


def test_invalid_toml_names_the_key_and_the_line(tmp_path):
    path = _write(
        tmp_path,
        "rules.toml",
        "# alert rules\n"
        "[volume_spike]\n"
        "z = -1\n"  # line 3: out of range
        "zz = 3\n"  # line 4: unknown key
        "\n"
        "[whale]\n"
        'usd = "big"\n'  # line 7: wrong type
        "\n"
        "[[overrides]]\n"
        'symbol = "BTC"\n'
        "volume_spike.history = 30\n"  # line 11: not overridable
        "\n"
        "[[overrides]]\n"
        "whale.usd = 5\n"  # line 14: neither exchange nor symbol -> the entry (line 13)
        "[wash_trading]\n"
        "min_trades = 6.0\n",  # line 16: a float where an integer is needed
    )
    with pytest.raises(RulesError) as err:
        load_rules(path)
    lines = str(err.value).splitlines()
    assert f"{path}:3: volume_spike.z = -1: Input should be greater than 0" in lines
    assert any(
        line.startswith(f"{path}:4: volume_spike.zz: unknown key (allowed: ") for line in lines
    )
    assert f"{path}:7: whale.usd = 'big': Input should be a valid number" in lines
    assert any(
        line.startswith(f"{path}:11: overrides[0].volume_spike.history: unknown key")
        for line in lines
    )
    assert any(line.startswith(f"{path}:13: overrides[1]") and "exchange" in line for line in lines)
    assert any(line.startswith(f"{path}:16: wash_trading.min_trades = 6.0") for line in lines)
    assert len(lines) == 6


def test_invalid_yaml_and_syntax_errors_name_the_line(tmp_path):
    path = _write(
        tmp_path,
        "rules.yml",
        "divergence:\n"
        "  pairs:\n"
        "    - venues: [binance, binance]\n"  # line 3
        "      pct: 1\n"
        "delivery:\n"
        "  channels:\n"
        "    - name: desk\n"
        "      url: json://127.0.0.1/hook\n"
        "      quiet_hours: 25:00-07:00\n",  # line 9
    )
    with pytest.raises(RulesError) as err:
        load_rules(path)
    text = str(err.value)
    assert f"{path}:3: divergence.pairs[0].venues" in text and "two different venues" in text
    assert f"{path}:9: delivery.channels[0].quiet_hours" in text
    no_url = _write(tmp_path, "c.yaml", "delivery:\n  channels:\n    - name: desk\n")
    with pytest.raises(
        RulesError, match=r"c.yaml:3: delivery.channels\[0\]: .*url, urls or url_env"
    ):
        load_rules(no_url)
    with pytest.raises(RulesError, match=r"rules.toml:2: not valid TOML"):
        load_rules(_write(tmp_path, "rules.toml", "[whale]\nusd = = 3\n"))
    bad_template = "[delivery.templates.whale]\nbody = '{value:,.0f} {nope}'\n"
    with pytest.raises(RulesError, match=r":2: delivery.templates.whale.body: template"):
        load_rules(text=bad_template, name="t.toml")


def test_detect_command_reads_the_rules_and_refuses_bad_ones(tmp_path, day, capsys):
    trades = tmp_path / "t.parquet"
    replay_layout(day.trades).write_parquet(trades)
    off = _write(tmp_path, "off.toml", "[whale]\nenabled = false\n")
    out = tmp_path / "a.jsonl"
    assert main(["detect", "--trades", str(trades), "--rules", str(off), "--out", str(out)]) == 0
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert rows and not [r for r in rows if r["type"] == "whale"]
    assert {r["rules_version"] for r in rows} == {load_rules(off).version}
    bad = _write(tmp_path, "bad.toml", "[whale]\nusd = -1\n")
    assert main(["detect", "--trades", str(trades), "--rules", str(bad)]) == 2
    assert f"{bad}:2: whale.usd = -1" in capsys.readouterr().err


# ------------------------------------------------------------------------------ overrides
def test_whale_threshold_per_asset_and_exchange_most_specific_wins():
    trades = _trades(
        [
            ("binance", "BTC/USDT", "a", T0, 60_000.0, 3.0, "buy"),  # $180k
            ("kraken", "BTC/USD", "b", T0 + 1, 60_000.0, 3.0, "buy"),  # $180k
            ("binance", "ETH/USDT", "c", T0 + 2, 3_000.0, 40.0, "sell"),  # $120k
            ("binance", "EUR/USD", "d", T0 + 3, 1.0, 90_000.0, "sell"),  # $90k
            ("kraken", "ETH/EUR", "e", T0 + 4, 3_000.0, 35.0, "sell"),  # EUR 105k
        ]
    )
    rules = load_rules(
        text="[whale]\nusd = 100_000\n"
        "[quotes]\nEUR = 1.1\n"
        '[[overrides]]\nsymbol = "BTC"\nwhale.usd = 500_000\n'  # asset
        '[[overrides]]\nexchange = "kraken"\nsymbol = "BTC"\nwhale.usd = 150_000\n'  # wins
        '[[overrides]]\nexchange = "binance"\nwhale.usd = 80_000\n'  # exchange only: weakest
    )
    whales = detect_all(trades, rules.detector, NOW).filter(pl.col("type") == "whale")
    got = {(r["exchange"], r["symbol"]): r["threshold"] for r in whales.iter_rows(named=True)}
    # BTC on binance: the asset override (500k) beats the exchange one, so $180k is no whale;
    # on kraken exchange + asset (150k) wins; ETH/USDT and EUR/USD on binance: the exchange
    # override (80k); ETH/EUR on kraken: the default, EUR converted at 1.1 ($115.5k)
    assert got == {
        ("kraken", "BTC/USD"): 150_000.0,
        ("binance", "ETH/USDT"): 80_000.0,
        ("binance", "EUR/USD"): 80_000.0,
        ("kraken", "ETH/EUR"): 100_000.0,
    }


def test_spike_z_per_market_and_types_switched_off(day):
    base = detect_all(day.trades, DetectorConfig(), NOW)
    spikes = base.filter(pl.col("type") == "volume_spike")
    market = spikes.row(0, named=True)
    cfg = DetectorConfig(
        overrides=(
            MarketOverride(market["exchange"], market["symbol"], (("spike_z", 1e6),)),
            MarketOverride(None, "ETH", (("whale_enabled", False),)),
        ),
        divergence_enabled=False,
    )
    got = detect_all(day.trades, cfg, NOW)
    mine = (pl.col("exchange") == market["exchange"]) & (pl.col("symbol") == market["symbol"])
    assert got.filter(mine & (pl.col("type") == "volume_spike")).height == 0
    others = spikes.filter(~mine)
    assert got.filter(~mine & (pl.col("type") == "volume_spike")).height == others.height
    assert got.filter(pl.col("type") == "divergence").height == 0
    whales = got.filter(pl.col("type") == "whale")
    assert whales.height and not whales.filter(pl.col("symbol").str.starts_with("ETH")).height
    assert base.filter((pl.col("type") == "whale") & pl.col("symbol").str.starts_with("ETH")).height


def test_divergence_threshold_per_venue_pair():
    # three venues of BTC; kraken runs 1.2 % above the other two for 5 minutes
    rows = []
    for i in range(40):  # 20 minutes, one trade per venue every 30 s
        t = T0 + i * 30_000
        premium = 1.012 if 10 <= i < 20 else 1.0
        rows += [
            ("binance", "BTC/USDT", f"b{i}", t, 59_990.0, 0.1, "buy"),
            ("coinbase", "BTC/USD", f"c{i}", t + 1, 60_010.0, 0.1, "sell"),
            ("kraken", "BTC/USD", f"k{i}", t + 2, 60_000.0 * premium, 0.1, "buy"),
        ]
    trades = _trades(rows)
    divs = detect_all(trades, DetectorConfig(), NOW).filter(pl.col("type") == "divergence")
    assert divs["exchange"].to_list() == ["kraken"]
    # a structural premium between kraken and the venue nearest the reference (the median:
    # coinbase) is tolerated up to 1.5 %
    pair = load_rules(text='[[divergence.pairs]]\nvenues = ["kraken", "coinbase"]\npct = 1.5\n')
    assert detect_all(trades, pair.detector, NOW).filter(pl.col("type") == "divergence").height == 0
    # a pair that does not involve the diverging venue changes nothing
    other = load_rules(text='[[divergence.pairs]]\nvenues = ["binance", "coinbase"]\npct = 1.5\n')
    again = detect_all(trades, other.detector, NOW).filter(pl.col("type") == "divergence")
    assert again["exchange"].to_list() == ["kraken"] and again["threshold"].to_list() == [0.5]


# ------------------------------------------------------------------------------ comparison
def test_comparison_marks_added_removed_and_changed(day):
    old = detect_all(day.trades, DetectorConfig(), NOW)
    new = detect_all(day.trades, DetectorConfig(whale_usd=300_000.0, whale_critical=2.0), NOW)
    diff = compare_alerts(old, new)
    counts = dict(diff.group_by("change").len().iter_rows())
    old_whales = old.filter(pl.col("type") == "whale")
    new_whales = new.filter(pl.col("type") == "whale")
    assert counts["removed"] == old_whales.height - new_whales.height > 0
    assert counts.get("added", 0) == 0
    assert counts["changed"] == new_whales.height  # new threshold (and severity)
    assert counts["unchanged"] == old.height - old_whales.height
    assert diff.filter(pl.col("change") == "removed")["type"].unique().to_list() == ["whale"]
    # legacy ids on the old side compare by event, not by id
    legacy = old.with_columns(pl.col("alert_id").str.slice(0, 20))
    assert compare_alerts(legacy, old)["change"].unique().to_list() == ["unchanged"]


def test_docs_show_the_current_defaults_file():
    from pathlib import Path

    doc = (Path(__file__).resolve().parents[3] / "docs" / "alerts.md").read_text()
    shown = doc.split("<!-- default-rules:start -->")[1].split("<!-- default-rules:end -->")[0]
    assert shown.strip() == f"```toml\n{default_rules_toml()}```"
    assert DetectorConfig().version in doc  # the version the docs quote is today's
