"""Delivery to people: real deliveries to local servers (JSON/form webhooks, Slack, Discord,
Telegram and Mattermost incoming webhooks re-pointed at a local HTTP server, email through
aiosmtpd), Teams at the Apprise boundary; routing, fatigue control, retries, the delivery log
and never twice to a channel across restarts."""

from __future__ import annotations

import email
import email.policy
import json
import socket
import threading
import urllib.parse
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import polars as pl
import pytest

from sentinance_assets.lib.detection.delivery import (
    DEFAULT_BODY,
    Deliverer,
    DeliverySink,
    Planner,
    Route,
    backtest_policy,
    compose,
    policies,
    read_delivery_log,
    render_sample,
    simulate,
)
from sentinance_assets.lib.detection.engine import detect_all
from sentinance_assets.lib.detection.rules import alert_id
from sentinance_assets.lib.detection.rules_file import RulesError, load_rules
from sentinance_assets.lib.detection.watch import ReplayFeed, run_watch
from sentinance_assets.lib.schemas import ALERTS
from tests.lib.detection.trades import trades_of

T = datetime(2026, 11, 10, 12, tzinfo=UTC)
T0 = T.timestamp()


# ------------------------------------------------------------------------------ helpers
class Clock:
    def __init__(self, t: float = T0) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t

    def sleep(self, s: float) -> None:
        self.t += s


class Hub:
    """A local HTTP server that records every POST (path, content type, body) and answers
    ``fail`` times with ``status`` first."""

    def __init__(self, fail: int = 0, status: int = 503) -> None:
        self.requests: list[tuple[str, str, bytes]] = []
        self.calls = 0
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                outer.calls += 1
                if outer.calls <= fail:
                    self.send_response(status)
                    self.end_headers()
                    return
                outer.requests.append((self.path, self.headers.get("Content-Type", ""), body))
                self.send_response(200)
                self.end_headers()
                # Slack's incoming webhooks answer "ok"; Telegram's API answers JSON
                self.wfile.write(b"ok" if "/slack/" in self.path else b'{"ok": true}')

            def log_message(self, *args):
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.httpd.server_address[1]
        self.base = f"http://127.0.0.1:{self.port}"
        threading.Thread(
            target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        ).start()

    def json(self, path_part: str) -> list[dict]:
        return [json.loads(b) for p, _, b in self.requests if path_part in p]

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def hub():
    hubs: list[Hub] = []

    def make(**kw) -> Hub:
        h = Hub(**kw)
        hubs.append(h)
        return h

    yield make
    for h in hubs:
        h.close()


def _alert(
    kind: str = "whale",
    exchange: str = "binance",
    symbol: str = "BTC/USDT",
    at: datetime = T,
    severity: str = "warning",
    value: float = 150_000.0,
    threshold: float = 100_000.0,
    details: dict | None = None,
) -> dict:
    d = {
        "whale": {
            "trade_id": "1",
            "price": 60_000.0,
            "amount": 2.5,
            "side": "buy",
            "quote": "USDT",
        },
        "volume_spike": {
            "usd": 2_512_345.0,
            "n": 83,
            "mean": 150_000.0,
            "std": 90_000.0,
            "z": 26.2,
            "mean_n": 6.0,
            "median_n": 5.0,
        },
        "divergence": {"peak": 1.23, "duration_s": 150, "windows": 5, "venues": 3},
    }
    return {
        "alert_id": alert_id(kind, exchange, symbol, at),
        "type": kind,
        "exchange": exchange,
        "symbol": symbol,
        "severity": severity,
        "event_time": at,
        "detected_at": at,
        "value": value,
        "threshold": threshold,
        "message": f"{kind} on {exchange} {symbol}",
        "details": json.dumps(details or d.get(kind, {})),
        "rules_version": "abc",
    }


def _frame(rows: list[dict]) -> pl.DataFrame:
    return ALERTS.conform(pl.DataFrame(rows, schema=ALERTS.columns))


def _rules(channels: str, extra: str = "") -> object:
    return load_rules(text=f"[delivery]\nmax_alert_age_s = 1e9\n{extra}\n{channels}")


def _deliverer(tmp_path: Path, channels: str, clock: Clock, extra: str = "", **kw) -> Deliverer:
    rules = _rules(channels, extra)
    d = Deliverer.from_rules(rules, tmp_path, clock=clock, **kw)  # type: ignore[arg-type]
    assert d is not None
    return d


