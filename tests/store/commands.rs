//! Pull request commands: a comment is recorded once, each look is leased
//! to one process, every step is fenced by the lease, and a command whose
//! deployment runs waits for its end.

use std::time::Duration;

use ferry::store::*;
use ferry_testkit::backends;

use super::*;

backends!(
    with backend;
    a_comment_is_a_command_once_and_each_look_is_one_processes,
    steps_are_recorded_and_a_parked_command_wakes_when_its_deployment_ends,
);

fn command(comment_id: i64) -> NewCommand {
    NewCommand {
        repository: "o/r".into(),
        comment_id,
        number: 42,
        login: "alice".into(),
        line: ".deploy".into(),
        installation_id: None,
    }
}

fn other() -> Owner {
    Owner("other (pid 2)".into())
}

async fn due(store: &SharedStore, owner: &Owner) -> Vec<CommandRecord> {
    let now = Timestamp::now() + Duration::from_millis(1);
    store
        .due_commands(owner, now, now + Duration::from_millis(60_000), 10)
        .await
        .unwrap()
}

async fn a_comment_is_a_command_once_and_each_look_is_one_processes(b: Backend) {
    let store = (b.open)().await;
    let replica = (b.open)().await;
    let (a, b2) = (me(), other());
    let one = command(1);
    let (x, y) = tokio::join!(store.record_command(&one), replica.record_command(&one));
    assert!(x.unwrap() ^ y.unwrap(), "one of two deliveries records it");
    let (mine, theirs) = tokio::join!(due(&store, &a), due(&replica, &b2));
    assert_eq!(mine.len() + theirs.len(), 1, "{mine:?} {theirs:?}");
    let (holder, loser, seq) = if mine.is_empty() {
        (other(), me(), theirs[0].seq)
    } else {
        (me(), other(), mine[0].seq)
    };
    let reacted = CommandChange {
        reacted: true,
        ..Default::default()
    };
    assert!(!store.change_command(seq, &loser, &reacted).await.unwrap());
    assert!(store.change_command(seq, &holder, &reacted).await.unwrap());
    // The holder dies: after its lease the other looks, and sees the step.
    assert!(
        store
            .command_later(seq, &holder, Timestamp::EPOCH)
            .await
            .unwrap()
    );
    let again = due(&replica, &loser).await;
    assert!(again[0].reacted && !again[0].create_sent);
    // A process alone on its store takes the last one's looks at once.
    assert_eq!(store.release_commands().await.unwrap(), 1);
    assert_eq!(due(&store, &holder).await.len(), 1);
}

async fn steps_are_recorded_and_a_parked_command_wakes_when_its_deployment_ends(b: Backend) {
    let store = (b.open)().await;
    store.record_command(&command(7)).await.unwrap();
    let seq = due(&store, &me()).await[0].seq;
    for change in [
        CommandChange {
            create_sent: true,
            lease_until: Some(Timestamp::now() + Duration::from_millis(60_000)),
            ..Default::default()
        },
        CommandChange {
            deployment: Some(DeploymentId(900)),
            reply: Some("deploying".into()),
            ..Default::default()
        },
        CommandChange {
            reply_sent: true,
            ..Default::default()
        },
        CommandChange {
            reply_id: Some(77),
            ..Default::default()
        },
    ] {
        assert!(
            store.change_command(seq, &me(), &change).await.unwrap(),
            "{change:?}"
        );
    }
    assert!(store.park_command(seq, &me()).await.unwrap());
    assert!(due(&store, &me()).await.is_empty(), "parked");
    let r = store.command_of(DeploymentId(900)).await.unwrap().unwrap();
    assert!(r.create_sent && r.reply_sent && !r.done);
    assert_eq!(
        (r.reply.as_deref(), r.reply_id),
        (Some("deploying"), Some(77))
    );
    assert_eq!(
        store
            .command_deployment_ended(DeploymentId(900), "Ended **success**")
            .await
            .unwrap(),
        1
    );
    let woken = due(&store, &me()).await;
    assert_eq!(woken[0].final_text.as_deref(), Some("Ended **success**"));
    let done = CommandChange {
        edited: true,
        done: true,
        ..Default::default()
    };
    assert!(store.change_command(seq, &me(), &done).await.unwrap());
    assert!(
        !store.change_command(seq, &me(), &done).await.unwrap(),
        "done once"
    );
    assert_eq!(
        store.origin(DeploymentId(900)).await.unwrap(),
        Origin::PullRequest {
            number: 42,
            login: "alice".into()
        }
    );
}
