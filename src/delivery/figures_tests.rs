use std::time::Duration;

use super::*;
use crate::store::DeploymentId;

const T0: i64 = 1_700_000_000_000;
const HOUR: i64 = 3_600_000;

fn ended(id: i64, state: State, end_h: f64, committed_h: Option<f64>) -> Ended {
    Ended {
        id: DeploymentId(id),
        repository: "octo-org/web".into(),
        environment: "production".into(),
        state,
        started_at: Some(at(end_h) - Duration::from_secs(60)),
        finished_at: at(end_h),
        cancelled: false,
        rollback: false,
        committed_at: committed_h.map(at),
    }
}

/// `hours` after T0.
fn at(hours: f64) -> Timestamp {
    Timestamp::from_millis(T0 + (hours * HOUR as f64) as i64)
}

/// Successes, a failure and an error that a success ended, a cancel in
/// between (neither a deployment nor a failure), a requested rollback and
/// one that rolled back by itself, commits with known times.
fn history() -> Vec<Ended> {
    let mut cancelled = ended(4, State::Error, 3.5, None);
    cancelled.cancelled = true;
    let mut requested = ended(6, State::Success, 6.0, None);
    requested.rollback = true;
    let mut automatic = ended(7, State::Failure, 7.0, Some(6.5));
    automatic.rollback = true;
    let mut other = ended(9, State::Error, 8.5, None);
    other.environment = "staging".into();
    other.cancelled = true;
    vec![
        ended(1, State::Success, 1.0, Some(0.0)),
        ended(2, State::Failure, 2.0, Some(1.5)),
        ended(3, State::Error, 3.0, None),
        cancelled,
        ended(5, State::Success, 5.0, Some(3.0)),
        requested,
        automatic,
        ended(8, State::Success, 8.0, Some(7.5)),
        other,
    ]
}

#[test]
fn a_scripted_history_gives_exact_figures() {
    let figures = compute(&history(), Duration::from_secs(10 * 86_400));
    assert_eq!(
        figures,
        vec![Figures {
            repository: "octo-org/web".into(),
            environment: "production".into(),
            deployments: 7,
            successes: 4,
            failures: 3,
            per_day: 0.4,
            // 1h, 2h, 30m (the rollback's commit time is unknown).
            lead_time_median_s: Some(3_600.0),
            change_failure_rate: Some(3.0 / 7.0),
            // 5h - 2h over the failure and error; 8h - 7h.
            recovery_median_s: Some(7_200.0),
            rollbacks: 2,
        }],
        "an environment with only a cancel has no row"
    );
}

#[test]
fn what_cannot_be_measured_is_none() {
    let only_failures = vec![
        ended(1, State::Failure, 1.0, Some(0.0)),
        ended(2, State::Error, 2.0, None),
    ];
    let f = &compute(&only_failures, Duration::from_secs(86_400))[0];
    assert_eq!((f.deployments, f.successes, f.failures), (2, 0, 2));
    assert_eq!(f.per_day, 0.0);
    assert_eq!(f.lead_time_median_s, None, "a failure has no lead time");
    assert_eq!(f.change_failure_rate, Some(1.0));
    assert_eq!(f.recovery_median_s, None, "not recovered yet");
    let json = serde_json::to_value(f).unwrap();
    assert!(json["lead_time_median_s"].is_null());
    assert!(json["recovery_median_s"].is_null());
    assert!(compute(&[], Duration::from_secs(86_400)).is_empty());
}

#[test]
fn an_even_count_takes_the_mean_of_the_middle_two() {
    let list = vec![
        ended(1, State::Success, 1.0, Some(0.0)),
        ended(2, State::Success, 3.0, Some(0.0)),
    ];
    let f = &compute(&list, Duration::from_secs(86_400))[0];
    assert_eq!(f.lead_time_median_s, Some(2.0 * 3_600.0));
    assert_eq!(f.per_day, 2.0);
}

#[test]
fn a_recovery_counts_from_the_first_failure_of_its_run() {
    // Newest first, as the store gives them; the cancel is skipped.
    let mut cancel = ended(4, State::Error, 4.0, None);
    cancel.cancelled = true;
    let before = vec![
        cancel,
        ended(3, State::Failure, 3.0, None),
        ended(2, State::Error, 2.0, None),
        ended(1, State::Success, 1.0, None),
    ];
    assert_eq!(recovered_from(&before), Some(at(2.0)));
    assert_eq!(recovered_from(&before[3..]), None, "after a success");
    assert_eq!(recovered_from(&[]), None, "the first deployment");
}
