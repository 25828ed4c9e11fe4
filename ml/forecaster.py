"""Multi-horizon LSTM forecaster of forward log returns, with a seed ensemble.

Shape of the problem: for every bar ``t`` of every symbol, the model sees the last ``lookback``
feature rows (``t-lookback+1 .. t``, from :func:`ml.features.build_features`) and predicts the
forward log return over each horizon (``target_1h``, ``target_4h``, ``target_24h``) and, with
``vol_targets`` (the default), the forward realized volatility over each horizon
(``rv_target_<h>``), with one output per (target, horizon), so the horizons and both targets
share a representation and one model serves all symbols. The volatility heads are trained on
``ln(rv)`` (floored at :data:`VOL_FLOOR`) with MSE, so they estimate the conditional mean ``m``
of ``ln(rv)``; ``exp(m)`` would be the conditional *median* of ``rv`` and under-predict the
variance (QLIKE punishes that hard). The model predicts ``exp(m + c)``, the volatility whose
square is the expected realized variance (the QLIKE-optimal forecast), with
``c = ln(mean(exp(2 e))) / 2`` over the ensemble's residuals ``e`` of ``ln(rv)`` on the
validation window (never on test data): Duan's (1983) smearing estimate, which needs no
assumption on the shape of ``e``. (With log-normal errors of variance ``s2`` it is ``s2``; but
one hour's ``ln(rv)`` is the log of a squared return, a left-skewed log chi-square, for which
``exp(m + s2)`` overstates the variance several-fold, as :mod:`ml.har` notes for the same
reason.)

Leakage rules (the forecaster is only as good as its evaluation):

* training rows are rows with ``ts <= train_end_ts`` whose targets are known; the feature and
  target scalers are fitted on training rows only;
* early stopping uses the last ``val_fraction`` of the training window, and the fit rows end
  ``max horizon`` bars before the first validation row, so no return is in both a fit target
  and a validation target (see :func:`ml.evaluation.holdout_rows` for the same rule on the test
  side);
* a lookback window never spans a gap in ``ts`` (windows stay inside runs of consecutive bars).

Reproducibility: every seed sets ``torch``/``numpy``/``random`` seeds and a dedicated shuffling
generator, deterministic algorithms are switched on and the thread count is pinned for the
duration of training (and restored afterwards, since both are process-wide settings). Same
data + same config -> bitwise-identical predictions on the same machine.

Persistence is plain data: ``forecaster.json`` (config, feature list, scalers, training info)
and one ``seed_<s>.safetensors`` per ensemble member; no pickled classes. For MLflow, the model
is logged with "models from code" (a tiny generated script that builds the pyfunc wrapper), so
nothing is cloudpickled either.
"""

from __future__ import annotations

import copy
import json
import math
import random
import tempfile
import time
import warnings
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta
from functools import cache
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import polars as pl
import torch
from safetensors.torch import load_file, save_file
from torch import nn

from ml.errors import InsufficientDataError
from ml.features import HORIZONS, target_col, vol_target_col
from ml.tracking import MlflowStore

FORMAT_VERSION = 2
MODEL_FILE = "forecaster.json"
#: Realized volatilities below this are floored before taking logs (a flat bar has rv 0).
VOL_FLOOR = 1e-6


def pred_col(label: str) -> str:
    """Prediction column for horizon ``label`` in :meth:`TrainedForecaster.predict` output."""
    return f"pred_{label}"


def pred_vol_col(label: str) -> str:
    """Predicted realized volatility for horizon ``label`` (``pred_rv_<h>``)."""
    return f"pred_rv_{label}"


