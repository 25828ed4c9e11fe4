"""Market-event detection, plain Python (no Dagster): one engine for batch and live.

* :mod:`.rules` - the detector configuration and every rule (whale, volume spike, divergence,
  pump-and-dump, wash trading) as polars functions;
* :mod:`.engine` - :class:`~.engine.StreamingDetector`, the rules' state across micro-batches,
  and :func:`~.engine.detect_all` for batch;
* :mod:`.quality` - precision/recall/delay of alerts against a ground truth of events;
* :mod:`.watch` - the near-real-time watch loop (feeds, checkpoints, sinks);
* :mod:`.sinks` - where alerts go (lake files, JSON lines, webhook).
"""
