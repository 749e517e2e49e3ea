-- Every queue of a database lives in this one table; the queue column names it.
-- Times are microseconds since the Unix epoch, so both dialects share one code path.
CREATE TABLE ferry_messages (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    queue       TEXT    NOT NULL,
    message_id  TEXT    NOT NULL,
    type        TEXT    NOT NULL DEFAULT '',
    priority    INTEGER NOT NULL DEFAULT 0,
    visible_at  INTEGER NOT NULL,           -- deferral, retry delay and lease end in one column
    lease_token INTEGER NOT NULL DEFAULT 0, -- 0: not leased
    attempts    INTEGER NOT NULL DEFAULT 0, -- durable delivery count
    enqueued_at INTEGER NOT NULL,
    headers     TEXT    NOT NULL DEFAULT '{}',
    body        BLOB    NOT NULL
);

-- Receive walks a queue in priority order and filters on visibility.
CREATE INDEX ferry_messages_order ON ferry_messages (queue, priority DESC, id, visible_at);