def _channel(name: str, url: str, more: str = "") -> str:
    return f'[[delivery.channels]]\nname = "{name}"\nurl = "{url}"\n{more}\n'


# ------------------------------------------------------------------------------ real deliveries
def test_json_and_form_webhooks_get_one_readable_message_per_market(tmp_path, hub):
    """Whales and divergences: one message per market; volume spikes: their own digest."""
    h = hub()
    clock = Clock()
    d = _deliverer(
        tmp_path,
        _channel("json", f"json://127.0.0.1:{h.port}/json")
        + _channel("form", f"form://127.0.0.1:{h.port}/form"),
        clock,
    )
    spike = _alert("volume_spike", at=T + timedelta(seconds=10), value=26.2, threshold=2.5)
    whale = _alert(severity="critical", value=1_234_567.0)
    whale2 = _alert(at=T + timedelta(seconds=5), value=150_000.0)
    other = _alert("divergence", "kraken", "ETH/USD", value=1.23, threshold=0.5)
    spike2 = _alert("volume_spike", "kraken", "ETH/USD", T + timedelta(seconds=20), "critical")
    d.submit(_frame([whale, whale2, spike, other, spike2]))
    assert d.tick() == 0  # the group wait (30 s) holds the first alerts of a group
    clock.t += 31
    assert d.tick() == 6  # two markets and the spike digest x two channels
    msgs = {m["title"]: m for m in h.json("/json")}
    grouped = msgs["CRITICAL · 2 alerts on binance BTC/USDT: 2 whale"]
    body = grouped["message"]
    assert "**$1,234,567** notional (threshold $100,000)" in body
    assert "buy of 2.5 BTC at 60,000.00 USDT" in body
    assert "http://127.0.0.1:8501/alerts?exchange=binance&symbol=BTC%2FUSDT" in body
    assert grouped["type"] == "failure"  # critical
    single = msgs["WARNING · Divergence on kraken ETH/USD"]["message"]
    assert "**+1.23%** away from the other venues for 150 s (threshold ±0.5%" in single
    digest = msgs["CRITICAL · 2 volume spikes on 2 markets"]["message"]
    assert digest.splitlines()[:2] == [
        "- Volume spike on binance BTC/USDT (1): 12:00:10 **$2,512,345** in 83 trades",
        "- Volume spike on kraken ETH/USD (1): 12:00:20 **$2,512,345** in 83 trades (critical)",
    ]
    assert "http://127.0.0.1:8501/alerts)" in digest
    forms = [urllib.parse.parse_qs(b.decode()) for p, _, b in h.requests if "/form" in p]
    assert sorted(f["title"][0] for f in forms) == sorted(msgs)
    assert any("$1,234,567" in f["message"][0] for f in forms)
    log = read_delivery_log(tmp_path)
    assert log.filter(pl.col("status") == "delivered").height == 6
    assert set(log["url"]) == {f"json://127.0.0.1:{h.port}", f"form://127.0.0.1:{h.port}"}


