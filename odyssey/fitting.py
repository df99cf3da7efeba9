"""One fit/apply interface for everything fitted on a training window.

A `Fitted` transform learns JSON-ready parameters from the rows of a training window
(`fit(data, start, end)`) and applies them to any rows (`apply(data, params)`): return clip
thresholds, the market-regime K-means and the standard scaler. `FeaturePipeline` chains them
into the engineered features. The data layer fits it on the train split; every walk-forward
fold fits it on that fold's training rows; every model stores the parameters it was trained
with, and live forecasts apply exactly those. A feature's value therefore never depends on
data after the end of the window its parameters were fitted on.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any, Protocol, Sequence

import numpy as np
import pandas as pd

from odyssey import features as registry
from odyssey import cleaning
from odyssey.calendar import in_window
from odyssey.cleaning import wide
from odyssey.sources.columns import ADJ_CLOSE, MarketData

if TYPE_CHECKING:
    from odyssey.settings import CleaningSettings, Profile, Settings


class Fitted(Protocol):
    """Parameters learnt from a training window's rows, applied to any rows."""

    name: str

    def fit(self, data: Any, start: pd.Timestamp | None, end: pd.Timestamp) -> dict: ...

    def apply(self, data: Any, params: dict) -> Any: ...


@dataclass(frozen=True)
class ClipThresholds:
    """Per-ticker mean +- n_sigma std of daily log returns in the window; applied by clipping."""

    n_sigma: float = 3.0
    name: str = "return_clip_thresholds"

    def fit(self, returns: pd.DataFrame, start: pd.Timestamp | None, end: pd.Timestamp) -> dict:
        """`returns`: long table with date, ticker, log_return."""
        train = returns.loc[in_window(returns["date"], start, end)]
        stats = train.groupby("ticker")["log_return"].agg(["mean", "std", "count"])
        return {
            "train_end": str(pd.Timestamp(end).date()), "n_sigma": float(self.n_sigma),
            "tickers": {t: {"mean": float(r["mean"]), "std": float(r["std"]), "n_train": int(r["count"]),
                            "lower": float(r["mean"] - self.n_sigma * r["std"]),
                            "upper": float(r["mean"] + self.n_sigma * r["std"])}
                        for t, r in stats.iterrows() if r["count"] >= 2},
        }

    def apply(self, returns: pd.DataFrame, params: dict) -> pd.DataFrame:
        """Adds `log_return_clipped` and `clipped`."""
        out = returns.copy()
        limits = params["tickers"]
        lower = out["ticker"].map({t: v["lower"] for t, v in limits.items()})
        upper = out["ticker"].map({t: v["upper"] for t, v in limits.items()})
        if lower.isna().any():
            missing = sorted(out.loc[lower.isna(), "ticker"].unique())
            raise ValueError(f"no clip thresholds for tickers {missing}: they have no returns in the training window "
                             f"ending {params['train_end']}")
        out["log_return_clipped"] = out["log_return"].clip(lower, upper)
        out["clipped"] = (out["log_return"] < lower) | (out["log_return"] > upper)
        return out


