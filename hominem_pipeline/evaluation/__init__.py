"""Evaluation of LoRA adapter versions (measure / gate / report, run by evaluate), and the promotion gate.

Import from the submodules; this package file stays empty of imports so that reading the config or a
report (summary, extraction) does not load the model-side code."""
