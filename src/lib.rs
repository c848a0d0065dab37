//! ferry turns GitHub Deployments into SSH deploys.
//!
//! Data flows one way: webhook → store → runner → (ssh, logs) → outbox → GitHub.
//!
//! - [`config`]: the TOML file, validated with key and line in every error.
//! - [`webhook`]: `POST /webhook`: signature, event parsing, intake.
//! - [`store`]: the durable queue (SQLite): deployments, deliveries, outbox.
//! - [`runner`]: the scheduler and the SSH executor.
//! - [`logs`]: per-deployment logs, their tokens and pages.
//! - [`github`]: statuses to GitHub (token or App), sent from the outbox.
//! - [`daemon`]: `ferry serve`: wiring and orderly shutdown.
//! - [`cli`]: the other subcommands.
//! - [`http`]: the routes.
//! - [`error`]: errors as one line.
//! - [`metrics`]: Prometheus metric names and the exporter.

pub mod cli;
pub mod config;
pub mod daemon;
pub mod error;
pub mod github;
pub mod glob;
pub mod http;
pub mod logs;
pub mod metrics;
pub mod runner;
pub mod service;
pub mod sign;
pub mod store;
pub mod webhook;
