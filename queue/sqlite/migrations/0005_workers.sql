-- The workers a distributor knows, so that a distributor that restarts (or a
-- standby that takes over) can still return the queue of a worker that died
-- meanwhile.
CREATE TABLE ferry_workers (
    control_queue TEXT   NOT NULL,
    worker_id     TEXT   NOT NULL,
    session       TEXT   NOT NULL,
    inbox         TEXT   NOT NULL,
    last_seen     BIGINT NOT NULL,
    PRIMARY KEY (control_queue, worker_id)
);
