//! The store's contract, run against both backends: each test is written
//! once against [`ferry::store::Store`] and instantiated for SQLite and for
//! PostgreSQL (a real server, see `common::postgres`).

mod common;

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use ferry::store::postgres::PgStore;
use ferry::store::sqlite::SqliteStore;
use ferry::store::*;

/// Opens the backend's database; again on each call, so a test can see
/// what survives a reopen.
type Open = Box<dyn Fn() -> Pin<Box<dyn Future<Output = SharedStore>>>>;

struct Backend {
    open: Open,
    /// Keeps the SQLite directory alive for the test.
    _dir: Option<tempfile::TempDir>,
}

fn sqlite() -> Backend {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().to_path_buf();
    Backend {
        open: Box::new(move || {
            let path = path.clone();
            Box::pin(
                async move { Arc::new(SqliteStore::open(&path).await.unwrap()) as SharedStore },
            )
        }),
        _dir: Some(dir),
    }
}

fn postgres() -> Backend {
    let url = common::postgres::cluster().database();
    Backend {
        open: Box::new(move || {
            let url = url.clone();
            Box::pin(async move { Arc::new(PgStore::connect(&url).await.unwrap()) as SharedStore })
        }),
        _dir: None,
    }
}

/// `conformance!(name)` runs `async fn name(b: Backend)` on each backend.
macro_rules! conformance {
    ($($name:ident),* $(,)?) => {
        mod on_sqlite {
            $(
                #[tokio::test(flavor = "multi_thread")]
                async fn $name() {
                    super::$name(super::sqlite()).await
                }
            )*
        }
        mod on_postgres {
            $(
                #[tokio::test(flavor = "multi_thread")]
                async fn $name() {
                    super::$name(super::postgres()).await
                }
            )*
        }
    };
}

conformance!(
    duplicates_never_make_a_second_deployment,
    one_deployment_per_environment_runs_at_a_time,
    claims_follow_arrival_order_within_an_environment,
    outbox_sends_in_order_per_deployment_and_survives_reopen,
    a_newer_deployment_supersedes_waiting_ones_only,
    each_superseded_deployment_names_one_that_arrived_after_it,
    concurrent_deliveries_are_each_answered_correctly,
    a_burst_with_repeats_ends_as_one_delivery_at_a_time_would,
    concurrent_claims_never_run_an_environment_twice,
    deliveries_without_an_id_are_told_apart_by_deployment_only,
    remote_steps_are_remembered_until_forgotten,
    finished_deployments_are_listed_newest_first,
    a_closed_store_refuses_work,
    a_process_that_lost_its_claim_writes_nothing_more,
    expired_leases_are_rescued_and_renewed_ones_are_not,
    each_status_is_handed_to_one_replica_at_a_time,
    a_locked_environment_is_claimed_only_after_its_unlock,
    cancel_ends_a_waiting_deployment_and_flags_a_running_one,
    lock_tasks_change_the_lock_once_and_are_stored_finished,
    a_teardown_takes_the_environments_turn_and_inactivates_what_came_before,
    teardowns_of_transient_environments_follow_their_cause,
    statuses_in_doubt_superseded_and_urgent_are_marked,
);

async fn statuses_in_doubt_superseded_and_urgent_are_marked(b: Backend) {
    let store = (b.open)().await;
    let now = now_ms();
    // 1 runs; 2 and 3 wait, 3 supersedes 2.
    accept(&store, 1, "p", true).await;
    let one = store.claim_next(&me()).await.unwrap().unwrap();
    accept(&store, 2, "p", true).await;
    accept(&store, 3, "p", true).await;
    let due = store.due_statuses(now_ms(), 10).await.unwrap();
    let by_id = |id: i64| {
        due.iter()
            .find(|i| i.deployment_id.0 == id)
            .unwrap()
            .clone()
    };
    assert!(!by_id(1).superseded && !by_id(3).superseded);
    assert!(
        by_id(2).superseded,
        "a queued status of a superseded deployment"
    );
    assert!(due.iter().all(|i| !i.in_doubt));

    // 1's queued handed out and never answered: in doubt next time.
    let q1 = by_id(1);
    store
        .record_posts(&[
            (q1.seq, PostOutcome::Trying),
            (by_id(2).seq, PostOutcome::Coalesced),
        ])
        .await
        .unwrap();
    let due = store.due_statuses(now_ms(), 10).await.unwrap();
    let again = due.iter().find(|i| i.seq == q1.seq).unwrap();
    assert!(again.in_doubt);
    // 2's queued is settled: its head is now its inactive.
    let two = due.iter().find(|i| i.deployment_id.0 == 2).unwrap();
    assert_eq!(two.status.state, StatusState::Inactive);
    // A definite answer clears the doubt; an unanswered post keeps it.
    store
        .record_posts(&[(
            q1.seq,
            PostOutcome::RetryAt {
                at: now,
                error: "500".into(),
            },
        )])
        .await
        .unwrap();
    let due = store.due_statuses(now_ms(), 10).await.unwrap();
    assert!(!due.iter().find(|i| i.seq == q1.seq).unwrap().in_doubt);
    store
        .record_posts(&[
            (q1.seq, PostOutcome::Trying),
            (
                q1.seq,
                PostOutcome::Unanswered {
                    at: now,
                    error: "timeout".into(),
                },
            ),
        ])
        .await
        .unwrap();
    let due = store.due_statuses(now_ms(), 10).await.unwrap();
    assert!(due.iter().find(|i| i.seq == q1.seq).unwrap().in_doubt);
    store
        .record_posts(&[(q1.seq, PostOutcome::Confirmed)])
        .await
        .unwrap();

    // 1 finishes: its success comes first even with room for one only.
    succeed(&store, one.claim()).await;
    let due = store.due_statuses(now_ms(), 1).await.unwrap();
    assert_eq!(due.len(), 1);
    assert_eq!(due[0].deployment_id, DeploymentId(1));
    assert_eq!(due[0].status.state, StatusState::Success);
}

