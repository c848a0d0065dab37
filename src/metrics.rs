//! Prometheus metrics: names in one place, rendered at `GET /metrics`.

use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

/// Webhook deliveries, by `event` and `result`.
pub const DELIVERIES: &str = "ferry_webhook_deliveries_total";
/// Deployments that reached a final state, by `state`.
pub const DEPLOYMENTS: &str = "ferry_deployments_total";
/// Teardowns that reached a final state, by `state`.
pub const TEARDOWNS: &str = "ferry_teardowns_total";
/// Delivery metrics (`src/delivery/`), by `repository` and `environment`
/// as their target names them: deployments that ended, by `state`
/// (GitHub's, or `cancelled`) ...
pub const FINISHED: &str = "ferry_deployments_finished_total";
/// ... the wall time of those that ran ...
pub const DEPLOYMENT_SECONDS: &str = "ferry_deployment_duration_seconds";
/// ... a success's end - its commit's time ...
pub const LEAD_TIME_SECONDS: &str = "ferry_lead_time_seconds";
/// ... and a success's end - the end of the first failure it recovered from.
pub const RECOVERY_SECONDS: &str = "ferry_recovery_seconds";
pub const QUEUED: &str = "ferry_deployments_queued";
pub const RUNNING: &str = "ferry_deployments_running";
pub const LOCKED: &str = "ferry_environments_locked";
/// Deployments cancelled with `ferry cancel`, waiting or running: a
/// counter set from the store's count (every replica reports the same).
pub const CANCELLED: &str = "ferry_deployments_cancelled_total";
/// Statuses GitHub does not have yet, and the age of the oldest (counted
/// in the store: every replica reports the same).
pub const STATUSES_PENDING: &str = "ferry_statuses_pending";
pub const STATUSES_OLDEST_PENDING: &str = "ferry_statuses_oldest_pending_seconds";
/// Times the runner looked for work (each look claims all it may).
pub const RUNNER_ROUNDS: &str = "ferry_runner_rounds_total";
/// Status posts to GitHub, by `result`: sent, retried, failed.
pub const STATUS_POSTS: &str = "ferry_status_posts_total";
/// Tries to notify a sink, by `sink` and `result`: delivered, retried,
/// given_up.
pub const NOTIFICATIONS: &str = "ferry_notifications_total";
/// Notifications not yet delivered or given up, by `sink` (counted in the
/// store: every replica reports the same).
pub const NOTIFICATIONS_PENDING: &str = "ferry_notifications_pending";
/// GitHub Actions runs waiting at ferry's deployment protection rule.
pub const PROTECTION_WAITING: &str = "ferry_protection_runs_waiting";
/// Answers to protection rules, by `result` (`approved`, `reported`, `gone`).
pub const PROTECTION_ANSWERS: &str = "ferry_protection_answers_total";
pub const SSH_CONNECT_SECONDS: &str = "ferry_ssh_connect_seconds";
pub const SSH_CONNECT_FAILURES: &str = "ferry_ssh_connect_failures_total";
pub const SSH_CONNECTIONS_REUSED: &str = "ferry_ssh_connections_reused_total";

/// 1m, 5m, 15m, 30m, 1h, 2h, 4h, 8h, 1d, 2d, 1w, 30d.
const MINUTES_TO_DAYS: &[f64] = &[
    60.0, 300.0, 900.0, 1800.0, 3600.0, 7200.0, 14400.0, 28800.0, 86400.0, 172800.0, 604800.0,
    2592000.0,
];

/// Installs the process-wide recorder; `serve` calls it once.
pub fn install() -> anyhow::Result<PrometheusHandle> {
    let handle = PrometheusBuilder::new()
        .set_buckets_for_metric(
            Matcher::Full(DEPLOYMENT_SECONDS.into()),
            &[
                1.0, 5.0, 15.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1800.0, 3600.0, 7200.0,
            ],
        )?
        // Minutes to days: a hotfix's lead time to a month-old branch's.
        .set_buckets_for_metric(Matcher::Full(LEAD_TIME_SECONDS.into()), MINUTES_TO_DAYS)?
        .set_buckets_for_metric(Matcher::Full(RECOVERY_SECONDS.into()), MINUTES_TO_DAYS)?
        .set_buckets_for_metric(
            Matcher::Full(SSH_CONNECT_SECONDS.into()),
            &[0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0],
        )?
        .install_recorder()?;
    describe();
    Ok(handle)
}

