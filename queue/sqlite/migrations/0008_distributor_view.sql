-- The distributor's view, for `ferry workers`: every distributor instance
-- of a control queue (active or standby) records itself every few seconds,
-- and the active one records the worker sessions it knows with their idle
-- threads and queue depths. Soft state: rewritten whole, never read back
-- by a distributor (ferry_workers keeps what a takeover needs).
CREATE TABLE ferry_distributors (
    control_queue    TEXT    NOT NULL,
    owner            TEXT    NOT NULL,
    name             TEXT    NOT NULL,
    host             TEXT    NOT NULL,
    pid              BIGINT  NOT NULL,
    active           INTEGER NOT NULL,
    interval_us      BIGINT  NOT NULL,
    reclaim_after_us BIGINT  NOT NULL,
    updated          BIGINT  NOT NULL,
    PRIMARY KEY (control_queue, owner)
);

CREATE TABLE ferry_worker_view (
    control_queue TEXT    NOT NULL,
    worker_id     TEXT    NOT NULL,
    session       TEXT    NOT NULL,
    inbox         TEXT    NOT NULL,
    threads       INTEGER NOT NULL,
    idle          INTEGER NOT NULL,
    last_seen     BIGINT  NOT NULL,
    depth         BIGINT  NOT NULL,
    stopping      INTEGER NOT NULL,
    updated       BIGINT  NOT NULL,
    PRIMARY KEY (control_queue, worker_id)
);
