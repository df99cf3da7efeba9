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


RUN_KEY_TAG = "dagster/run_key"


def settle_landed(context: dg.SensorEvaluationContext, pending: dict[str, list[str]], landing, archive,
                  quarantine) -> None:
    """For each finished ingestion run in `pending` (run key -> file names, edited in place): move
    its files from the landing folder to the archive when it succeeded, to quarantine with the
    run's end as the reason when it did not."""
    from odyssey.landing import move

    for run_key, files in list(pending.items()):
        runs = context.instance.get_runs(filters=dg.RunsFilter(tags={RUN_KEY_TAG: run_key}), limit=1)
        if not runs or not runs[0].is_finished:
            continue
        run = runs[0]
        for name in files:
            path = landing / name
            if path.exists():
                if run.is_success:
                    move(path, archive)
                else:
                    move(path, quarantine, f"ingestion run {run.run_id} ended {run.status.value}")
        del pending[run_key]