@dataclass
class ForecasterConfig:
    """Hyper-parameters; everything that changes the trained weights lives here.

    ``num_threads`` is part of the config because float reductions (and hence the weights)
    can differ with the thread count; one thread is also the fastest for a model this small.
    """

    lookback: int = 48
    hidden: int = 32
    epochs: int = 40
    lr: float = 3e-3
    batch_size: int = 64
    patience: int = 5
    seeds: tuple[int, ...] = (0, 1, 2)
    horizons: dict[str, int] = field(default_factory=lambda: dict(HORIZONS))
    val_fraction: float = 0.15
    weight_decay: float = 0.0
    grad_clip: float = 1.0
    num_threads: int = 1
    bar_seconds: int = 3600
    vol_targets: bool = True
    #: windows per epoch: a fresh seeded sample of the fit windows when there are more (long
    #: histories, see :func:`ml.forecast_lifecycle.config_for`); ``None``: all of them
    epoch_windows: int | None = None

    def __post_init__(self) -> None:
        self.seeds = tuple(int(s) for s in self.seeds)
        self.horizons = {str(k): int(v) for k, v in self.horizons.items()}
        if self.lookback < 1 or self.hidden < 1 or self.epochs < 1 or not self.seeds:
            raise ValueError(f"invalid forecaster config: {self}")
        if not 0.0 < self.val_fraction < 1.0:
            raise ValueError("val_fraction must be in (0, 1)")
        if not self.horizons or min(self.horizons.values()) < 1:
            raise ValueError("horizons must map labels to positive bar counts")
        if self.epoch_windows is not None and self.epoch_windows < 1:
            raise ValueError("epoch_windows must be >= 1 (or None: every window)")

    @property
    def bar(self) -> timedelta:
        return timedelta(seconds=self.bar_seconds)

    @property
    def max_horizon(self) -> int:
        return max(self.horizons.values())

    def target_cols(self) -> list[str]:
        """Training targets in output order: returns per horizon, then volatilities."""
        cols = [target_col(h) for h in self.horizons]
        if self.vol_targets:
            cols += [vol_target_col(h) for h in self.horizons]
        return cols

    def output_cols(self) -> list[str]:
        """Prediction columns in output order (see :meth:`target_cols`)."""
        cols = [pred_col(h) for h in self.horizons]
        if self.vol_targets:
            cols += [pred_vol_col(h) for h in self.horizons]
        return cols

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["seeds"] = list(self.seeds)
        return d

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> ForecasterConfig:
        known = {k: v for k, v in d.items() if k in cls.__dataclass_fields__}
        return cls(**known)


class LSTMNet(nn.Module):
    """One-layer LSTM over the window; a linear head on the last hidden state, one output per
    horizon."""

    def __init__(self, n_features: int, hidden: int, n_outputs: int) -> None:
        super().__init__()
        self.lstm = nn.LSTM(n_features, hidden, num_layers=1, batch_first=True)
        self.head = nn.Linear(hidden, n_outputs)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out, _ = self.lstm(x)
        return self.head(out[:, -1, :])


@contextmanager
def _torch_settings(num_threads: int) -> Iterator[None]:
    """Pin threads and deterministic algorithms for the block, then restore both."""
    prev_threads = torch.get_num_threads()
    prev_det = torch.are_deterministic_algorithms_enabled()
    prev_warn = torch.is_deterministic_algorithms_warn_only_enabled()
    torch.set_num_threads(max(1, num_threads))
    torch.use_deterministic_algorithms(True, warn_only=True)
    try:
        yield
    finally:
        torch.set_num_threads(prev_threads)
        torch.use_deterministic_algorithms(prev_det, warn_only=prev_warn)


def _seed_everything(seed: int) -> None:
    torch.manual_seed(seed)
    np.random.seed(seed % 2**32)
    random.seed(seed)


