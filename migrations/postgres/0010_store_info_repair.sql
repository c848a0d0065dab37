-- A store migrated to 0006 before 0006 created store_info (it was added to
-- that migration a commit later) has no store_info, and the reconciler
-- stops at it. Give such a store one, begun with its first deployment.
-- (Not CREATE TABLE IF NOT EXISTS: its notice would reach the journal.)
DO $$
BEGIN
    IF to_regclass('store_info') IS NULL THEN
        CREATE TABLE store_info (
            created_at BIGINT NOT NULL  -- ms since the epoch
        );
    END IF;
END
$$;
INSERT INTO store_info (created_at)
SELECT COALESCE(
    (SELECT MIN(created_at) FROM deployments),
    CAST(EXTRACT(EPOCH FROM clock_timestamp()) * 1000 AS BIGINT))
WHERE NOT EXISTS (SELECT 1 FROM store_info);
