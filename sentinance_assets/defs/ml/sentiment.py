"""News sentiment: score news with the serving model, watch score and text drift.

Which model scores the news (:func:`serving_model`), in order:

1. ``SENTINANCE_SENTIMENT_MODEL`` when set: a transformer loaded from that Hugging Face id
   (``ProsusAI/finbert``, needs the hub or its cache) or local folder. A configured model that
   cannot load fails the asset: silently falling back would mislabel the data.
2. the registered ``champion`` of ``sentinance-sentiment`` (trained by the
   ``ml/sentiment_classifier`` asset or ``sentinance sentiment train``);
3. VADER, which needs no training: the default of a fresh home and of ``sentinance demo``,
   which therefore never fine-tunes anything.

Only items not yet scored by the current ``model`` + ``model_version`` are scored, so a newly
promoted champion re-scores the history once, and the mart's "latest scoring wins" rule picks
its scores up.

Every row stores ``confidence``: for a transformer, the calibrated probability of its label
(``softmax(logits / T)`` with the temperature fitted at training time, the same number
``POST /v1/sentiment`` returns); for VADER ``null``, because its compound score is a lexicon
sum squashed into ``[-1, 1]``, not a probability, and no probability is made up for it. Rows
scored before the column existed read as ``null`` too.
"""

from datetime import UTC, datetime, timedelta

import dagster as dg
import polars as pl

from ml.drift import DriftResult, data_drift
from ml.errors import InsufficientDataError
from ml.sentiment import SentimentModel, VaderModel
from ml.tracking import MlflowStore
from sentinance_assets.defs import skips
from sentinance_assets.defs.ml import drift
from sentinance_assets.lib import lake
from sentinance_assets.lib.schemas import NEWS_SENTIMENT, RAW_NEWS
from sentinance_assets.settings import Settings

NEWS_SENTIMENT_KEY = dg.AssetKey(["ml", "news_sentiment"])
SENTIMENT_DRIFT_KEY = dg.AssetKey(["ml", "sentiment_drift"])
DRIFT_CHECK = "sentiment_drift_below_limit"
DRIFT_COLUMNS = ("score", "text_chars", "text_words", "label")
CURRENT_WINDOW = timedelta(days=1)
SCORES_PART = "scores"  # ml.news_sentiment is one file, rewritten with each new score


def serving_model(settings: Settings, store: MlflowStore) -> SentimentModel:
    """The configured transformer, else the registered champion, else VADER."""
    if settings.sentiment_model:
        from ml.sentiment_transformer import load_transformer

        return load_transformer(settings.sentiment_model, threads=2)
    from ml.sentiment_lifecycle import load_champion

    champion = load_champion(store, settings.models_dir)
    return champion if champion is not None else VaderModel()


def news_texts(news: pl.DataFrame) -> list[str]:
    """What is scored per item: ``title. summary`` (either may be missing)."""
    text = pl.concat_str(
        [pl.col("title").fill_null(""), pl.col("summary").fill_null("")], separator=". "
    ).str.strip_chars(". ")
    return news.select(text.alias("text"))["text"].to_list()


def score_news(settings: Settings, model: SentimentModel) -> dict:
    """Score the news ``model`` has not scored yet; write ``ml.news_sentiment``."""
    # one scorer at a time: a second run waits, then finds the news scored (no lost update)
    with lake.locked(lake.partition_path(settings.lake_dir, NEWS_SENTIMENT, None, SCORES_PART)):
        news = lake.read_dataset(settings.lake_dir, RAW_NEWS).unique("news_id", keep="last")
        scored = lake.read_dataset(settings.lake_dir, NEWS_SENTIMENT)
        done = scored.filter(
            (pl.col("model") == model.name) & (pl.col("model_version") == model.version)
        ).select("news_id")
        todo = news.join(done, on="news_id", how="anti")
        preds = model.predict(news_texts(todo))
        new = pl.DataFrame(
            {
                "news_id": todo["news_id"],
                "model": model.name,
                "model_version": model.version,
                "label": [p.label for p in preds],
                "score": [p.score for p in preds],
                # calibrated probability of the label; None (null) for VADER and blank text
                "confidence": [p.confidence for p in preds],
                "scored_at": datetime.now(UTC),
            },
            schema_overrides={"label": pl.String, "score": pl.Float64, "confidence": pl.Float64},
        )
        merged = pl.concat([scored, NEWS_SENTIMENT.conform(new)]).unique(
            ["news_id", "model", "model_version"], keep="first"
        )
        lake.write_partition(settings.lake_dir, NEWS_SENTIMENT, merged, part=SCORES_PART)
    return {"newly_scored": todo.height, "total": merged.height}