async fn a_teardown_takes_the_environments_turn_and_inactivates_what_came_before(b: Backend) {
    let store = (b.open)().await;
    let operator = TeardownCause::Operator("alice".into());
    assert!(matches!(
        store.queue_teardown("o/r", "p", &operator).await.unwrap(),
        TeardownQueued::NoDeployment
    ));
    accept(&store, 1, "p", true).await;
    let one = store.claim_next(&me()).await.unwrap().unwrap();
    succeed(&store, one.claim()).await;
    accept(&store, 2, "p", true).await;
    let two = store.claim_next(&me()).await.unwrap().unwrap();
    accept(&store, 3, "p", true).await;

    let TeardownQueued::Queued {
        teardown,
        superseded,
    } = store.queue_teardown("o/r", "p", &operator).await.unwrap()
    else {
        panic!("not queued");
    };
    assert!(teardown.id.is_teardown());
    assert_eq!(teardown.teardown_of, Some(DeploymentId(3)));
    assert_eq!(superseded, [DeploymentId(3)]);
    assert!(matches!(
        store.queue_teardown("o/r", "p", &operator).await.unwrap(),
        TeardownQueued::Already(t) if t.id == teardown.id
    ));
    // A deployment after it waits behind it, and does not supersede it.
    assert_eq!(accept(&store, 4, "p", true).await, new());
    assert!(store.claim_next(&me()).await.unwrap().is_none());
    succeed(&store, two.claim()).await;
    let running = store.claim_next(&me()).await.unwrap().unwrap();
    assert_eq!(running.id, teardown.id);
    assert!(store.claim_next(&me()).await.unwrap().is_none());

    let gone = store
        .finish_teardown(running.claim(), State::Success, "Torn down")
        .await
        .unwrap();
    assert_eq!(gone, Some(vec![DeploymentId(1), DeploymentId(2)]));
    assert!(
        store
            .finish_teardown(running.claim(), State::Success, "again")
            .await
            .unwrap()
            .is_none(),
        "fenced"
    );
    for id in [1, 2, 3] {
        let d = store.get(DeploymentId(id)).await.unwrap().unwrap();
        assert_eq!(d.state, State::Inactive, "deployment {id}");
    }
    assert_eq!(
        store.claim_next(&me()).await.unwrap().unwrap().id,
        DeploymentId(4)
    );
    // The teardown posts nothing itself; each inactive once.
    let mut inactive = HashMap::new();
    for item in store.due_statuses(now_ms(), 100).await.unwrap() {
        assert!(!item.deployment_id.is_teardown(), "{item:?}");
    }
    let mut posted = Vec::new();
    loop {
        let due = store.due_statuses(now_ms(), 100).await.unwrap();
        if due.is_empty() {
            break;
        }
        for item in &due {
            if item.status.state == StatusState::Inactive {
                *inactive.entry(item.deployment_id.0).or_insert(0) += 1;
            }
            posted.push((item.seq, PostOutcome::Sent));
        }
        store.record_posts(&posted).await.unwrap();
    }
    assert_eq!(inactive, HashMap::from([(1, 1), (2, 1), (3, 1)]));
}

