-- ferry_accept: one intake batch, stored under its environments' locks.
-- The function lives here, in one file; the migration runner applies it
-- after the numbered migrations whenever this file's checksum differs from
-- the one the database recorded (ferry_functions), so a change to the rule
-- is a change to this file, not a fifth copy in a new migration.
--
-- Its history (migrations 0002, 0004, 0007, 0014):
-- A burst to one environment brings batches in which each deployment
-- supersedes the one before it. Those are now stored `inactive` at once,
-- with only their `inactive` status, as on SQLite. Inserted `queued`, each
-- was then updated (a new row version and an entry in every index of
-- deployments), given a `queued` status that the outbox only settled
-- unsent (another update), and an `inactive` one.
--
-- And a deployment claimed while its supersede is under way keeps running
-- (see `gone` below).
--
-- And the batch is one statement after the lock instead of seven. A batch
-- of one delivery took 0.8 ms, of sixteen 1.7 ms: most of a batch's time
-- was each statement's own start (plans of unnests, CTEs and subplans set
-- up and torn down), not its rows. One statement sees the database as it
-- was when it started: the deployments stored before the batch, which is
-- what the step that supersedes them needs.
--
-- A deployment stored before (another hook's delivery, `ferry deploy`'s
-- answer) supersedes nothing when it arrives again, so the verdicts within
-- the batch are taken among the deployments new to the store only. Under
-- the environment's lock nothing else stores deployments there, so those
-- found new are those the insert stores. Otherwise as in 0007: same
-- arguments, same answer.
CREATE OR REPLACE FUNCTION ferry_accept(
    now_ms           BIGINT,
    hook_ids         TEXT[],
    delivery_ids     TEXT[],
    ids              BIGINT[],
    repositories     TEXT[],
    environments     TEXT[],
    tasks            TEXT[],
    git_refs         TEXT[],
    shas             TEXT[],
    payloads         TEXT[],
    creators         TEXT[],
    productions      BOOLEAN[],
    transients       BOOLEAN[],
    installation_ids BIGINT[],
    descriptions     TEXT[],
    log_urls         TEXT[],
    environment_urls TEXT[],
    auto_inactives   BOOLEAN[],
    supersedes       BOOLEAN[],
    superseded_by    TEXT        -- the words before the superseding id
) RETURNS TABLE (n INTEGER, fresh BOOLEAN, inserted BOOLEAN, superseded BIGINT[])
LANGUAGE plpgsql
-- Nothing here may scan a table: each row it needs is found by a key or a
-- queued index. With statistics gathered before a burst the planner took
-- a scan of every deployment for the update below (3 ms at 20,000), the
-- queued ones being few then as now; its plans are cached once made.
SET enable_seqscan = off
AS $$
BEGIN
    -- Every environment of the batch, locked in one order on every replica
    -- so that two batches never wait on each other in a circle. A statement
    -- of its own: the one below must see what the last holder committed.
    PERFORM pg_advisory_xact_lock(k) FROM (
        SELECT DISTINCT hashtextextended(r || E'\n' || e, 0) AS k
        FROM unnest(repositories, environments) AS t (r, e) ORDER BY k) AS keys;

    RETURN QUERY
    WITH input AS MATERIALIZED (
        SELECT * FROM unnest(hook_ids, delivery_ids, ids, repositories, environments,
            tasks, git_refs, shas, payloads, creators, productions, transients,
            installation_ids, descriptions, log_urls, environment_urls, auto_inactives,
            supersedes)
            WITH ORDINALITY AS t (hook_id, delivery_id, id, repository, environment,
                task, git_ref, sha, payload, creator, production, transient,
                installation_id, description, log_url, environment_url, auto_inactive,
                supersede, i)),
    seen AS (
        INSERT INTO deliveries (hook_id, delivery_id, received_at, deployment_id)
        SELECT x.hook_id, x.delivery_id, now_ms, x.id FROM input x
        WHERE x.delivery_id <> '' ORDER BY x.i
        ON CONFLICT DO NOTHING
        RETURNING deliveries.hook_id, deliveries.delivery_id),
    -- Deliveries not seen before (of two alike in the batch, the first).
    fresh_ns AS MATERIALIZED (
        SELECT x.i FROM input x WHERE x.delivery_id = ''
        UNION ALL
        SELECT MIN(x.i) FROM seen
        JOIN input x ON x.hook_id = seen.hook_id AND x.delivery_id = seen.delivery_id
        GROUP BY x.hook_id, x.delivery_id),
    -- Of those, the first of each deployment new to the store: looked up
    -- by key, one probe each.
    new_ns AS MATERIALIZED (
        SELECT MIN(x.i) AS i FROM input x
        WHERE x.i IN (SELECT f.i FROM fresh_ns f)
          AND (SELECT d.id FROM deployments d WHERE d.id = x.id) IS NULL
        GROUP BY x.id),
    -- Each with the first later one of its environment that supersedes,
    -- if any: that one supersedes it, as one delivery after the other
    -- would. Teardown records (negative ids) are never superseded.
    batch AS MATERIALIZED (
        SELECT x.*, (SELECT l.id FROM input l
                     WHERE l.i IN (SELECT m.i FROM new_ns m) AND l.i > x.i AND l.supersede
                       AND l.repository = x.repository AND l.environment = x.environment
                       AND x.id >= 0
                     ORDER BY l.i LIMIT 1) AS beaten_by
        FROM input x WHERE x.i IN (SELECT m.i FROM new_ns m)),
    -- Inserted in delivery order, so `seq` is arrival order within the
    -- batch too.
    dep AS (
        INSERT INTO deployments (id, repository, environment, task, git_ref, sha,
            payload, creator, production, transient, installation_id, state,
            description, created_at, finished_at)
        SELECT b.id, b.repository, b.environment, b.task, b.git_ref, b.sha, b.payload,
            b.creator, b.production, b.transient, b.installation_id,
            CASE WHEN b.beaten_by IS NULL THEN 'queued' ELSE 'inactive' END,
            CASE WHEN b.beaten_by IS NULL THEN b.description
                 ELSE superseded_by || b.beaten_by END,
            now_ms, CASE WHEN b.beaten_by IS NULL THEN NULL ELSE now_ms END
        FROM batch b ORDER BY b.i
        ON CONFLICT (id) DO NOTHING
        RETURNING deployments.id),
    -- Those the insert stored: all of the batch's, under the lock.
    stored AS MATERIALIZED (
        SELECT b.* FROM batch b WHERE b.id IN (SELECT dep.id FROM dep)),
    -- The first status of each: `queued`, or `inactive` for those
    -- superseded within the batch.
    first_statuses AS (
        INSERT INTO status_outbox (deployment_id, state, description, log_url,
            environment_url, auto_inactive, created_at, next_attempt_at)
        SELECT b.id,
            CASE WHEN b.beaten_by IS NULL THEN 'queued' ELSE 'inactive' END,
            CASE WHEN b.beaten_by IS NULL THEN b.description
                 ELSE superseded_by || b.beaten_by END,
            CASE WHEN b.beaten_by IS NULL THEN b.log_url END,
            CASE WHEN b.beaten_by IS NULL THEN b.environment_url END,
            CASE WHEN b.beaten_by IS NULL THEN b.auto_inactive END,
            now_ms, now_ms
        FROM stored b ORDER BY b.i),
    -- Deployments stored before the batch and waiting in an environment
    -- that a new deployment with `supersede` came to are superseded by the
    -- first of those. Each environment's waiting ones are read through
    -- its queued index (see `SET enable_seqscan` above).
    victor AS (
        SELECT DISTINCT ON (b.repository, b.environment) b.repository, b.environment, b.id
        FROM stored b WHERE b.supersede
        ORDER BY b.repository, b.environment, b.i),
    verdict AS (
        SELECT w.id AS victim, v.id AS victor
        FROM victor v CROSS JOIN LATERAL (
            SELECT q.id FROM deployments q
            WHERE q.repository = v.repository AND q.environment = v.environment
              AND q.state = 'queued' AND q.id >= 0) AS w),
    -- `state = 'queued'` again here: a claim may have taken a victim's row
    -- since it was read, and the update then looks at the row as the
    -- claim left it. Without it (0002 to 0007) a deployment claimed in
    -- that moment was marked superseded while it ran, its statuses were
    -- refused as from a lost claim, and its environment ran the next one
    -- beside it.
    gone AS (
        UPDATE deployments d SET state = 'inactive', finished_at = now_ms,
            description = superseded_by || verdict.victor
        FROM verdict
        WHERE d.id = verdict.victim AND d.state = 'queued'
        RETURNING d.id, verdict.victor),
    gone_statuses AS (
        INSERT INTO status_outbox (deployment_id, state, description, created_at,
            next_attempt_at)
        SELECT g.id, 'inactive', superseded_by || g.victor, now_ms, now_ms
        FROM gone g ORDER BY g.id),
    -- Who superseded whom, before the batch and within it.
    beaten AS (
        SELECT g.id AS victim, g.victor FROM gone g
        UNION ALL
        SELECT b.id, b.beaten_by FROM stored b WHERE b.beaten_by IS NOT NULL)
    SELECT x.i::INTEGER,
        x.i IN (SELECT f.i FROM fresh_ns f),
        x.i IN (SELECT b.i FROM stored b),
        COALESCE((SELECT array_agg(z.victim ORDER BY z.victim) FROM beaten z
                  WHERE z.victor = x.id
                    AND x.i IN (SELECT b.i FROM stored b)), '{}')
    FROM input x
    ORDER BY x.i;
END
$$;
