//! Deployments and their queue: intake, duplicates, superseding, claims in turn, reads.

use ferry::store::*;
use ferry_testkit::backends;

use super::*;

backends!(
    with backend;
    duplicates_never_make_a_second_deployment,
    one_deployment_per_environment_runs_at_a_time,
    claims_follow_arrival_order_within_an_environment,
    a_newer_deployment_supersedes_waiting_ones_only,
    each_superseded_deployment_names_one_that_arrived_after_it,
    concurrent_deliveries_are_each_answered_correctly,
    a_burst_with_repeats_ends_as_one_delivery_at_a_time_would,
    concurrent_claims_never_run_an_environment_twice,
    deliveries_without_an_id_are_told_apart_by_deployment_only,
    finished_deployments_are_listed_newest_first,
    a_closed_store_refuses_work,
);

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
        .due_statuses(Timestamp::now(), 10)
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
        let due = store.due_statuses(Timestamp::now(), 1000).await.unwrap();
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
        .due_statuses(Timestamp::now(), 10)
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

/// The claim's look on PostgreSQL reads the queued deployments and the
/// steps left on hosts, each step's deployment by its key: never the
/// environment's history, also when the statistics lag a burst: they
/// were gathered with 20 deployments and no step on a host, and now there
/// are 20,000 and a step.
#[tokio::test(flavor = "multi_thread")]
async fn the_postgres_claims_look_never_walks_past_deployments() {
    let pool = migrated_postgres().await;
    lagging_statistics(&pool).await;
    sqlx::query("INSERT INTO remote_steps VALUES (19999, 'web1', 42, 'boot')")
        .execute(&pool)
        .await
        .unwrap();
    let empty: Vec<String> = Vec::new();
    let plan: Vec<String> = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
        "EXPLAIN (ANALYZE, COSTS OFF) {}",
        ferry::store::postgres::deployments::CLAIM_LOOK
    )))
    .bind(&empty)
    .bind(&empty)
    .bind(None::<Vec<String>>)
    .bind(None::<Vec<String>>)
    .fetch_all(&pool)
    .await
    .unwrap();
    let plan = plan.join("\n");
    assert!(
        plan.contains("Index Scan using deployments_pkey on deployments h"),
        "{plan}"
    );
    for walk in [
        "Seq Scan on deployments",
        "deployments_env_seq",
        "Hash Join",
    ] {
        assert!(!plan.contains(walk), "{walk}: {plan}");
    }
    // The step on the host holds the environment: nothing may run.
    let runnable: Option<i32> = sqlx::query_scalar(ferry::store::postgres::deployments::CLAIM_LOOK)
        .bind(&empty)
        .bind(&empty)
        .bind(None::<Vec<String>>)
        .bind(None::<Vec<String>>)
        .fetch_optional(&pool)
        .await
        .unwrap();
    assert_eq!(runnable, None);
    pool.close().await;
}

