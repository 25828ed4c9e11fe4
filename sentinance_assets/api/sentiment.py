"""Sentiment for ``POST /v1/sentiment``: the serving model and VADER, side by side.

The serving model is chosen as the news scorer chooses it (``defs/ml/sentiment.serving_model``,
not imported here because it pulls in Dagster): ``SENTINANCE_SENTIMENT_MODEL`` when set, else
the registry's champion, else VADER. Loading a transformer takes seconds, so it happens once, on
first use, and again only when the registry's champion changes (checked at most every
:data:`RECHECK_S` seconds, from the SQLite store opened read-only). Scoring holds a lock: two
cores are better spent on one batch at a time than on two half-speed ones.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Sequence
from typing import Any

from ml.sentiment import SentimentModel, VaderModel
from ml.sentiment_lifecycle import REGISTERED_NAME
from sentinance_assets.lib import registry
from sentinance_assets.settings import Settings

log = logging.getLogger("sentinance.api")
RECHECK_S = 60.0


class ModelUnavailable(RuntimeError):
    """The serving model could not be loaded (503; the message is safe to show)."""


class SentimentService:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.vader = VaderModel()
        self._lock = threading.Lock()
        self._model: SentimentModel | None = None
        self._source = "baseline"
        self._key: str | None = None
        self._checked = 0.0

    def _wanted(self) -> tuple[str, str]:
        """(source, key) of the model that should serve now."""
        if self.settings.sentiment_model:
            return "configured", self.settings.sentiment_model
        version = registry.serving(self.settings.mlflow_db, REGISTERED_NAME)
        return ("champion", version) if version else ("baseline", "vader")

    def _load(self, source: str) -> SentimentModel:
        if source == "configured":
            from ml.sentiment_transformer import load_transformer

            return load_transformer(str(self.settings.sentiment_model), threads=2)
        if source == "champion":
            from ml.sentiment_lifecycle import load_champion
            from ml.tracking import MlflowStore

            store = MlflowStore(self.settings.mlflow_db, self.settings.mlflow_artifacts)
            model = load_champion(store, self.settings.models_dir)
            return model if model is not None else self.vader
        return self.vader

    def serving(self) -> tuple[SentimentModel, str]:
        """The serving model and where it comes from (configured | champion | baseline)."""
        now = time.monotonic()
        if self._model is not None and now - self._checked < RECHECK_S:
            return self._model, self._source
        source, key = self._wanted()
        if self._model is None or key != self._key:
            try:
                model = self._load(source)
            except Exception as exc:  # noqa: BLE001 - any load failure: say so, keep serving
                log.warning("sentiment model %s could not be loaded: %s", key, exc)
                if self._model is None:
                    raise ModelUnavailable(
                        "the sentiment model could not be loaded; see the API log"
                    ) from exc
                return self._model, self._source
            self._model, self._source, self._key = model, source, key
        self._checked = now
        return self._model, self._source

    def describe(self) -> dict[str, str]:
        """The serving model as ``{name, version, source}`` (loads it if needed)."""
        with self._lock:
            model, source = self.serving()
        return {"name": model.name, "version": model.version, "source": source}

    def score(self, texts: Sequence[str]) -> dict[str, Any]:
        with self._lock:
            model, source = self.serving()
            preds = model.predict(list(texts))
            base = preds if model is self.vader else self.vader.predict(list(texts))
        return {
            "model": {"name": model.name, "version": model.version, "source": source},
            "baseline": {
                "name": self.vader.name,
                "version": self.vader.version,
                "source": "baseline",
            },
            "results": [
                {
                    "index": i,
                    "label": p.label,
                    "score": max(-1.0, min(1.0, float(p.score))),
                    "confidence": _confidence(p),
                    "baseline_label": b.label,
                    "baseline_score": max(-1.0, min(1.0, float(b.score))),
                }
                for i, (p, b) in enumerate(zip(preds, base, strict=True))
            ],
        }


def _confidence(pred: Any) -> float | None:
    """The calibrated probability of the predicted label (``None``: VADER, blank text)."""
    conf = getattr(pred, "confidence", None)
    return None if conf is None else max(0.0, min(1.0, float(conf)))
