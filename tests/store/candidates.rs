//! Auto-deploy candidates: a sha is offered to an environment once, a
//! newer offer replaces the ones not sent yet, each due look goes to one
//! of several replicas, and a look lost to another process writes nothing.

use std::time::Duration;

use ferry::store::*;
use ferry_testkit::backends;

use super::*;

backends!(
    with backend;
    a_sha_is_a_candidate_once_and_a_newer_one_replaces_it,
    each_due_look_is_leased_to_one_process,
    a_sent_candidate_is_not_replaced_and_ends_once,
    a_checks_webhook_brings_the_look_forward_and_origins_say_who_started_it,
);

fn offer(sha: &str, branch: &str) -> NewCandidate {
    NewCandidate {
        repository: "o/r".into(),
        environment: "staging".into(),
        sha: sha.into(),
        source: CandidateSource::Branch(branch.into()),
        installation_id: Some(7),
        due_at: Timestamp::now(),
    }
}

fn other() -> Owner {
    Owner("other (pid 2)".into())
}

async fn due(store: &SharedStore, owner: &Owner) -> Vec<Candidate> {
    let now = Timestamp::now() + Duration::from_millis(1);
    store
        .due_candidates(owner, now, now + Duration::from_millis(60_000), 10)
        .await
        .unwrap()
}

async fn states(store: &SharedStore) -> Vec<(String, CandidateState)> {
    let mut all: Vec<_> = store
        .candidates_of("o/r", "staging", 10)
        .await
        .unwrap()
        .into_iter()
        .map(|c| (c.offer.sha, c.state))
        .collect();
    all.reverse();
    all
}

async fn a_sha_is_a_candidate_once_and_a_newer_one_replaces_it(b: Backend) {
    let store = (b.open)().await;
    assert!(store.offer_candidate(&offer("a1", "main")).await.unwrap());
    assert!(
        !store.offer_candidate(&offer("a1", "main")).await.unwrap(),
        "a redelivered push changes nothing"
    );
    assert!(store.offer_candidate(&offer("b2", "main")).await.unwrap());
    assert_eq!(
        states(&store).await,
        [
            ("a1".to_string(), CandidateState::Replaced),
            ("b2".to_string(), CandidateState::Waiting)
        ]
    );
    // A replaced sha pushed again stays replaced: a sha is offered once.
    assert!(!store.offer_candidate(&offer("a1", "main")).await.unwrap());
    // Another environment has candidates of its own.
    let prod = NewCandidate {
        environment: "production".into(),
        ..offer("a1", "main")
    };
    assert!(store.offer_candidate(&prod).await.unwrap());
    assert_eq!(states(&store).await[1].1, CandidateState::Waiting);
    // What survives a reopen.
    let again = (b.open)().await;
    let c = &again.candidates_of("o/r", "staging", 1).await.unwrap()[0];
    assert_eq!(c.offer, offer("b2", "main").with_due(c.offer.due_at));
    assert!(!c.sent);
}

trait WithDue {
    fn with_due(self, due_at: Timestamp) -> Self;
}

impl WithDue for NewCandidate {
    fn with_due(self, due_at: Timestamp) -> Self {
        NewCandidate { due_at, ..self }
    }
}

async fn each_due_look_is_leased_to_one_process(b: Backend) {
    let store = (b.open)().await;
    let replica = (b.open)().await;
    store.offer_candidate(&offer("a1", "main")).await.unwrap();
    let soaking = NewCandidate {
        environment: "production".into(),
        source: CandidateSource::Promotion {
            environment: "staging".into(),
            deployment: DeploymentId(41),
        },
        due_at: Timestamp::now() + Duration::from_millis(3_600_000),
        ..offer("a1", "main")
    };
    store.offer_candidate(&soaking).await.unwrap();
    let (a, b2) = (me(), other());
    let (mine, theirs) = tokio::join!(due(&store, &a), due(&replica, &b2));
    assert_eq!(
        mine.len() + theirs.len(),
        1,
        "one look, one process; the soaking one not yet: {mine:?} {theirs:?}"
    );
    let (holder, loser, seq) = if mine.is_empty() {
        (other(), me(), theirs[0].seq)
    } else {
        (me(), other(), mine[0].seq)
    };
    assert!(
        due(&store, &me()).await.is_empty(),
        "leased until its next look"
    );
    assert!(
        !store
            .candidate_later(seq, &loser, Timestamp::EPOCH)
            .await
            .unwrap(),
        "not the loser's to push back"
    );
    assert!(
        store
            .candidate_later(seq, &holder, Timestamp::EPOCH)
            .await
            .unwrap()
    );
    // Due again at once, for whoever asks.
    let again = due(&replica, &loser).await;
    assert_eq!(again.len(), 1);
    assert!(
        !store
            .candidate_sending(
                seq,
                &holder,
                Timestamp::now() + Duration::from_millis(60_000)
            )
            .await
            .unwrap()
    );
    assert!(
        store
            .candidate_sending(
                seq,
                &loser,
                Timestamp::now() + Duration::from_millis(60_000)
            )
            .await
            .unwrap()
    );
}