async fn teardowns_of_transient_environments_follow_their_cause(b: Backend) {
    let store = (b.open)().await;
    let mut review = deployment(1, "review-1");
    review.transient = true;
    review.git_ref = "refs/heads/feature".into();
    store
        .accept(&key("k1"), &review, &queued(), true)
        .await
        .unwrap();
    accept(&store, 2, "production", true).await;
    let closed = |head_ref: &str| TeardownCause::PullRequest {
        number: 7,
        head_ref: head_ref.into(),
        head_sha: String::new(),
    };
    let latest = store.latest_deployments("o/r").await.unwrap();
    let ids: Vec<i64> = latest.iter().map(|d| d.id.0).collect();
    assert_eq!(ids, [1, 2]);
    assert!(
        store.ended_transient().await.unwrap().is_empty(),
        "none ended"
    );
    for d in [1, 2] {
        let c = store.claim_next(&me()).await.unwrap().unwrap();
        assert!(c.id.0 == d || c.id.0 == 3 - d);
        succeed(&store, c.claim()).await;
    }
    let ended = store.ended_transient().await.unwrap();
    assert_eq!(ended.len(), 1);
    assert_eq!(ended[0].id, DeploymentId(1));
    let idle = TeardownCause::Idle {
        ended_before: ended[0].finished_at.unwrap() - 1,
    };
    assert!(matches!(
        store
            .queue_teardown("o/r", "review-1", &idle)
            .await
            .unwrap(),
        TeardownQueued::NotApplicable(_)
    ));
    for (env, cause) in [
        ("review-1", closed("other")),
        ("production", closed("main")),
    ] {
        assert!(
            matches!(
                store.queue_teardown("o/r", env, &cause).await.unwrap(),
                TeardownQueued::NotApplicable(_)
            ),
            "{env}"
        );
    }
    let TeardownQueued::Queued { teardown, .. } = store
        .queue_teardown("o/r", "review-1", &closed("feature"))
        .await
        .unwrap()
    else {
        panic!("not queued");
    };
    assert!(
        store.ended_transient().await.unwrap().is_empty(),
        "torn down"
    );
    // A failed teardown ends it for automatic causes; an operator may
    // try again.
    let t = store.claim_next(&me()).await.unwrap().unwrap();
    assert_eq!(t.id, teardown.id);
    let gone = store
        .finish_teardown(t.claim(), State::Failure, "Not torn down")
        .await
        .unwrap();
    assert_eq!(gone, Some(vec![]));
    assert!(matches!(
        store
            .queue_teardown("o/r", "review-1", &closed("feature"))
            .await
            .unwrap(),
        TeardownQueued::Already(_)
    ));
    let again = store
        .queue_teardown("o/r", "review-1", &TeardownCause::Operator("bob".into()))
        .await
        .unwrap();
    assert!(matches!(again, TeardownQueued::Queued { .. }), "{again:?}");
    assert_eq!(
        store.get(DeploymentId(1)).await.unwrap().unwrap().state,
        State::Success,
        "a failed teardown changes nothing"
    );
}

fn env_lock(env: &str, holder: &str) -> EnvLock {
    EnvLock {
        repository: "o/r".into(),
        environment: env.into(),
        holder: holder.into(),
        reason: "why".into(),
        since: 1_000,
    }
}

async fn a_locked_environment_is_claimed_only_after_its_unlock(b: Backend) {
    let store = (b.open)().await;
    assert_eq!(store.lock(&env_lock("p", "alice")).await.unwrap(), None);
    assert_eq!(
        store.lock(&env_lock("p", "bob")).await.unwrap(),
        Some(env_lock("p", "alice")),
        "a second lock changes nothing and names the holder"
    );
    assert_eq!(store.locks().await.unwrap(), [env_lock("p", "alice")]);
    accept(&store, 1, "p", true).await;
    accept(&store, 2, "s", true).await;
    let claimed = store.claim_next(&me()).await.unwrap().unwrap();
    assert_eq!(
        claimed.id,
        DeploymentId(2),
        "only the unlocked environment runs"
    );
    assert!(store.claim_next(&me()).await.unwrap().is_none());
    // Survives a reopen.
    let store = (b.open)().await;
    assert_eq!(store.locks().await.unwrap().len(), 1);
    assert_eq!(
        store.unlock("o/r", "p").await.unwrap(),
        Some(env_lock("p", "alice"))
    );
    assert_eq!(store.unlock("o/r", "p").await.unwrap(), None);
    assert!(store.locks().await.unwrap().is_empty());
    let claimed = store.claim_next(&me()).await.unwrap().unwrap();
    assert_eq!(claimed.id, DeploymentId(1));
}