@dataclass(frozen=True)
class RegimeModel:
    """K-means (k=3) on the standardised market state; clusters ordered by their first column
    (ln VIX, or the benchmark's volatility without VIX): 0 calm, 1 normal, 2 crisis."""

    seed: int = 42
    name: str = "regime_model"
    min_rows: int = 30

    def fit(self, state: pd.DataFrame, start: pd.Timestamp | None, end: pd.Timestamp) -> dict:
        train = state.loc[in_window(state.index, start, end)].dropna()
        if len(train) < self.min_rows:
            raise ValueError(f"the regime model needs at least {self.min_rows} complete days in its training window "
                             f"ending {pd.Timestamp(end).date()}, got {len(train)}")
        mean, std = train.mean(), train.std(ddof=0).replace(0.0, 1.0)
        from sklearn.cluster import KMeans  # imported when fitted: loading the code location skips it
        from threadpoolctl import threadpool_limits

        # one thread: K-means sums in an order that depends on the thread count, and the same data
        # must give the same centres bit for bit on any machine and beside any other work
        with threadpool_limits(1):
            model = KMeans(n_clusters=3, n_init=10, random_state=self.seed).fit(((train - mean) / std).to_numpy())
        order = np.argsort(model.cluster_centers_[:, 0])
        return {"columns": list(state.columns), "mean": mean.tolist(), "std": std.tolist(),
                "centers": model.cluster_centers_[order].tolist(), "labels": ["calm", "normal", "crisis"],
                "train_end": str(pd.Timestamp(end).date()), "train_rows": int(len(train)), "seed": int(self.seed)}

    def apply(self, state: pd.DataFrame, params: dict) -> dict[str, pd.Series]:
        """Label, run length of the label, and distance to the nearest centre, per day."""
        z = (state[params["columns"]] - np.array(params["mean"])) / np.array(params["std"])
        values = z.to_numpy()
        centers = np.array(params["centers"])
        dist = np.sqrt(((values[:, None, :] - centers[None, :, :]) ** 2).sum(axis=2))
        valid = np.isfinite(values).all(axis=1)
        label = np.where(valid, dist.argmin(axis=1), -1)
        starts = np.r_[True, (label[1:] != label[:-1]) | (label[1:] < 0)]
        run_id = np.cumsum(starts)
        duration = np.arange(len(label)) - np.flatnonzero(starts)[run_id - 1] + 1

        def series(a: np.ndarray) -> pd.Series:
            return pd.Series(np.where(valid, a, np.nan), index=state.index)

        return {"label": series(label.astype(float)), "duration": series(duration.astype(float)),
                "distance": series(np.where(valid, dist.min(axis=1), np.nan))}


@dataclass(frozen=True)
class Scaler:
    """scikit-learn's StandardScaler on the window's rows, per feature (NaN ignored)."""

    columns: tuple[str, ...]
    name: str = "scaler_params"

    def fit(self, table: pd.DataFrame, start: pd.Timestamp | None, end: pd.Timestamp) -> dict:
        rows = table.loc[in_window(table["date"], start, end)]
        return self.fit_rows(rows)

    def fit_rows(self, rows: pd.DataFrame) -> dict:
        if rows.empty:
            raise ValueError("no rows in the training window to fit the scaler on")
        from sklearn.preprocessing import StandardScaler

        scaler = StandardScaler().fit(rows[list(self.columns)].to_numpy())
        return {"kind": "standard", "rows": int(len(rows)), "train_start": str(rows["date"].min().date()),
                "train_end": str(rows["date"].max().date()),
                "features": {c: {"mean": float(m), "scale": float(s)}
                             for c, m, s in zip(self.columns, scaler.mean_, scaler.scale_)}}

    def apply(self, table: pd.DataFrame, params: dict) -> pd.DataFrame:
        out = table.copy()
        names = list(params["features"])
        mean = np.array([params["features"][c]["mean"] for c in names])
        scale = np.array([params["features"][c]["scale"] for c in names])
        out[names] = (table[names].to_numpy() - mean) / scale
        return out


# --- the feature pipeline ---------------------------------------------------------------------
@dataclass(frozen=True)
class MarketInputs:
    """What the features are computed from: clean prices, daily log returns (date, ticker,
    log_return) and the alternative series present (date + columns)."""

    clean: pd.DataFrame
    returns: pd.DataFrame
    alt: pd.DataFrame

    def only(self, tickers: Sequence[str]) -> "MarketInputs":
        keep = set(tickers)
        return MarketInputs(self.clean[self.clean["ticker"].isin(keep)], self.returns[self.returns["ticker"].isin(keep)],
                            self.alt)

    @property
    def dates(self) -> pd.DatetimeIndex:
        return pd.DatetimeIndex(sorted(self.clean["date"].unique()), name="date")


def log_returns(clean: pd.DataFrame) -> pd.DataFrame:
    """Daily total log returns per ticker (from `adj_close` when present, else `close`), long
    table (ticker, date order) with date, ticker, log_return."""
    column = ADJ_CLOSE if ADJ_CLOSE in clean.columns else "close"
    ordered = clean.sort_values(["ticker", "date"], kind="stable")
    log_close = np.log(ordered[column].to_numpy(dtype=float))
    ret = np.empty_like(log_close)
    ret[1:] = log_close[1:] - log_close[:-1]
    first = np.r_[True, ordered["ticker"].to_numpy()[1:] != ordered["ticker"].to_numpy()[:-1]]
    ret[first] = np.nan
    return pd.DataFrame({"date": ordered["date"].to_numpy(), "ticker": ordered["ticker"].to_numpy(), "log_return": ret})