/// PostgreSQL's batch intake stores a deployment superseded within its
/// batch `inactive` at once, with only that status; and a deployment of
/// the batch that was stored already supersedes nothing, as one delivery
/// at a time would: it is no newer for arriving again.
#[tokio::test(flavor = "multi_thread")]
async fn the_postgres_batch_supersedes_within_itself_as_one_at_a_time_would() {
    let url = ferry_testkit::postgres::cluster().database();
    let store: SharedStore = std::sync::Arc::new(PgStore::connect(&url).await.unwrap());
    accept(&store, 1, "p", true).await;
    let pool = sqlx::PgPool::connect(&url).await.unwrap();
    let batch_of = |batch: &'static [(&'static str, i64, bool)]| {
        let pool = pool.clone();
        async move { accept_batch(&pool, "p", batch).await }
    };
    // 1 arrives again (another delivery) after 2: it is no newer than 2.
    assert_eq!(
        batch_of(&[("a", 2, true), ("x2", 1, true)]).await,
        [(true, true, vec![1]), (true, false, vec![])]
    );
    // 3 and 4 together: 3 supersedes 2, and 4 supersedes 3.
    assert_eq!(
        batch_of(&[("c", 3, true), ("d", 4, true)]).await,
        [(true, true, vec![2]), (true, true, vec![3])]
    );
    // 4 arrives again after 5 and 6, new ones: it supersedes nothing, and
    // 6 supersedes 5 within the batch as if 4 were not there.
    assert_eq!(
        batch_of(&[("e", 5, true), ("f", 6, true), ("x4", 4, true)]).await,
        [
            (true, true, vec![4]),
            (true, true, vec![5]),
            (true, false, vec![])
        ]
    );
    let state = |id: i64| {
        let pool = pool.clone();
        async move {
            sqlx::query_as::<_, (String, String)>(
                "SELECT state, description FROM deployments WHERE id = $1",
            )
            .bind(id)
            .fetch_one(&pool)
            .await
            .unwrap()
        }
    };
    assert_eq!(
        state(1).await,
        ("inactive".into(), "Superseded by deployment 2".into())
    );
    assert_eq!(
        state(2).await,
        ("inactive".into(), "Superseded by deployment 3".into())
    );
    assert_eq!(
        state(3).await,
        ("inactive".into(), "Superseded by deployment 4".into())
    );
    assert_eq!(
        state(4).await,
        ("inactive".into(), "Superseded by deployment 5".into())
    );
    assert_eq!(
        state(5).await,
        ("inactive".into(), "Superseded by deployment 6".into())
    );
    assert_eq!(state(6).await, ("queued".into(), "queued".into()));
    let statuses = drain_outbox(&store).await;
    assert_eq!(statuses[&1], ["queued", "inactive"]);
    assert_eq!(statuses[&2], ["queued", "inactive"]);
    assert_eq!(statuses[&3], ["inactive"], "superseded in its own batch");
    assert_eq!(statuses[&4], ["queued", "inactive"]);
    assert_eq!(statuses[&5], ["inactive"], "superseded in its own batch");
    assert_eq!(statuses[&6], ["queued"]);
    store.close().await;
    pool.close().await;
}

/// One call of PostgreSQL's batch intake (`ferry_accept`) for deliveries
/// (delivery id, deployment id, supersedes) to environment `env` of `o/r`:
/// for each, (fresh, inserted, superseded).
async fn accept_batch<'e>(
    db: impl sqlx::PgExecutor<'e>,
    env: &str,
    batch: &[(&str, i64, bool)],
) -> Vec<(bool, bool, Vec<i64>)> {
    let n = batch.len();
    let text = |v: &str| vec![v.to_string(); n];
    let rows: Vec<(i32, bool, bool, Vec<i64>)> = sqlx::query_as(
        "SELECT * FROM ferry_accept($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, \
         $13, $14, $15, $16, $17, $18, $19, $20) ORDER BY n",
    )
    .bind(Timestamp::now())
    .bind(text("1"))
    .bind(batch.iter().map(|b| b.0).collect::<Vec<_>>())
    .bind(batch.iter().map(|b| b.1).collect::<Vec<_>>())
    .bind(text("o/r"))
    .bind(text(env))
    .bind(text("deploy"))
    .bind(text("main"))
    .bind(text("abc"))
    .bind(text("{}"))
    .bind(text("me"))
    .bind(vec![true; n])
    .bind(vec![false; n])
    .bind(vec![7_i64; n])
    .bind(text("queued"))
    .bind(vec![None::<String>; n])
    .bind(vec![None::<String>; n])
    .bind(vec![None::<bool>; n])
    .bind(batch.iter().map(|b| b.2).collect::<Vec<_>>())
    .bind(ferry::wording::SUPERSEDED_BY_PREFIX)
    .fetch_all(db)
    .await
    .unwrap();
    rows.into_iter()
        .map(|(_, fresh, inserted, superseded)| (fresh, inserted, superseded))
        .collect()
}