def _windows(
    frame: pl.DataFrame, feature_cols: Sequence[str], lookback: int, bar: timedelta
) -> tuple[pl.DataFrame, np.ndarray, np.ndarray]:
    """Index the rows that close a full, gap-free lookback window.

    Returns ``(sorted_frame, features, end_idx)``: the frame sorted by ``symbol, ts``, its
    feature matrix ``(n_rows, n_features)`` and the positions of rows with ``lookback``
    consecutive bars (same symbol, no gap) ending at them. The window of ``end_idx[i]`` is
    ``features[end_idx[i] - lookback + 1 : end_idx[i] + 1]``.
    """
    missing = [c for c in ("symbol", "ts", *feature_cols) if c not in frame.columns]
    if missing:
        raise ValueError(f"frame lacks columns {missing}")
    df = frame.sort("symbol", "ts")
    run = (pl.col("ts").diff().over("symbol").fill_null(bar) != bar).cum_sum().over("symbol")
    pos = df.select(pl.int_range(pl.len()).over("symbol", run).alias("pos"))["pos"].to_numpy()
    feats = df.select([pl.col(c).cast(pl.Float64) for c in feature_cols]).to_numpy()
    end_idx = np.flatnonzero(pos >= lookback - 1)
    return df, feats, end_idx


def _gather(feats: np.ndarray, end_idx: np.ndarray, lookback: int) -> np.ndarray:
    offsets = np.arange(-lookback + 1, 1)
    return feats[end_idx[:, None] + offsets[None, :]].astype(np.float32)


def _as_utc(ts: datetime) -> datetime:
    if ts.tzinfo is None:
        raise ValueError("train_end_ts must be timezone-aware (UTC)")
    return ts


