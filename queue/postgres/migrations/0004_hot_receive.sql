-- Receive and release change visible_at, lease_token and attempts only. With
-- none of them indexed (and room left on each page) PostgreSQL updates the
-- row in place (a HOT update) instead of adding index entries for every
-- lease. Receive still walks the index in priority order and reads
-- visible_at from the row it visits anyway.
DROP INDEX ferry_messages_order;
CREATE INDEX ferry_messages_order ON ferry_messages (queue, priority DESC, id);
ALTER TABLE ferry_messages SET (fillfactor = 70);
