"""Shared Hypothesis settings and strategies for the fuzz tests: derandomized, no example database,
bounded example counts (the same inputs on every machine, a few seconds per test)."""

from __future__ import annotations

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st


def fuzz(max_examples: int) -> settings:
    return settings(
        max_examples=max_examples,
        derandomize=True,
        database=None,
        deadline=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
    )


# Text including lone surrogates and control characters (json.dumps escapes them, as a file or client would).
any_text = st.text(st.characters(exclude_categories=()), max_size=12)
