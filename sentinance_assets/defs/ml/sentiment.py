"""News sentiment scoring: only items not yet scored by the current model are scored."""

from datetime import UTC, datetime

import dagster as dg
import polars as pl
from ml.sentiment import VaderModel

from sentinance_assets.lib import lake
from sentinance_assets.lib.schemas import NEWS_SENTIMENT, RAW_NEWS
from sentinance_assets.settings import Settings


@dg.asset(
    key=["ml", "news_sentiment"],
    group_name="ml",
    deps=[dg.AssetKey(["raw", "news"])],
    kinds={"python", "parquet"},
    description="A sentiment label and signed score per news item, with the model version that "
    "produced it. Scores only what the current model has not scored yet.",
)
def news_sentiment(
    context: dg.AssetExecutionContext, settings: dg.ResourceParam[Settings]
) -> dg.MaterializeResult:
    model = VaderModel()
    news = lake.read_dataset(settings.lake_dir, RAW_NEWS).unique("news_id", keep="last")
    scored = lake.read_dataset(settings.lake_dir, NEWS_SENTIMENT)
    done = scored.filter(
        (pl.col("model") == model.name) & (pl.col("model_version") == model.version)
    ).select("news_id")
    todo = news.join(done, on="news_id", how="anti")
    texts = (todo["title"].fill_null("") + ". " + todo["summary"].fill_null("")).to_list()
    preds = model.predict(texts)
    new = pl.DataFrame(
        {
            "news_id": todo["news_id"],
            "model": model.name,
            "model_version": model.version,
            "label": [p.label for p in preds],
            "score": [p.score for p in preds],
            "scored_at": datetime.now(UTC),
        }
    )
    merged = pl.concat([scored, NEWS_SENTIMENT.conform(new)]).unique(
        ["news_id", "model", "model_version"], keep="first"
    )
    lake.write_partition(settings.lake_dir, NEWS_SENTIMENT, merged, part="scores")
    context.log.info(f"scored {todo.height} new items; {merged.height} scores stored")
    return dg.MaterializeResult(
        metadata={
            "newly_scored": todo.height,
            "total": merged.height,
            "model": f"{model.name}:{model.version}",
        }
    )