/// PostgreSQL's batch intake finds what it needs of the deployments table
/// by key (each deployment of the batch, the environment's waiting ones),
/// never by a scan, also when the statistics lag a burst: gathered with 20
/// deployments, and now there are 20,000.
#[tokio::test(flavor = "multi_thread")]
async fn the_postgres_batch_intake_never_scans_the_deployments() {
    let pool = migrated_postgres().await;
    lagging_statistics(&pool).await;
    // This transaction's own scans, counted as they happen.
    let mut tx = pool.begin().await.unwrap();
    let batch = [("a", 20001, true), ("b", 20002, true), ("c", 15, true)];
    assert_eq!(
        accept_batch(&mut *tx, "production", &batch).await,
        [
            (true, true, vec![20000]),
            (true, true, vec![20001]),
            (true, false, vec![])
        ]
    );
    let (seq_scans, index_scans): (i64, i64) = sqlx::query_as(
        "SELECT seq_scan, idx_scan FROM pg_stat_xact_user_tables WHERE relname = 'deployments'",
    )
    .fetch_one(&mut *tx)
    .await
    .unwrap();
    assert_eq!(seq_scans, 0, "the batch scanned the deployments table");
    assert!(index_scans > 0);
    tx.commit().await.unwrap();
    pool.close().await;
}

/// A deployment claimed while a newer one's batch supersedes it keeps
/// running: the batch found it waiting, but the claim took its row first,
/// and the batch must look again before it marks it `inactive`. It did
/// not: the running deployment was marked superseded, its `in_progress`
/// and `success` were refused as from a lost claim, and the environment,
/// free to the store, ran the next deployment beside it.
#[tokio::test(flavor = "multi_thread")]
async fn the_postgres_batch_never_supersedes_a_deployment_being_claimed() {
    let url = ferry_testkit::postgres::cluster().database();
    let store: SharedStore = std::sync::Arc::new(PgStore::connect(&url).await.unwrap());
    accept(&store, 1, "p", true).await;
    let pool = sqlx::PgPool::connect(&url).await.unwrap();
    // A claim under way: the row taken, not yet committed.
    let mut claim = pool.begin().await.unwrap();
    sqlx::query(
        "UPDATE deployments SET state = 'running', attempt = attempt + 1, owner = 'x'
         WHERE id = 1",
    )
    .execute(&mut *claim)
    .await
    .unwrap();
    let batch = tokio::spawn({
        let store = store.clone();
        async move {
            store
                .accept(&key("b2"), &deployment(2, "p"), &queued(), true)
                .await
        }
    });
    // The batch waits for the claim's row.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let waiting: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM pg_stat_activity
             WHERE wait_event_type = 'Lock' AND query LIKE '%ferry_accept%'",
        )
        .fetch_one(&pool)
        .await
        .unwrap();
        if waiting > 0 {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the batch never waited"
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    claim.commit().await.unwrap();
    assert_eq!(
        batch.await.unwrap().unwrap(),
        Accepted::New { superseded: vec![] }
    );
    let one = store.get(DeploymentId(1)).await.unwrap().unwrap();
    assert_eq!(one.state, State::Running);
    assert_eq!(store.count_by_state(State::Queued).await.unwrap(), 1);
    let statuses = drain_outbox(&store).await;
    assert_eq!(
        statuses[&1],
        ["queued"],
        "no inactive for a running deployment"
    );
    store.close().await;
    pool.close().await;
}

/// 20,000 deployments in `o/r` `production`, the last one waiting, with
/// statistics gathered when there were 20: as right after a burst.
async fn lagging_statistics(pool: &sqlx::PgPool) {
    sqlx::raw_sql(
        "INSERT INTO deployments (id, repository, environment, task, git_ref, sha, payload,
             creator, production, transient, state, created_at)
         SELECT n, 'o/r', 'production', 'deploy', 'main', 'abc', '{}', 'me', true, false,
             CASE WHEN n = 20000 THEN 'queued' ELSE 'inactive' END, 0
         FROM generate_series(1, 20000) n WHERE n <= 10 OR n > 19990;
         ANALYZE;
         INSERT INTO deployments (id, repository, environment, task, git_ref, sha, payload,
             creator, production, transient, state, created_at)
         SELECT n, 'o/r', 'production', 'deploy', 'main', 'abc', '{}', 'me', true, false,
             'inactive', 0
         FROM generate_series(11, 19990) n;",
    )
    .execute(pool)
    .await
    .unwrap();
}
