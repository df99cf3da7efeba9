"""The run's `Settings` as a Dagster resource, the ticker partitions that follow the universe, and
per-run overrides of a settings section from the launchpad."""

from __future__ import annotations

import functools
from typing import Any, Optional

import dagster as dg
from pydantic import BaseModel, Field, create_model

from odyssey.settings import Profile, Settings

TICKER_PARTITIONS = "ticker"
ticker_partitions = dg.DynamicPartitionsDefinition(name=TICKER_PARTITIONS)


@functools.lru_cache(maxsize=16)
def _parse(document: str) -> Settings:
    return Settings.model_validate_json(document)


class SettingsResource(dg.ConfigurableResource):
    """Universe, dates, source, horizon, costs and every stage's hyperparameters (odyssey/settings.py),
    as loaded from the settings file when the code location loaded. The settings hold no
    credential (a URI with one is masked, a webhook only named); the alert webhook is read here,
    from its environment variable, which the UI shows by name."""

    document: str = Field(description="the settings as JSON (no credential: those are named environment variables)")
    alert_webhook: Optional[str] = Field(default=None, description="where failed runs are POSTed: from the environment "
                                         "variable paths.alert_webhook_env names (the UI shows its name only)")

    @classmethod
    def of(cls, settings: Settings) -> "SettingsResource":
        webhook = settings.paths.alert_webhook_env
        return cls(document=settings.model_dump_json(), alert_webhook=dg.EnvVar(webhook) if webhook else None)

    @property
    def value(self) -> Settings:
        return _parse(self.document)

    def profile(self) -> Profile:
        return self.value.profile()


def partition_changes(instance: dg.DagsterInstance, tickers: tuple[str, ...] | list[str]) -> tuple[list, list]:
    """(tickers to add, tickers to delete) for the instance's partitions to equal the universe."""
    current = set(instance.get_dynamic_partitions(TICKER_PARTITIONS))
    return [t for t in tickers if t not in current], sorted(current - set(tickers))


def sync_ticker_partitions(instance: dg.DagsterInstance, tickers: tuple[str, ...] | list[str]) -> dict[str, list[str]]:
    """Make the instance's ticker partitions the universe's: add new tickers, delete removed ones
    (their materializations stay in the event log)."""
    added, removed = partition_changes(instance, tickers)
    if added:
        instance.add_dynamic_partitions(TICKER_PARTITIONS, added)
    for ticker in removed:
        instance.delete_dynamic_partition(TICKER_PARTITIONS, ticker)
    return {"added": added, "removed": removed}


class RunOverrides(dg.Config):
    """Base of the launchpad configs: every field empty means the settings file's value."""

    def changes(self) -> dict[str, Any]:
        return self.model_dump(exclude_none=True)

    def apply(self, model: BaseModel) -> BaseModel:
        """`model` (a settings section) with this run's non-empty fields replacing its own."""
        mine = {k: v for k, v in self.changes().items() if k in type(model).model_fields}
        return type(model).model_validate({**model.model_dump(), **mine}) if mine else model


def overrides(name: str, doc: str, *sections: type[BaseModel], **extra: tuple[type, Any]) -> type[RunOverrides]:
    """A launchpad config class with every field of the settings `sections` as an optional
    override (same names, types and descriptions), plus `extra` fields."""
    fields: dict[str, Any] = {}
    for section in sections:
        for field_name, info in section.model_fields.items():
            fields[field_name] = (Optional[info.annotation], Field(default=None, description=info.description))
    fields.update(extra)
    return create_model(name, __base__=RunOverrides, __doc__=doc, **fields)
