-- `ferry cancel ID --rollback`: the process running the deployment puts
-- back the hosts it changed once it has stopped it.
ALTER TABLE deployments ADD COLUMN cancel_rollback INTEGER NOT NULL DEFAULT 0;
