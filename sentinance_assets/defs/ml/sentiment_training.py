"""Sentiment training: fine-tune, evaluate against VADER, register, promote (on demand, weekly).

The asset reads the labelled sentences named by ``SENTINANCE_SENTIMENT_DATA`` (a CSV with
``text,label`` or the Financial PhraseBank folder). Without that setting it skips (no
materialization), which keeps ``sentinance demo`` fast: nothing is fine-tuned unless labelled
data was configured. ``ml/news_sentiment`` has no data dependency on it on purpose: scoring
must not be skipped when training is, and it picks up a new champion on its next run.

Materialize it from the UI, with ``dagster asset materialize --select ml/sentiment_classifier``,
or let ``sentiment_weekly_schedule`` (stopped by default; Sundays 03:00 UTC) run
``sentiment_training_job``. A full PhraseBank fine-tune takes minutes on 2 CPU cores.
"""

import json

import dagster as dg

from ml.tracking import MlflowStore
from sentinance_assets.settings import Settings

SENTIMENT_CLASSIFIER_KEY = dg.AssetKey(["ml", "sentiment_classifier"])


@dg.asset(
    key=SENTIMENT_CLASSIFIER_KEY,
    group_name="ml",
    kinds={"pytorch", "mlflow"},
    output_required=False,
    description="Transformer sentiment classifier (packaged MiniLM fine-tuned on the labelled "
    "sentences of SENTINANCE_SENTIMENT_DATA), evaluated with VADER on the same held-out split "
    "(accuracy, macro-F1, per class, McNemar), logged and registered in MLflow, promoted to "
    "`champion` only when its held-out macro-F1 beats the champion's on the same rows. Skips "
    "when no labelled data is configured.",
)
def sentiment_classifier(
    context: dg.AssetExecutionContext,
    settings: dg.ResourceParam[Settings],
    mlflow_store: dg.ResourceParam[MlflowStore],
):
    if settings.sentiment_data is None:
        context.log.info("SENTINANCE_SENTIMENT_DATA is not set: no labelled data, nothing trained")
        return
    from ml.sentiment_eval import load_labelled
    from ml.sentiment_lifecycle import train_and_register
    from ml.sentiment_transformer import TrainConfig

    data = load_labelled(settings.sentiment_data)
    summary = train_and_register(
        data,
        mlflow_store,
        settings.models_dir,
        config=TrainConfig(seed=settings.seed),
        log=context.log.info,
    )
    models = summary["models"]
    yield dg.MaterializeResult(
        metadata={
            "registered_version": summary["registered_version"],
            "model_version": summary["model_version"],
            "promoted": summary["promoted"],
            "decision": summary["decision"],
            "mlflow_run_id": summary["run_id"],
            "train_seconds": round(summary["train_seconds"], 1),
            "int8": summary["quantize"],
            "test_rows": summary["n"],
            "test_accuracy": models["transformer"]["accuracy"],
            "test_macro_f1": models["transformer"]["macro_f1"],
            "vader_test_accuracy": models["vader"]["accuracy"],
            "vader_test_macro_f1": models["vader"]["macro_f1"],
            "mcnemar": dg.MetadataValue.json(json.loads(json.dumps(summary["mcnemar"]))),
        }
    )


sentiment_training_job = dg.define_asset_job(
    "sentiment_training_job",
    selection=dg.AssetSelection.assets(SENTIMENT_CLASSIFIER_KEY),
    description="Fine-tune, evaluate and register the transformer sentiment classifier.",
)

sentiment_weekly_schedule = dg.ScheduleDefinition(
    name="sentiment_weekly_schedule",
    job=sentiment_training_job,
    cron_schedule="0 3 * * 0",
    execution_timezone="UTC",
    default_status=dg.DefaultScheduleStatus.STOPPED,
)
