-- The outbox's head lookups (the first pending status of one deployment)
-- must go through status_outbox_pending (deployment_id, seq). Any other
-- index whose predicate they imply is one the planner may walk instead,
-- in seq order, filtering on the deployment: it took status_outbox_pending_seq
-- whenever its statistics said few statuses were pending (a fresh table,
-- or one analyzed between bursts), and walked the whole backlog for every
-- head (4 to 10 ms a look at 20,000 pending, 2,000 buffers, the largest
-- share of PostgreSQL's time in a burst while deployments ran). The walk
-- in order now covers only the backlog's states, which the head lookups
-- do not name, so that index is not one they can use. Heads of other
-- states are found through status_outbox_urgent.
DROP INDEX status_outbox_pending_seq;
CREATE INDEX status_outbox_backlog ON status_outbox (seq)
    WHERE sent_at IS NULL AND failed_at IS NULL AND state IN ('queued', 'inactive');
