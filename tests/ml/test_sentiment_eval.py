"""ml.sentiment_eval on crypto news: the two loaders, the seeded stratified draw, the hand
labels and their join to the texts, per-class agreement, bootstrap intervals, confidence ECE,
and ``benchmarks/sentiment_crypto.py`` end to end.

Everything runs on tiny files written to ``tmp_path``; only the last tests read
``../shared/data`` and skip with the reason when it is absent.
"""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path
from types import ModuleType

import numpy as np
import polars as pl
import pytest

from ml.sentiment_eval import (
    CRYPTO_COLUMNS,
    CRYPTONEWS,
    CRYPTONEWS_CSV,
    CRYPTONEWS_DIR,
    GOOGLENEWS,
    GOOGLENEWS_CSV,
    GOOGLENEWS_DIR,
    bootstrap_ci,
    classification_metrics,
    confidence_ece,
    draw_headline_sample,
    expected_calibration_error,
    join_labels,
    load_crypto_news,
    load_cryptonews,
    load_googlenews_finbert,
    load_hand_labels,
)
from tests.conftest import shared_data

REPO = Path(__file__).resolve().parents[2]
LABELS_CSV = REPO / "benchmarks" / "data" / "crypto_headlines_labels.csv"

GOOGLE_ROWS = [
    # title, keyword, url, source_name, created_at, description_finbert
    (
        "Bitcoin soars to a record - CoinDesk",
        "bitcoin",
        "https://g.test/1",
        "CoinDesk",
        "2020-03-01 08:00:00+00:00",
        "positive",
    ),
    (
        "Bitcoin soars to a record - CoinDesk",
        "ethereum",
        "https://g.test/1",
        "CoinDesk",
        "2020-03-01 08:00:00+00:00",
        "positive",
    ),  # same article under a second keyword
    (
        "Exchange hacked, funds lost - Decrypt",
        "binance",
        "https://g.test/2",
        "Decrypt",
        "2021-06-02 07:00:00+00:00",
        "Negative",
    ),
    (
        "What is a stablecoin? - Forbes",
        "tether",
        "https://g.test/3",
        "Forbes",
        "2022-01-05 08:00:00+00:00",
        "neutral",
    ),
]
CRYPTO_ROWS = [
    # date (day-first), sentiment, source, subject, text (lede), title, url
    (
        "5-7-2022 04:24",
        "{'class': 'positive', 'polarity': 0.4, 'subjectivity': 0.5}",
        "CryptoNews",
        "bitcoin",
        "Bitcoin climbed above 20K in a great rally.",
        "Bitcoin returns above USD 20K",
        "https://c.test/a",
    ),
    (
        "12-11-2021 10:00",
        "{'class': 'negative', 'polarity': -0.3, 'subjectivity': 0.6}",
        "CoinTelegraph",
        "defi",
        "A terrible exploit drained the pool.",
        "Protocol exploited",
        "https://c.test/b",
    ),
    (
        "1-6-2022 14:16",
        "{'class': 'neutral', 'polarity': 0.0, 'subjectivity': 0.0}",
        "CoinTelegraph",
        "nft",
        "A lede without a headline.",
        "",
        "https://c.test/c",
    ),
    (
        "2-6-2022 09:00",
        "{'class': 'neutral', 'polarity': 0.0, 'subjectivity': 0.0}",
        "CryptoPotato",
        "bitcoin",
        "No url, so no key.",
        "Unkeyed row",
        "",
    ),
]


def write_google(folder: Path, rows=GOOGLE_ROWS) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    df = pl.DataFrame(
        rows,
        schema=["title", "keyword", "url", "source_name", "created_at", "description_finbert"],
        orient="row",
    ).with_columns(source_url=pl.lit("https://publisher.test"))
    df.write_csv(folder / GOOGLENEWS_CSV)
    return folder


def write_crypto(folder: Path, rows=CRYPTO_ROWS) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    pl.DataFrame(
        rows,
        schema=["date", "sentiment", "source", "subject", "text", "title", "url"],
        orient="row",
    ).write_csv(folder / CRYPTONEWS_CSV, separator=";")
    return folder


@pytest.fixture
def data_root(tmp_path: Path) -> Path:
    root = tmp_path / "data"
    write_google(root / GOOGLENEWS_DIR)
    write_crypto(root / CRYPTONEWS_DIR)
    return root


# ---- loaders --------------------------------------------------------------------------------


