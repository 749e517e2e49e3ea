-- How many handlers have started on a message since its last recorded
-- outcome. Only a message delivered again without an outcome (its process
-- died, or its lease ran out) is marked, just before its handler starts:
-- deliveries that only waited in a prefetch buffer do not count toward
-- poison.
ALTER TABLE ferry_messages ADD COLUMN started INTEGER NOT NULL DEFAULT 0;
