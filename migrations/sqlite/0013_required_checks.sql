-- require_checks: a deployment that waits for its sha's checks before it
-- may run (checks_gate), and when ferry looks at them next.
ALTER TABLE deployments ADD COLUMN checks_gate INTEGER NOT NULL DEFAULT 0;
ALTER TABLE deployments ADD COLUMN checks_next_at INTEGER;
CREATE INDEX deployments_gated ON deployments (checks_next_at)
    WHERE checks_gate = 1 AND state = 'queued';
