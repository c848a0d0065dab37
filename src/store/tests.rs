use super::*;

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
        installation_id: None,
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

#[tokio::test]
async fn duplicates_never_make_a_second_deployment() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).await.unwrap();
    assert_eq!(
        store
            .accept(&key("a"), &deployment(1, "p"), &queued(), false)
            .await
            .unwrap(),
        Accepted::New { superseded: vec![] }
    );
    assert_eq!(
        store
            .accept(&key("a"), &deployment(1, "p"), &queued(), false)
            .await
            .unwrap(),
        Accepted::DuplicateDelivery
    );
    assert_eq!(
        store
            .accept(&key("b"), &deployment(1, "p"), &queued(), false)
            .await
            .unwrap(),
        Accepted::DuplicateDeployment
    );
    assert_eq!(store.count_by_state(State::Queued).await.unwrap(), 1);
    assert_eq!(store.pending_statuses().await.unwrap(), 1);
}

#[tokio::test]
async fn one_deployment_per_environment_runs_at_a_time() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).await.unwrap();
    for (id, env) in [(1, "p"), (2, "p"), (3, "s")] {
        store
            .accept(
                &key(&id.to_string()),
                &deployment(id, env),
                &queued(),
                false,
            )
            .await
            .unwrap();
    }
    let first = store.claim_next().await.unwrap().unwrap();
    assert_eq!(first.id, DeploymentId(1));
    let second = store.claim_next().await.unwrap().unwrap();
    assert_eq!(
        second.id,
        DeploymentId(3),
        "2 waits for 1 in the same environment"
    );
    assert!(store.claim_next().await.unwrap().is_none());
    store
        .finish(
            first.id,
            State::Success,
            &NewStatus::new(StatusState::Success, "ok"),
        )
        .await
        .unwrap();
    assert_eq!(
        store.claim_next().await.unwrap().unwrap().id,
        DeploymentId(2)
    );
}

#[tokio::test]
async fn outbox_sends_in_order_per_deployment_and_survives_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).await.unwrap();
    store
        .accept(&key("a"), &deployment(1, "p"), &queued(), false)
        .await
        .unwrap();
    store
        .accept(&key("b"), &deployment(2, "s"), &queued(), false)
        .await
        .unwrap();
    store
        .add_status(
            DeploymentId(1),
            &NewStatus::new(StatusState::InProgress, "go"),
        )
        .await
        .unwrap();
    let due = store.due_statuses(now_ms(), 10).await.unwrap();
    assert_eq!(due.len(), 2, "one head per deployment");
    assert!(due.iter().all(|i| i.status.state == StatusState::Queued));
    // Deployment 1's head is postponed: its in_progress must wait behind it.
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
    drop(store);
    let store = Store::open(dir.path()).await.unwrap();
    assert!(store.due_statuses(now_ms(), 10).await.unwrap().is_empty());
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
}

#[tokio::test]
async fn a_newer_deployment_supersedes_waiting_ones_only() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).await.unwrap();
    store
        .accept(&key("1"), &deployment(1, "p"), &queued(), true)
        .await
        .unwrap();
    let running = store.claim_next().await.unwrap().unwrap();
    assert_eq!(running.id, DeploymentId(1));
    store
        .accept(&key("2"), &deployment(2, "p"), &queued(), true)
        .await
        .unwrap();
    store
        .accept(&key("9"), &deployment(9, "other"), &queued(), true)
        .await
        .unwrap();
    let third = store
        .accept(&key("3"), &deployment(3, "p"), &queued(), true)
        .await
        .unwrap();
    assert_eq!(
        third,
        Accepted::New {
            superseded: vec![DeploymentId(2)]
        },
        "1 runs, 9 is elsewhere"
    );
    let two = store.get(DeploymentId(2)).await.unwrap().unwrap();
    assert_eq!(two.state, State::Inactive);
    assert_eq!(two.description, "Superseded by deployment 3");
    assert_eq!(
        store.get(DeploymentId(1)).await.unwrap().unwrap().state,
        State::Running
    );
    // Without supersede, everything waits its turn.
    let kept = store
        .accept(&key("4"), &deployment(4, "p"), &queued(), false)
        .await
        .unwrap();
    assert_eq!(kept, Accepted::New { superseded: vec![] });
    assert_eq!(
        store.get(DeploymentId(3)).await.unwrap().unwrap().state,
        State::Queued
    );
}

/// Deliveries of one environment committed in the same batch used to all
/// say they were superseded by the newest of the batch.
#[tokio::test]
async fn each_superseded_deployment_names_the_one_that_replaced_it() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).await.unwrap();
    let (k, d, q) = (
        [key("a"), key("b"), key("c")],
        [deployment(1, "p"), deployment(2, "p"), deployment(3, "p")],
        queued(),
    );
    let (a, b, c) = tokio::join!(
        store.accept(&k[0], &d[0], &q, true),
        store.accept(&k[1], &d[1], &q, true),
        store.accept(&k[2], &d[2], &q, true),
    );
    let superseded = |r: Result<Accepted, sqlx::Error>| match r.unwrap() {
        Accepted::New { superseded } => superseded,
        other => panic!("{other:?}"),
    };
    assert_eq!(superseded(a), vec![]);
    assert_eq!(superseded(b), vec![DeploymentId(1)]);
    assert_eq!(superseded(c), vec![DeploymentId(2)]);
    for (id, by) in [(1, 2), (2, 3)] {
        let gone = store.get(DeploymentId(id)).await.unwrap().unwrap();
        assert_eq!(gone.state, State::Inactive);
        assert_eq!(gone.description, format!("Superseded by deployment {by}"));
    }
}

#[tokio::test]
async fn concurrent_deliveries_are_each_answered_correctly() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).await.unwrap();
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
    let mut new = std::collections::HashMap::new();
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

#[tokio::test]
async fn deliveries_without_an_id_are_told_apart_by_deployment_only() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).await.unwrap();
    let anonymous = DeliveryKey {
        hook_id: String::new(),
        delivery_id: String::new(),
    };
    let new = Accepted::New { superseded: vec![] };
    assert_eq!(
        store
            .accept(&anonymous, &deployment(1, "p"), &queued(), false)
            .await
            .unwrap(),
        new
    );
    assert_eq!(
        store
            .accept(&anonymous, &deployment(2, "p"), &queued(), false)
            .await
            .unwrap(),
        new
    );
    assert_eq!(
        store
            .accept(&anonymous, &deployment(2, "p"), &queued(), false)
            .await
            .unwrap(),
        Accepted::DuplicateDeployment
    );
}
