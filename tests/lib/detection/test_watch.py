"""The watch loop and `sentinance detect`: replay files, checkpoints, kill -9, signals."""

import json
import os
import signal
import subprocess
import sys
import time
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import polars as pl
import pytest

from sentinance_assets.cli import main
from sentinance_assets.lib.detection.engine import StreamingDetector, detect_all
from sentinance_assets.lib.detection.sinks import JsonlSink, LakeSink, WebhookSink
from sentinance_assets.lib.detection.watch import (
    ReplayFeed,
    SimulatedFeed,
    alert_sinks,
    read_trades_file,
    run_watch,
)
from sentinance_assets.lib.markets import markets_for
from sentinance_assets.lib.simulator import MarketSimulator
from sentinance_assets.settings import Settings, SettingsError
from tests.lib.detection.trades import replay_layout

SENTINANCE = str(Path(sys.executable).parent / "sentinance")
START = datetime(2026, 11, 10, tzinfo=UTC)
UNTIL = START + timedelta(hours=8)
ENV = {
    "SENTINANCE_EXCHANGES": "binance,coinbase",
    "SENTINANCE_SYMBOLS": "BTC,ETH",
    "SENTINANCE_SIM_TRADE_RATE": "3",
    "SENTINANCE_SEED": "7",
}


@pytest.fixture(scope="module")
def day():
    sim = MarketSimulator(markets_for(("binance", "coinbase"), ("BTC", "ETH")), 7, 3.0)
    return sim.day(date(2026, 11, 10))


_replay_layout = replay_layout


def test_read_trades_file_csv_iso_and_parquet_epoch(tmp_path, day):
    replay = _replay_layout(day.trades.gather_every(200))
    replay.write_parquet(tmp_path / "t.parquet")
    iso = replay.with_columns(
        pl.col("timestamp").cast(pl.Datetime("ms", "UTC")).dt.strftime("%Y-%m-%dT%H:%M:%S%.3fZ")
    )
    iso.write_csv(tmp_path / "t.csv")
    a = read_trades_file(tmp_path / "t.parquet")
    b = read_trades_file(tmp_path / "t.csv")
    assert a.equals(b)
    assert a["ts"].to_list() == sorted(day.trades.gather_every(200)["ts"].to_list())
    assert set(a["quote"]) == {"USDT", "USD"} and set(a["base"]) == {"BTC", "ETH"}
    with pytest.raises(ValueError, match="missing columns"):
        replay.drop("side").write_csv(tmp_path / "bad.csv")
        read_trades_file(tmp_path / "bad.csv")


def test_detect_command_writes_json_lines(tmp_path, day, capsys, monkeypatch):
    monkeypatch.setenv("SENTINANCE_HOME", str(tmp_path / "home"))
    _replay_layout(day.trades).write_csv(tmp_path / "day.csv")
    assert main(["detect", "--trades", str(tmp_path / "day.csv")]) == 0
    lines = [json.loads(x) for x in capsys.readouterr().out.splitlines()]
    expected = detect_all(day.trades)
    assert [x["alert_id"] for x in lines] == expected["alert_id"].to_list()
    need = {"alert_id", "type", "exchange", "symbol", "severity", "event_time", "detected_at"}
    assert need <= set(lines[0]) and "message" in lines[0]
    assert {x["type"] for x in lines} >= {"whale", "volume_spike", "divergence"}
    assert (
        main(["detect", "--trades", str(tmp_path / "day.csv"), "--out", str(tmp_path / "o")]) == 0
    )
    assert len((tmp_path / "o").read_text().splitlines()) == len(lines)
    assert main(["detect", "--trades", str(tmp_path / "missing.csv")]) == 2


def _expected(day) -> pl.DataFrame:
    trades = day.trades.filter(pl.col("ts") < UNTIL)
    return StreamingDetector().push(trades)


def test_watch_in_process_replay_matches_the_detector(tmp_path, day):
    feed = ReplayFeed(day.trades.filter(pl.col("ts") < UNTIL))
    jsonl = tmp_path / "a.jsonl"
    lake = LakeSink(tmp_path / "lake")
    stats = run_watch(
        feed, [lake, JsonlSink(jsonl)], tmp_path / "ck", speed=0, max_batch=timedelta(minutes=7)
    )
    # the clean stop compacted every batch file into one, the newest batch's name
    assert len(lake.files()) == 1 and stats.compacted >= 2
    got = pl.concat([pl.read_parquet(f) for f in lake.files()])
    assert sorted(got["alert_id"]) == sorted(_expected(day)["alert_id"])
    assert stats.alerts == got.height
    ids = [json.loads(x)["alert_id"] for x in jsonl.read_text().splitlines()]
    assert sorted(ids) == sorted(got["alert_id"])
    # a second run resumes at the end: nothing new, nothing duplicated
    again = run_watch(feed, [lake, JsonlSink(jsonl)], tmp_path / "ck", speed=0)
    assert again.alerts == 0 and len(jsonl.read_text().splitlines()) == len(ids)