@dataclass
class PipelineParams:
    """Everything a feature pipeline fitted on one window: JSON-ready, stored with each model."""

    train_start: str | None
    train_end: str
    names: list[str]
    clip: dict
    regime: dict
    scaler: dict | None = None

    def to_json(self) -> str:
        return json.dumps(asdict(self), sort_keys=True)

    @classmethod
    def from_dict(cls, payload: dict) -> "PipelineParams":
        return cls(**payload)


@dataclass(frozen=True)
class FeaturePipeline:
    """Clip thresholds -> regime model -> features (-> scaler), fitted on one window.

    Unfitted features are computed on the whole universe (market breadth needs every ticker);
    fitted ones only need a ticker's own and the benchmark's returns.
    """

    benchmark: str
    names: tuple[str, ...]
    clip_sigma: float = 3.0
    regime_seed: int = 42
    scale: bool = True

    @property
    def fitted_names(self) -> tuple[str, ...]:
        return tuple(n for n in self.names if registry.BY_NAME[n].fitted)

    @property
    def unfitted_names(self) -> tuple[str, ...]:
        return tuple(n for n in self.names if not registry.BY_NAME[n].fitted)

    def clipper(self) -> ClipThresholds:
        return ClipThresholds(self.clip_sigma)

    def regimes(self) -> RegimeModel:
        return RegimeModel(self.regime_seed)

    def scaler(self) -> Scaler:
        return Scaler(self.names)

    def unfitted(self, inputs: MarketInputs, tickers: Sequence[str] | None = None) -> pd.DataFrame:
        """The features that use no fitted parameter, for `tickers` (default: all). Ticker features
        only need the ticker's own bars; market-wide ones (breadth, alternative series) the universe's."""
        everyone = list(dict.fromkeys(inputs.clean["ticker"]))
        tickers = everyone if tickers is None else list(tickers)
        own = tuple(n for n in self.unfitted_names if not registry.BY_NAME[n].market_wide)
        wide_names = tuple(n for n in self.unfitted_names if registry.BY_NAME[n].market_wide)
        part = inputs.only(tickers) if len(tickers) < len(everyone) else inputs
        ctx, present = registry.build_context(part.clean, None, inputs.alt, self.benchmark, tickers=tickers,
                                              check_benchmark=False)
        table = registry.compute(ctx, present, own)
        if wide_names:
            market, _ = registry.build_context(inputs.clean, None, inputs.alt, self.benchmark, fields=("close",))
            values = pd.DataFrame({n: registry.compute_series(market, n) for n in wide_names})
            table = table.merge(values.rename_axis("date").reset_index(), on="date", how="left")
        return table[["date", "ticker", *self.unfitted_names]]

    def _context(self, inputs: MarketInputs, clip: dict, tickers: Sequence[str]):
        needed = list(dict.fromkeys([*tickers, self.benchmark]))
        part = inputs.only(needed)
        clipped = self.clipper().apply(part.returns, clip)
        ret = wide(clipped, "log_return_clipped", needed, part.dates)
        return registry.build_context(part.clean, ret, inputs.alt, self.benchmark, tickers=needed)

    def fit_clip_and_regime(self, inputs: MarketInputs, start: pd.Timestamp | None,
                            end: pd.Timestamp, tickers: Sequence[str]) -> tuple[dict, dict]:
        needed = list(dict.fromkeys([*tickers, self.benchmark]))
        clip = self.clipper().fit(inputs.returns[inputs.returns["ticker"].isin(needed)], start, end)
        ctx, _ = self._context(inputs, clip, [self.benchmark])
        regime = self.regimes().fit(registry.regime_state(ctx), start, end)
        return clip, regime

    def fitted(self, inputs: MarketInputs, clip: dict, regime: dict, tickers: Sequence[str]) -> pd.DataFrame:
        """The fitted features of `tickers`, computed with the given parameters."""
        ctx, present = self._context(inputs, clip, tickers)
        ctx.regime = self.regimes().apply(registry.regime_state(ctx), regime)
        table = registry.compute(ctx, present, self.fitted_names)
        return table[table["ticker"].isin(set(tickers))].reset_index(drop=True)

    def fit_transform(self, inputs: MarketInputs, end: pd.Timestamp, start: pd.Timestamp | None = None,
                      tickers: Sequence[str] | None = None, unfitted: pd.DataFrame | None = None,
                      scaler_rows: pd.DataFrame | None = None) -> tuple[PipelineParams, pd.DataFrame]:
        """Fit every transform on [start, end] and return the parameters and the features of
        `tickers` on every date. `unfitted`: precomputed unfitted features (same tickers);
        `scaler_rows`: (date, ticker) rows the scaler fits on (default: those in the window)."""
        tickers = list(tickers) if tickers is not None else sorted(inputs.clean["ticker"].unique())
        clip, regime = self.fit_clip_and_regime(inputs, start, end, tickers)
        base = unfitted if unfitted is not None else self.unfitted(inputs, tickers)
        table = base.merge(self.fitted(inputs, clip, regime, tickers), on=["date", "ticker"], how="left",
                           validate="one_to_one")[["date", "ticker", *self.names]]
        params = PipelineParams(str(pd.Timestamp(start).date()) if start is not None else None,
                                str(pd.Timestamp(end).date()), list(self.names), clip, regime)
        if self.scale:
            if scaler_rows is None:
                rows = table.loc[in_window(table["date"], start, end)]
            else:
                rows = table.merge(scaler_rows[["date", "ticker"]], on=["date", "ticker"])
            params.scaler = self.scaler().fit_rows(rows)
            table = self.scaler().apply(table, params.scaler)
        return params, table

    def transform(self, inputs: MarketInputs, params: PipelineParams, tickers: Sequence[str] | None = None,
                  unfitted: pd.DataFrame | None = None) -> pd.DataFrame:
        """Features of `tickers` with stored parameters (a model's, at serving time)."""
        tickers = list(tickers) if tickers is not None else sorted(inputs.clean["ticker"].unique())
        base = unfitted if unfitted is not None else self.unfitted(inputs, tickers)
        table = base.merge(self.fitted(inputs, params.clip, params.regime, tickers), on=["date", "ticker"],
                           how="left", validate="one_to_one")[["date", "ticker", *self.names]]
        return self.scaler().apply(table, params.scaler) if params.scaler else table