@dataclass
class TrainedForecaster:
    """A trained seed ensemble plus everything needed to reproduce its inputs.

    ``info`` records how it was trained (row counts, split timestamps, per-seed best epoch and
    validation loss, seconds), ready to log as MLflow params/metrics.
    """

    config: ForecasterConfig
    feature_cols: list[str]
    feature_mean: np.ndarray
    feature_std: np.ndarray
    target_mean: np.ndarray
    target_std: np.ndarray
    nets: list[LSTMNet]
    info: dict[str, Any] = field(default_factory=dict)
    #: the smearing correction ``c`` of ln(rv) per horizon (see module docstring)
    vol_log_var: np.ndarray | None = None

    @property
    def horizon_labels(self) -> list[str]:
        return list(self.config.horizons)

    def _scale(self, feats: np.ndarray) -> np.ndarray:
        return (feats - self.feature_mean) / self.feature_std

    def _predict_windows(self, x: np.ndarray, batch: int = 4096) -> np.ndarray:
        """Ensemble mean of unscaled predictions for windows ``x`` ``(n, lookback, f)``."""
        out = np.zeros((x.shape[0], len(self.config.output_cols())), dtype=np.float64)
        if x.shape[0] == 0:
            return out
        with _torch_settings(self.config.num_threads), torch.no_grad():
            for net in self.nets:
                net.eval()
                for i in range(0, x.shape[0], batch):
                    y = net(torch.from_numpy(x[i : i + batch])).double().numpy()
                    out[i : i + batch] += y
        out /= len(self.nets)
        out = out * self.target_std + self.target_mean
        if self.config.vol_targets:
            k = len(self.config.horizons)
            s2 = 0.0 if self.vol_log_var is None else self.vol_log_var
            out[:, k:] = np.exp(out[:, k:] + s2)
        return out

    def predict(self, frame: pl.DataFrame) -> pl.DataFrame:
        """Predict every row that closes a full lookback window.

        Args:
            frame: a features frame (``symbol, ts`` and :attr:`feature_cols`), e.g. from
                :func:`ml.features.build_features`; rows without ``lookback`` consecutive
                bars of history are skipped, never padded.

        Returns:
            ``symbol, ts, pred_<h>..., pred_rv_<h>...`` sorted by ``symbol, ts``; ``ts`` is the
            forecast origin (the last bar the model saw); ``pred_<h>`` is the log return over
            ``h`` from there, ``pred_rv_<h>`` the realized volatility over the same bars.
        """
        lb = self.config.lookback
        df, feats, end_idx = _windows(frame, self.feature_cols, lb, self.config.bar)
        x = _gather(self._scale(feats), end_idx, lb)
        if not np.isfinite(x).all():
            raise ValueError("features contain nulls/NaN/inf; build them with build_features")
        preds = self._predict_windows(x)
        mask = np.zeros(df.height, dtype=bool)
        mask[end_idx] = True
        keys = df.select("symbol", "ts").filter(pl.Series(mask))
        return keys.with_columns(
            pl.Series(c, preds[:, j], dtype=pl.Float64)
            for j, c in enumerate(self.config.output_cols())
        )

    def predict_long(self, frame: pl.DataFrame) -> pl.DataFrame:
        """:meth:`predict` reshaped to ``symbol, origin_ts, horizon, target, prediction`` (the
        layout of ``ml.forecasts`` minus the columns the asset adds); ``target`` is
        ``log_return`` or ``realized_vol``."""
        wide = self.predict(frame)
        long = wide.unpivot(
            index=["symbol", "ts"],
            on=self.config.output_cols(),
            variable_name="column",
            value_name="prediction",
        )
        return (
            long.with_columns(
                pl.when(pl.col("column").str.starts_with("pred_rv_"))
                .then(pl.lit("realized_vol"))
                .otherwise(pl.lit("log_return"))
                .alias("target"),
                pl.col("column").str.replace(r"^pred_(rv_)?", "").alias("horizon"),
            )
            .rename({"ts": "origin_ts"})
            .sort(
                "symbol",
                "origin_ts",
                "target",
                pl.col("horizon").replace_strict(self.config.horizons, return_dtype=pl.Int64),
            )
            .select("symbol", "origin_ts", "horizon", "target", "prediction")
        )

    # ---- persistence -------------------------------------------------------------------
    def save(self, directory: str | Path) -> Path:
        """Write ``forecaster.json`` + ``seed_<s>.safetensors`` into ``directory``."""
        d = Path(directory)
        d.mkdir(parents=True, exist_ok=True)
        meta = {
            "format_version": FORMAT_VERSION,
            "config": self.config.to_dict(),
            "feature_cols": list(self.feature_cols),
            "feature_mean": self.feature_mean.tolist(),
            "feature_std": self.feature_std.tolist(),
            "target_mean": self.target_mean.tolist(),
            "target_std": self.target_std.tolist(),
            "weights": [f"seed_{s}.safetensors" for s in self.config.seeds],
            "vol_log_var": None if self.vol_log_var is None else self.vol_log_var.tolist(),
            "info": self.info,
        }
        for fname, net in zip(meta["weights"], self.nets, strict=True):
            state = {k: v.detach().contiguous() for k, v in net.state_dict().items()}
            save_file(state, str(d / fname))
        (d / MODEL_FILE).write_text(json.dumps(meta, indent=2, default=str))
        return d

    @classmethod
    def load(cls, directory: str | Path) -> TrainedForecaster:
        """Rebuild a forecaster written by :meth:`save`."""
        d = Path(directory)
        meta = json.loads((d / MODEL_FILE).read_text())
        fmt = meta.get("format_version")
        if fmt not in (1, FORMAT_VERSION):
            raise ValueError(f"unsupported forecaster format {fmt}")
        if fmt == 1:  # version 1 predicted returns only
            meta["config"] = {**meta["config"], "vol_targets": False}
        config = ForecasterConfig.from_dict(meta["config"])
        nets = []
        for fname in meta["weights"]:
            net = LSTMNet(len(meta["feature_cols"]), config.hidden, len(config.output_cols()))
            net.load_state_dict(load_file(str(d / fname)))
            net.eval()
            nets.append(net)
        return cls(
            config=config,
            feature_cols=list(meta["feature_cols"]),
            feature_mean=np.asarray(meta["feature_mean"], dtype=np.float64),
            feature_std=np.asarray(meta["feature_std"], dtype=np.float64),
            target_mean=np.asarray(meta["target_mean"], dtype=np.float64),
            target_std=np.asarray(meta["target_std"], dtype=np.float64),
            nets=nets,
            info=meta.get("info", {}),
            vol_log_var=None
            if meta.get("vol_log_var") is None
            else np.asarray(meta["vol_log_var"], dtype=np.float64),
        )


