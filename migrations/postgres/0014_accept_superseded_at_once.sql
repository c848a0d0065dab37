-- A burst to one environment brings batches where each deployment
-- supersedes the one before it. Those are now stored `inactive` at once,
-- with only their `inactive` status, as on SQLite: inserted `queued`, each
-- was then updated (a new row version and an entry in every index of
-- deployments), given a `queued` status that the outbox only settled
-- unsent (another update), and an `inactive` one; the supersede step was
-- the largest part of this function's time in a burst. Otherwise as in
-- 0007: same arguments, same answer.
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
LANGUAGE plpgsql AS $$
DECLARE
    fresh_ns    INTEGER[];  -- deliveries not seen before (first of the batch's)
    firsts      INTEGER[];  -- of those, the first of each deployment
    beaten_ns   INTEGER[];  -- deliveries superseded within the batch ...
    beaten_by   INTEGER[];  -- ... each by this one's deployment
    inserted_ns INTEGER[];  -- deliveries whose deployment is new
    new_ids     BIGINT[];   -- their deployments, with arrival order
    new_seqs    BIGINT[];
    victims     BIGINT[];   -- deployments superseded ...
    victors     BIGINT[];   -- ... each by this one
BEGIN
    -- Every environment of the batch, locked in one order on every replica
    -- so that two batches never wait on each other in a circle.
    PERFORM pg_advisory_xact_lock(k) FROM (
        SELECT DISTINCT hashtextextended(r || E'\n' || e, 0) AS k
        FROM unnest(repositories, environments) AS t (r, e) ORDER BY k) AS keys;

    WITH seen AS (
        INSERT INTO deliveries (hook_id, delivery_id, received_at, deployment_id)
        SELECT h, d, now_ms, id
        FROM unnest(hook_ids, delivery_ids, ids) WITH ORDINALITY AS t (h, d, id, i)
        WHERE d <> '' ORDER BY i
        ON CONFLICT DO NOTHING
        RETURNING hook_id, delivery_id)
    SELECT COALESCE(array_agg(i), '{}') INTO fresh_ns FROM (
        SELECT i::INTEGER FROM unnest(delivery_ids) WITH ORDINALITY AS t (d, i)
        WHERE d = ''
        UNION ALL
        SELECT MIN(t.i)::INTEGER
        FROM seen JOIN unnest(hook_ids, delivery_ids) WITH ORDINALITY AS t (h, d, i)
            ON t.h = seen.hook_id AND t.d = seen.delivery_id
        GROUP BY t.h, t.d) AS f;

    SELECT COALESCE(array_agg(i ORDER BY i), '{}') INTO firsts FROM (
        SELECT MIN(t.i)::INTEGER AS i FROM unnest(ids) WITH ORDINALITY AS t (id, i)
        WHERE t.i = ANY (fresh_ns) GROUP BY t.id) AS f;

    -- Within the batch, each deployment is superseded by the first one
    -- after it in its environment that supersedes (as the step below does
    -- for those stored before the batch).
    SELECT COALESCE(array_agg(i ORDER BY i), '{}'), COALESCE(array_agg(by ORDER BY i), '{}')
    INTO beaten_ns, beaten_by FROM (
        SELECT t.i, t.id, MIN(CASE WHEN t.supersede THEN t.i END) OVER (
                PARTITION BY t.repository, t.environment ORDER BY t.i
                ROWS BETWEEN 1 FOLLOWING AND UNBOUNDED FOLLOWING)::INTEGER AS by
        FROM unnest(ids, repositories, environments, supersedes) WITH ORDINALITY
            AS t (id, repository, environment, supersede, i)
        WHERE t.i = ANY (firsts)) AS f
    WHERE by IS NOT NULL AND id >= 0;

    -- Inserted in delivery order, so `seq` is arrival order within the
    -- batch too; of two deliveries of one deployment the first inserts it.
    WITH batch AS (
        SELECT t.*, b.by FROM unnest(ids, repositories, environments, tasks, git_refs, shas,
            payloads, creators, productions, transients, installation_ids, descriptions)
            WITH ORDINALITY AS t (id, repository, environment, task, git_ref, sha,
                payload, creator, production, transient, installation_id, description, i)
        LEFT JOIN unnest(beaten_ns, beaten_by) AS b (i, by) ON b.i = t.i
        WHERE t.i = ANY (firsts)),
    dep AS (
        INSERT INTO deployments (id, repository, environment, task, git_ref, sha,
            payload, creator, production, transient, installation_id, state,
            description, created_at, finished_at)
        SELECT id, repository, environment, task, git_ref, sha, payload, creator,
            production, transient, installation_id,
            CASE WHEN by IS NULL THEN 'queued' ELSE 'inactive' END,
            CASE WHEN by IS NULL THEN description ELSE superseded_by || ids[by] END,
            now_ms, CASE WHEN by IS NULL THEN NULL ELSE now_ms END
        FROM batch ORDER BY i
        ON CONFLICT (id) DO NOTHING
        RETURNING id, seq)
    SELECT COALESCE(array_agg(i ORDER BY i), '{}'), COALESCE(array_agg(id ORDER BY i), '{}'),
        COALESCE(array_agg(seq ORDER BY i), '{}')
    INTO inserted_ns, new_ids, new_seqs
    FROM (SELECT batch.i::INTEGER AS i, dep.id, dep.seq
          FROM dep JOIN batch ON batch.id = dep.id) AS f;

    -- A deployment of the batch was stored already (it came through
    -- another hook): the verdicts above counted it, so they are undone and
    -- the step below, which goes by what is stored, decides instead.
    IF cardinality(inserted_ns) < cardinality(firsts) AND cardinality(beaten_ns) > 0 THEN
        UPDATE deployments d SET state = 'queued', finished_at = NULL,
            description = descriptions[t.i]
        FROM unnest(beaten_ns) AS t (i)
        WHERE d.id = ids[t.i] AND t.i = ANY (inserted_ns);
        beaten_ns := '{}';
        beaten_by := '{}';
    END IF;

    -- The first status of each new deployment: `queued`, or `inactive`
    -- for those superseded within the batch.
    INSERT INTO status_outbox (deployment_id, state, description, log_url,
        environment_url, auto_inactive, created_at, next_attempt_at)
    SELECT id,
        CASE WHEN b.by IS NULL THEN 'queued' ELSE 'inactive' END,
        CASE WHEN b.by IS NULL THEN description ELSE superseded_by || ids[b.by] END,
        CASE WHEN b.by IS NULL THEN log_url END,
        CASE WHEN b.by IS NULL THEN environment_url END,
        CASE WHEN b.by IS NULL THEN auto_inactive END,
        now_ms, now_ms
    FROM unnest(ids, descriptions, log_urls, environment_urls, auto_inactives)
        WITH ORDINALITY AS t (id, description, log_url, environment_url, auto_inactive, i)
    LEFT JOIN unnest(beaten_ns, beaten_by) AS b (i, by) ON b.i = t.i
    WHERE t.i = ANY (inserted_ns) ORDER BY t.i;

    -- Each deployment waiting in an environment that a new deployment with
    -- `supersede` arrived in after it is superseded by the first of those.
    -- Written so that no plan can scan the deployments table: right after
    -- a burst its statistics say it is empty.
    WITH victor AS (
        SELECT n.id, n.seq, t.repository, t.environment
        FROM unnest(inserted_ns, new_ids, new_seqs) AS n (i, id, seq)
        JOIN unnest(repositories, environments, supersedes) WITH ORDINALITY
            AS t (repository, environment, supersede, i) ON t.i = n.i
        WHERE t.supersede),
    verdict AS (
        SELECT w.id AS victim,
            (SELECT v.id FROM victor v
             WHERE v.repository = w.repository AND v.environment = w.environment
               AND v.seq > w.seq
             ORDER BY v.seq LIMIT 1) AS victor
        FROM (SELECT DISTINCT repository, environment FROM victor) AS e
        CROSS JOIN LATERAL (
            SELECT id, seq, repository, environment FROM deployments
            WHERE repository = e.repository AND environment = e.environment
              AND state = 'queued' AND id >= 0) AS w),
    gone AS (
        UPDATE deployments d SET state = 'inactive', finished_at = now_ms,
            description = superseded_by || verdict.victor
        FROM verdict
        WHERE d.id = verdict.victim AND verdict.victor IS NOT NULL
        RETURNING d.id, verdict.victor)
    SELECT COALESCE(array_agg(id ORDER BY id), '{}'), COALESCE(array_agg(victor ORDER BY id), '{}')
    INTO victims, victors FROM gone;

    INSERT INTO status_outbox (deployment_id, state, description, created_at, next_attempt_at)
    SELECT v, 'inactive', superseded_by || w, now_ms, now_ms
    FROM unnest(victims, victors) AS t (v, w) ORDER BY v;

    -- Who superseded whom, within the batch and before it.
    victims := victims || ARRAY(SELECT ids[i] FROM unnest(beaten_ns) AS t (i));
    victors := victors || ARRAY(SELECT ids[by] FROM unnest(beaten_by) AS t (by));

    RETURN QUERY
    SELECT t.i::INTEGER, t.i = ANY (fresh_ns), t.i = ANY (inserted_ns),
        COALESCE((SELECT array_agg(v ORDER BY v) FROM unnest(victims, victors) AS g (v, w)
                  WHERE w = t.id AND t.i = ANY (inserted_ns)), '{}')
    FROM unnest(ids) WITH ORDINALITY AS t (id, i)
    ORDER BY t.i;
END
$$;
