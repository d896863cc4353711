"""Asset checks on the two channels' exports and on event-log ingestion."""

import dagster as dg

from hominem_pipeline.defs.assets.conversations import conversations, preference_pairs, sft_pairs
from hominem_pipeline.defs.resources import STORE_POOL, HominemResource
from hominem_pipeline.events.log import EventLog
from hominem_pipeline.extraction.config import events_dir, preferences_export_path, sft_export_path
from hominem_pipeline.extraction.preferences import preference_pair_problems, sft_pair_problems
from hominem_pipeline.validation import read_jsonl


def _result(rows: list, problems: list[str]) -> dg.AssetCheckResult:
    return dg.AssetCheckResult(
        passed=not problems,
        metadata={
            "rows": len(rows),
            "problems": len(problems),
            "first_problems": dg.MetadataValue.json(problems[:10]),
        },
    )


@dg.asset_check(
    asset=preference_pairs, blocking=True, description="No empty text, no chosen == rejected, scores in range"
)
def preference_pairs_valid(hominem: HominemResource) -> dg.AssetCheckResult:
    rows = read_jsonl(preferences_export_path(hominem.settings()))
    return _result(rows, preference_pair_problems(rows))


@dg.asset_check(
    asset=sft_pairs, blocking=True, description="No empty text, no response == instruction, fields in range"
)
def sft_pairs_valid(hominem: HominemResource) -> dg.AssetCheckResult:
    rows = read_jsonl(sft_export_path(hominem.settings()))
    return _result(rows, sft_pair_problems(rows))


@dg.asset_check(
    asset=conversations,
    blocking=True,
    pool=STORE_POOL,  # it opens the store: beside a writing step it would fight for DuckDB's file lock
    description="Every complete event-log record is in the store (nothing lost)",
)
def conversations_nothing_lost(hominem: HominemResource) -> dg.AssetCheckResult:
    settings = hominem.settings()
    log = EventLog(events_dir(settings))
    with hominem.open_db() as db:
        days = [
            r["event_day"] for r in db.query("SELECT event_day FROM event_ingest_state ORDER BY event_day")
        ]
        missing: list[str] = []
        rejected = 0
        for day in days:
            read = log.read_day(day)
            rejected += len(read.rejected)
            ids = [e.event_id for e in read.events]
            stored = db.existing_ids("conversation_messages", "event_id", ids) | db.existing_ids(
                "feedback_events", "event_id", ids
            )
            missing.extend(f"{day}: {i}" for i in ids if i not in stored)
    return dg.AssetCheckResult(
        passed=not missing,
        metadata={
            "days": len(days),
            "missing": len(missing),
            "first_missing": dg.MetadataValue.json(missing[:10]),
            "rejected_lines": rejected,
        },
    )


CONVERSATION_CHECKS = [preference_pairs_valid, sft_pairs_valid, conversations_nothing_lost]