def _train_one(
    seed: int,
    config: ForecasterConfig,
    n_features: int,
    x_fit: torch.Tensor,
    y_fit: torch.Tensor,
    x_val: torch.Tensor,
    y_val: torch.Tensor,
) -> tuple[LSTMNet, dict[str, Any]]:
    _seed_everything(seed)
    gen = torch.Generator().manual_seed(seed)
    net = LSTMNet(n_features, config.hidden, y_fit.shape[1])
    opt = torch.optim.Adam(net.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    loss_fn = nn.MSELoss()
    best_loss, best_epoch, bad = math.inf, -1, 0
    best_state = copy.deepcopy(net.state_dict())
    n = x_fit.shape[0]
    epochs_run = 0
    epoch_seconds: list[float] = []
    for epoch in range(config.epochs):
        epochs_run = epoch + 1
        t_epoch = time.perf_counter()
        net.train()
        perm = torch.randperm(n, generator=gen)
        if config.epoch_windows is not None:
            perm = perm[: config.epoch_windows]
        for i in range(0, perm.shape[0], config.batch_size):
            idx = perm[i : i + config.batch_size]
            opt.zero_grad()
            loss = loss_fn(net(x_fit[idx]), y_fit[idx])
            loss.backward()
            if config.grad_clip:
                nn.utils.clip_grad_norm_(net.parameters(), config.grad_clip)
            opt.step()
        net.eval()
        with torch.no_grad():
            val_loss = float(loss_fn(net(x_val), y_val))
        epoch_seconds.append(time.perf_counter() - t_epoch)
        if val_loss < best_loss - 1e-7:
            best_loss, best_epoch, bad = val_loss, epoch, 0
            best_state = copy.deepcopy(net.state_dict())
        else:
            bad += 1
            if bad >= config.patience:
                break
    net.load_state_dict(best_state)
    net.eval()
    return net, {
        "seed": seed,
        "best_epoch": best_epoch + 1,
        "epochs_run": epochs_run,
        "best_val_loss": best_loss,
        "mean_epoch_seconds": float(np.mean(epoch_seconds)) if epoch_seconds else 0.0,
    }


def train_forecaster(
    frame: pl.DataFrame,
    feature_cols: Sequence[str],
    config: ForecasterConfig | None = None,
    train_end_ts: datetime | None = None,
) -> TrainedForecaster:
    """Train the seed ensemble on rows with ``ts <= train_end_ts``.

    Args:
        frame: output of :func:`ml.features.build_features` (needs ``symbol, ts``, the feature
            columns and ``target_<h>`` (and ``rv_target_<h>`` with ``config.vol_targets``) for
            every horizon in ``config.horizons``).
        feature_cols: model inputs, in order (stored with the model).
        config: hyper-parameters; defaults to :class:`ForecasterConfig()`.
        train_end_ts: last forecast origin allowed in training (UTC, aware). Its targets may
            reach ``max horizon`` bars past it, so evaluate only on rows from
            ``train_end_ts + max horizon bars`` on (:func:`ml.evaluation.holdout_rows`).
            Defaults to the last row with all targets known.

    Raises:
        ValueError: too few rows for a fit and a validation split with the horizon gap.
    """
    config = config or ForecasterConfig()
    feature_cols = list(feature_cols)
    t0 = time.perf_counter()
    tcols = config.target_cols()
    missing = [c for c in tcols if c not in frame.columns]
    if missing:
        raise ValueError(f"frame lacks target columns {missing}")
    if train_end_ts is None:
        known = frame.filter(pl.all_horizontal(pl.col(tcols).is_not_null()))
        if known.height == 0:
            raise ValueError("no rows with known targets")
        train_end_ts = known["ts"].max()
    train_end_ts = _as_utc(train_end_ts)

    df, feats, end_idx = _windows(frame, feature_cols, config.lookback, config.bar)
    ts_all = df["ts"]
    in_train = (ts_all <= train_end_ts).to_numpy()
    train_feats = feats[in_train]
    if train_feats.shape[0] == 0:
        raise ValueError(f"no rows at or before train_end_ts={train_end_ts}")
    if not np.isfinite(train_feats).all():
        raise ValueError("training features contain nulls/NaN/inf; build them with build_features")
    f_mean = train_feats.mean(axis=0)
    f_std = train_feats.std(axis=0)
    f_std = np.where(f_std > 1e-12, f_std, 1.0)

    targets = df.select(
        [
            pl.col(c).cast(pl.Float64).clip(lower_bound=VOL_FLOOR).log()
            if c.startswith("rv_target_")
            else pl.col(c).cast(pl.Float64)
            for c in tcols
        ]
    ).to_numpy()
    targets = np.where(np.isfinite(targets), targets, np.nan)
    ok = in_train[end_idx] & ~np.isnan(targets[end_idx]).any(axis=1)
    sample_idx = end_idx[ok]
    sample_ts = ts_all.to_numpy()[sample_idx]
    uniq = np.unique(sample_ts)
    if uniq.size < 2:
        raise InsufficientDataError(
            f"only {sample_idx.size} training windows (lookback {config.lookback}) with known "
            f"targets before {train_end_ts}; need more history",
            needs="2 training origins with a full look-back window",
            has=f"{uniq.size}",
        )
    cut = min(int(math.floor((1.0 - config.val_fraction) * uniq.size)), uniq.size - 1)
    val_start = uniq[cut]
    fit_end = val_start - np.timedelta64(config.max_horizon * config.bar_seconds, "s")
    is_val = sample_ts >= val_start
    is_fit = sample_ts <= fit_end
    if is_fit.sum() == 0 or is_val.sum() == 0:
        raise InsufficientDataError(
            f"not enough training windows for a fit/validation split with a "
            f"{config.max_horizon}-bar gap: {int(is_fit.sum())} fit, {int(is_val.sum())} "
            f"validation of {sample_idx.size}",
            needs=f"fit and validation windows {config.max_horizon} bars apart",
            has=f"{int(is_fit.sum())} fit, {int(is_val.sum())} validation",
        )

    scaled = (feats - f_mean) / f_std
    fit_idx, val_idx = sample_idx[is_fit], sample_idx[is_val]
    y_fit_raw = targets[fit_idx]
    t_mean = y_fit_raw.mean(axis=0)
    t_std = y_fit_raw.std(axis=0)
    t_std = np.where(t_std > 1e-12, t_std, 1.0)

    def _y(idx: np.ndarray) -> torch.Tensor:
        return torch.from_numpy(((targets[idx] - t_mean) / t_std).astype(np.float32))

    x_fit = torch.from_numpy(_gather(scaled, fit_idx, config.lookback))
    x_val = torch.from_numpy(_gather(scaled, val_idx, config.lookback))
    y_fit, y_val = _y(fit_idx), _y(val_idx)

    nets, per_seed = [], []
    with _torch_settings(config.num_threads), warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*deterministic.*")
        for seed in config.seeds:
            net, stats = _train_one(seed, config, len(feature_cols), x_fit, y_fit, x_val, y_val)
            nets.append(net)
            per_seed.append(stats)

    def _iso(x: np.datetime64) -> str:
        return str(np.datetime_as_string(x, unit="s")) + "Z"

    info = {
        "train_end_ts": train_end_ts.isoformat(),
        "fit_end_ts": _iso(fit_end),
        "val_start_ts": _iso(val_start),
        "n_train_rows": int(train_feats.shape[0]),
        "n_fit_windows": int(fit_idx.size),
        "n_val_windows": int(val_idx.size),
        "symbols": sorted(df["symbol"].unique().to_list()),
        "per_seed": per_seed,
        "mean_best_val_loss": float(np.mean([s["best_val_loss"] for s in per_seed])),
        "mean_epoch_seconds": float(np.mean([s["mean_epoch_seconds"] for s in per_seed])),
        "train_seconds": round(time.perf_counter() - t0, 3),
    }
    model = TrainedForecaster(
        config=config,
        feature_cols=feature_cols,
        feature_mean=f_mean,
        feature_std=f_std,
        target_mean=t_mean,
        target_std=t_std,
        nets=nets,
        info=info,
    )
    if config.vol_targets:
        k = len(config.horizons)
        model.vol_log_var = np.zeros(k)  # raw ensemble output first: exp(m)
        val_pred = np.log(model._predict_windows(x_val.numpy())[:, k:])
        resid = targets[val_idx][:, k:] - val_pred
        model.vol_log_var = np.log(np.mean(np.exp(2.0 * resid), axis=0)) / 2.0
        info["vol_log_var"] = model.vol_log_var.tolist()
    return model


# ---- MLflow ---------------------------------------------------------------------------------

_PYFUNC_CODE = """\
# Generated by ml.forecaster.log_forecaster ("models from code": no pickled objects).
import mlflow

from ml.forecaster import forecaster_pyfunc

mlflow.models.set_model(forecaster_pyfunc())
"""


@cache
def _pyfunc_class() -> type:
    # Built on first use so importing ml.forecaster does not import mlflow (~4 s).
    from mlflow.pyfunc import PythonModel

    class ForecasterPyfunc(PythonModel):
        """MLflow pyfunc wrapper: input is a features frame (pandas) with ``symbol, ts`` and the
        model's feature columns; output is ``symbol, ts, pred_<h>...`` (pandas).

        The ``pd.DataFrame`` hint must resolve from this module's globals (MLflow evaluates it
        with ``get_type_hints``); MLflow then skips its own schema validation and warning.
        """

        def load_context(self, context: Any) -> None:
            self.model = TrainedForecaster.load(context.artifacts["forecaster"])

        def predict(
            self, context: Any, model_input: pd.DataFrame, params: Any = None
        ) -> pd.DataFrame:
            frame = pl.from_pandas(pd.DataFrame(model_input))
            ts_type = frame.schema["ts"]
            if not isinstance(ts_type, pl.Datetime) or ts_type.time_zone is None:
                frame = frame.with_columns(pl.col("ts").cast(pl.Datetime("ms", "UTC")))
            return self.model.predict(frame).to_pandas()

    return ForecasterPyfunc


def forecaster_pyfunc() -> Any:
    """A fresh :class:`mlflow.pyfunc.PythonModel` wrapping a saved :class:`TrainedForecaster`
    (loaded from the ``forecaster`` artifact)."""
    return _pyfunc_class()()


def pyfunc_input(frame: pl.DataFrame, feature_cols: Sequence[str]) -> pd.DataFrame:
    """``symbol, ts`` + features as pandas with ``ts`` naive UTC: the input of the logged
    pyfunc model (MLflow's signature enforcement refuses timezone-aware datetimes)."""
    return (
        frame.select("symbol", "ts", *feature_cols)
        .with_columns(pl.col("ts").dt.convert_time_zone("UTC").dt.replace_time_zone(None))
        .to_pandas()
    )


def default_pip_requirements() -> list[str]:
    """Pinned requirements of the logged model. Passing them explicitly makes
    ``log_model`` ~3x faster than MLflow's inference. The ``ml`` package itself (sentinance)
    must be importable where the model is loaded."""
    from importlib.metadata import version

    pins = ["mlflow", "torch", "numpy", "pandas", "polars", "safetensors"]
    return [f"{p}=={version(p).split('+')[0]}" for p in pins]


def log_forecaster(
    model: TrainedForecaster,
    name: str = "forecaster",
    pip_requirements: Sequence[str] | None = None,
) -> Any:
    """Log ``model`` as an MLflow pyfunc model in the active run; returns ``ModelInfo``.

    Register it afterwards with :meth:`ml.tracking.MlflowStore.register_model`
    (``artifact_path=name``).
    The pyfunc takes :func:`pyfunc_input` of a features frame: MLflow's ``datetime`` schema
    type rejects timezone-aware columns, so ``ts`` travels as naive UTC.
    """
    import mlflow.pyfunc

    with tempfile.TemporaryDirectory(prefix="sentinance-forecaster-") as tmp:
        model_dir = model.save(Path(tmp) / "forecaster")
        code = Path(tmp) / "forecaster_pyfunc.py"
        code.write_text(_PYFUNC_CODE)
        with warnings.catch_warnings(), _no_progress_bar():
            # An input example would make MLflow run the model at log time; the explicit
            # signature already documents the input.
            warnings.filterwarnings("ignore", message=".*input example was not provided.*")
            return mlflow.pyfunc.log_model(
                name=name,
                python_model=str(code),
                artifacts={"forecaster": str(model_dir)},
                signature=model_signature(model),
                pip_requirements=list(pip_requirements or default_pip_requirements()),
            )


def model_signature(model: TrainedForecaster) -> Any:
    """Explicit MLflow signature (input: ``symbol, ts`` + features; output: ``symbol, ts``
    + ``pred_<h>``). Explicit because MLflow cannot infer one from a DataFrame type hint and
    would warn on every log; it also documents the model's contract in the registry UI."""
    from mlflow.models import ModelSignature
    from mlflow.types import ColSpec, Schema, TensorSpec

    def spec(*cols: ColSpec) -> list[ColSpec | TensorSpec]:
        return [ColSpec("string", "symbol"), ColSpec("datetime", "ts"), *cols]

    inputs = Schema(spec(*[ColSpec("double", c) for c in model.feature_cols]))
    outputs = Schema(spec(*[ColSpec("double", c) for c in model.config.output_cols()]))
    return ModelSignature(inputs=inputs, outputs=outputs)


@contextmanager
def _no_progress_bar() -> Iterator[None]:
    """Silence MLflow's artifact download progress bar (stderr noise in logs) for the block."""
    import os

    key = "MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR"
    previous = os.environ.get(key)
    os.environ[key] = "false"
    try:
        yield
    finally:
        if previous is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = previous


def load_registered_forecaster(
    store: MlflowStore, name: str, alias: str = "champion", dst_dir: str | Path | None = None
) -> TrainedForecaster:
    """Load the :class:`TrainedForecaster` behind registered model ``name@alias`` in ``store``.
    Returns the full object (``predict_long``, ``info``), not the pyfunc wrapper;
    ``info["registered_version"]`` says which version.

    The artifacts are copied to ``dst_dir`` (a temporary folder if omitted, removed after
    loading: the weights are in memory by then).
    """
    mv = store.client().get_model_version_by_alias(name, alias)
    uri = f"models:/{name}/{mv.version}"
    with _no_progress_bar():
        if dst_dir is not None:
            local = store.download(uri, dst_dir)
            model = TrainedForecaster.load(local / "artifacts" / "forecaster")
        else:
            with tempfile.TemporaryDirectory(prefix="sentinance-forecaster-") as tmp:
                local = store.download(uri, tmp)
                model = TrainedForecaster.load(local / "artifacts" / "forecaster")
    model.info = {**model.info, "registered_name": name, "registered_version": str(mv.version)}
    return model