def feature_pipeline(settings: "Settings", scale: bool = True) -> FeaturePipeline:
    """The run's feature pipeline: the registry features its alternative series allow."""
    universe = settings.universe
    return FeaturePipeline(benchmark=universe.benchmark, names=registry.features_of(universe),
                           clip_sigma=settings.cleaning.clip_sigma, regime_seed=settings.features.regime_seed,
                           scale=scale)


def market_inputs(clean: pd.DataFrame, returns: pd.DataFrame, alt: pd.DataFrame) -> MarketInputs:
    return MarketInputs(clean, returns[["date", "ticker", "log_return"]], alt)


@dataclass(frozen=True)
class CleanMarket:
    """Raw market data cleaned: the features' inputs and the cleaning's report (filled, gap and
    repaired cells, splits, rows off the calendar; see odyssey/cleaning.py)."""

    inputs: MarketInputs
    report: dict


def clean_market_data(raw: MarketData, profile: "Profile", rules: "CleaningSettings") -> CleanMarket:
    """Raw bars as quoted, corporate actions and raw alternative data -> clean prices on the
    exchange's sessions, daily log returns and the alternative series on the same sessions: the
    one path from raw data to the features' inputs (the market assets and the leakage canary)."""
    prices = raw.prices.drop(columns=[c for c in ("source_file", "source_row") if c in raw.prices.columns])
    result = cleaning.clean_prices(prices, raw.actions, list(profile.tickers), profile.start, rules=rules,
                                   exchange=profile.exchange)
    calendar = pd.DatetimeIndex(sorted(result.prices["date"].unique()), name="date")
    alt = cleaning.clean_alt(raw.alt, calendar, rules.max_fill_days)
    alt = alt[[c for c in alt.columns if c == "date" or c in profile.alt_series]]
    return CleanMarket(MarketInputs(result.prices, log_returns(result.prices), alt), result.report)
