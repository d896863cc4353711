"""Jobs: named selections of assets to run together."""

import dagster as dg

# Everything, in dependency order: what `make run` materialises.
main_job = dg.define_asset_job("hominem_main_job", selection=dg.AssetSelection.all())
