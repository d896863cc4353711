"""Conversation assets: the event log ingested per day, teacher labels per day, and the two channels'
training data (SFT pairs, preference pairs) with their JSONL exports. Thin: each calls one function of
`hominem_pipeline.extraction.channels` and reports what it did."""

from datetime import date

import dagster as dg

from hominem_pipeline.defs.resources import STORE_POOL, HominemResource, TeacherResource
from hominem_pipeline.extraction import channels

GROUP = "conversations"

# Today is a partition (end_offset=1): the chat server's events land in today's file.
daily = dg.DailyPartitionsDefinition(start_date="2026-01-01", end_offset=1)


def _days(context: dg.AssetExecutionContext) -> list[date]:
    return [date.fromisoformat(k) for k in context.partition_keys]


class ConversationLabelsConfig(dg.Config):
    force: bool = False  # re-rate turns that already have a label


class SFTPairsConfig(dg.Config):
    include_introspection: bool | None = None  # None: config/conversations.toml [extraction]


@dg.asset(
    group_name=GROUP,
    pool=STORE_POOL,
    partitions_def=daily,
    backfill_policy=dg.BackfillPolicy.single_run(),
    description="One day of the event log (data/events/YYYY-MM-DD.jsonl) ingested into DuckDB, idempotently by event id",
)
def conversations(context: dg.AssetExecutionContext, hominem: HominemResource) -> dg.MaterializeResult:
    results = channels.ingest_days(hominem.settings(), _days(context))
    for r in results:
        for bad in r.rejected[:5]:
            context.log.warning(f"{r.day}: line {bad.line_no} rejected: {bad.reason}")
    return dg.MaterializeResult(
        metadata={
            "days": len(results),
            "messages_in_log": sum(r.messages_in_file for r in results),
            "feedback_in_log": sum(r.feedback_in_file for r in results),
            "new_messages": sum(r.new_messages for r in results),
            "new_feedback": sum(r.new_feedback for r in results),
            "already_stored": sum(r.already_stored for r in results),
            "conversations": sum(r.conversations for r in results),
            "torn_tail_bytes": sum(r.torn_tail_bytes for r in results),
            "rejected_lines": sum(len(r.rejected) for r in results),
            "event_log": dg.MetadataValue.path(str(channels.events_dir(hominem.settings()))),
        },
        data_version=dg.DataVersion("-".join(r.digest or "empty" for r in results)),
    )


@dg.asset(
    group_name=GROUP,
    pool=STORE_POOL,
    partitions_def=daily,
    backfill_policy=dg.BackfillPolicy.single_run(),
    deps=[conversations],
    description="Teacher ratings of the day's assistant turns (reward manifold + emotion axes) beside the user's emoji labels",
)
def conversation_labels(
    context: dg.AssetExecutionContext,
    config: ConversationLabelsConfig,
    hominem: HominemResource,
    teacher: TeacherResource,
) -> dg.MaterializeResult:
    done = channels.label_days(hominem.settings(), _days(context), teacher.build(), force=config.force)
    for d in done:
        for reason in d.run.failure_reasons[:5]:
            context.log.warning(f"{d.day}: teacher failed to rate {reason}")
    total = lambda attr: sum(sum(getattr(d.run, attr).values()) for d in done)  # noqa: E731
    return dg.MaterializeResult(
        metadata={
            "assistant_turns": sum(d.run.assistant_turns for d in done),
            "rated_now": total("rated"),
            "reused": total("reused"),
            "failures": total("failures"),
            "deferred_to_next_run": sum(d.run.deferred for d in done),
            "export": dg.MetadataValue.path(str(done[-1].export)) if done else "",
        },
        data_version=dg.DataVersion("-".join(d.digest for d in done)),
    )


@dg.asset(
    group_name=GROUP,
    pool=STORE_POOL,
    deps=[conversations, conversation_labels],
    description="Memory-channel SFT pairs (seed 002 rules + knowledge updates) -> data/sft/sft_training.jsonl",
)
def sft_pairs(
    context: dg.AssetExecutionContext,
    config: SFTPairsConfig,
    hominem: HominemResource,
    teacher: TeacherResource,
) -> dg.MaterializeResult:
    built = channels.build_sft_pairs(hominem.settings(), teacher.build, config.include_introspection)
    k = built.knowledge
    for reason in (k.failure_reasons if k else [])[:5]:
        context.log.warning(f"knowledge update failed: {reason}")
    return dg.MaterializeResult(
        metadata={
            "count": built.exported,
            "by_source": dg.MetadataValue.json(built.by_source),
            **{f"extraction_{key}": v for key, v in built.extraction.summary().items() if isinstance(v, int)},
            "draft_ranking": dg.MetadataValue.json(built.extraction.stats.ranked_by),
            "intensity_source": built.intensity_source,
            "knowledge_method": built.knowledge_method,
            "knowledge_pairs_stored": k.pairs_stored if k else 0,
            "knowledge_failures": k.failures if k else 0,
            "superseded_by_corrections": built.superseded,
            "export": dg.MetadataValue.path(str(built.export)),
        },
        data_version=dg.DataVersion(built.digest),
    )


@dg.asset(
    group_name=GROUP,
    pool=STORE_POOL,
    deps=["reward_labels", conversation_labels],
    description="Reward-channel preference pairs (teacher candidates, user feedback, imports) -> data/preferences/preferences.jsonl",
)
def preference_pairs(context: dg.AssetExecutionContext, hominem: HominemResource) -> dg.MaterializeResult:
    built = channels.build_preferences(hominem.settings())
    return dg.MaterializeResult(
        metadata={
            "count": built.exported,
            "by_source": dg.MetadataValue.json(built.by_source),
            "skipped": dg.MetadataValue.json(built.skipped),
            "with_intensity_and_safety": built.scored,
            "export": dg.MetadataValue.path(str(built.export)),
        },
        data_version=dg.DataVersion(built.digest),
    )


CONVERSATION_ASSETS = [conversations, conversation_labels, sft_pairs, preference_pairs]
