"""The CLI's one error boundary: a failure the user can act on becomes one line and a non-zero exit.

The domain raises exceptions whose message names the file, line or field and what to do (ConfigError,
ChatImportError, AdapterRegistryError, a store error, ...). Here they are only mapped: one line on stderr,
exit status 1. Anything else is a bug: one line saying so, exit status 70 (EX_SOFTWARE). `hominem --debug`
(or HOMINEM_DEBUG=1) lets every exception through with its traceback.
"""

from __future__ import annotations

import os
import sys
from typing import Any

import click
from pydantic import ValidationError

from hominem_pipeline.validation import field_errors

# A failure the user can act on: its message says what and where. Domain errors derive from ValueError
# (ConfigError, ChatImportError, TrainingError, ...) or are listed below (AdapterRegistryError,
# CorruptVersion, NoTrainingData, TeacherError, ...); OSError carries the file name; duckdb's errors name
# the database file (a lock held by another process, a truncated file).
EXIT_KNOWN = 1
EXIT_BUG = 70


# Failure types outside ValueError / OSError, by module: looked up only in modules already imported (an
# exception cannot be an instance of a class that was never loaded), so mapping one imports nothing.
_KNOWN_ELSEWHERE = (
    ("duckdb", "Error"),
    ("hominem_pipeline.adapters", "AdapterRegistryError"),
    ("hominem_pipeline.atomic", "CorruptVersion"),
    ("hominem_pipeline.atomic", "CorruptPointer"),
    ("hominem_pipeline.store.connection", "StoreError"),  # StoreBusy, StoreCorrupt
    ("hominem_pipeline.models", "ModelNotAvailable"),
    ("hominem_pipeline.teacher.base", "TeacherError"),
    ("hominem_pipeline.training.trainer", "NoTrainingData"),
    ("hominem_pipeline.training.trainer", "NonFiniteLoss"),
)


def is_known_failure(exc: BaseException) -> bool:
    """True for a failure whose message tells the user what and where (see the module docstring)."""
    if isinstance(exc, (ValueError, OSError)):
        return True
    for module, name in _KNOWN_ELSEWHERE:
        cls = getattr(sys.modules.get(module), name, None)
        if isinstance(cls, type) and isinstance(exc, cls):
            return True
    return False


def one_line(exc: BaseException) -> str:
    """The exception's message on one line (pydantic's field errors as `field: reason; ...`)."""
    if isinstance(exc, ValidationError):
        text = field_errors(exc)
    else:
        text = str(exc) or type(exc).__name__
    return " ".join(part.strip() for part in text.splitlines() if part.strip())


def debug_requested(ctx: click.Context | None = None) -> bool:
    if os.environ.get("HOMINEM_DEBUG", "").strip() not in ("", "0"):
        return True
    return bool(ctx is not None and ctx.find_root().params.get("debug"))


class ErrorBoundary(click.Group):
    """A click group whose commands' known failures end in one line and a non-zero exit."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except (click.ClickException, click.exceptions.Exit, click.Abort, KeyboardInterrupt, SystemExit):
            raise
        except Exception as exc:  # the boundary: every failure is mapped, none reaches the user raw
            if debug_requested(ctx):
                raise
            if is_known_failure(exc):
                error = click.ClickException(one_line(exc))
                error.exit_code = EXIT_KNOWN
            else:
                error = click.ClickException(
                    f"unexpected {type(exc).__name__}: {one_line(exc)} (a bug in hominem; "
                    "`hominem --debug ...` shows the traceback)"
                )
                error.exit_code = EXIT_BUG
            raise error from exc
