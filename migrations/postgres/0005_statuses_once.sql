-- The deployments with a pending status other than `queued` / `inactive`
-- (running, or just finished): their statuses go before a backlog of
-- `queued` and `inactive` ones. Few rows, however long the backlog.
CREATE INDEX status_outbox_urgent ON status_outbox (deployment_id)
    WHERE sent_at IS NULL AND failed_at IS NULL AND state NOT IN ('queued', 'inactive');

-- Set when a status is handed out to be posted, cleared once GitHub's
-- answer is recorded. One still set when the status is handed out again
-- was sent without a recorded answer (a crash, a timeout, a drain at
-- shutdown): GitHub is asked whether it took it before it is posted again.
ALTER TABLE status_outbox ADD COLUMN tried_at BIGINT;