def _watch(home: Path, *extra: str) -> subprocess.Popen:
    env = {**os.environ, **ENV, "SENTINANCE_HOME": str(home)}
    return subprocess.Popen(
        [
            SENTINANCE,
            "watch",
            "--speed",
            "0",
            "--start",
            START.isoformat(),
            "--until",
            UNTIL.isoformat(),
            "--max-batch",
            "240",
            "--quiet",
            *extra,
        ],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )


def _watch_alerts(home: Path) -> pl.DataFrame:
    files = sorted((home / "lake" / "alerts" / "alerts" / "watch-simulated").glob("*.parquet"))
    return pl.concat([pl.read_parquet(f) for f in files])


def test_watch_survives_kill_9_without_missing_or_duplicating(tmp_path, day):
    home = tmp_path / "home"
    ckpt = home / "checkpoints" / "watch-simulated.ckpt"
    proc = _watch(home, "--jsonl", str(tmp_path / "a.jsonl"))
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        if ckpt.exists() and json.loads(ckpt.read_bytes().split(b"\n", 1)[0])["alerts"] > 0:
            break
        time.sleep(0.05)
    proc.kill()  # SIGKILL: no chance to clean up
    proc.wait(timeout=10)
    assert proc.returncode == -signal.SIGKILL
    head = json.loads(ckpt.read_bytes().split(b"\n", 1)[0])
    assert 0 < head["cursor_ms"] < UNTIL.timestamp() * 1000, "killed too late to prove anything"
    proc = _watch(home, "--jsonl", str(tmp_path / "a.jsonl"))
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err.decode()[-2000:]
    got = _watch_alerts(home)
    assert got["alert_id"].n_unique() == got.height  # no duplicates
    assert sorted(got["alert_id"]) == sorted(_expected(day)["alert_id"])  # none missed
    ids = [json.loads(x)["alert_id"] for x in (tmp_path / "a.jsonl").read_text().splitlines()]
    assert sorted(ids) == sorted(got["alert_id"])


def test_sigterm_stops_cleanly_with_a_checkpoint(tmp_path):
    home = tmp_path / "home"
    env = {**os.environ, **ENV, "SENTINANCE_HOME": str(home)}
    proc = subprocess.Popen(
        [SENTINANCE, "watch", "--speed", "60", "--start", START.isoformat()],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    ckpt = home / "checkpoints" / "watch-simulated.ckpt"
    deadline = time.monotonic() + 20
    while not ckpt.exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=20)
    assert proc.returncode == 0, err.decode()[-2000:]
    assert "watch stopped" in err.decode()
    assert ckpt.exists()


def test_run_watch_reads_the_declared_feed_interface_only():
    """``run_watch`` calls the ``TradeFeed`` protocol; it never probes a feed for attributes."""
    import ast
    import inspect

    from sentinance_assets.lib.detection import watch

    tree = ast.parse(inspect.getsource(watch.run_watch))
    probes = [
        node.func.id
        for node in ast.walk(tree)
        if isinstance(node, ast.Call)
        and isinstance(node.func, ast.Name)
        and node.func.id in ("getattr", "hasattr")
    ]
    assert probes == []
    assert inspect.signature(watch.run_watch).parameters["feed"].annotation == "TradeFeed"


def test_simulated_feed_slices_across_midnight():
    feed = SimulatedFeed(("binance",), ("BTC",), 7, 1.0, START)
    lo = START + timedelta(hours=23, minutes=59)
    got = feed.between(lo, lo + timedelta(minutes=2))
    assert got["ts"].min() >= lo and got["ts"].max() < lo + timedelta(minutes=2)
    assert got["ts"].dt.date().n_unique() == 2


class CrashAfter:
    """A sink that dies on its n-th batch: after the lake file, before the checkpoint."""

    name = "crash"

    def __init__(self, n: int) -> None:
        self.n = n

    def send(self, alerts, batch_key):
        self.n -= 1
        if self.n == 0:
            raise RuntimeError("simulated crash")


