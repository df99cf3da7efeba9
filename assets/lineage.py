"""The lineage document (group `monitoring`): every asset and partition, check, model run and
package of this project, read from Dagster's catalog and written as reports/lineage.md (with a
Mermaid graph) and reports/lineage.json. A sensor rebuilds it after each successful run; `make
run` ends with it."""

import dataclasses

import dagster as dg

from odyssey.lineage import Artifact, write_document
from resources.lineage import DefinitionsCatalog, collect
from resources.metadata import artifacts_metadata
from resources.settings import SettingsResource
from resources.storage import Storage, write_atomic
from resources.tracking import MlflowTracking

GROUP = "monitoring"
NOTES = ("The Qdrant collections are a live index, not a file with one hash; market_state_index records what "
         "each write changed.",
         "An asset's data version is the SHA-256 of its stored bytes: a re-run that writes the same bytes leaves "
         "what is downstream fresh.")
UI_LIMIT = 200_000  # characters of Markdown shown in the UI; the file always holds the whole document


@dg.asset(group_name=GROUP, kinds={"markdown", "json"}, io_manager_key="json_io_manager")
def lineage(context: dg.AssetExecutionContext, settings: SettingsResource, storage: Storage,
            mlflow: MlflowTracking, catalog: dg.ResourceParam[DefinitionsCatalog]) -> dg.MaterializeResult:
    """Every asset and partition (group, upstream and downstream, last materialization, run, code
    and data versions, input data versions, stored path, size and SHA-256, stale status), every
    check's latest result, the MLflow runs and champions behind the models, the pinned packages and
    the git commit, from the catalog. `python -m jobs.lineage --verify` re-hashes the store against it."""
    graph = catalog.graph()
    doc = collect(context.instance, graph, mlflow.tracker(), list(settings.value.universe.tickers), NOTES)
    markdown, document = write_document(doc)
    folder = storage.path("reports")
    written = []
    for name, data in (("lineage.md", markdown), ("lineage.json", document)):
        write_atomic(folder / name, data)
        written.append(Artifact.of(str(folder / name), data, "report"))
    summary = dataclasses.asdict(doc.summary())
    text = markdown.decode()
    shown = text if len(text) <= UI_LIMIT else text[:UI_LIMIT] + f"\n\n... (the whole document: {folder / 'lineage.md'})"
    return dg.MaterializeResult(value={"summary": summary, "code_commit": doc.code_commit,
                                       "generated_at": doc.generated_at},
                                metadata={**summary, "document": dg.MetadataValue.md(shown),
                                          "markdown": dg.MetadataValue.path(str(folder / "lineage.md")),
                                          **artifacts_metadata(written)})