def test_slack_discord_telegram_mattermost_incoming_webhooks(tmp_path, hub, monkeypatch):
    from apprise.plugins.discord import NotifyDiscord
    from apprise.plugins.slack import NotifySlack
    from apprise.plugins.telegram import NotifyTelegram

    h = hub()
    # the plugins' fixed service hosts, re-pointed at the local server: the real plugin code
    # builds and posts its real payload
    monkeypatch.setattr(NotifySlack, "webhook_url", f"{h.base}/slack/services")
    monkeypatch.setattr(NotifyDiscord, "notify_url", f"{h.base}/discord/webhooks")
    monkeypatch.setattr(NotifyTelegram, "notify_url", f"{h.base}/telegram/bot")
    clock = Clock()
    d = _deliverer(
        tmp_path,
        _channel("slack", "slack://T1234ABCD/B5678EFGH/abcdefghijklmnopqrstuvwx")
        + _channel("discord", "discord://123456789/abcdefghijklmnop")
        + _channel("telegram", "tgram://123456789:abcdefghijklmnopqrstuvwxyz123456789/-100123")
        + _channel("mattermost", f"mmost://127.0.0.1:{h.port}/abcdefghijklmnopqrstuvwxyz"),
        clock,
        extra="group_wait_s = 0",
    )
    d.submit(_frame([_alert(value=150_000.0)]))
    assert d.tick() == 4
    title = "WARNING · Whale on binance BTC/USDT"
    (slack,) = h.json("/slack/services/T1234ABCD/B5678EFGH/")
    assert slack["attachments"][0]["title"] == title
    text = slack["attachments"][0]["text"]
    assert "*$150,000* notional" in text  # Slack mrkdwn
    assert "<http://127.0.0.1:8501/alerts?exchange=binance&amp;symbol=BTC%2FUSDT|" in text
    (discord,) = h.json("/discord/webhooks/123456789/abcdefghijklmnop")
    assert discord["content"].startswith(title) and "**$150,000** notional" in discord["content"]
    (telegram,) = h.json("/telegram/bot123456789:")
    assert telegram["chat_id"] == -100123 and "$150,000" in telegram["text"]
    (mattermost,) = h.json("/hooks/abcdefghijklmnopqrstuvwxyz")
    assert mattermost["text"].startswith(title) and "$150,000" in mattermost["text"]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_email_through_a_local_smtp_server(tmp_path):
    from aiosmtpd.controller import Controller

    class Inbox:
        def __init__(self) -> None:
            self.mails: list = []

        async def handle_DATA(self, server, session, envelope):  # noqa: N802
            self.mails.append(envelope)
            return "250 OK"

    inbox = Inbox()
    port = _free_port()
    smtp = Controller(inbox, hostname="127.0.0.1", port=port)
    smtp.start()
    try:
        d = _deliverer(
            tmp_path,
            _channel(
                "mail",
                f"mailto://127.0.0.1:{port}?from=alerts@sentinance.test&to=analyst@example.com",
                'types = ["divergence"]',
            ),
            Clock(),
            extra="group_wait_s = 0",
        )
        d.submit(_frame([_alert(), _alert("divergence", "kraken", "ETH/USD", value=-1.23)]))
        assert d.tick() == 1
    finally:
        smtp.stop()
    (mail,) = inbox.mails
    assert mail.rcpt_tos == ["analyst@example.com"]
    msg = email.message_from_bytes(mail.content, policy=email.policy.default)
    assert msg["Subject"] == "WARNING · Divergence on kraken ETH/USD"
    plain = msg.get_body(("plain",)).get_content()
    html = msg.get_body(("html",)).get_content()
    assert "-1.23%" in plain and "150 s" in plain
    link = "http://127.0.0.1:8501/alerts?exchange=kraken&symbol=ETH%2FUSD"
    assert link in plain and f'href="{link.replace("&", "&amp;")}"' in html


def test_teams_at_the_apprise_boundary(tmp_path, monkeypatch):
    # Teams workflows are https-only: the plugin's HTTP call is intercepted instead
    import apprise.plugins.workflows as workflows

    sent: list[tuple[str, dict]] = []

    class Ok:
        status_code = 202
        content = b""
        text = ""

    def post(url, data=None, **kw):
        sent.append((url, json.loads(data)))
        return Ok()

    monkeypatch.setattr(workflows.requests, "post", post)
    d = _deliverer(
        tmp_path,
        _channel("teams", "workflow://prod-00.westus.logic.azure.com:443/abc123/sigXYZ"),
        Clock(),
        extra="group_wait_s = 0",
    )
    d.submit(_frame([_alert(value=987_654.0)]))
    assert d.tick() == 1
    ((url, payload),) = sent
    assert url.startswith("https://prod-00.westus.logic.azure.com:443/workflows/abc123/")
    assert "987,654" in json.dumps(payload)


# ------------------------------------------------------------------------------ fatigue
class Recorder:
    def __init__(self, fail: int = 0) -> None:
        self.sent: list[tuple[str, str, str]] = []
        self.fail = fail

    def send(self, url, title, body, notify_type):
        if self.fail:
            self.fail -= 1
            return False, "HTTP 503 from the test"
        self.sent.append((url, title, body))
        return True, ""


