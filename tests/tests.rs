//! ferry's integration tests, one binary (ripgrep's layout): each module
//! is one concern, driving the real `ferry` binary against a real sshd, a
//! real PostgreSQL and a fake GitHub from `ferry-testkit` (`testkit/`).
//! Tests that run on both stores use `backends!`.
//!
//! `cargo test --test tests incident::` runs one module; the live systemd
//! test is `#[ignore]`d here and run by `.ci/run` on its own.

mod auto_deploy;
mod browser;
mod checks;
mod dashboard;
mod dashboard_picture;
mod delivery;
mod deploy_cli;
mod first_hour;
mod fleet;
mod freeze;
mod incident;
mod intake;
mod local_hosts;
mod lock_for;
mod log_page;
mod log_storage;
mod metrics;
mod notifications;
mod operator_view;
mod pr_commands;
mod protection;
mod queue;
mod reconcile;
mod replicas;
mod required_checks;
mod rollback;
mod service;
mod statuses;
mod statuses_once;
mod steering;
mod store;
mod systemd_live;
mod teardown;
mod walking_skeleton;
