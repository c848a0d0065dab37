-- A store migrated to 0008 before 0008 created store_info (it was added to
-- that migration a commit later) has no store_info, and the reconciler
-- stops at it. Give such a store one, begun with its first deployment.
CREATE TABLE IF NOT EXISTS store_info (
    created_at INTEGER NOT NULL  -- ms since the epoch
);
INSERT INTO store_info (created_at)
SELECT COALESCE(
    (SELECT MIN(created_at) FROM deployments),
    CAST((julianday('now') - 2440587.5) * 86400000 AS INTEGER))
WHERE NOT EXISTS (SELECT 1 FROM store_info);
