"""Pandera schemas for every table Odyssey stores, and one `validate` that reports failures.

The checks are written so a failure names the rule; `validate` returns the failure cases as a
table (column, check, failing value, row) rather than raising, so callers can show them.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
import pandera.pandas as pa

from odyssey.settings import KNOWN_ALT_SERIES

PRICE_FIELDS = ("open", "high", "low", "close")
_TOL = 1e-9


def _finite(series: pd.Series) -> pd.Series:
    return ~np.isinf(series.astype(float))


def _ohlc_consistent(frame: pd.DataFrame) -> pd.Series:
    """low <= open, close <= high (rows with a missing field pass: gaps are judged elsewhere)."""
    o, h, low, c = (frame[f].astype(float) for f in PRICE_FIELDS)
    lo_ok = (low <= np.fmin(o, c) * (1 + _TOL)) | low.isna() | o.isna() | c.isna()
    hi_ok = (h >= np.fmax(o, c) * (1 - _TOL)) | h.isna() | o.isna() | c.isna()
    hl_ok = (h >= low * (1 - _TOL)) | h.isna() | low.isna()
    return lo_ok & hi_ok & hl_ok


def _not_future(series: pd.Series) -> pd.Series:
    return series <= pd.Timestamp.now().normalize()


def _price_columns(nullable: bool) -> dict[str, pa.Column]:
    cols = {f: pa.Column(float, [pa.Check.gt(0, error=f"{f} must be > 0"), pa.Check(_finite, element_wise=False, error="finite")],
                         nullable=nullable, coerce=True) for f in PRICE_FIELDS}
    cols["volume"] = pa.Column(float, pa.Check.ge(0, error="volume must be >= 0"), nullable=nullable, coerce=True)
    return cols


_KEYS = {
    "date": pa.Column("datetime64[ns]", pa.Check(_not_future, error="date must not be in the future")),
    "ticker": pa.Column(str),
}

RAW_PRICES = pa.DataFrameSchema(
    {**_KEYS, **_price_columns(nullable=True)},
    checks=[pa.Check(_ohlc_consistent, name="ohlc_consistent", error="low <= open, close <= high")],
    unique=["ticker", "date"], report_duplicates="all", strict=False, name="raw_prices",
)

RAW_ALT = pa.DataFrameSchema(
    {
        "date": pa.Column("datetime64[ns]", [pa.Check(_not_future, error="date must not be in the future")], unique=True),
        "VIX": pa.Column(float, pa.Check.gt(0), nullable=True, coerce=True, required=False),
        "DXY": pa.Column(float, pa.Check.gt(0), nullable=True, coerce=True, required=False),
        "Gold": pa.Column(float, pa.Check.gt(0), nullable=True, coerce=True, required=False),
        "Yield_10Y": pa.Column(float, pa.Check.in_range(-5, 30), nullable=True, coerce=True, required=False),
    },
    strict=False, name="raw_alt_data",
)

CLEAN_PRICES = pa.DataFrameSchema(
    {**_KEYS, **_price_columns(nullable=True),
     "adj_close": pa.Column(float, [pa.Check.gt(0, error="adj_close must be > 0"),
                                    pa.Check(_finite, element_wise=False, error="finite")], nullable=True),
     "filled": pa.Column(bool), "gap": pa.Column(bool), "outlier": pa.Column(bool), "repaired": pa.Column(bool),
     **{f"{f}_original": pa.Column(float, nullable=True) for f in PRICE_FIELDS},
     "split_factor": pa.Column(float, pa.Check.gt(0))},
    checks=[pa.Check(_ohlc_consistent, name="ohlc_consistent", error="low <= open, close <= high"),
            pa.Check(lambda f: f["close"].notna() | f["gap"], name="empty_only_in_gaps",
                     error="a close is missing outside a flagged gap")],
    unique=["ticker", "date"], report_duplicates="all", strict=True, name="clean_prices",
)

CLEAN_ALT = pa.DataFrameSchema(
    {"date": pa.Column("datetime64[ns]", unique=True),
     **{c: pa.Column(float, pa.Check(_finite, element_wise=False), nullable=True, required=False)
        for c in KNOWN_ALT_SERIES}},
    strict=True, name="clean_alt_data",
)

RETURNS = pa.DataFrameSchema(
    {**_KEYS, "log_return": pa.Column(float, pa.Check(_finite, element_wise=False, error="finite"), nullable=True)},
    unique=["ticker", "date"], strict=True, name="returns",
)


def _feature_columns(names) -> dict[str, pa.Column]:
    return {name: pa.Column(float, pa.Check(_finite, element_wise=False, error="no inf"), nullable=True)
            for name in names}


def features_schema(names) -> pa.DataFrameSchema:
    """The features table of a run: the registry features present, in registry order."""
    return pa.DataFrameSchema({**_KEYS, **_feature_columns(names)}, unique=["ticker", "date"], strict=True,
                              ordered=True, name="features")


def dataset_schema(names, target: str) -> pa.DataFrameSchema:
    """Features + the forecast target + the split label."""
    return pa.DataFrameSchema(
        {**_KEYS,
         "split": pa.Column(str, pa.Check.isin(["train", "validation", "test"])),
         target: pa.Column(float, pa.Check(_finite, element_wise=False, error="finite")),
         **_feature_columns(names)},
        unique=["ticker", "date"], strict=True, ordered=True, name="dataset")


@dataclass
class ValidationOutcome:
    passed: bool
    failure_cases: pd.DataFrame  # column, check, failure_case, row (+ source_file/source_row if known)
    rows: int

    def reason(self, name: str = "table", limit: int = 3) -> str:
        """One line a person can act on: each failing rule, the column it judges (none for a
        rule on the whole row), how many rows fail it and the first few with ticker, date, file
        and line where the table carries them, and the failing value."""
        if self.passed:
            return f"{name}: all {self.rows} rows pass the schema"
        cases, parts = self.failure_cases, []
        for check, group in cases.groupby("check", sort=False, dropna=False):
            columns = list(dict.fromkeys(str(c) for c in group["column"]))
            whole_row = len(columns) > 1 and group.duplicated("row").any()
            rows = group.drop_duplicates("row")
            where = []
            for _, row in rows.head(limit).iterrows():
                at = " ".join(str(row[c]) for c in ("ticker", "date") if c in row and pd.notna(row[c]) and row[c])
                if "source_file" in row and pd.notna(row["source_file"]) and row["source_file"]:
                    line = row.get("source_row", row.get("source_line"))
                    at += f" ({row['source_file']}" + (f" line {line})" if line is not None else ")")
                value = "" if whole_row else str(row["failure_case"])
                where.append((at or f"row {row['row']}") + (f" value {value}" if value and value != "nan" else ""))
            more = f" and {len(rows) - limit} more" if len(rows) > limit else ""
            on = "" if whole_row else f" in column {columns[0]!r}" if len(columns) == 1 else f" in {columns}"
            parts.append(f"{check!r}{on}: {len(rows)} row(s) fail, {'; '.join(where)}{more}")
        return f"{name}: " + "; ".join(parts)

    def summary(self) -> pd.DataFrame:
        """Failure counts per (column, check)."""
        if self.failure_cases.empty:
            return pd.DataFrame(columns=["column", "check", "failures"])
        return (self.failure_cases.groupby(["column", "check"], dropna=False).size()
                .rename("failures").reset_index().sort_values("failures", ascending=False))


def validate(schema: pa.DataFrameSchema, frame: pd.DataFrame) -> ValidationOutcome:
    """Validate lazily; on failure return every failure case with the row it points at."""
    try:
        schema.validate(frame, lazy=True)
    except pa.errors.SchemaErrors as errors:
        cases = errors.failure_cases.rename(columns={"index": "row"})
        cases["column"] = cases["column"].fillna(cases["schema_context"])
        cases = cases[["column", "check", "failure_case", "row"]].copy()
        cases["failure_case"] = cases["failure_case"].astype(str)
        for extra in ("ticker", "date", "source_file", "source_row", "source_line"):
            if extra in frame.columns:
                rows = pd.to_numeric(cases["row"], errors="coerce")
                known = rows.notna() & rows.isin(frame.index)
                cases[extra] = None
                cases.loc[known, extra] = frame.loc[rows[known].astype(int), extra].astype(str).to_numpy()
        return ValidationOutcome(False, cases.reset_index(drop=True), len(frame))
    return ValidationOutcome(True, pd.DataFrame(columns=["column", "check", "failure_case", "row"]), len(frame))


# --- ticks ------------------------------------------------------------------------------------------
def _bid_not_above_ask(frame: pd.DataFrame) -> pd.Series:
    return frame["best_bid"] <= frame["best_ask"]


def raw_ticks_schema(product: str) -> pa.DataFrameSchema:
    """Ticker messages as read (odyssey/ticks/source.py): positive finite prices, quotes not crossed."""
    positive = {c: pa.Column(float, [pa.Check.gt(0, error=f"{c} must be > 0"),
                                     pa.Check(_finite, element_wise=False, error="finite")])
                for c in ("price", "best_bid", "best_ask")}
    return pa.DataFrameSchema(
        {"timestamp": pa.Column("datetime64[ns, UTC]"),
         "product_id": pa.Column(str, pa.Check.eq(product, error=f"product_id must be {product}")),
         **positive, "source_line": pa.Column("int64", pa.Check.ge(1)), "source_file": pa.Column(str)},
        checks=[pa.Check(_bid_not_above_ask, error="best_bid must be <= best_ask (crossed quotes)")],
        strict=True, name="raw_ticks")


def tick_features_schema(names) -> pa.DataFrameSchema:
    """Tick features (odyssey/ticks/features.py): finite, in time order, within their ranges."""
    ranges = {"rolling_vol": (0, None), "spread": (0, None), "spread_bps": (0, None), "trade_intensity": (0, None),
              "messages_s": (1, None), "realised_vol_s": (0, None), "vol_ratio": (0, None),
              "trade_imbalance": (-1, 1), "tick_rule_imbalance": (-1, 1), "gap_seconds": (0, None),
              "midprice": (0, None)}

    def column(name: str) -> pa.Column:
        checks = [pa.Check(_finite, element_wise=False, error="finite")]
        low, high = ranges.get(name, (None, None))
        if low is not None:
            checks.append(pa.Check.ge(low, error=f"{name} must be >= {low}"))
        if high is not None:
            checks.append(pa.Check.le(high, error=f"{name} must be <= {high}"))
        return pa.Column(float, checks, nullable=False)

    return pa.DataFrameSchema(
        {"tick": pa.Column("int64", pa.Check.ge(0)),
         "timestamp": pa.Column("datetime64[ns, UTC]", pa.Check(lambda s: s.is_monotonic_increasing,
                                                                element_wise=False, error="in time order")),
         **{n: column(n) for n in names}},
        unique=["tick"], strict=True, ordered=True, name="tick_features")
