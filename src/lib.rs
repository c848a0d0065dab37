//! ferry turns GitHub Deployments into SSH deploys.
//!
//! Data flows one way: webhook → store → runner → (ssh, logs) → outbox → GitHub.
//!
//! - `config`: the TOML file, a checker per section, key and line in every error.
//! - `webhook`: `POST /webhook`: the signed, typed delivery and its dispatch.
//! - `store`: durable state, a trait per noun; SQLite or PostgreSQL.
//! - `runner`: the scheduler, one deployment, the rescuer, SSH and steps.
//! - `admission`: whether a deployment may run now: freeze windows,
//!   required checks, review apps' teardowns.
//! - `logs`: per-deployment logs, their tokens and pages.
//! - `auto_deploy`: deployments ferry starts itself: a branch's green head,
//!   a promotion after a soak.
//! - `commands`: `.deploy` and the other commands in pull request comments.
//! - `protection`: GitHub Actions runs gated by locks and freezes
//!   (deployment protection rules).
//! - `notify`: the `[[notify]]` sinks (webhooks, Slack), fed by the event stream.
//! - `github`: statuses to GitHub (token or App) from the outbox, and the
//!   reconciler for deliveries that never came.
//! - `daemon`: `ferry serve`: wiring once, reload, orderly shutdown.
//! - `cmd`: the command line, one file per command.
//! - `http`: the routes, and the server with its timeouts.
//! - `health`: whether the store takes writes, for `/healthz`.
//! - `known_hosts`: the fingerprints `known_hosts` holds for a host.
//! - `wording`: every text GitHub or an operator reads for a state.
//! - `service`: systemd: readiness, watchdog, status, open files.
//! - `error`: errors as one line.
//! - `format`: durations, shas and counts as ferry writes them.
//! - `cursor`: one consumer's cursor on the event stream (promotions,
//!   pull request replies).
//! - `current`: the config and what is built from it, replaced on reload.
//! - `metrics`: Prometheus metric names and the exporter.
//! - `sign` and `glob`: HMAC, and environment globs.
//!
//! Only the modules the binary, the tests and the benchmarks use are
//! public (`cmd`, `config`, `daemon`, `logs`, `sign`, `store`, `wording`);
//! the rest are the crate's own.
//! - `backoff`: growing pauses between tries.

pub(crate) mod admission;
pub(crate) mod auto_deploy;
pub(crate) mod backoff;
pub mod cmd;
pub(crate) mod commands;
pub mod config;
pub(crate) mod current;
pub(crate) mod cursor;
pub mod daemon;
pub(crate) mod delivery;
pub(crate) mod error;
pub(crate) mod format;
pub(crate) mod github;
pub(crate) mod glob;
pub(crate) mod health;
pub(crate) mod http;
pub(crate) mod known_hosts;
pub mod logs;
pub(crate) mod metrics;
pub(crate) mod notify;
pub(crate) mod protection;
pub(crate) mod runner;
pub(crate) mod service;
pub mod sign;
pub mod store;
pub(crate) mod sync;
pub(crate) mod user;
pub(crate) mod webhook;
pub mod wording;
