"""`TrainingDatabase`: the whole store as one object, every area's repository on one DuckDB connection.

Each area lives in its own module (`connection` for opening and migrations, `teacher_data`,
`conversations`, `sft`, `preferences`); this class only combines them, so callers open one store and
one transaction spans areas when it must.
"""

from __future__ import annotations

from hominem_pipeline.store.connection import StoreConnection, list_migrations, utcnow
from hominem_pipeline.store.conversations import ConversationStore
from hominem_pipeline.store.preferences import PreferenceStore
from hominem_pipeline.store.sft import SFTStore
from hominem_pipeline.store.teacher_data import TeacherDataStore

__all__ = ["StoreConnection", "TrainingDatabase", "list_migrations", "utcnow"]


class TrainingDatabase(TeacherDataStore, ConversationStore, SFTStore, PreferenceStore):
    """The store. Use as a context manager, or call `close()`."""
