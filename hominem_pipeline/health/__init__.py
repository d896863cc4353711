"""The Reward Health Index (seed 000 phase 10; docs/REWARD_HEALTH.md): five components measured from the
trainer's gradient probes, the reward model and the conversations; their weighted index; the gates that
read it (consolidation into `current`, the nightly slow loop, online updates); the decisions log and the
RHI-over-time plot. Plain Python, no Dagster: `defs/health.py` and the CLI call in here."""
