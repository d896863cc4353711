"""The Dagster layer: thin wiring from domain modules to assets, checks, resources, jobs, sensors."""
