//! Commands in pull requests (docs/configuration.md, "Commands in pull
//! requests"): a comment `.deploy` is seen (`eyes`), checked (the
//! commenter's role, the pull request), acted on through the fake GitHub,
//! answered once and the answer edited when the deployment ends; refusals
//! say why and create nothing; a comment acts once however often it comes.
//! On both stores.

use std::time::Duration;

use ferry_testkit as common;
use ferry_testkit::backends;

use common::github::Fault;
use common::github::comments::Pull;
use common::{Setup, World, eventually, fixture, target};
use serde_json::{Value, json};

const REPO: &str = "octo-org/web";
const WAIT: Duration = Duration::from_secs(60);
const HEAD: &str = "dddddddddddddddddddddddddddddddddddddd42";

backends!(
    a_deploy_comment_is_seen_deployed_answered_and_the_answer_edited,
    refusals_say_why_and_look_alikes_are_ignored,
    lock_and_unlock_act_as_the_commenter,
    a_kill_between_creation_and_reply_still_gives_one_of_each,
);

async fn world(database_url: Option<String>) -> World {
    let setup = Setup {
        database_url,
        ..Setup::default()
    };
    let w = World::build(setup, |sshd, scratch| {
        let step = format!(
            "echo \"$FERRY_ENVIRONMENT $FERRY_SHA $FERRY_PAYLOAD\" >> {}/ran",
            scratch.display()
        );
        let mut t = target(REPO, "staging", &sshd.hosts(), &[("deploy", &step)], "");
        t.push_str(&target(
            REPO,
            "production",
            &sshd.hosts(),
            &[("deploy", &step)],
            "",
        ));
        t.push_str("\n[commands]\ndefault_environment = \"staging\"\n");
        t
    })
    .await;
    w.github.set_role("alice", "write");
    w.github.set_role("carol", "maintain");
    w.github.set_role("bob", "triage");
    w.github.set_pull(
        42,
        Pull {
            state: "open".into(),
            head_sha: HEAD.into(),
            head_repository: REPO.into(),
        },
    );
    w
}

/// A new comment `body` by `login` on pull request `number`, from
/// octokit's example with `issue.pull_request` set as GitHub sets it.
fn comment(id: i64, number: i64, login: &str, body: &str) -> Value {
    let mut v = fixture("issue_comment/created.payload.json");
    v["issue"]["number"] = number.into();
    v["issue"]["pull_request"] = json!({
        "url": format!("https://api.github.com/repos/{REPO}/pulls/{number}")
    });
    v["comment"]["id"] = id.into();
    v["comment"]["body"] = body.into();
    v["comment"]["user"]["login"] = login.into();
    v["repository"]["full_name"] = REPO.into();
    v
}

async fn say(w: &World, id: i64, number: i64, login: &str, body: &str) -> (u16, String) {
    w.deliver("issue_comment", &comment(id, number, login, body))
        .await
}

/// The reply to comment `id`, once posted (and edited `edits` times).
async fn reply(w: &World, id: i64, edits: usize) -> String {
    let marker = format!("reply to comment {id} ");
    eventually(&format!("the reply to comment {id}"), WAIT, || async {
        w.github
            .replies()
            .into_iter()
            .find(|r| r.body.contains(&marker) && r.edits >= edits)
            .map(|r| r.body)
    })
    .await
}

fn replies_to(w: &World, id: i64) -> usize {
    let marker = format!("reply to comment {id} ");
    w.github
        .replies()
        .iter()
        .filter(|r| r.body.contains(&marker))
        .count()
}

