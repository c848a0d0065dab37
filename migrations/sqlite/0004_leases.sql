-- A running deployment is leased to one process under an attempt number:
-- the lease says who runs it and until when, the attempt fences writes
-- from a process that lost it. Rows from before have no lease: expired.
ALTER TABLE deployments ADD COLUMN attempt INTEGER NOT NULL DEFAULT 0;
ALTER TABLE deployments ADD COLUMN owner TEXT;
ALTER TABLE deployments ADD COLUMN lease_until INTEGER;  -- unix ms
