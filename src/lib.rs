//! ferry turns GitHub Deployments into SSH deploys.
//!
//! Data flows one way: webhook → store → runner → (ssh, logs) → outbox → GitHub.
//!
//! - [`config`]: the TOML file, validated with key and line in every error.
//! - [`webhook`]: `POST /webhook`: signature, event parsing, intake.
//! - [`store`]: durable state behind one interface; SQLite or PostgreSQL.
//! - [`runner`]: the scheduler and the SSH executor.
//! - [`teardown`]: when review apps are torn down (the runner runs them).
//! - [`logs`]: per-deployment logs, their tokens and pages.
//! - [`github`]: statuses to GitHub (token or App), sent from the outbox.
//! - [`daemon`]: `ferry serve`: wiring and orderly shutdown.
//! - [`cli`]: the other subcommands.
//! - [`http`]: the routes, and the server with its timeouts.
//! - [`health`]: whether the store takes writes, for `/healthz`.
//! - [`error`]: errors as one line.
//! - [`format`]: durations, shas and counts as ferry writes them.
//! - [`current`]: the config and what is built from it, replaced on reload.
//! - [`metrics`]: Prometheus metric names and the exporter.
//! - [`wording`]: texts GitHub and operators read for a state.

pub mod cli;
pub mod config;
pub mod control;
pub mod current;
pub mod daemon;
pub mod error;
pub mod format;
pub mod github;
pub mod glob;
pub mod health;
pub mod http;
pub mod logs;
pub mod metrics;
pub mod runner;
pub mod service;
pub mod sign;
pub mod store;
pub mod teardown;
pub mod webhook;
pub mod wording;