async fn a_deploy_comment_is_seen_deployed_answered_and_the_answer_edited(
    database_url: Option<String>,
) {
    let w = world(database_url).await;
    let (code, body) = say(&w, 1001, 42, "alice", ".deploy\n\nLooks good to me.").await;
    assert_eq!(code, 202, "{body}");
    eventually("eyes on the comment", WAIT, || async {
        w.github
            .reactions()
            .contains(&(1001, "eyes".to_string()))
            .then_some(())
    })
    .await;
    let answer = reply(&w, 1001, 0).await;
    let created = &w.github.creates()[0];
    let id = created.id.unwrap();
    assert_eq!(created.body["ref"], HEAD);
    assert_eq!(created.body["environment"], "staging");
    assert_eq!(created.body["task"], "deploy");
    assert_eq!(created.body["auto_merge"], false);
    assert_eq!(
        created.body["payload"],
        json!({"pull_request": 42, "requested_by": "alice"})
    );
    assert_eq!(created.body["description"], "Deploy of #42 by @alice");
    assert!(
        created.body.get("required_contexts").is_none(),
        "left to GitHub"
    );
    assert!(
        answer.contains(&format!("deployment {id}")) && answer.contains("/log?token="),
        "{answer}"
    );
    assert_eq!(w.final_states(id, WAIT).await.last().unwrap(), "success");
    let edited = reply(&w, 1001, 1).await;
    assert!(
        edited.contains("Ended **success**: Deployed ddddddd"),
        "{edited}"
    );
    // The same comment delivered again acts once.
    let (code, body) = say(&w, 1001, 42, "alice", ".deploy").await;
    assert_eq!(code, 200, "{body}");
    let out = w.cli(&["show", &id.to_string(), "--json"]);
    let shown: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(shown["started_by"]["kind"], "pull-request", "{shown}");
    w.settled().await;
    assert_eq!((w.github.creates().len(), replies_to(&w, 1001)), (1, 1));
    w.assert_no_violations();
}

async fn refusals_say_why_and_look_alikes_are_ignored(database_url: Option<String>) {
    let w = world(database_url).await;
    w.github.set_pull(
        43,
        Pull {
            state: "open".into(),
            head_sha: HEAD.into(),
            head_repository: "mallory/web".into(),
        },
    );
    w.github.set_pull(
        44,
        Pull {
            state: "closed".into(),
            head_sha: HEAD.into(),
            head_repository: REPO.into(),
        },
    );
    for (id, number, login, body) in [
        (2001, 42, "bob", ".deploy"),
        (2002, 43, "alice", ".deploy"),
        (2003, 44, "alice", ".deploy"),
        (2004, 42, "alice", ".deploy to nowhere"),
        (2005, 42, "alice", ".lock"),
    ] {
        assert_eq!(say(&w, id, number, login, body).await.0, 202, "{body}");
    }
    let wants = [
        (
            2001,
            "@bob needs write access to octo-org/web to run .deploy",
        ),
        (2002, "the head of #43 is in a fork (mallory/web)"),
        (2003, "#44 is closed"),
        (
            2004,
            "no target of octo-org/web deploys to `nowhere`; it deploys to staging, production",
        ),
        (2005, "usage: `.lock ENV [REASON]`"),
    ];
    for (id, says) in wants {
        let answer = reply(&w, id, 0).await;
        assert!(answer.contains(says), "{id}: {answer}");
    }
    assert!(w.github.creates().is_empty(), "{:?}", w.github.creates());
    // GitHub's refusal is quoted.
    w.github.refuse_creates(Some(
        Fault::new(409).message("Conflict: Commit status checks failed for new-topic."),
    ));
    assert_eq!(say(&w, 2006, 42, "alice", ".deploy").await.0, 202);
    let answer = reply(&w, 2006, 0).await;
    assert!(
        answer.contains(
            "GitHub refused the deployment:\n\n> 409 Conflict: Commit status checks failed"
        ),
        "{answer}"
    );
    // Nothing else is a command: edits, issues' comments, bots, look-alikes.
    let mut edited = comment(2007, 42, "alice", ".deploy");
    edited["action"] = "edited".into();
    let mut on_issue = comment(2008, 42, "alice", ".deploy");
    on_issue["issue"]
        .as_object_mut()
        .unwrap()
        .remove("pull_request");
    let mut bot = comment(2009, 42, "dependabot[bot]", ".deploy");
    bot["comment"]["user"]["type"] = "Bot".into();
    let mut ignored = vec![edited, on_issue, bot];
    for (i, body) in [
        ".deployment is broken",
        "please .deploy",
        "> .deploy",
        "Deploy it!",
    ]
    .iter()
    .enumerate()
    {
        ignored.push(comment(2010 + i as i64, 42, "alice", body));
    }
    for event in ignored {
        let (code, body) = w.deliver("issue_comment", &event).await;
        assert_eq!(code, 200, "{event}: {body}");
    }
    w.settled().await;
    assert_eq!(w.github.replies().len(), 6, "{:?}", w.github.replies());
    assert!(w.github.reactions().iter().all(|(id, _)| *id < 2007));
    assert_eq!(
        w.github.creates().iter().filter(|c| c.id.is_some()).count(),
        0
    );
    w.assert_no_violations();
}