def test_routing_by_type_severity_exchange_and_symbol(tmp_path):
    rec = Recorder()
    d = _deliverer(
        tmp_path,
        _channel("whales", "json://a", 'types = ["whale"]\nsymbols = ["BTC"]')
        + _channel("crit", "json://b", 'severities = ["critical"]')
        + _channel("kraken-eth", "json://c", 'exchanges = ["kraken"]\nsymbols = ["ETH/USD"]'),
        Clock(),
        extra="group_wait_s = 0",
        transport=rec,
    )
    d.submit(
        _frame(
            [
                _alert(),  # whales
                _alert("whale", "binance", "ETH/USDT"),  # nobody
                _alert("volume_spike", "kraken", "ETH/USD", severity="critical"),  # crit, kraken
                _alert("divergence", "kraken", "BTC/USD"),  # nobody
            ]
        )
    )
    d.tick()
    got = sorted((url, title) for url, title, _ in rec.sent)
    assert got == [
        ("json://a", "WARNING · Whale on binance BTC/USDT"),
        ("json://b", "CRITICAL · 1 volume spike on kraken ETH/USD"),
        ("json://c", "CRITICAL · 1 volume spike on kraken ETH/USD"),
    ]


def _at(seconds: float) -> datetime:
    return T + timedelta(seconds=seconds)


def test_group_wait_interval_repeat_and_rate_cap():
    policy = backtest_policy(load_rules(text="[delivery]\nrate_limit_per_hour = 3\n").delivery)
    late = 4 * 3600 + 3100
    arrivals = [
        (0, _alert("whale", at=_at(0))),
        (10, _alert("whale", at=_at(10))),  # joins the group in its 30 s wait
        (60, _alert("divergence", at=_at(60))),  # waits for the group interval (5 min)
        (2000, _alert("divergence", at=_at(2000))),  # the same condition within 4 h: suppressed
        (3000, _alert("divergence", at=_at(3000), severity="critical")),  # escalation: itemized
        (late, _alert("divergence", at=_at(late), severity="critical")),  # 4 h later: itemized
    ]
    burst = 20_000  # four markets at once; 3 messages an hour
    arrivals += [
        (burst + i, _alert("whale", symbol=sym, at=_at(burst + i)))
        for i, sym in enumerate(["A/USD", "B/USD", "C/USD", "D/USD"])
    ]
    msgs = simulate(policy, [(T0 + t, a) for t, a in arrivals])
    got = [(m["created"] - T0, len(m["alert_ids"]), m["group"].split("|")[1]) for m in msgs]
    assert got == [
        (30.0, 2, "BTC/USDT"),  # group wait after the first alert
        (330.0, 1, "BTC/USDT"),  # group interval after the first message
        (3030.0, 1, "BTC/USDT"),  # a new burst: group wait again
        (late + 30.0, 1, "BTC/USDT"),
        (burst + 30.0, 1, "A/USD"),
        (burst + 31.0, 1, "B/USD"),
        (late + 30.0 + 3600, 1, "C/USD"),  # the rate cap: when the oldest send leaves the hour
        (burst + 30.0 + 3600, 1, "D/USD"),
    ]
    assert "CRITICAL" in msgs[2]["title"]
    ids = [i for m in msgs for i in m["alert_ids"]]
    assert len(ids) == len(set(ids)) == len(arrivals) - 1  # one suppressed repeat


def test_volume_spikes_default_to_a_two_hour_digest_with_every_spike_itemized():
    policy = backtest_policy()
    spike = "volume_spike"
    arrivals = [
        (0, _alert(at=_at(0))),  # a whale: its market's message, as before
        (0, _alert(spike, at=_at(0))),
        (100, _alert(spike, "kraken", "ETH/USD", _at(100))),  # waits for the digest interval
        (200, _alert(spike, at=_at(200))),  # same market and type: itemized, not a repeat
        (3000, _alert(spike, "coinbase", "SOL/USD", _at(3000))),
        (8000, _alert(spike, at=_at(8000))),
        (9000, _alert(at=_at(9000), severity="critical")),  # the whale route is unchanged
    ]
    msgs = simulate(policy, [(T0 + t, a) for t, a in arrivals])
    got = [(m["created"] - T0, m["group"], len(m["alert_ids"])) for m in msgs]
    assert got == [
        (30.0, "binance|BTC/USDT", 1),
        (30.0, "volume_spike@*", 1),
        (7230.0, "volume_spike@*", 3),  # one digest for three markets, 2 h after the last
        (9030.0, "binance|BTC/USDT", 1),
        (14430.0, "volume_spike@*", 1),
    ]
    ids = [i for m in msgs for i in m["alert_ids"]]
    assert sorted(ids) == sorted(a["alert_id"] for _, a in arrivals)  # nothing folded away
    assert msgs[2]["title"] == "WARNING · 3 volume spikes on 3 markets"
    assert policy.route("divergence").repeat_interval == 4 * 3600
    assert policy.route("volume_spike") == Route("all", 30.0, 7200.0, 0.0)
    # whales: every one itemized (no repeat), still in their market's message
    whales = [
        (T0, _alert(at=_at(0))),
        (T0 + 60, _alert(at=_at(60))),
        (T0 + 61, _alert("divergence", at=_at(61))),
    ]
    msgs = simulate(policy, whales)
    assert [(m["created"] - T0, len(m["alert_ids"])) for m in msgs] == [(30.0, 1), (330.0, 2)]


