-- `ferry cancel ID --rollback`: the replica running the deployment puts
-- back the hosts it changed once it has stopped it.
ALTER TABLE deployments ADD COLUMN cancel_rollback BOOLEAN NOT NULL DEFAULT false;
