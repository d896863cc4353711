"""Jobs: named selections of assets to run together."""

import dagster as dg

# Everything, in dependency order: what `make run` materialises.
main_job = dg.define_asset_job("hominem_main_job", selection=dg.AssetSelection.all())

# The conversation assets alone (ingest, label, both channels' exports): what a UI backfill of days or
# the CLI's `dagster asset materialize --select 'conversations*' --partition <day>` runs.
conversations_job = dg.define_asset_job(
    "conversations_job",
    selection=dg.AssetSelection.assets("conversations", "conversation_labels", "sft_pairs", "preference_pairs"),
)