def test_type_routes_per_file_and_channel_and_their_validation():
    rules = load_rules(
        text="[delivery]\nrepeat_interval_s = 3600\n"
        '[delivery.by_type.volume_spike]\ngroup_by = "market"\ngroup_interval_s = 300\n'
        "[delivery.by_type.whale]\nrepeat_interval_s = 0\n"
        '[[delivery.channels]]\nname = "desk"\nurl = "json://a"\ngroup_wait_s = 5\n'
        "[delivery.channels.by_type.whale]\nrepeat_interval_s = 60\n"
        '[delivery.templates.volume_spike]\nitem = "{time} {details[n]}"\n'
    )
    (desk,) = policies(rules)
    # the file's spike route replaces the built-in digest key by key; unset keys: the channel's
    assert desk.route("volume_spike") == Route("market", 5.0, 300.0, 0.0)
    assert desk.route("whale") == Route("market", 5.0, 300.0, 60.0)  # the channel's wins
    assert desk.route("divergence") == desk.general == Route("market", 5.0, 300.0, 3600.0)
    spike = _alert("volume_spike")
    title, body = compose(desk, [{**spike, "details": json.loads(spike["details"])}], [], "all")
    assert title == "WARNING · 1 volume spike on binance BTC/USDT"
    assert body.startswith("- Volume spike on binance BTC/USDT (1): 12:00:00 83")
    for bad, why in [
        ("[delivery.by_type.volume_spike]\nevery = 1", "unknown key"),
        ('[delivery.by_type.spikes]\ngroup_by = "all"', "delivery.by_type.spikes"),
        ('[delivery.by_type.whale]\ngroup_by = "venue"', "group_by"),
        ('[delivery.templates.whale]\nitem = "{nope}"', "templates.whale.item"),
    ]:
        with pytest.raises(RulesError, match=why):
            load_rules(text=bad)


def test_quiet_hours_hold_warnings_and_let_criticals_through():
    rules = load_rules(
        text='[delivery]\nquiet_hours = "22:00-07:00"\nquiet_timezone = "Europe/Paris"\n'
    )
    policy = backtest_policy(rules.delivery)
    p = Planner([policy], {})
    night = datetime(2026, 11, 10, 23, 0, tzinfo=UTC).timestamp()  # 00:00 in Paris
    p.submit([_alert(at=datetime.fromtimestamp(night, UTC))], night)
    p.submit(
        [_alert("divergence", "kraken", "ETH/USD", datetime.fromtimestamp(night, UTC), "critical")],
        night,
    )
    p.plan(night + 60)
    assert [m["group"] for m in p.take()] == ["kraken|ETH/USD"]  # the critical one
    wake = datetime(2026, 11, 11, 6, 0, tzinfo=UTC).timestamp()  # 07:00 in Paris
    assert p.next_due(night + 60) == pytest.approx(wake)
    p.plan(wake)
    assert [m["group"] for m in p.take()] == ["binance|BTC/USDT"]