def test_googlenews_loader_strips_the_publisher_and_keeps_each_article_once(data_root) -> None:
    df = load_googlenews_finbert(data_root / GOOGLENEWS_DIR)
    assert tuple(df.columns) == CRYPTO_COLUMNS
    assert df["key"].to_list() == ["https://g.test/1", "https://g.test/2", "https://g.test/3"]
    assert df["title"].to_list() == [
        "Bitcoin soars to a record",
        "Exchange hacked, funds lost",
        "What is a stablecoin?",
    ]
    assert df["text"].to_list() == df["title"].to_list()  # FinBERT labelled the headline
    assert df["machine_label"].to_list() == ["positive", "negative", "neutral"]
    assert df["year"].to_list() == [2020, 2021, 2022] and set(df["dataset"]) == {GOOGLENEWS}
    # the CSV itself works as well as its folder
    assert load_googlenews_finbert(data_root / GOOGLENEWS_DIR / GOOGLENEWS_CSV).equals(df)


def test_cryptonews_loader_reads_the_dict_class_day_first_dates_and_the_lede(data_root) -> None:
    df = load_cryptonews(data_root / CRYPTONEWS_DIR)
    assert tuple(df.columns) == CRYPTO_COLUMNS
    assert df["key"].to_list() == ["https://c.test/a", "https://c.test/b", "https://c.test/c"]
    assert df["machine_label"].to_list() == ["positive", "negative", "neutral"]
    assert df["year"].to_list() == [2022, 2021, 2022]  # 5-7-2022 is the 5th of July
    assert df["title"].to_list() == ["Bitcoin returns above USD 20K", "Protocol exploited", None]
    assert df["text"][0] == "Bitcoin climbed above 20K in a great rally."  # the labelled lede
    both = load_crypto_news(data_root)
    assert both["dataset"].to_list() == [GOOGLENEWS] * 3 + [CRYPTONEWS] * 3


def test_loaders_refuse_missing_files_columns_and_unreadable_labels(tmp_path) -> None:
    with pytest.raises(FileNotFoundError, match="crypto news file not found"):
        load_googlenews_finbert(tmp_path / "nowhere")
    bad = [(*GOOGLE_ROWS[0][:5], "bullish")]
    with pytest.raises(ValueError, match="unreadable sentiment labels"):
        load_googlenews_finbert(write_google(tmp_path / "g", bad))
    bad_dict = [(CRYPTO_ROWS[0][0], "{'polarity': 0.1}", *CRYPTO_ROWS[0][2:])]
    with pytest.raises(ValueError, match="unreadable sentiment labels"):
        load_cryptonews(write_crypto(tmp_path / "c", bad_dict))
    bad_date = [("2022-07-05 04:24", *CRYPTO_ROWS[0][1:])]
    with pytest.raises(ValueError, match="not in the D-M-YYYY form"):
        load_cryptonews(write_crypto(tmp_path / "d", bad_date))
    (tmp_path / "e").mkdir()
    pl.DataFrame({"title": ["x"], "url": ["u"]}).write_csv(tmp_path / "e" / GOOGLENEWS_CSV)
    with pytest.raises(ValueError, match="missing columns"):
        load_googlenews_finbert(tmp_path / "e")


# ---- the labelling draw ---------------------------------------------------------------------


def synthetic_news(seed: int = 0) -> pl.DataFrame:
    """Two sets: A with years 2020 (50 rows) and 2021 (7 rows), B with 2022 only (40 rows,
    5 without a title)."""
    rows = [("A", f"a20-{i:03d}", 2020, f"A 2020 {i}") for i in range(50)]
    rows += [("A", f"a21-{i:03d}", 2021, f"A 2021 {i}") for i in range(7)]
    rows += [("B", f"b22-{i:03d}", 2022, f"B {i}" if i >= 5 else None) for i in range(40)]
    df = pl.DataFrame(rows, schema=["dataset", "key", "year", "title"], orient="row")
    return df.with_columns(text=pl.col("title"), machine_label=pl.lit("neutral")).sample(
        fraction=1.0, shuffle=True, seed=seed
    )


def test_draw_is_stratified_by_set_and_year_and_seeded() -> None:
    draw = draw_headline_sample(synthetic_news(), n_per_dataset=7, seed=21)
    counts = dict(
        draw.group_by("dataset", "year")
        .len()
        .select(pl.concat_str("dataset", pl.col("year").cast(pl.String), separator="-"), "len")
        .iter_rows()
    )
    assert counts == {"A-2020": 4, "A-2021": 3, "B-2022": 7}  # remainder to the earliest year
    assert draw.columns == ["dataset", "key", "year", "title"]
    assert draw["title"].null_count() == 0  # rows without a headline are never drawn
    assert draw["key"].n_unique() == draw.height
    # the same data in another row order and the same seed: the same draw
    again = draw_headline_sample(synthetic_news(seed=5), n_per_dataset=7, seed=21)
    assert again.equals(draw)
    other = draw_headline_sample(synthetic_news(), n_per_dataset=7, seed=22)
    assert not other.equals(draw)
    with pytest.raises(ValueError, match="A 2021: 7 rows, cannot draw 10"):
        draw_headline_sample(synthetic_news(), n_per_dataset=20, seed=21)


