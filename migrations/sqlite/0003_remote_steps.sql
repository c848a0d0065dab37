-- Steps running now, with what it takes to end them if ferry dies: after a
-- restart, each interrupted step's process group is killed on its host,
-- unless the host rebooted since (its boot id differs), so that nothing of
-- it overlaps the next deployment and no recycled process id is hit.
CREATE TABLE remote_steps (
    deployment_id INTEGER NOT NULL REFERENCES deployments (id),
    host          TEXT    NOT NULL,  -- as in the config: [user@]name[:port]
    pgid          INTEGER NOT NULL,
    boot_id       TEXT    NOT NULL,
    PRIMARY KEY (deployment_id, host)
) WITHOUT ROWID;