async fn a_sent_candidate_is_not_replaced_and_ends_once(b: Backend) {
    let store = (b.open)().await;
    store.offer_candidate(&offer("a1", "main")).await.unwrap();
    let seq = due(&store, &me()).await[0].seq;
    assert!(
        store
            .candidate_sending(seq, &me(), Timestamp::now() + Duration::from_millis(60_000))
            .await
            .unwrap()
    );
    // GitHub may have it: a newer push does not take its place.
    store.offer_candidate(&offer("b2", "main")).await.unwrap();
    let looked = due(&store, &other()).await;
    assert_eq!(looked.len(), 1, "{looked:?}");
    assert_eq!(looked[0].offer.sha, "b2");
    assert_eq!(states(&store).await[0].1, CandidateState::Waiting);
    // The lease ran out: the next look knows it was sent.
    store
        .candidate_later(seq, &me(), Timestamp::EPOCH)
        .await
        .unwrap();
    let retried = due(&store, &other()).await;
    assert_eq!(retried.len(), 1);
    assert!(retried[0].sent);
    let created = CandidateState::Created(DeploymentId(43));
    assert!(!store.settle_candidate(seq, &me(), &created).await.unwrap());
    assert!(
        store
            .settle_candidate(seq, &other(), &created)
            .await
            .unwrap()
    );
    assert!(
        !store
            .settle_candidate(seq, &other(), &created)
            .await
            .unwrap(),
        "ends once"
    );
    let found = store.candidate_of(DeploymentId(43)).await.unwrap().unwrap();
    assert_eq!((found.offer.sha.as_str(), found.state), ("a1", created));
    let b2 = looked[0].seq;
    let dropped = CandidateState::Dropped("Check 'test' failed on b2".into());
    assert!(
        store
            .settle_candidate(b2, &other(), &dropped)
            .await
            .unwrap()
    );
    assert_eq!(states(&store).await[1].1, dropped);
    assert!(due(&store, &me()).await.is_empty());
}

async fn a_checks_webhook_brings_the_look_forward_and_origins_say_who_started_it(b: Backend) {
    let store = (b.open)().await;
    store.offer_candidate(&offer("a1", "main")).await.unwrap();
    let seq = due(&store, &me()).await[0].seq;
    store
        .candidate_later(seq, &me(), Timestamp::now() + Duration::from_millis(15_000))
        .await
        .unwrap();
    assert!(due(&store, &me()).await.is_empty());
    assert_eq!(
        store.candidates_look_again("o/r", "other").await.unwrap(),
        0
    );
    assert_eq!(store.candidates_look_again("o/r", "a1").await.unwrap(), 1);
    assert_eq!(due(&store, &me()).await.len(), 1);
    store
        .settle_candidate(seq, &me(), &CandidateState::Created(DeploymentId(5)))
        .await
        .unwrap();
    let asked = DeployRequest {
        actor: "alice".into(),
        repository: "o/r".into(),
        environment: "staging".into(),
        git_ref: "main".into(),
        task: "deploy".into(),
        payload: "{}".into(),
        description: "Deploy by alice".into(),
        skip_contexts: false,
        production: None,
        transient: None,
        rollback_of: None,
    };
    let n = store
        .request_deployment(&asked, std::time::Duration::from_secs(30))
        .await
        .unwrap();
    store
        .answer_request(n, &RequestAnswer::Created(DeploymentId(6)))
        .await
        .unwrap();
    let origins = store
        .origins(&[DeploymentId(5), DeploymentId(6), DeploymentId(7)])
        .await
        .unwrap();
    assert_eq!(
        origins.get(&DeploymentId(5)),
        Some(&Origin::Auto(CandidateSource::Branch("main".into())))
    );
    assert_eq!(
        origins.get(&DeploymentId(6)),
        Some(&Origin::Command {
            actor: "alice".into(),
            rollback_of: None
        })
    );
    assert_eq!(
        store.origin(DeploymentId(7)).await.unwrap(),
        Origin::Webhook
    );
}