# ---- hand labels and the join ---------------------------------------------------------------


def write_labels(path: Path, rows: list[tuple[str, str, str, str]]) -> Path:
    pl.DataFrame(rows, schema=["dataset", "url", "label", "note"], orient="row").write_csv(path)
    return path


def test_labels_join_their_headlines_in_order(data_root, tmp_path) -> None:
    labels = load_hand_labels(
        write_labels(
            tmp_path / "labels.csv",
            [
                (CRYPTONEWS, "https://c.test/b", "Negative", "hack"),
                (GOOGLENEWS, "https://g.test/1", "positive", ""),
            ],
        )
    )
    assert labels["label"].to_list() == ["negative", "positive"]
    joined = join_labels(labels, load_crypto_news(data_root))
    assert joined["url"].to_list() == ["https://c.test/b", "https://g.test/1"]
    assert joined["title"].to_list() == ["Protocol exploited", "Bitcoin soars to a record"]
    assert joined["machine_label"].to_list() == ["negative", "positive"]


def test_a_missing_key_is_a_clear_error(data_root, tmp_path) -> None:
    path = write_labels(
        tmp_path / "labels.csv",
        [
            (GOOGLENEWS, "https://g.test/1", "positive", ""),
            (GOOGLENEWS, "https://g.test/gone", "neutral", ""),
            (CRYPTONEWS, "https://c.test/c", "neutral", "no headline in the file"),
        ],
    )
    with pytest.raises(ValueError) as err:
        join_labels(load_hand_labels(path), load_crypto_news(data_root))
    msg = str(err.value)
    assert msg.startswith("2 of 3 labelled rows have no headline")
    assert "googlenews_finbert:https://g.test/gone" in msg and "cryptonews:https://c.test/c" in msg


@pytest.mark.parametrize(
    ("rows", "message"),
    [
        ([(GOOGLENEWS, "u1", "bullish", "")], "unknown labels"),
        ([("reddit", "u1", "positive", "")], "unknown datasets"),
        ([(GOOGLENEWS, "u1", "positive", ""), (GOOGLENEWS, "u1", "neutral", "")], "more than once"),
    ],
)
def test_bad_label_files_are_refused(tmp_path, rows, message) -> None:
    with pytest.raises(ValueError, match=message):
        load_hand_labels(write_labels(tmp_path / "labels.csv", rows))


def test_a_label_file_without_the_key_column_is_refused(tmp_path) -> None:
    pl.DataFrame({"dataset": [GOOGLENEWS], "label": ["neutral"]}).write_csv(tmp_path / "l.csv")
    with pytest.raises(ValueError, match=r"missing columns \['url', 'note'\]"):
        load_hand_labels(tmp_path / "l.csv")


# ---- agreement maths ------------------------------------------------------------------------


def test_per_class_agreement_by_hand() -> None:
    # true:  pos pos pos neu neu neg ; pred: pos neu pos neu pos neg
    y = ["positive", "positive", "positive", "neutral", "neutral", "negative"]
    p = ["positive", "neutral", "positive", "neutral", "positive", "negative"]
    m = classification_metrics(y, p)
    assert m["accuracy"] == pytest.approx(4 / 6)
    assert (m["precision_positive"], m["recall_positive"]) == (pytest.approx(2 / 3), 2 / 3)
    assert (m["precision_neutral"], m["recall_neutral"]) == (0.5, 0.5)
    assert (m["precision_negative"], m["recall_negative"]) == (1.0, 1.0)
    assert (m["support_positive"], m["support_neutral"], m["support_negative"]) == (3, 2, 1)
    assert m["macro_f1"] == pytest.approx((2 / 3 + 0.5 + 1.0) / 3)
    assert m["confusion"]["positive"] == {"negative": 0, "neutral": 1, "positive": 2}
    assert m["confusion"]["neutral"] == {"negative": 0, "neutral": 1, "positive": 1}


def test_bootstrap_interval_brackets_the_estimate_and_is_seeded() -> None:
    rng = np.random.default_rng(3)
    labels = ["negative", "neutral", "positive"]
    y = [labels[i] for i in rng.integers(0, 3, 120)]
    p = [t if rng.random() < 0.7 else labels[rng.integers(0, 3)] for t in y]
    ci = bootstrap_ci(y, p, n_boot=500, seed=1)
    m = classification_metrics(y, p)
    for key in ("accuracy", "macro_f1"):
        lo, hi = ci[key]
        assert lo < m[key] < hi and 0.05 < hi - lo < 0.4  # n = 120: several points wide
    assert bootstrap_ci(y, p, n_boot=500, seed=1) == ci
    assert bootstrap_ci(y, y, n_boot=50) == {"accuracy": [1.0, 1.0], "macro_f1": [1.0, 1.0]}
    with pytest.raises(ValueError, match="differ in length"):
        bootstrap_ci(y, p[:-1])