# ------------------------------------------------------------------------------ reliability
def test_retries_with_backoff_then_dead_letter_and_log(tmp_path, hub):
    flaky = hub(fail=2)  # two 503s, then OK
    clock = Clock()
    d = _deliverer(
        tmp_path,
        _channel("flaky", f"json://127.0.0.1:{flaky.port}/x?rto=2&cto=2"),
        clock,
        extra="group_wait_s = 0\nretry_backoff_s = 10\nmax_attempts = 3",
    )
    d.submit(_frame([_alert()]))
    assert d.drain(sleep=clock.sleep) == 1
    assert clock.t - T0 == pytest.approx(30.0)  # 10 s, then 20 s
    log = read_delivery_log(tmp_path).reverse()
    assert log["status"].to_list() == ["retried", "retried", "delivered"]
    assert log["attempt"].to_list() == [1, 2, 3]
    assert len(flaky.requests) == 1

    dead = hub(fail=99)
    d2 = _deliverer(
        tmp_path / "b",
        _channel("dead", f"json://127.0.0.1:{dead.port}/x"),
        clock,
        extra="group_wait_s = 0\nretry_backoff_s = 1\nmax_attempts = 2",
    )
    d2.submit(_frame([_alert()]))
    assert d2.drain(sleep=clock.sleep) == 0
    statuses = read_delivery_log(tmp_path / "b")["status"].to_list()
    assert statuses == ["dead_lettered", "retried"]
    (letter,) = [json.loads(x) for x in (tmp_path / "b/delivery/dead-letter.jsonl").open()]
    assert letter["channel"] == "dead" and "$150,000" in letter["body"]
    assert letter["url"] == f"json://127.0.0.1:{dead.port}"  # no secrets in the log
    assert dead.calls == 2


def test_never_the_same_alert_twice_across_restarts_and_interruptions(tmp_path):
    clock = Clock()
    rec = Recorder()
    chans = _channel("desk", "json://a")
    a, b = _alert(), _alert("volume_spike", "kraken", "ETH/USD")
    first = _deliverer(tmp_path, chans, clock, extra="group_wait_s = 0", transport=rec)
    first.submit(_frame([a]))
    first.tick()
    # a new process (a restart, or the batch asset beside the watch loop) sees the same alert
    second = _deliverer(tmp_path, chans, clock, extra="group_wait_s = 0", transport=rec)
    second.submit(_frame([a, b]))
    clock.t += 400
    second.tick()
    assert [t for _, t, _ in rec.sent] == [
        "WARNING · Whale on binance BTC/USDT",
        "WARNING · 1 volume spike on kraken ETH/USD",
    ]
    # a process that died while sending: its message is dead-lettered as interrupted, not resent
    state = json.loads((tmp_path / "delivery/state.json").read_text())
    c = _alert("divergence", "kraken", "BTC/USD")
    msg = {
        "id": "m1",
        "group": "kraken|BTC/USD",
        "title": "t",
        "body": "b",
        "notify_type": "warning",
        "alert_ids": [c["alert_id"]],
        "urls": [0],
        "attempts": 0,
        "next_at": clock.t,
        "created": clock.t,
        "owner": 2**22 + 12345,  # no such process
    }
    state["channels"]["desk"]["inflight"]["m1"] = msg
    state["channels"]["desk"]["seen"][c["alert_id"]] = T0
    (tmp_path / "delivery/state.json").write_text(json.dumps(state))
    third = _deliverer(tmp_path, chans, clock, extra="group_wait_s = 0", transport=rec)
    third.submit(_frame([c]))
    third.tick()
    assert len(rec.sent) == 2
    assert "interrupted" in read_delivery_log(tmp_path)["status"].to_list()


def test_stale_alerts_are_not_sent_and_channels_need_their_url(tmp_path, monkeypatch):
    rec = Recorder()
    clock = Clock(T0 + 7 * 3600)  # the default age limit is 6 h
    rules = load_rules(text=_channel("desk", "json://a"))
    d = Deliverer.from_rules(rules, tmp_path, clock=clock, transport=rec)
    assert d is not None
    d.submit(_frame([_alert()]))
    d.drain(sleep=clock.sleep)
    assert rec.sent == [] and read_delivery_log(tmp_path)["status"].to_list() == ["stale"]
    env_rules = load_rules(text='[[delivery.channels]]\nname = "x"\nurl_env = "NOPE_URL"\n')
    with pytest.raises(RulesError, match="NOPE_URL is not set"):
        policies(env_rules, environ={})
    assert [p.urls for p in policies(env_rules, environ={"NOPE_URL": "json://h"})] == [
        ("json://h",)
    ]
    extra = policies(load_rules(), "json://a  mailto://b")
    assert [(p.name, p.urls) for p in extra] == [("default", ("json://a", "mailto://b"))]


