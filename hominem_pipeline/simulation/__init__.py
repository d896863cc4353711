"""hominem simulate: a scripted user against the running system on a simulated clock (docs/SIMULATION.md)."""
