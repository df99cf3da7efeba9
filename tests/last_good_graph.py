"""A small graph on Odyssey's table IO manager for the version-resolution tests: per-ticker quotes
with a per-partition blocking check, a per-ticker asset and a whole-universe asset downstream.
A module of its own so the multiprocess executor's step processes can import it."""

import dagster as dg
import pandas as pd

from resources.storage import ParquetIOManager

TICKERS = dg.StaticPartitionsDefinition(["A", "B"])
BLOCKING = {"quotes": ["quotes_positive"]}


class QuoteConfig(dg.Config):
    price: float = 1.0


@dg.asset(partitions_def=TICKERS)
def quotes(context: dg.AssetExecutionContext, config: QuoteConfig) -> pd.DataFrame:
    return pd.DataFrame({"ticker": [context.partition_key], "price": [config.price]})


@dg.asset_check(asset=quotes, blocking=True, partitions_def=TICKERS)
def quotes_positive(quotes: pd.DataFrame) -> dg.AssetCheckResult:
    bad = quotes[quotes["price"] <= 0]
    return dg.AssetCheckResult(passed=bad.empty, metadata={"reason": f"{len(bad)} price(s) <= 0"})


@dg.asset(partitions_def=TICKERS)
def doubled(quotes: pd.DataFrame) -> pd.DataFrame:
    return quotes.assign(price=quotes["price"] * 2)


@dg.asset(ins={"quotes": dg.AssetIn(partition_mapping=dg.AllPartitionMapping())})
def total(quotes: dict[str, pd.DataFrame]) -> pd.DataFrame:
    return pd.DataFrame({"price": [sum(float(q["price"].sum()) for q in quotes.values())]})


ASSETS = [quotes, quotes_positive, doubled, total]


def io_manager(base_path: str, keep_versions: int = 5, bound: bool = True) -> ParquetIOManager:
    return ParquetIOManager(base_path=base_path, keep_versions=keep_versions,
                            blocking_checks=BLOCKING if bound else None)


def doubled_job(base_path: str) -> dg.JobDefinition:
    """`doubled` alone, on the multiprocess executor (its step runs in a process of its own)."""
    defs = dg.Definitions(assets=[quotes, doubled], asset_checks=[quotes_positive],
                          resources={"io_manager": io_manager(base_path)},
                          jobs=[dg.define_asset_job("doubled_alone", selection=["doubled"], partitions_def=TICKERS,
                                                    executor_def=dg.multiprocess_executor)])
    return defs.resolve_job_def("doubled_alone")
