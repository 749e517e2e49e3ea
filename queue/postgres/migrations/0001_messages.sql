-- Every queue of a database lives in this one table; the queue column names it.
-- Times are microseconds since the Unix epoch, so both dialects share one code path.
CREATE TABLE ferry_messages (
    id          BIGSERIAL PRIMARY KEY,
    queue       TEXT    NOT NULL,
    message_id  TEXT    NOT NULL,
    type        TEXT    NOT NULL DEFAULT '',
    priority    INTEGER NOT NULL DEFAULT 0,
    visible_at  BIGINT  NOT NULL,          -- deferral, retry delay and lease end in one column
    lease_token BIGINT  NOT NULL DEFAULT 0, -- 0: not leased
    attempts    INTEGER NOT NULL DEFAULT 0, -- durable delivery count
    enqueued_at BIGINT  NOT NULL,
    headers     TEXT    NOT NULL DEFAULT '{}',
    body        BYTEA   NOT NULL
);

-- Receive walks a queue in priority order and filters on visibility.
CREATE INDEX ferry_messages_order ON ferry_messages (queue, priority DESC, id) INCLUDE (visible_at);