async fn lock_and_unlock_act_as_the_commenter(database_url: Option<String>) {
    let w = world(database_url).await;
    assert_eq!(
        say(
            &w,
            3001,
            42,
            "alice",
            ".lock production incident 7: $(reboot)"
        )
        .await
        .0,
        202
    );
    let answer = reply(&w, 3001, 0).await;
    assert!(
        answer.contains("@alice locked **production**: incident 7: $(reboot)"),
        "{answer}"
    );
    let out = w.cli(&["locks", "--json"]);
    let locks = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(locks.contains("\"alice\""), "{locks}");
    assert!(locks.contains("incident 7: $(reboot)"), "{locks}");
    // A deployment meanwhile waits, naming the lock.
    w.deploy(3100, REPO, "production").await;
    eventually("queued naming the lock", WAIT, || async {
        w.github
            .statuses_of(3100)
            .last()
            .filter(|p| p.description().contains("locked by alice"))
            .map(drop)
    })
    .await;
    assert_eq!(
        say(&w, 3002, 42, "carol", ".unlock production").await.0,
        202
    );
    let answer = reply(&w, 3002, 0).await;
    assert!(
        answer.contains("@carol unlocked **production** (lifted the lock of alice)"),
        "{answer}"
    );
    assert_eq!(w.final_states(3100, WAIT).await.last().unwrap(), "success");
    eventually("the journal names who unlocked", WAIT, || async {
        w.ferry
            .output()
            .contains("carol unlocked octo-org/web:production")
            .then_some(())
    })
    .await;
    assert_eq!(
        say(&w, 3003, 42, "carol", ".unlock production").await.0,
        202
    );
    assert!(reply(&w, 3003, 0).await.contains("is not locked"));
}

async fn a_kill_between_creation_and_reply_still_gives_one_of_each(database_url: Option<String>) {
    let replicas = database_url.is_some();
    let mut w = world(database_url).await;
    // GitHub creates the deployment and its answer never comes.
    w.github.hold_creates(true);
    assert_eq!(
        say(&w, 4001, 42, "alice", ".deploy to production").await.0,
        202
    );
    let id = eventually("the create request", WAIT, || async {
        w.github.creates().first().and_then(|c| c.id)
    })
    .await;
    w.ferry.kill9();
    w.github.hold_creates(false);
    w.restart().await;
    let answer = reply(&w, 4001, 0).await;
    assert!(answer.contains(&format!("deployment {id}")), "{answer}");
    assert_eq!(w.final_states(id, WAIT).await.last().unwrap(), "success");
    reply(&w, 4001, 1).await;
    if replicas {
        // Two replicas receive the same comment at once: it acts once.
        let other = w.replica(2).await;
        let event = comment(4002, 42, "alice", ".deploy");
        let body = serde_json::to_vec(&event).unwrap();
        let send = |url: String, delivery: &'static str| {
            let body = body.clone();
            async move {
                reqwest::Client::new()
                    .post(format!("{url}/webhook"))
                    .header("content-type", "application/json")
                    .header("x-github-event", "issue_comment")
                    .header("x-github-delivery", delivery)
                    .header("x-github-hook-id", "4242")
                    .header(
                        "x-hub-signature-256",
                        common::signature(common::SECRET, &body),
                    )
                    .body(body)
                    .send()
                    .await
                    .unwrap()
                    .status()
                    .as_u16()
            }
        };
        let (a, b) = tokio::join!(
            send(w.ferry.url.clone(), "same-comment-1"),
            send(other.url.clone(), "same-comment-2")
        );
        let mut codes = [a, b];
        codes.sort();
        assert_eq!(codes, [200, 202]);
        reply(&w, 4002, 1).await;
        drop(other);
    }
    w.settled().await;
    let made = if replicas { 2 } else { 1 };
    assert_eq!(w.github.creates().len(), made, "{:?}", w.github.creates());
    assert_eq!(replies_to(&w, 4001), 1);
}