def test_crash_between_publish_and_checkpoint_is_redone_once(tmp_path, day):
    feed = ReplayFeed(day.trades.filter(pl.col("ts") < UNTIL))
    lake = LakeSink(tmp_path / "lake")
    with pytest.raises(RuntimeError, match="simulated crash"):
        run_watch(feed, [lake, CrashAfter(3)], tmp_path / "ck", speed=0)
    assert len(lake.files()) == 3  # the third file is published but not checkpointed
    # restart with other batch boundaries: the uncommitted file is dropped and redone
    run_watch(feed, [lake], tmp_path / "ck", speed=0, max_batch=timedelta(seconds=97))
    got = pl.concat([pl.read_parquet(f) for f in lake.files()])
    assert got["alert_id"].n_unique() == got.height
    assert sorted(got["alert_id"]) == sorted(_expected(day)["alert_id"])


def test_alert_settings_configure_the_watch_sinks_and_options_override(tmp_path):
    home = tmp_path / "home"
    plain = Settings.from_env({"SENTINANCE_HOME": str(home)})
    assert plain.alert_webhook is None and plain.alert_webhook_timeout == 2.0
    assert plain.alert_dead_letter == home / "alerts-dead-letter.jsonl"
    assert [type(x) for x in alert_sinks(plain, "s")] == [LakeSink]

    env = {
        "SENTINANCE_HOME": str(home),
        "SENTINANCE_ALERT_WEBHOOK": "http://127.0.0.1:9/hook",
        "SENTINANCE_ALERT_WEBHOOK_TIMEOUT": "0.5",
        "SENTINANCE_ALERT_DEAD_LETTER": str(tmp_path / "dead.jsonl"),
    }
    settings = Settings.from_env(env)
    lake, hook = alert_sinks(settings, "s")
    assert lake.root.name == "watch-s" and isinstance(hook, WebhookSink)
    assert (hook.url, hook.timeout, hook.dead_letter) == (
        "http://127.0.0.1:9/hook",
        0.5,
        tmp_path / "dead.jsonl",
    )
    _, jsonl, hook = alert_sinks(
        settings,
        "s",
        jsonl=tmp_path / "a.jsonl",
        webhook="https://example.invalid/x",
        webhook_timeout=3.0,
        dead_letter=tmp_path / "other.jsonl",
    )
    assert isinstance(jsonl, JsonlSink)
    assert (hook.url, hook.timeout, hook.dead_letter) == (
        "https://example.invalid/x",
        3.0,
        tmp_path / "other.jsonl",
    )
    for name, value in (
        ("SENTINANCE_ALERT_WEBHOOK", "ftp://x"),
        ("SENTINANCE_ALERT_WEBHOOK_TIMEOUT", "soon"),
        ("SENTINANCE_ALERT_WEBHOOK_TIMEOUT", "0"),
        ("SENTINANCE_ALERT_DEAD_LETTER", str(tmp_path)),
    ):
        with pytest.raises(SettingsError, match=name):
            Settings.from_env({**env, name: value})


def test_live_feed_polls_the_exchanges_and_isolates_a_failing_venue(tmp_path):
    from sentinance_assets.lib.sources.exchanges import FetchPolicy
    from sentinance_assets.lib.sources.live import LiveSource
    from sentinance_assets.lib.sources.polling import LiveFeed
    from tests.fakes.exchange_server import fake_exchanges

    now = datetime.now(UTC).replace(second=0, microsecond=0)
    start, until = now - timedelta(minutes=40), now - timedelta(minutes=20)
    policy = FetchPolicy(timeout_ms=2_000, retries=1, backoff_s=0.001, rate_limit_ms=1)
    with fake_exchanges("binance", "coinbase") as fakes:

        def live(**kw) -> LiveFeed:
            src = LiveSource(
                ("binance", "coinbase"),
                ("BTC", "ETH"),
                exchange_urls={k: v.url for k, v in fakes.items()},
                policy=policy,
                sleep=lambda s: None,
            )
            return LiveFeed(src, start=start, lag=timedelta(seconds=2), **kw)

        feed = live()
        lake = LakeSink(tmp_path / "lake")
        stats = run_watch(
            feed, [lake], tmp_path / "ck", until=until, max_batch=timedelta(minutes=7)
        )
        # the fake venues print 3 trades a minute per market: 4 markets x 20 minutes
        assert stats.trades == 3 * 4 * 20 and stats.batches == 3
        everything = live().between(start, until)
        ids = everything.select("exchange", "symbol", "trade_id")
        assert ids.n_unique() == everything.height == stats.trades
        assert everything["ts"].min() >= start and everything["ts"].max() < until
        # a restart resumes from the checkpoint and follows the clock (lag behind now)
        clock = [until + timedelta(minutes=3)]
        feed = live(now=lambda: clock[0])
        again = run_watch(feed, [lake], tmp_path / "ck", duration=0.5, step=0.01)
        assert again.trades == 3 * 4 * 3
        # one venue down: the other keeps flowing, the failure is recorded
        fakes["coinbase"].down = True
        feed = live()
        got = feed.between(start, until)
        assert set(got["exchange"]) == {"binance"} and got.height == 3 * 2 * 20
        assert {f["exchange"] for f in feed.source.failures} == {"coinbase"}


