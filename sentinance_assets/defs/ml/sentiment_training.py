"""Sentiment training: fine-tune, evaluate against VADER, register, promote (on demand, weekly).

The asset reads the labelled sentences named by ``SENTINANCE_SENTIMENT_DATA`` (a CSV with
``text,label`` or the Financial PhraseBank folder). Without that setting it does not
materialize (its ``enough_input`` check warns why), which keeps ``sentinance demo`` fast: nothing
is fine-tuned unless labelled data was configured. With fewer than
:data:`ml.sentiment_eval.MIN_PER_LABEL` sentences for a label it skips with the reason
(:mod:`sentinance_assets.defs.skips`). ``ml/news_sentiment`` has no data dependency on it on
purpose: scoring must not be skipped when training is, and it picks up a new champion on its
next run.

Materialize it from the UI, with ``dagster asset materialize --select ml/sentiment_classifier``,
or let ``sentiment_weekly_schedule`` (stopped by default; Sundays 03:00 UTC) run
``sentiment_training_job``. A full PhraseBank fine-tune takes minutes on 2 CPU cores.
"""

import json

import dagster as dg
import polars as pl

from ml.sentiment_eval import MIN_PER_LABEL
from ml.tracking import MlflowStore
from sentinance_assets.defs import skips
from sentinance_assets.settings import Settings

SENTIMENT_CLASSIFIER_KEY = dg.AssetKey(["ml", "sentiment_classifier"])
NO_DATA = "SENTINANCE_SENTIMENT_DATA is not set: no labelled data, nothing trained"


@dg.asset(
    key=SENTIMENT_CLASSIFIER_KEY,
    group_name="ml",
    kinds={"pytorch", "mlflow"},
    output_required=False,
    check_specs=[
        skips.enough_input_spec(
            SENTIMENT_CLASSIFIER_KEY, f"{MIN_PER_LABEL} labelled sentences per label"
        )
    ],
    description="Transformer sentiment classifier (packaged MiniLM fine-tuned on the labelled "
    "sentences of SENTINANCE_SENTIMENT_DATA), evaluated with VADER on the same held-out split "
    "(accuracy, macro-F1, per class, McNemar), logged and registered in MLflow, promoted to "
    "`champion` only when its held-out macro-F1 beats the champion's on the same rows. Does "
    "not materialize when no labelled data is configured; skips with the reason when a label "
    "has too few sentences.",
)
def sentiment_classifier(
    context: dg.AssetExecutionContext,
    settings: dg.ResourceParam[Settings],
    mlflow_store: dg.ResourceParam[MlflowStore],
):
    if settings.sentiment_data is None:
        context.log.info(NO_DATA)
        yield from skips.skipped_checks(SENTIMENT_CLASSIFIER_KEY, NO_DATA)
        return
    from ml.sentiment_eval import load_labelled

    data = load_labelled(settings.sentiment_data)
    yield skips.skip_on_thin(
        SENTIMENT_CLASSIFIER_KEY,
        lambda: _train(context, settings, mlflow_store, data),
        labelled_rows=data.height,
    )


def _train(
    context: dg.AssetExecutionContext,
    settings: Settings,
    mlflow_store: MlflowStore,
    data: pl.DataFrame,
) -> dg.MaterializeResult:
    from ml.sentiment_lifecycle import train_and_register
    from ml.sentiment_transformer import TrainConfig

    summary = train_and_register(
        data,
        mlflow_store,
        settings.models_dir,
        config=TrainConfig(seed=settings.seed),
        log=context.log.info,
    )
    models = summary["models"]
    return dg.MaterializeResult(
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
        },
        check_results=[skips.enough_input(SENTIMENT_CLASSIFIER_KEY, labelled_rows=data.height)],
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
