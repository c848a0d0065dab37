//! `[[notify]]` as check-config reads it: defaults, and each problem by its key.
use super::*;
use crate::config::tests::{BASE, parse};

#[test]
fn sinks_are_read_with_their_defaults() {
    let dir = tempfile::tempdir().unwrap();
    let token = dir.path().join("slack-token");
    std::fs::write(&token, "xoxb-1\n").unwrap();
    let c = parse(&format!(
        "{BASE}\n[[notify]]\nname = \"ops\"\nslack_token_file = {token:?}\nchannel = \"C1\"\n\
         environments = [\"production\"]\n\
         [[notify]]\nname = \"hook\"\nurl = \"https://hooks.example.com/ferry?key=1\"\nevents = [\"failure\", \"locked\"]\n"
    ))
    .unwrap();
    assert_eq!(c.sinks.len(), 2);
    let SinkKind::Slack {
        token,
        channel,
        api_url,
    } = &c.sinks[0].kind
    else {
        panic!("not Slack: {:?}", c.sinks[0]);
    };
    assert_eq!((token.expose(), channel.as_str()), (&b"xoxb-1"[..], "C1"));
    assert_eq!(api_url, DEFAULT_SLACK_API_URL);
    assert_eq!(c.sinks[0].events, NotifyEvent::DEFAULT);
    assert!(c.sinks[0].hears(NotifyEvent::Success, "any/repo", "production"));
    assert!(!c.sinks[0].hears(NotifyEvent::Queued, "any/repo", "production"));
    assert!(!c.sinks[0].hears(NotifyEvent::Success, "any/repo", "staging"));
    assert!(matches!(
        &c.sinks[1].kind,
        SinkKind::Webhook { secret: None, .. }
    ));
    assert!(c.sinks[1].hears(NotifyEvent::Locked, "o/r", "e"));
    assert!(!c.sinks[1].hears(NotifyEvent::Success, "o/r", "e"));
}

#[test]
fn every_problem_is_named_by_its_key() {
    let e = parse(&format!(
        "{BASE}\n[[notify]]\nname = \"a\"\nurl = \"https://h/x\"\nevents = [\"sucess\", \"deployed\"]\n\
         [[notify]]\nname = \"a\"\nurl = \"ftp://h\"\nslack_token_file = \"/nonexistent\"\n\
         [[notify]]\nname = \"c\"\n\
         [[notify]]\nname = \"d\"\nslack_token_file = \"/nonexistent/token\"\nsecret_file = \"s\"\n\
         [[notify]]\nname = \"e\"\nurl = \"https://h\"\nsecret_file = \"/nonexistent/secret\"\nchannel = \"C1\"\n"
    ))
    .unwrap_err();
    let has = |key: &str, words: &str| {
        assert!(
            e.problems
                .iter()
                .any(|p| p.key == key && p.message.contains(words)),
            "no problem at {key} saying {words:?}: {e}"
        )
    };
    has(
        "notify[0].events[0]",
        "\"sucess\" is not an event; did you mean \"success\"?",
    );
    has("notify[0].events[1]", "the events are: queued, in_progress");
    has("notify[1].url", "not both");
    has("notify[2]", "no kind");
    has(
        "notify[3].slack_token_file",
        "cannot read /nonexistent/token",
    );
    has("notify[3].channel", "missing");
    has("notify[3].secret_file", "only with url");
    has("notify[4].secret_file", "cannot read /nonexistent/secret");
    has("notify[4].channel", "only for Slack");
    assert!(e.problems.iter().all(|p| p.line.is_some()), "{e}");
}

#[test]
fn a_duplicate_name_and_an_empty_event_list_are_refused() {
    let e = parse(&format!(
        "{BASE}\n[[notify]]\nname = \"a\"\nurl = \"https://h/x\"\n\
         [[notify]]\nname = \"a\"\nurl = \"https://h/y\"\nevents = []\n"
    ))
    .unwrap_err();
    assert!(
        e.problems.iter().any(|p| p.key == "notify[1].events"),
        "{e}"
    );
    let e = parse(&format!(
        "{BASE}\n[[notify]]\nname = \"a\"\nurl = \"https://h/x\"\n\
         [[notify]]\nname = \"a\"\nurl = \"https://h/y\"\n"
    ))
    .unwrap_err();
    assert!(
        e.problems
            .iter()
            .any(|p| p.key == "notify[1].name" && p.message.contains("comes before")),
        "{e}"
    );
}
