-- PostgreSQL's migration 0004 makes leases HOT updates; SQLite has no such
-- thing, and keeps its index. A no-op, so both dialects share versions.
SELECT 1;
