"""The cursor the sensors keep over an asset's materializations."""

import dagster as dg


def newer_materialization(context: dg.SensorEvaluationContext, key: dg.AssetKey) -> int | None:
    """The storage id of the asset's newest materialization after the sensor's cursor, moving the
    cursor to it; None when there is none."""
    after = int(context.cursor) if context.cursor else 0
    records = context.instance.fetch_materializations(
        dg.AssetRecordsFilter(asset_key=key, after_storage_id=after), limit=100, ascending=True).records
    if not records:
        return None
    newest = records[-1].storage_id
    context.update_cursor(str(newest))
    return newest
