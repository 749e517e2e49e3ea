-- Named locks held under a lease: one distributor per control inbox.
CREATE TABLE ferry_locks (
    name       TEXT   PRIMARY KEY,
    owner      TEXT   NOT NULL,
    expires_at BIGINT NOT NULL
);
