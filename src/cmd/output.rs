//! How the commands write for people and scripts: their own log lines
//! (none by default), times, and deployments as JSON.

/// Structured logs to the journal when systemd started us (fields such as
/// DEPLOYMENT, REPOSITORY, ENVIRONMENT, DELIVERY), else human-readable on
/// stderr. `RUST_LOG` picks what is shown either way.
pub fn init_tracing(daemon: bool) {
    use tracing_subscriber::EnvFilter;
    use tracing_subscriber::layer::SubscriberExt;
    use tracing_subscriber::util::SubscriberInitExt;
    // The other commands say what they have to say themselves: the parts
    // they share with the daemon (the SSH connector, the store) log for a
    // journal, and those lines on a terminal repeated the command's own
    // output. RUST_LOG still shows them.
    let default = if daemon { "info" } else { "off" };
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default));
    if daemon
        && std::env::var_os("JOURNAL_STREAM").is_some()
        && let Ok(journald) = tracing_journald::layer()
    {
        // Fields as operators type them: `journalctl -u ferry DEPLOYMENT=5001`
        // (the default prefix would make that F_DEPLOYMENT).
        let journald = journald.with_field_prefix(None);
        tracing_subscriber::registry()
            .with(filter)
            .with(journald)
            .init();
        return;
    }
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(colour(&std::io::stderr()))
        .init();
}

/// Whether to colour what goes to `out`: a terminal, unless `NO_COLOR` is
/// set to anything but the empty string (no-color.org).
pub fn colour(out: &impl std::io::IsTerminal) -> bool {
    out.is_terminal() && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty())
}

pub fn clock(t: crate::store::Timestamp) -> String {
    t.rfc3339()
}

/// A time as `--json` writes it: RFC 3339, or null.
pub(crate) fn json_time(t: Option<crate::store::Timestamp>) -> serde_json::Value {
    t.map_or(serde_json::Value::Null, |t| clock(t).into())
}

/// A deployment as `--json` writes it (`ferry deployments`, `ferry show`),
/// field names as the README documents them.
pub(crate) fn deployment_json(
    d: &crate::store::Deployment,
) -> serde_json::Map<String, serde_json::Value> {
    let serde_json::Value::Object(fields) = serde_json::json!({
        "id": d.id.0,
        "repository": d.repository,
        "environment": d.environment,
        "task": d.task,
        "ref": d.git_ref,
        "sha": d.sha,
        "state": d.state_word(),
        "description": d.description,
        "creator": d.creator,
        "created_at": json_time(Some(d.created_at)),
        "started_at": json_time(d.started_at),
        "finished_at": json_time(d.finished_at),
    }) else {
        unreachable!("a JSON object literal")
    };
    fields
}

/// What started a deployment, in `--json`: `{"kind": "auto-deploy",
/// "text": "auto-deploy of main"}`; kinds are `webhook`, `deploy`,
/// `rollback`, `auto-deploy` and `promotion`.
pub fn origin_json(origin: &crate::store::Origin) -> serde_json::Value {
    serde_json::json!({"kind": origin.kind(), "text": origin.describe()})
}
