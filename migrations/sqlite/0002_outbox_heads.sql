-- The sender walks pending statuses in order and stops after a few heads;
-- the next wake-up time is one index lookup. Both stay cheap however large
-- a backlog GitHub's rate limits build up.
CREATE INDEX status_outbox_pending_seq ON status_outbox (seq)
    WHERE sent_at IS NULL AND failed_at IS NULL;
CREATE INDEX status_outbox_pending_due ON status_outbox (next_attempt_at)
    WHERE sent_at IS NULL AND failed_at IS NULL;
