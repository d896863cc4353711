"""Evaluation of LoRA adapter versions on the fixed regression set, and the promotion gate."""

from hominem_pipeline.evaluation.config import LoraEvalConfig, RegressionSet, load_eval_inputs
from hominem_pipeline.evaluation.evaluate import (
    EvalReport,
    evaluate_version,
    read_report,
    report_markdown,
    write_report,
)

__all__ = [
    "EvalReport",
    "LoraEvalConfig",
    "RegressionSet",
    "evaluate_version",
    "load_eval_inputs",
    "read_report",
    "report_markdown",
    "write_report",
]
