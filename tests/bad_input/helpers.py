"""Assertions shared by the bad-input tests: where every record went, and that counts add up."""

from __future__ import annotations

import json
import math
from datetime import datetime

import polars as pl

from sentinance_assets.lib import contracts
from sentinance_assets.lib.schemas import (
    QUARANTINE_CANDLES,
    QUARANTINE_NEWS,
    QUARANTINE_TRADES,
    RAW_CANDLES,
    RAW_NEWS,
    RAW_TRADES,
)
from tests.bad_input.cases import EXCHANGES, ID, KEYS, SYMBOLS, Case

DATASETS = {
    "trades": (RAW_TRADES, QUARANTINE_TRADES),
    "candles": (RAW_CANDLES, QUARANTINE_CANDLES),
    "news": (RAW_NEWS, QUARANTINE_NEWS),
}


def contract_for(entity: str, now: datetime) -> contracts.Contract:
    if entity == "trades":
        return contracts.trade_rules(EXCHANGES, SYMBOLS, now)
    if entity == "candles":
        return contracts.candle_rules(EXCHANGES, SYMBOLS, now)
    return contracts.news_rules(now)


def _same(received: object, stored: object) -> bool:
    if isinstance(received, float) and not math.isfinite(received):
        return stored == ("NaN" if math.isnan(received) else repr(received))
    if isinstance(received, datetime) or received is None:
        return True  # timestamps are re-encoded as ISO text; absence is checked via the check
    return received == stored


def key_of(entity: str, rec: dict) -> tuple:
    return tuple(rec.get(k) for k in KEYS[entity])


def assert_outcome(
    case: Case,
    goods: list[dict],
    bads: list[dict],
    checked: contracts.Checked,
    clean: pl.DataFrame,
    quarantine: pl.DataFrame,
) -> None:
    """The batch is accounted for and every record sits where the case says it must."""
    received = len(goods) + len(bads)
    assert checked.received == received
    assert checked.reconciles, checked.metadata()
    assert clean.height == checked.clean.height
    assert quarantine.height == checked.quarantined.height
    assert clean.height + quarantine.height + checked.exact_duplicates == received
    assert checked.exact_duplicates == case.duplicates
    assert quarantine["reason"].null_count() == 0 and quarantine["payload"].null_count() == 0
    payloads = [json.loads(p) for p in quarantine["payload"]]  # valid JSON, always
    idcol = ID[case.entity]
    clean_ids = set(clean[idcol].to_list())

    if case.all_bad:
        assert clean.height == 0
        assert set(quarantine["check"]) == {case.check}
        return

    if case.check is None:  # the odd records are fine: clean, or dropped as exact copies
        assert quarantine.height == 0, quarantine.to_dicts()
        expected = {r[idcol] for r in goods + bads}
        assert clean_ids == expected
        ts = clean["ts" if "ts" in clean.columns else "published"]
        assert ts.is_sorted(), "clean rows come out in time order"
        return

    # conflicting duplicates take their good partner with them
    bad_keys = {key_of(case.entity, b) for b in bads}
    partners = [g for g in goods if key_of(case.entity, g) in bad_keys]
    if case.check == "unique_key":
        assert partners or len(bads) > 1
    survivors = [g for g in goods if g not in partners]
    assert clean_ids == {g[idcol] for g in survivors}, (clean_ids, quarantine.to_dicts())
    assert quarantine.height == len(bads) + len(partners)
    assert set(quarantine["check"]) == {case.check}, quarantine.select("check", "reason").rows()
    for bad in bads:
        overrides = {k: v for k, v in bad.items() if k in case.bad[0] or k in case.dtypes}
        matches = [
            p
            for p in payloads
            if all(
                _same(v, p.get(k)) or case.dtypes.get(k) is not None for k, v in overrides.items()
            )
        ]
        assert matches, f"{case.id}: {bad} not found in quarantine payloads {payloads}"
    if case.reason:
        assert all(case.reason in r for r in quarantine["reason"]), quarantine["reason"].to_list()
