//! DORA's figures over a window, as `ferry stats` prints them (the
//! definitions are the reference's, docs/reference.md "ferry stats").

use std::collections::BTreeMap;
use std::time::Duration;

use crate::store::{Ended, State, Timestamp};

/// One repository and environment's figures. `None`: undefined (no
/// deployment, no success with a known commit time, no recovery).
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Figures {
    pub repository: String,
    pub environment: String,
    /// Ran and ended: `success`, `failure`, or `error` other than a cancel.
    pub deployments: u64,
    pub successes: u64,
    /// `failure`, or `error` other than a cancel.
    pub failures: u64,
    /// Successes per day of the window.
    pub per_day: f64,
    pub lead_time_median_s: Option<f64>,
    /// failures / deployments.
    pub change_failure_rate: Option<f64>,
    pub recovery_median_s: Option<f64>,
    pub rollbacks: u64,
}

/// The figures of each repository and environment with deployments in
/// `ended` (which ended within `window`, oldest end first), sorted by
/// repository and environment.
pub fn compute(ended: &[Ended], window: Duration) -> Vec<Figures> {
    let mut by_env: BTreeMap<(&str, &str), Vec<&Ended>> = BTreeMap::new();
    for e in ended.iter().filter(|e| e.counts()) {
        by_env
            .entry((&e.repository, &e.environment))
            .or_default()
            .push(e);
    }
    let days = window.as_secs_f64() / 86_400.0;
    by_env
        .into_iter()
        .map(|((repository, environment), list)| {
            let deployments = list.len() as u64;
            let successes = list.iter().filter(|e| e.state == State::Success).count() as u64;
            let failures = list.iter().filter(|e| e.failed()).count() as u64;
            let leads: Vec<Duration> = list
                .iter()
                .filter(|e| e.state == State::Success)
                .filter_map(|e| e.committed_at.map(|c| e.finished_at - c))
                .collect();
            Figures {
                repository: repository.to_string(),
                environment: environment.to_string(),
                deployments,
                successes,
                failures,
                per_day: if days > 0.0 {
                    successes as f64 / days
                } else {
                    0.0
                },
                lead_time_median_s: median_seconds(leads),
                change_failure_rate: (deployments > 0)
                    .then(|| failures as f64 / deployments as f64),
                recovery_median_s: median_seconds(recoveries(&list)),
                rollbacks: list.iter().filter(|e| e.rollback).count() as u64,
            }
        })
        .collect()
}

/// For each run of consecutive failures that a success ended: that
/// success's end - the first failure's end (ms). `list`: one
/// environment's deployments, oldest end first, cancels left out.
fn recoveries(list: &[&Ended]) -> Vec<Duration> {
    let mut out = Vec::new();
    let mut first_failure = None;
    for e in list {
        if e.failed() {
            first_failure.get_or_insert(e.finished_at);
        } else if e.state == State::Success
            && let Some(first) = first_failure.take()
        {
            out.push(e.finished_at - first);
        }
    }
    out
}

/// The end of the first failure of the run of failures just before a
/// success; `before`: the deployments that ended before it, newest first.
/// None when the one before it was not a failure.
pub fn recovered_from(before: &[Ended]) -> Option<Timestamp> {
    before
        .iter()
        .filter(|e| e.counts())
        .take_while(|e| e.failed())
        .last()
        .map(|e| e.finished_at)
}

/// The median of `spans`, in seconds; the mean of the middle two for an
/// even count.
fn median_seconds(mut spans: Vec<Duration>) -> Option<f64> {
    if spans.is_empty() {
        return None;
    }
    spans.sort_unstable();
    let mid = spans.len() / 2;
    let ms = if spans.len() % 2 == 1 {
        spans[mid].as_millis() as f64
    } else {
        (spans[mid - 1] + spans[mid]).as_millis() as f64 / 2.0
    };
    Some(ms / 1000.0)
}

#[cfg(test)]
#[path = "figures_tests.rs"]
mod tests;
