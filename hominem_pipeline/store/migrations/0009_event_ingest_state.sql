-- Per event-log day: how far ingestion got (bytes of complete lines), for metadata and for a torn tail.
CREATE TABLE event_ingest_state (
    event_day        DATE PRIMARY KEY,
    bytes_ingested   BIGINT NOT NULL,
    lines_ingested   BIGINT NOT NULL,
    torn_tail_bytes  BIGINT NOT NULL,
    updated_at       TIMESTAMP NOT NULL
);
