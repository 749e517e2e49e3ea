-- Which queues receive published messages of a type.
CREATE TABLE ferry_subscriptions (
    message_type TEXT   NOT NULL,
    queue_uri    TEXT   NOT NULL,
    created_at   BIGINT NOT NULL,
    PRIMARY KEY (message_type, queue_uri)
);

-- Message ids an endpoint has handled, for idempotent receive.
CREATE TABLE ferry_handled (
    endpoint   TEXT   NOT NULL,
    message_id TEXT   NOT NULL,
    handled_at BIGINT NOT NULL,
    PRIMARY KEY (endpoint, message_id)
);
CREATE INDEX ferry_handled_at ON ferry_handled (handled_at);