fn describe() {
    describe_deployments();
    describe_operations();
}

/// Intake and what deployments came to (the delivery metrics).
fn describe_deployments() {
    use metrics::{describe_counter, describe_histogram};
    describe_counter!(
        DELIVERIES,
        "Webhook deliveries received, by event and result."
    );
    describe_counter!(
        DEPLOYMENTS,
        "Deployments that reached a final state, by state."
    );
    describe_counter!(
        FINISHED,
        "Deployments that ended, by repository, environment (as their target names them) and state (success, failure, error, cancelled)."
    );
    describe_histogram!(
        DEPLOYMENT_SECONDS,
        metrics::Unit::Seconds,
        "Duration of deployments that ran, by repository and environment."
    );
    describe_histogram!(
        LEAD_TIME_SECONDS,
        metrics::Unit::Seconds,
        "Change lead time: a successful deployment's end - its commit's committer date, by repository and environment."
    );
    describe_histogram!(
        RECOVERY_SECONDS,
        metrics::Unit::Seconds,
        "Failed deployment recovery time: a success's end - the end of the first of the failures it ended, by repository and environment."
    );
    describe_counter!(
        TEARDOWNS,
        "Teardowns of environments that ended, by final state."
    );
}

/// The queue, the outbox, notifications, protection rules, SSH.
fn describe_operations() {
    use metrics::{describe_counter, describe_gauge, describe_histogram};
    describe_gauge!(QUEUED, "Deployments waiting to run.");
    describe_counter!(
        NOTIFICATIONS,
        "Tries to notify a [[notify]] sink, by sink and result (delivered, retried, given_up)."
    );
    describe_gauge!(
        NOTIFICATIONS_PENDING,
        "Notifications not yet delivered or given up, by sink (counted in the store: every replica reports the same)."
    );
    describe_gauge!(RUNNING, "Deployments running now.");
    describe_gauge!(LOCKED, "Environments locked (ferry lock, deploy:lock).");
    describe_counter!(
        CANCELLED,
        "Deployments cancelled with ferry cancel, waiting or running (counted in the store: every replica reports the same)."
    );
    describe_counter!(
        RUNNER_ROUNDS,
        "Times the runner looked for deployments to start; a runner that stops counting is wedged."
    );
    describe_gauge!(
        PROTECTION_WAITING,
        "GitHub Actions runs waiting at ferry's deployment protection rule for their environment to be free."
    );
    describe_counter!(
        PROTECTION_ANSWERS,
        "Answers to deployment protection rules, by result: approved, reported (why it waits), gone."
    );
    describe_gauge!(
        STATUSES_PENDING,
        "Deployment statuses waiting to reach GitHub (counted in the store)."
    );
    describe_gauge!(
        STATUSES_OLDEST_PENDING,
        metrics::Unit::Seconds,
        "Age of the oldest status waiting to reach GitHub; 0 when none waits. Alert on it: GitHub out of reach."
    );
    describe_counter!(
        STATUS_POSTS,
        "Deployment status posts to GitHub, by result."
    );
    describe_histogram!(
        SSH_CONNECT_SECONDS,
        metrics::Unit::Seconds,
        "Time to open an SSH connection."
    );
    describe_counter!(
        SSH_CONNECT_FAILURES,
        "SSH connections that could not be opened."
    );
    describe_counter!(
        SSH_CONNECTIONS_REUSED,
        "Deployments that started on a connection left open by an earlier one (ssh.idle_timeout)."
    );
}

pub fn delivery(event: &str, result: &'static str) {
    // Unknown event names are folded so a sender cannot grow the label set.
    let event = match event {
        "ping" | "deployment" | "deployment_status" => event.to_string(),
        _ => "other".to_string(),
    };
    metrics::counter!(DELIVERIES, "event" => event, "result" => result).increment(1);
}
