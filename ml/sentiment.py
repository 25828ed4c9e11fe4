"""Sentiment models behind one small interface.

Every model (VADER now, a transformer classifier next) answers the same question: for each
text, a label in ``positive | neutral | negative`` and a signed score in ``[-1, 1]``. The
``name``/``version`` pair is written next to every score (``ml.news_sentiment``) so scores of
different models or versions never get mixed up, and so a model swap is visible in the data.

Missing text (``None``) and blank strings are valid input and score ``neutral, 0.0``: news items
often have an empty summary, and a scorer that raises on them would drop the whole batch.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from importlib.metadata import PackageNotFoundError, version
from typing import Protocol, runtime_checkable

LABELS: tuple[str, ...] = ("negative", "neutral", "positive")


@dataclass(frozen=True)
class SentimentPrediction:
    """One text's sentiment: ``label`` in :data:`LABELS`, ``score`` signed in ``[-1, 1]``;
    ``confidence`` = the (calibrated) probability of ``label`` for a probabilistic model,
    ``None`` for VADER (its compound score is not a probability)."""

    label: str
    score: float
    confidence: float | None = None


@runtime_checkable
class SentimentModel(Protocol):
    """What the sentiment assets need from a model.

    ``predict`` must return exactly one prediction per input, in input order, and accept
    ``None``/empty strings. ``batch_size`` bounds memory for models that batch (transformers);
    models that score text by text may ignore it.
    """

    name: str
    version: str

    def predict(
        self, texts: Sequence[str | None], batch_size: int = 64
    ) -> list[SentimentPrediction]: ...


def batches(items: Sequence[str | None], batch_size: int) -> Iterator[Sequence[str | None]]:
    """Consecutive slices of at most ``batch_size`` items."""
    if batch_size < 1:
        raise ValueError("batch_size must be >= 1")
    for i in range(0, len(items), batch_size):
        yield items[i : i + batch_size]


def _package_version(dist: str) -> str:
    try:
        return version(dist)
    except PackageNotFoundError:
        return "unknown"


class VaderModel:
    """VADER (rule-based lexicon; Hutto & Gilbert 2014): the no-training baseline.

    Label thresholds are VADER's own recommendation: compound ``>= 0.05`` positive,
    ``<= -0.05`` negative, else neutral. The score is the compound value, already in
    ``[-1, 1]``. Fast (~1,000 sentences in 0.05 s), deterministic, no model files.
    """

    name = "vader"

    def __init__(self, pos_threshold: float = 0.05, neg_threshold: float = -0.05) -> None:
        from vaderSentiment.vaderSentiment import SentimentIntensityAnalyzer

        self._analyzer = SentimentIntensityAnalyzer()
        self.pos_threshold = pos_threshold
        self.neg_threshold = neg_threshold
        self.version = f"vaderSentiment-{_package_version('vaderSentiment')}"

    def label_for(self, compound: float) -> str:
        if compound >= self.pos_threshold:
            return "positive"
        if compound <= self.neg_threshold:
            return "negative"
        return "neutral"

    def predict(
        self, texts: Sequence[str | None], batch_size: int = 256
    ) -> list[SentimentPrediction]:
        """Score ``texts`` (one prediction per item, in order)."""
        out: list[SentimentPrediction] = []
        for chunk in batches(list(texts), batch_size):
            for text in chunk:
                if text is None or not str(text).strip():
                    out.append(SentimentPrediction("neutral", 0.0))
                    continue
                compound = float(self._analyzer.polarity_scores(str(text))["compound"])
                compound = max(-1.0, min(1.0, compound))
                out.append(SentimentPrediction(self.label_for(compound), compound))
        return out
