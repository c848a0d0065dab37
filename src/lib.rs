//! ferry turns GitHub Deployments into SSH deploys.
//!
//! Data flows one way: webhook → store → runner → (ssh, logs) → outbox → GitHub.
//!
//! - [`config`]: the TOML file, a checker per section, key and line in every error.
//! - [`webhook`]: `POST /webhook`: the signed, typed delivery and its dispatch.
//! - [`store`]: durable state, a trait per noun; SQLite or PostgreSQL.
//! - [`runner`]: the scheduler, one deployment, the rescuer, SSH and steps.
//! - [`teardown`]: when review apps are torn down (the runner runs them).
//! - [`logs`]: per-deployment logs, their tokens and pages.
//! - [`github`]: statuses to GitHub (token or App) from the outbox, and the
//!   reconciler for deliveries that never came.
//! - [`daemon`]: `ferry serve`: wiring once, reload, orderly shutdown.
//! - [`cmd`]: the command line, one file per command.
//! - [`http`]: the routes, and the server with its timeouts.
//! - [`health`]: whether the store takes writes, for `/healthz`.
//! - [`known_hosts`]: the fingerprints `known_hosts` holds for a host.
//! - [`wording`]: every text GitHub or an operator reads for a state.
//! - [`service`]: systemd: readiness, watchdog, status, open files.
//! - [`error`]: errors as one line.
//! - [`format`]: durations, shas and counts as ferry writes them.
//! - [`current`]: the config and what is built from it, replaced on reload.
//! - [`metrics`]: Prometheus metric names and the exporter.
//! - [`freeze`]: freeze windows on the timeline, in their time zones.
//! - [`gate`]: deployments waiting for their sha's required checks.
//! - [`sign`] and [`glob`]: HMAC, and environment globs.
//! - [`backoff`]: growing pauses between tries.

pub mod backoff;
pub mod cmd;
pub mod config;
pub mod current;
pub mod daemon;
pub mod error;
pub mod format;
pub mod freeze;
pub mod gate;
pub mod github;
pub mod glob;
pub mod health;
pub mod http;
pub mod known_hosts;
pub mod logs;
pub mod metrics;
pub mod runner;
pub mod service;
pub mod sign;
pub mod store;
pub mod teardown;
pub mod webhook;
pub mod wording;