def test_confidence_ece_matches_the_probability_form() -> None:
    # two rows at 0.9 (one right), one at 0.4 (right): bins differ
    assert confidence_ece([0.9, 0.9, 0.4], [True, False, True]) == pytest.approx(
        2 / 3 * abs(0.5 - 0.9) + 1 / 3 * abs(1.0 - 0.4)
    )
    probs = np.array([[0.1, 0.2, 0.7], [0.5, 0.3, 0.2], [0.34, 0.33, 0.33]])
    y = [2, 1, 0]
    assert expected_calibration_error(probs, y) == pytest.approx(
        confidence_ece(probs.max(axis=1), probs.argmax(axis=1) == np.array(y))
    )
    with pytest.raises(ValueError, match="one correctness flag"):
        confidence_ece([0.5], [True, False])


# ---- the benchmark script -------------------------------------------------------------------


def bench_module() -> ModuleType:
    spec = importlib.util.spec_from_file_location(
        "sentiment_crypto_bench", REPO / "benchmarks" / "sentiment_crypto.py"
    )
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_benchmark_reports_machine_agreement_and_the_hand_sample(
    data_root, tmp_path, tiny_model_dir, capsys
) -> None:
    labels = write_labels(
        tmp_path / "labels.csv",
        [
            (GOOGLENEWS, "https://g.test/1", "positive", ""),
            (GOOGLENEWS, "https://g.test/2", "negative", ""),
            (GOOGLENEWS, "https://g.test/3", "neutral", ""),
            (CRYPTONEWS, "https://c.test/a", "positive", ""),
            (CRYPTONEWS, "https://c.test/b", "negative", ""),
        ],
    )
    out = tmp_path / "report.json"
    args = ["--data", str(data_root), "--labels", str(labels), "--bootstrap", "50"]
    rc = bench_module().main([*args, "--model-dir", str(tiny_model_dir), "--out", str(out)])
    assert rc == 0
    report = json.loads(out.read_text())
    captured = capsys.readouterr()
    assert json.loads(captured.out) == report
    assert "NOT accuracy" in captured.err and "Hand-labelled headlines (n=5" in captured.err
    assert "not accuracy" in report["note"]
    google = report["machine_agreement"][GOOGLENEWS]
    assert (google["labeller"], google["scored_field"], google["n"]) == ("finbert", "title", 3)
    crypto = report["machine_agreement"][CRYPTONEWS]
    assert (crypto["labeller"], crypto["scored_field"], crypto["n"]) == ("textblob", "text", 3)
    vader = google["models"]["vader"]
    assert {
        "accuracy",
        "macro_f1",
        "precision_positive",
        "recall_negative",
        "support_neutral",
        "confusion",
    } <= set(vader)
    assert set(crypto["models"]) == {"vader", "transformer"}
    hs = report["hand_sample"]
    assert hs["n"] == 5 and hs["by_dataset_n"] == {CRYPTONEWS: 2, GOOGLENEWS: 3}
    assert hs["models"]["vader"]["confidence"] is None  # VADER has no probability
    conf = hs["models"]["transformer"]["confidence"]
    assert 1 / 3 <= conf["mean_confidence"] <= 1 and 0 <= conf["ece_15_bins"] <= 1
    lo, hi = hs["models"]["vader"]["ci95"]["accuracy"]
    assert lo <= hs["models"]["vader"]["accuracy"] <= hi
    machine = hs["machine_labels_vs_hand"]
    assert machine["finbert_on_googlenews_finbert"]["accuracy"] == 1.0  # synthetic: they agree
    assert machine["textblob_on_cryptonews"]["labelled_field"] == "lede (text column)"


def test_benchmark_without_data_says_where_it_looked(tmp_path, capsys) -> None:
    assert bench_module().main(["--data", str(tmp_path / "absent")]) == 2
    assert "needs ../shared/data" in capsys.readouterr().err


# ---- real data (../shared/data) -------------------------------------------------------------


def test_committed_labels_are_the_documented_draw_and_join_the_shared_files() -> None:
    root = shared_data()
    for folder in (GOOGLENEWS_DIR, CRYPTONEWS_DIR):
        shared_data(folder)
    news = load_crypto_news(root)
    labels = load_hand_labels(LABELS_CSV)
    draw = draw_headline_sample(news, n_per_dataset=60, seed=21)
    assert labels.select("dataset", "url").rows() == draw.select("dataset", "key").rows()
    joined = join_labels(labels, news)
    assert joined.height == 120 and joined["title"].null_count() == 0
    assert set(labels.columns) == {"dataset", "url", "label", "note"}  # keys and labels only
