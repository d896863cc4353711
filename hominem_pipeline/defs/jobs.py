"""Jobs: named selections of assets to run together, and the executor every run uses."""

import dagster as dg

# Each step runs in its own process (steps in different pools really run side by side). Forked from a
# server that has already imported the heavy modules, a step starts in a fraction of the time a fresh
# interpreter needs to import dagster, torch and transformers (measured: a 3-asset selection took 108 s
# instead of 228 s on a loaded 2-core box); the server imports nothing that starts threads or opens files.
executor = dg.multiprocess_executor.configured(
    {
        "start_method": {
            "forkserver": {"preload_modules": ["dagster", "hominem_pipeline.definitions", "torch", "transformers"]}
        }
    }
)

# Everything, in dependency order: what `make run` materialises.
main_job = dg.define_asset_job("hominem_main_job", selection=dg.AssetSelection.all())

# The conversation assets alone (ingest, label, both channels' exports): what a UI backfill of days or
# the CLI's `dagster asset materialize --select 'conversations*' --partition <day>` runs.
conversations_job = dg.define_asset_job(
    "conversations_job",
    selection=dg.AssetSelection.assets("conversations", "conversation_labels", "sft_pairs", "preference_pairs"),
)