def test_watch_transport_option_picks_the_live_feed(tmp_path, monkeypatch, capsys):
    from sentinance_assets.lib.detection import watch as watch_module
    from sentinance_assets.lib.detection.watch import StopFlag, WatchStats
    from sentinance_assets.lib.sources.polling import LiveFeed
    from sentinance_assets.lib.sources.streams import StreamFeed
    from tests.fakes.exchange_server import fake_exchanges

    fed = []

    def fake_run_watch(feed, sinks, checkpoint_path, **kw):
        fed.append(feed)
        return WatchStats()

    monkeypatch.setattr(watch_module, "run_watch", fake_run_watch)
    monkeypatch.setattr(StopFlag, "install", lambda self: None)  # keep pytest's own handlers
    with fake_exchanges("binance") as fakes:
        for key, value in {
            "SENTINANCE_HOME": str(tmp_path / "home"),
            "SENTINANCE_SOURCE": "live",
            "SENTINANCE_EXCHANGES": "binance",
            "SENTINANCE_SYMBOLS": "BTC",
            "SENTINANCE_EXCHANGE_URL_BINANCE": fakes["binance"].url,
            "SENTINANCE_HTTP_TIMEOUT": "2",
            "SENTINANCE_HTTP_RETRIES": "0",
        }.items():
            monkeypatch.setenv(key, value)
        assert main(["watch", "--quiet", "--transport", "poll"]) == 0
        assert type(fed[-1]) is LiveFeed
        assert main(["watch", "--quiet"]) == 0  # default: auto, websockets where available
        assert isinstance(fed[-1], StreamFeed) and fed[-1].transport == "auto"
        assert not fed[-1].running  # the command closed the feed (thread and sockets)
        assert "transport: binance" in capsys.readouterr().err
        monkeypatch.setenv("SENTINANCE_WATCH_TRANSPORT", "poll")
        assert main(["watch", "--quiet"]) == 0
        assert type(fed[-1]) is LiveFeed
        assert main(["watch", "--quiet", "--transport", "ws"]) == 0  # the option wins
        assert isinstance(fed[-1], StreamFeed) and fed[-1].transport == "ws"
    # a venue ccxt.pro cannot stream: an error under --transport ws, before any network call
    monkeypatch.setenv("SENTINANCE_EXCHANGES", "zaif")
    assert main(["watch", "--quiet", "--transport", "ws"]) == 2
    assert "zaif" in capsys.readouterr().err
    assert len(fed) == 4


def test_watch_command_streams_a_websocket_and_stops_on_sigterm(tmp_path):
    from tests.fakes.ws_exchange_server import BTC, fake_binance_ws, wait_until

    home = tmp_path / "home"
    with fake_binance_ws() as (tape, rest, ws):
        env = {
            **os.environ,
            "SENTINANCE_HOME": str(home),
            "SENTINANCE_SOURCE": "live",
            "SENTINANCE_EXCHANGES": "binance",
            "SENTINANCE_SYMBOLS": "BTC",
            # one port for REST and the socket: the setting re-points both
            "SENTINANCE_EXCHANGE_URL_BINANCE": ws.http_url,
            "SENTINANCE_HTTP_TIMEOUT": "5",
            "SENTINANCE_HTTP_RETRIES": "1",
        }
        proc = subprocess.Popen(
            [SENTINANCE, "watch", "--transport", "ws", "--quiet"],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        try:
            wait_until(lambda: ws.subscribed() >= 1 or proc.poll() is not None, 60, "subscribe")
            assert proc.poll() is None, proc.communicate()[1].decode()[-2000:]
            # whales only on the socket (not in the REST history): alerts prove the stream
            whales = [tape.trade(BTC, 20_000.0 + i, 10.0, socket_only=True) for i in range(3)]
            lake = home / "lake" / "alerts" / "alerts" / "watch-live"

            def alerted() -> set[int]:
                try:
                    got = pl.concat([pl.read_parquet(f) for f in lake.glob("*.parquet")])
                except (ValueError, OSError):  # none yet, or one being replaced
                    return set()
                return {int(t.timestamp() * 1000) for t in got["event_time"]}

            wait_until(lambda: {w[1] for w in whales} <= alerted(), 60, "the whale alerts")
        finally:
            proc.send_signal(signal.SIGTERM)
            out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err.decode()[-2000:]
    assert "transport: binance ws" in err.decode()
    assert "watch stopped" in err.decode()