def test_every_default_template_renders_and_templates_are_overridable(tmp_path):
    for kind, text in DEFAULT_BODY.items():
        assert render_sample(kind, text)
    rec = Recorder()
    d = _deliverer(
        tmp_path,
        _channel(
            "desk",
            "json://a",
            '[delivery.channels.templates.whale]\ntitle = "🐋 {exchange} {symbol} ${value:,.0f}"\n'
            'body = "{side} {value:.0f}"',
        ).replace("{side}", "{details[side]}"),
        Clock(),
        extra="group_wait_s = 0",
        transport=rec,
    )
    d.submit(_frame([_alert()]))
    d.tick()
    ((_, title, body),) = rec.sent
    assert title == "🐋 binance BTC/USDT $150,000"
    assert "- Whale (warning): buy 150000" in body


# ------------------------------------------------------------------------------ the watch loop
def test_the_watch_loop_delivers_once_across_a_restart(tmp_path, hub):
    h = hub()
    t0 = int(T.timestamp() * 1000)
    rows = [
        ("binance", "BTC/USDT", f"t{i}", t0 + i * 20_000, 60_000.0, 0.01, "buy") for i in range(120)
    ] + [("binance", "BTC/USDT", "w", t0 + 600_000 + 5, 60_000.0, 4.0, "sell")]
    trades = trades_of(rows)
    rules = _rules(_channel("hook", f"json://127.0.0.1:{h.port}/watch"), "group_wait_s = 0")
    deliverer = Deliverer.from_rules(rules, tmp_path)  # type: ignore[arg-type]
    assert deliverer is not None
    ckpt = tmp_path / "ck"
    run_watch(ReplayFeed(trades), [DeliverySink(deliverer)], ckpt, speed=0, cfg=rules.detector)  # type: ignore[attr-defined]
    (msg,) = h.json("/watch")
    assert msg["title"] == "WARNING · Whale on binance BTC/USDT" and "$240,000" in msg["message"]
    # the loop restarts from scratch (checkpoint lost): the same alert is not delivered again
    ckpt.unlink()
    again = Deliverer.from_rules(rules, tmp_path)  # type: ignore[arg-type]
    assert again is not None
    run_watch(ReplayFeed(trades), [DeliverySink(again)], ckpt, speed=0, cfg=rules.detector)  # type: ignore[attr-defined]
    assert len(h.json("/watch")) == 1
    found = detect_all(trades, rules.detector)  # type: ignore[attr-defined]
    assert msg["message"].count("Whale") == found.filter(pl.col("type") == "whale").height


def test_operator_incidents_reach_the_channels_that_take_them(tmp_path, hub):
    from sentinance_assets.lib.operations.notify import Incident, notify_operators
    from sentinance_assets.settings import Settings

    h = hub()
    rules = tmp_path / "rules.toml"
    rules.write_text(
        _channel("analysts", f"json://127.0.0.1:{h.port}/analysts")
        + _channel("ops", f"json://127.0.0.1:{h.port}/ops", "operations = true")
    )
    settings = Settings(
        home=tmp_path / "home",
        alert_rules=rules,
        alert_channels=f"json://127.0.0.1:{h.port}/default",
    )
    incident = Incident(
        key="run-failure:abc",
        kind="run_failure",
        title="Run abc of ingest_job failed",
        details={"run_id": "abc", "step": "raw__trades"},
    )
    assert notify_operators(incident, settings)
    assert not notify_operators(incident, settings)  # once
    for path in ("/ops", "/default"):
        (msg,) = h.json(path)
        assert msg["title"] == "[ops] Run abc of ingest_job failed"
        assert "- run_id: abc" in msg["message"] and "- step: raw__trades" in msg["message"]
        assert msg["type"] == "failure"
    assert h.json("/analysts") == []  # not an operations channel
    log = read_delivery_log(tmp_path / "home")
    assert sorted(log["channel"]) == ["default", "ops"]


def test_the_watch_command_delivers_when_channels_exist(tmp_path):
    from sentinance_assets.lib.detection.watch import alert_sinks
    from sentinance_assets.settings import Settings

    rules = load_rules()
    with_channels = Settings(home=tmp_path, alert_channels="json://127.0.0.1:9/x")
    sinks = alert_sinks(with_channels, "live", rules=rules)
    assert isinstance(sinks[-1], DeliverySink)
    assert [p.name for p in sinks[-1].deliverer.channels] == ["default"]
    plain = alert_sinks(Settings(home=tmp_path), "live", rules=rules)
    assert not [s for s in plain if isinstance(s, DeliverySink)]