@dg.asset(
    key=NEWS_SENTIMENT_KEY,
    group_name="ml",
    deps=[dg.AssetKey(["raw", "news"])],
    kinds={"python", "parquet"},
    description="A sentiment label, signed score and calibrated confidence (probability of the "
    "label; null for VADER, whose score is not a probability) per news item, with the model "
    "version that produced it. Scores only what the current model has not scored yet. Model: "
    "SENTINANCE_SENTIMENT_MODEL if set, else the registered sentiment champion, else VADER.",
)
def news_sentiment(
    context: dg.AssetExecutionContext,
    settings: dg.ResourceParam[Settings],
    mlflow_store: dg.ResourceParam[MlflowStore],
) -> dg.MaterializeResult:
    model = serving_model(settings, mlflow_store)
    counts = score_news(settings, model)
    context.log.info(
        f"{model.name}:{model.version} scored {counts['newly_scored']} new items; "
        f"{counts['total']} scores stored"
    )
    return dg.MaterializeResult(metadata={**counts, "model": f"{model.name}:{model.version}"})


def drift_frames(settings: Settings) -> tuple[pl.DataFrame, pl.DataFrame, str]:
    """Reference and current samples of the latest model's scores and text statistics.

    The model is the one that scored most recently; current = its items published within
    :data:`CURRENT_WINDOW` of the newest item, reference = everything it scored before.
    """
    scores = lake.read_dataset(settings.lake_dir, NEWS_SENTIMENT)
    if scores.is_empty():
        raise InsufficientDataError(
            "no sentiment scores yet", needs=drift.NEEDS, has="0 scored news items"
        )
    last = scores.sort("scored_at").row(-1, named=True)
    model = f"{last['model']}:{last['model_version']}"
    scores = scores.filter(
        (pl.col("model") == last["model"]) & (pl.col("model_version") == last["model_version"])
    )
    news = lake.read_dataset(settings.lake_dir, RAW_NEWS).unique("news_id", keep="last")
    news = news.with_columns(pl.Series("text", news_texts(news), dtype=pl.String))
    rows = scores.join(news.select("news_id", "published", "text"), on="news_id").with_columns(
        pl.col("text").str.len_chars().cast(pl.Float64).alias("text_chars"),
        pl.col("text").str.split(" ").list.len().cast(pl.Float64).alias("text_words"),
    )
    rows = rows.filter(pl.col("published").is_not_null())
    if rows.is_empty():
        raise InsufficientDataError(
            "no scored news with a publication time",
            needs=drift.NEEDS,
            has="0 scored items with a publication time",
        )
    cut = rows["published"].max() - CURRENT_WINDOW
    cols = list(DRIFT_COLUMNS)
    reference = rows.filter(pl.col("published") <= cut).select(cols)
    current = rows.filter(pl.col("published") > cut).select(cols)
    return reference, current, model


def measure_drift(settings: Settings, drift_share: float) -> tuple[str, DriftResult]:
    """Drift of the latest model's scores, labels and text statistics (:func:`drift_frames`);
    the subject names the model, as ``sentiment/<model>:<version>``."""
    reference, current, model = drift_frames(settings)
    result = data_drift(reference, current, columns=list(DRIFT_COLUMNS), drift_share=drift_share)
    return f"sentiment/{model}", result


@dg.asset(
    key=SENTIMENT_DRIFT_KEY,
    group_name="ml",
    deps=[NEWS_SENTIMENT_KEY],
    kinds={"evidently"},
    check_specs=[
        skips.enough_input_spec(SENTIMENT_DRIFT_KEY, f"scored news; {drift.NEEDS}"),
        drift.check_spec(
            DRIFT_CHECK, SENTIMENT_DRIFT_KEY, "sentiment columns (score, label, text length)"
        ),
    ],
    description="evidently drift of the news sentiment scores, labels and input text statistics "
    "(characters, words): the last day of news against the earlier days, for the model that "
    "scored last. Skips with the reason while either side has too few items.",
)
def sentiment_drift(
    context: dg.AssetExecutionContext, settings: dg.ResourceParam[Settings]
) -> dg.MaterializeResult:
    limit = settings.drift_share
    check = drift.measure(DRIFT_CHECK, limit, lambda: measure_drift(settings, limit))
    metadata: dict[str, object] = {"drift_share_limit": limit}
    if check.subject is not None:
        metadata["model"] = check.subject
    return drift.report(context, settings.lake_dir, {"": check}, metadata, part_prefix="sentiment-")