async fn cancel_ends_a_waiting_deployment_and_flags_a_running_one(b: Backend) {
    let store = (b.open)().await;
    accept(&store, 1, "p", false).await;
    accept(&store, 2, "p", false).await;
    let running = store.claim_next(&me()).await.unwrap().unwrap();
    assert_eq!(running.id, DeploymentId(1));
    let c = Cancellation {
        by: "carol".into(),
        reason: "wrong branch".into(),
    };
    let status = NewStatus::new(StatusState::Error, c.describe());
    let pending = store.pending_statuses().await.unwrap();
    assert_eq!(
        store.cancel(DeploymentId(2), &c, &status).await.unwrap(),
        CancelOutcome::Ended
    );
    let waiting = store.get(DeploymentId(2)).await.unwrap().unwrap();
    assert_eq!(waiting.state, State::Error);
    assert_eq!(waiting.cancelled, Some(c.clone()));
    assert_eq!(store.pending_statuses().await.unwrap(), pending + 1);
    assert!(
        store
            .cancel_requests(&[running.claim()])
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(
        store.cancel(DeploymentId(1), &c, &status).await.unwrap(),
        CancelOutcome::Requested
    );
    assert_eq!(
        store.get(DeploymentId(1)).await.unwrap().unwrap().state,
        State::Running,
        "the process running it ends it"
    );
    assert_eq!(
        store.cancel_requests(&[running.claim()]).await.unwrap(),
        [(running.claim(), c.clone())]
    );
    assert_eq!(store.cancelled().await.unwrap(), 2);
    succeed(&store, running.claim()).await;
    assert!(
        store
            .cancel_requests(&[running.claim()])
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(
        store.cancel(DeploymentId(1), &c, &status).await.unwrap(),
        CancelOutcome::Finished(State::Success)
    );
    assert_eq!(
        store.cancel(DeploymentId(99), &c, &status).await.unwrap(),
        CancelOutcome::Unknown
    );
}

async fn lock_tasks_change_the_lock_once_and_are_stored_finished(b: Backend) {
    let store = (b.open)().await;
    let task = |id: i64, name: &str| NewDeployment {
        task: name.into(),
        ..deployment(id, "p")
    };
    accept(&store, 1, "p", true).await;
    let (accepted, done) = store
        .accept_lock_task(
            &key("l1"),
            &task(10, "deploy:lock"),
            LockTask::Lock,
            "incident",
            "u",
        )
        .await
        .unwrap();
    assert_eq!(accepted, new());
    assert_eq!(done.unwrap().0, State::Success);
    let held = store.locks().await.unwrap();
    assert_eq!(held.len(), 1);
    assert_eq!(
        (held[0].holder.as_str(), held[0].reason.as_str()),
        ("me", "incident")
    );
    // The same delivery again: nothing changes.
    let (again, done) = store
        .accept_lock_task(
            &key("l1"),
            &task(10, "deploy:lock"),
            LockTask::Lock,
            "",
            "u",
        )
        .await
        .unwrap();
    assert_eq!((again, done), (Accepted::DuplicateDelivery, None));
    let (_, done) = store
        .accept_lock_task(
            &key("l2"),
            &task(11, "deploy:lock"),
            LockTask::Lock,
            "",
            "u",
        )
        .await
        .unwrap();
    let (state, description) = done.unwrap();
    assert_eq!(state, State::Failure);
    assert!(description.contains("me since"), "{description}");
    let (_, done) = store
        .accept_lock_task(
            &key("l3"),
            &task(12, "deploy:unlock"),
            LockTask::Unlock,
            "",
            "u",
        )
        .await
        .unwrap();
    assert_eq!(done.unwrap().0, State::Success);
    assert!(store.locks().await.unwrap().is_empty());
    for id in [10, 11, 12] {
        let d = store.get(DeploymentId(id)).await.unwrap().unwrap();
        assert!(d.state.is_final(), "{id}: {:?}", d.state);
    }
    // The deployment waiting before them is neither superseded nor run.
    assert_eq!(
        store.get(DeploymentId(1)).await.unwrap().unwrap().state,
        State::Queued
    );
    let claimed = store.claim_next(&me()).await.unwrap().unwrap();
    assert_eq!(claimed.id, DeploymentId(1));
}

fn deployment(id: i64, env: &str) -> NewDeployment {
    NewDeployment {
        id: DeploymentId(id),
        repository: "o/r".into(),
        environment: env.into(),
        task: "deploy".into(),
        git_ref: "main".into(),
        sha: "abc".into(),
        payload: "{}".into(),
        creator: "me".into(),
        production: true,
        transient: false,
        installation_id: Some(7),
    }
}

fn key(d: &str) -> DeliveryKey {
    DeliveryKey {
        hook_id: "1".into(),
        delivery_id: d.into(),
    }
}

fn queued() -> NewStatus {
    NewStatus::new(StatusState::Queued, "queued")
}

fn new() -> Accepted {
    Accepted::New { superseded: vec![] }
}

async fn accept(store: &SharedStore, id: i64, env: &str, supersede: bool) -> Accepted {
    store
        .accept(
            &key(&format!("k{id}")),
            &deployment(id, env),
            &queued(),
            supersede,
        )
        .await
        .unwrap()
}

fn me() -> Owner {
    Owner("test (pid 1)".into())
}

async fn succeed(store: &SharedStore, claim: Claim) {
    store
        .finish(
            claim,
            State::Success,
            &NewStatus::new(StatusState::Success, "ok"),
        )
        .await
        .unwrap();
}

async fn duplicates_never_make_a_second_deployment(b: Backend) {
    let store = (b.open)().await;
    let d = deployment(1, "p");
    assert_eq!(
        store.accept(&key("a"), &d, &queued(), false).await.unwrap(),
        new()
    );
    assert_eq!(
        store.accept(&key("a"), &d, &queued(), false).await.unwrap(),
        Accepted::DuplicateDelivery
    );
    assert_eq!(
        store.accept(&key("b"), &d, &queued(), false).await.unwrap(),
        Accepted::DuplicateDeployment
    );
    assert_eq!(store.count_by_state(State::Queued).await.unwrap(), 1);
    assert_eq!(store.pending_statuses().await.unwrap(), 1);
    let stored = store.get(DeploymentId(1)).await.unwrap().unwrap();
    assert_eq!(stored.spec, d, "every field comes back as it went in");
    assert_eq!(stored.state, State::Queued);
    assert!(stored.started_at.is_none());
}

async fn one_deployment_per_environment_runs_at_a_time(b: Backend) {
    let store = (b.open)().await;
    for (id, env) in [(1, "p"), (2, "p"), (3, "s")] {
        accept(&store, id, env, false).await;
    }
    let first = store.claim_next(&me()).await.unwrap().unwrap();
    assert_eq!(first.id, DeploymentId(1));
    assert_eq!(first.state, State::Running);
    assert!(first.started_at.is_some());
    let second = store.claim_next(&me()).await.unwrap().unwrap();
    assert_eq!(
        second.id,
        DeploymentId(3),
        "2 waits for 1 in its environment"
    );
    assert!(store.claim_next(&me()).await.unwrap().is_none());
    succeed(&store, first.claim()).await;
    assert_eq!(
        store.claim_next(&me()).await.unwrap().unwrap().id,
        DeploymentId(2)
    );
    let one = store.get(DeploymentId(1)).await.unwrap().unwrap();
    assert_eq!(one.state, State::Success);
    assert_eq!(one.description, "ok");
    assert!(one.finished_at.is_some());
}

async fn claims_follow_arrival_order_within_an_environment(b: Backend) {
    let store = (b.open)().await;
    // Ids out of order: arrival, not the id, decides.
    for id in [30, 10, 20] {
        accept(&store, id, "p", false).await;
    }
    let mut order = Vec::new();
    while let Some(d) = store.claim_next(&me()).await.unwrap() {
        order.push(d.id.0);
        succeed(&store, d.claim()).await;
    }
    assert_eq!(order, [30, 10, 20]);
}

async fn outbox_sends_in_order_per_deployment_and_survives_reopen(b: Backend) {
    let store = (b.open)().await;
    accept(&store, 1, "p", false).await;
    accept(&store, 2, "s", false).await;
    let one = store.claim_next(&me()).await.unwrap().unwrap();
    assert!(
        store
            .add_status(
                one.claim(),
                &NewStatus::new(StatusState::InProgress, "go").with_log_url("http://x/1"),
            )
            .await
            .unwrap()
    );
    let due = store.due_statuses(now_ms(), 10).await.unwrap();
    assert_eq!(due.len(), 2, "one head per deployment");
    assert!(due.iter().all(|i| i.status.state == StatusState::Queued));
    assert_eq!(due[0].deployment_id, DeploymentId(1));
    assert_eq!(due[0].repository, "o/r");
    assert_eq!(due[0].installation_id, Some(7));
    // Deployment 1's head is postponed: its in_progress waits behind it.
    store
        .record_posts(&[
            (
                due[0].seq,
                PostOutcome::RetryAt {
                    at: now_ms() + 60_000,
                    error: "503".into(),
                },
            ),
            (due[1].seq, PostOutcome::Sent),
        ])
        .await
        .unwrap();
    store.close().await;
    let store = (b.open)().await;
    assert!(store.due_statuses(now_ms(), 10).await.unwrap().is_empty());
    assert!(store.next_status_due().await.unwrap().is_some());
    let later = store.due_statuses(now_ms() + 61_000, 10).await.unwrap();
    assert_eq!(later.len(), 1);
    assert_eq!(later[0].status.state, StatusState::Queued);
    assert_eq!(later[0].attempts, 1);
    store
        .record_posts(&[(
            later[0].seq,
            PostOutcome::Failed {
                error: "422".into(),
            },
        )])
        .await
        .unwrap();
    let next = store.due_statuses(now_ms() + 61_000, 10).await.unwrap();
    assert_eq!(
        next[0].status.state,
        StatusState::InProgress,
        "a refused status does not block the next"
    );
    assert_eq!(next[0].status.log_url.as_deref(), Some("http://x/1"));
    store
        .record_posts(&[(next[0].seq, PostOutcome::Sent)])
        .await
        .unwrap();
    assert_eq!(store.pending_statuses().await.unwrap(), 0);
    assert_eq!(store.next_status_due().await.unwrap(), None);
}

async fn a_newer_deployment_supersedes_waiting_ones_only(b: Backend) {
    let store = (b.open)().await;
    accept(&store, 1, "p", true).await;
    let running = store.claim_next(&me()).await.unwrap().unwrap();
    assert_eq!(running.id, DeploymentId(1));
    accept(&store, 2, "p", true).await;
    accept(&store, 9, "other", true).await;
    assert_eq!(
        accept(&store, 3, "p", true).await,
        Accepted::New {
            superseded: vec![DeploymentId(2)]
        },
        "1 runs, 9 is elsewhere"
    );
    let two = store.get(DeploymentId(2)).await.unwrap().unwrap();
    assert_eq!(two.state, State::Inactive);
    assert_eq!(two.description, "Superseded by deployment 3");
    let statuses: Vec<StatusState> = store
        .due_statuses(now_ms(), 10)
        .await
        .unwrap()
        .into_iter()
        .filter(|i| i.deployment_id == DeploymentId(2))
        .map(|i| i.status.state)
        .collect();
    assert_eq!(statuses, [StatusState::Queued], "inactive waits behind it");
    assert_eq!(
        store.get(DeploymentId(1)).await.unwrap().unwrap().state,
        State::Running
    );
    // Without supersede, everything waits its turn.
    assert_eq!(accept(&store, 4, "p", false).await, new());
    assert_eq!(
        store.get(DeploymentId(3)).await.unwrap().unwrap().state,
        State::Queued
    );
}

/// Concurrent deliveries to one environment: whatever order they commit
/// in, exactly one stays queued, and every other names a deployment that
/// superseded it.
async fn each_superseded_deployment_names_one_that_arrived_after_it(b: Backend) {
    let store = (b.open)().await;
    let q = queued();
    let (k, d) = (
        [key("a"), key("b"), key("c")],
        [deployment(1, "p"), deployment(2, "p"), deployment(3, "p")],
    );
    let (x, y, z) = tokio::join!(
        store.accept(&k[0], &d[0], &q, true),
        store.accept(&k[1], &d[1], &q, true),
        store.accept(&k[2], &d[2], &q, true),
    );
    let mut superseded_by = HashMap::new();
    for (id, r) in [(1, x), (2, y), (3, z)] {
        match r.unwrap() {
            Accepted::New { superseded } => {
                for gone in superseded {
                    assert!(superseded_by.insert(gone.0, id).is_none());
                }
            }
            other => panic!("{other:?}"),
        }
    }
    assert_eq!(superseded_by.len(), 2, "{superseded_by:?}");
    assert_eq!(store.count_by_state(State::Queued).await.unwrap(), 1);
    for (gone, by) in superseded_by {
        let d = store.get(DeploymentId(gone)).await.unwrap().unwrap();
        assert_eq!(d.state, State::Inactive);
        assert_eq!(d.description, format!("Superseded by deployment {by}"));
    }
}

async fn concurrent_deliveries_are_each_answered_correctly(b: Backend) {
    let store = (b.open)().await;
    let mut tasks = tokio::task::JoinSet::new();
    // 300 deliveries of 100 deployments: every deployment three times.
    for i in 0..300 {
        let store = store.clone();
        tasks.spawn(async move {
            let id = i % 100;
            let r = store
                .accept(
                    &key(&format!("d{i}")),
                    &deployment(id, &format!("e{}", id % 7)),
                    &queued(),
                    false,
                )
                .await
                .unwrap();
            (id, r)
        });
    }
    let mut new = HashMap::new();
    while let Some(r) = tasks.join_next().await {
        let (id, r) = r.unwrap();
        if matches!(r, Accepted::New { .. }) {
            *new.entry(id).or_insert(0) += 1;
        }
    }
    assert_eq!(new.len(), 100);
    assert!(new.values().all(|&n| n == 1));
    assert_eq!(store.count_by_state(State::Queued).await.unwrap(), 100);
    assert_eq!(store.pending_statuses().await.unwrap(), 100);
}

/// Deliveries arrive together (the backends take them in batches):
/// repeated deliveries, a deployment in two deliveries, deliveries without
/// an id, most superseding. The answers must add up as if they had come
/// one at a time, in some order.
async fn a_burst_with_repeats_ends_as_one_delivery_at_a_time_would(b: Backend) {
    let store = (b.open)().await;
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..240i64 {
        let store = store.clone();
        tasks.spawn(async move {
            // Deliveries 200.. repeat 0..40 (same delivery id); deployment
            // ids repeat every 150, under other delivery ids; every tenth
            // has no delivery id; deployments 6, 13, 20... do not supersede.
            let (n, id) = if i >= 200 {
                (i - 200, i - 200)
            } else {
                (i, i % 150)
            };
            let key = if n % 10 == 9 {
                DeliveryKey {
                    hook_id: String::new(),
                    delivery_id: String::new(),
                }
            } else {
                key(&format!("b{n}"))
            };
            let env = format!("e{}", id % 3);
            let r = store
                .accept(&key, &deployment(id, &env), &queued(), id % 7 != 6)
                .await
                .unwrap();
            (id, r)
        });
    }
    let (mut new, mut superseded_by) = (HashMap::new(), HashMap::new());
    let mut duplicate_deliveries = 0;
    while let Some(r) = tasks.join_next().await {
        match r.unwrap() {
            (id, Accepted::New { superseded }) => {
                *new.entry(id).or_insert(0) += 1;
                for gone in superseded {
                    assert!(superseded_by.insert(gone.0, id).is_none(), "{gone:?} twice");
                }
            }
            (_, Accepted::DuplicateDelivery) => duplicate_deliveries += 1,
            (_, Accepted::DuplicateDeployment) => {}
        }
    }
    assert_eq!(new.len(), 150, "every deployment once");
    assert!(new.values().all(|&n| n == 1));
    // Repeats of deliveries that had an id: 40 less the 4 anonymous ones.
    assert_eq!(duplicate_deliveries, 36);
    let queued_now = store.by_state(State::Queued).await.unwrap();
    let inactive = store.by_state(State::Inactive).await.unwrap();
    assert_eq!(queued_now.len() + inactive.len(), 150);
    assert_eq!(inactive.len(), superseded_by.len());
    for d in &inactive {
        let by = superseded_by[&d.id.0];
        assert_eq!(d.description, format!("Superseded by deployment {by}"));
        assert_eq!(by % 3, d.id.0 % 3, "superseded from another environment");
    }
    // What still waits in an environment arrived after its last
    // superseding deployment, or is that deployment.
    for env in 0..3 {
        let waiting: Vec<i64> = queued_now
            .iter()
            .filter(|d| d.id.0 % 3 == env)
            .map(|d| d.id.0)
            .collect();
        assert!(
            waiting.iter().skip(1).all(|&id| id % 7 == 6),
            "e{env}: {waiting:?}"
        );
    }
    // Each waiting deployment has its `queued`; each superseded one its
    // `inactive`, after its `queued` only if that was stored before it
    // was superseded (a backend may drop it when both come in one commit).
    let statuses = drain_outbox(&store).await;
    for d in &queued_now {
        assert_eq!(statuses[&d.id.0], ["queued"], "{}", d.id);
    }
    for d in &inactive {
        let states = &statuses[&d.id.0];
        assert!(
            states == &["inactive"] || states == &["queued", "inactive"],
            "{}: {states:?}",
            d.id
        );
    }
    assert_eq!(statuses.len(), 150);
}

/// Every pending status, taken from the outbox as the outbox would (heads
/// first, recorded sent), by deployment, in the order handed out.
async fn drain_outbox(store: &SharedStore) -> HashMap<i64, Vec<&'static str>> {
    let mut statuses: HashMap<i64, Vec<&'static str>> = HashMap::new();
    loop {
        let due = store.due_statuses(now_ms(), 1000).await.unwrap();
        if due.is_empty() {
            return statuses;
        }
        let posts: Vec<_> = due.iter().map(|i| (i.seq, PostOutcome::Sent)).collect();
        for item in due {
            statuses
                .entry(item.deployment_id.0)
                .or_default()
                .push(item.status.state.as_str());
        }
        store.record_posts(&posts).await.unwrap();
    }
}

/// Many claimers at once (on PostgreSQL: as many connections as replicas
/// would have): never two running deployments in one environment.
async fn concurrent_claims_never_run_an_environment_twice(b: Backend) {
    let stores = [(b.open)().await, (b.open)().await];
    for id in 0..40 {
        accept(&stores[0], id, &format!("e{}", id % 4), false).await;
    }
    let mut claimers = tokio::task::JoinSet::new();
    for i in 0..8 {
        let store = stores[i % 2].clone();
        claimers.spawn(async move {
            let mut got = Vec::new();
            for _ in 0..10 {
                if let Some(d) = store.claim_next(&me()).await.unwrap() {
                    got.push(d);
                }
            }
            got
        });
    }
    let mut claimed = Vec::new();
    while let Some(got) = claimers.join_next().await {
        claimed.extend(got.unwrap());
    }
    let mut envs: Vec<&str> = claimed.iter().map(|d| d.environment.as_str()).collect();
    envs.sort();
    assert_eq!(envs, ["e0", "e1", "e2", "e3"], "one claim per environment");
    let running = stores[1].by_state(State::Running).await.unwrap();
    assert_eq!(running.len(), 4);
    assert!(
        claimed.iter().all(|d| d.id.0 < 4),
        "each environment's oldest: {claimed:?}"
    );
}

async fn deliveries_without_an_id_are_told_apart_by_deployment_only(b: Backend) {
    let store = (b.open)().await;
    let anonymous = DeliveryKey {
        hook_id: String::new(),
        delivery_id: String::new(),
    };
    let q = queued();
    assert_eq!(
        store
            .accept(&anonymous, &deployment(1, "p"), &q, false)
            .await
            .unwrap(),
        new()
    );
    assert_eq!(
        store
            .accept(&anonymous, &deployment(2, "p"), &q, false)
            .await
            .unwrap(),
        new()
    );
    assert_eq!(
        store
            .accept(&anonymous, &deployment(2, "p"), &q, false)
            .await
            .unwrap(),
        Accepted::DuplicateDeployment
    );
}

async fn remote_steps_are_remembered_until_forgotten(b: Backend) {
    let store = (b.open)().await;
    accept(&store, 1, "p", false).await;
    let id = DeploymentId(1);
    store
        .remember_step(id, "web1:22", 100, "boot-a")
        .await
        .unwrap();
    store
        .remember_step(id, "web2:22", 200, "boot-b")
        .await
        .unwrap();
    // The next step on a host replaces the last.
    store
        .remember_step(id, "web1:22", 101, "boot-a")
        .await
        .unwrap();
    let step = |host: &str, pgid, boot: &str| RemoteStep {
        host: host.into(),
        pgid,
        boot_id: boot.into(),
    };
    assert_eq!(
        store.remote_steps(id).await.unwrap(),
        [
            step("web1:22", 101, "boot-a"),
            step("web2:22", 200, "boot-b")
        ]
    );
    store.forget_step(id, "web1:22").await.unwrap();
    assert_eq!(
        store.remote_steps(id).await.unwrap(),
        [step("web2:22", 200, "boot-b")]
    );
}

async fn finished_deployments_are_listed_newest_first(b: Backend) {
    let store = (b.open)().await;
    for id in [5, 6, 7] {
        accept(&store, id, &format!("e{id}"), false).await;
    }
    let d = store.claim_next(&me()).await.unwrap().unwrap();
    store
        .finish(
            d.claim(),
            State::Failure,
            &NewStatus::new(StatusState::Failure, "Step 'x' failed on h (exit 3)"),
        )
        .await
        .unwrap();
    let recent: Vec<i64> = store
        .recent(2)
        .await
        .unwrap()
        .iter()
        .map(|d| d.id.0)
        .collect();
    assert_eq!(recent, [7, 6]);
    let failed = store.by_state(State::Failure).await.unwrap();
    assert_eq!(failed.len(), 1);
    assert_eq!(failed[0].description, "Step 'x' failed on h (exit 3)");
    assert_eq!(store.count_by_state(State::Queued).await.unwrap(), 2);
    let statuses: Vec<StatusState> = store
        .due_statuses(now_ms(), 10)
        .await
        .unwrap()
        .iter()
        .map(|i| i.status.state)
        .collect();
    assert_eq!(statuses.len(), 3, "one head per deployment");
}

async fn a_closed_store_refuses_work(b: Backend) {
    let store = (b.open)().await;
    store.close().await;
    assert!(matches!(
        store
            .accept(&key("a"), &deployment(1, "p"), &queued(), false)
            .await,
        Err(Error::Closed)
    ));
    assert!(matches!(store.recent(1).await, Err(Error::Closed)));
    // Nothing was stored by the refused delivery.
    let reopened = (b.open)().await;
    assert!(reopened.recent(10).await.unwrap().is_empty());
}

async fn a_process_that_lost_its_claim_writes_nothing_more(b: Backend) {
    let store = (b.open)().await;
    let (a, other) = (me(), Owner("other (pid 2)".into()));
    accept(&store, 1, "p", false).await;
    let d = store.claim_next(&a).await.unwrap().unwrap();
    assert_eq!(d.owner.as_deref(), Some(a.0.as_str()));
    assert_eq!(store.renew(&a, &[d.claim()]).await.unwrap(), [d.claim()]);
    // A live lease is not taken, unless the caller takes everything.
    assert!(store.rescue(&other, false).await.unwrap().is_empty());
    let taken = store.rescue(&other, true).await.unwrap();
    assert_eq!(taken.len(), 1);
    assert_eq!(taken[0].id, d.id);
    assert_eq!(taken[0].attempt, d.attempt + 1);
    assert_eq!(taken[0].owner.as_deref(), Some(a.0.as_str()), "who had it");
    // The old claim is fenced out: no renewal, no status, no final state.
    assert!(store.renew(&a, &[d.claim()]).await.unwrap().is_empty());
    let in_progress = NewStatus::new(StatusState::InProgress, "late");
    assert!(!store.add_status(d.claim(), &in_progress).await.unwrap());
    let late = NewStatus::new(StatusState::Success, "late");
    assert!(
        !store
            .finish(d.claim(), State::Success, &late)
            .await
            .unwrap()
    );
    let interrupted = NewStatus::new(StatusState::Error, "Interrupted");
    assert!(
        store
            .finish(taken[0].claim(), State::Error, &interrupted)
            .await
            .unwrap()
    );
    // A settled deployment cannot be finished twice, whoever asks.
    assert!(
        !store
            .finish(taken[0].claim(), State::Success, &late)
            .await
            .unwrap()
    );
    let settled = store.get(d.id).await.unwrap().unwrap();
    assert_eq!(settled.state, State::Error);
    let statuses: Vec<String> = store
        .due_statuses(now_ms(), 10)
        .await
        .unwrap()
        .iter()
        .map(|i| i.status.description.clone())
        .collect();
    assert_eq!(statuses, ["queued"], "only the head is due; nothing late");
    assert_eq!(
        store.pending_statuses().await.unwrap(),
        2,
        "queued, Interrupted"
    );
}

/// The lease's own length: this test waits it out once.
async fn expired_leases_are_rescued_and_renewed_ones_are_not(b: Backend) {
    let store = (b.open)().await;
    let (dead, alive, rescuer) = (
        Owner("dead (pid 1)".into()),
        Owner("alive (pid 2)".into()),
        Owner("rescuer (pid 3)".into()),
    );
    accept(&store, 1, "p", false).await;
    accept(&store, 2, "s", false).await;
    let d1 = store.claim_next(&dead).await.unwrap().unwrap();
    let d2 = store.claim_next(&alive).await.unwrap().unwrap();
    let deadline = std::time::Instant::now() + LEASE + RENEW_EVERY;
    let mut rescued = Vec::new();
    while rescued.is_empty() {
        assert!(std::time::Instant::now() < deadline, "nothing rescued");
        assert_eq!(
            store.renew(&alive, &[d2.claim()]).await.unwrap(),
            [d2.claim()]
        );
        rescued = store.rescue(&rescuer, false).await.unwrap();
        tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    }
    assert_eq!(rescued.len(), 1);
    assert_eq!(rescued[0].id, d1.id);
    assert_eq!(rescued[0].owner.as_deref(), Some("dead (pid 1)"));
    assert!(
        store.rescue(&rescuer, false).await.unwrap().is_empty(),
        "once"
    );
}

async fn each_status_is_handed_to_one_replica_at_a_time(b: Backend) {
    let (one, two) = ((b.open)().await, (b.open)().await);
    if !one.replicas() {
        // One process: its outbox keeps track of what it has in flight.
        return;
    }
    accept(&one, 1, "p", false).await;
    let first = one.due_statuses(now_ms(), 10).await.unwrap();
    assert_eq!(first.len(), 1);
    assert!(
        two.due_statuses(now_ms(), 10).await.unwrap().is_empty(),
        "the other replica is sending"
    );
    one.record_posts(&[(
        first[0].seq,
        PostOutcome::RetryAt {
            at: now_ms(),
            error: "503".into(),
        },
    )])
    .await
    .unwrap();
    assert!(two.due_statuses(now_ms(), 10).await.unwrap().is_empty());
    // A replica that stops lets go at once.
    one.close().await;
    let again = two.due_statuses(now_ms(), 10).await.unwrap();
    assert_eq!(again.len(), 1, "the next replica sends it");
    assert_eq!(again[0].seq, first[0].seq);
}
