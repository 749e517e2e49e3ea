-- Fencing tokens: a lock's token grows each time it changes hands, and the
-- holder's moves check it in the same statement, so a holder that lost the
-- lock (frozen, cut off) can no longer act on it.
ALTER TABLE ferry_locks ADD COLUMN token BIGINT NOT NULL DEFAULT 0;
