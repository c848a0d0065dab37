-- require_checks: a deployment that waits for its sha's checks before it
-- may run (checks_gate), and when a replica looks at them next.
ALTER TABLE deployments ADD COLUMN checks_gate BOOLEAN NOT NULL DEFAULT false;
ALTER TABLE deployments ADD COLUMN checks_next_at BIGINT;
CREATE INDEX deployments_gated ON deployments (checks_next_at)
    WHERE checks_gate AND state = 'queued';
