//! `GET /deployments/{id}/log?token=T` (HTML, or text), its live event
//! stream `GET /deployments/{id}/events?token=T`, and the page's assets.

use std::collections::VecDeque;
use std::convert::Infallible;
use std::time::Duration;

use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::json;

use super::{Logs, html};
use crate::config::Config;
use crate::current::Current;
use crate::store::{Deployment, DeploymentId, SharedStore};

/// What the log pages need.
#[derive(Clone)]
pub struct Pages {
    pub store: SharedStore,
    pub logs: Logs,
    /// For the hosts a page lists.
    pub config: Current<Config>,
}

/// A live stream wakes when its log changes (in this process, or in
/// another replica as PostgreSQL tells); it also looks this often, since
/// such notices can be missed.
const POLL: Duration = Duration::from_secs(1);

/// Scripts and styles only from ferry itself; no inline code, no other site.
const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; \
                   connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

#[derive(Deserialize)]
pub struct LogQuery {
    token: Option<String>,
    format: Option<String>,
}

fn not_found() -> Response {
    (StatusCode::NOT_FOUND, "not found\n").into_response()
}

fn unavailable(e: impl std::fmt::Display, id: DeploymentId) -> Response {
    tracing::error!(error = %e, deployment = %id, "cannot read deployment {id} or its log: {e}");
    (StatusCode::SERVICE_UNAVAILABLE, "storage unavailable\n").into_response()
}

/// The deployment, if `id` and `token` name one; a wrong id and a wrong
/// token look the same, so there is nothing to probe.
async fn authorized(app: &Pages, id: &str, token: Option<&str>) -> Result<Deployment, Response> {
    let Ok(id) = id.parse::<DeploymentId>() else {
        return Err(not_found());
    };
    if !token.is_some_and(|t| app.logs.token_valid(id, t)) {
        return Err(not_found());
    }
    match app.store.get(id).await {
        Ok(Some(d)) => Ok(waiting_on_lock(app, d).await),
        Ok(None) => Err(not_found()),
        Err(e) => Err(unavailable(e, id)),
    }
}

/// A waiting deployment's page says so when its environment is locked or
/// held, whenever that began.
async fn waiting_on_lock(app: &Pages, mut d: Deployment) -> Deployment {
    if d.state != crate::store::State::Queued {
        return d;
    }
    let locks = app.store.locks().await.unwrap_or_default();
    let holds = app.store.holds().await.unwrap_or_default();
    if let Some(waiting) = crate::store::waiting_on(&locks, &holds, &d.repository, &d.environment) {
        d.description = waiting;
    }
    d
}

/// HTML only for clients that name `text/html` (browsers): `curl`'s `*/*`
/// and scripts without an Accept header get the log verbatim, since the
/// page's escaping would turn a `<` in the output into `&lt;`.
/// `?format=text` / `?format=html` choose explicitly.
fn wants_text(q: &LogQuery, headers: &HeaderMap) -> bool {
    match q.format.as_deref() {
        Some("text") => return true,
        Some("html") => return false,
        _ => {}
    }
    let accept = headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    !accepts_html(accept)
}

/// Whether an Accept header lists `text/html` with a non-zero quality.
fn accepts_html(accept: &str) -> bool {
    accept.split(',').any(|range| {
        let mut parts = range.split(';').map(str::trim);
        let media = parts.next().unwrap_or_default();
        let refused = parts.any(|p| {
            p.strip_prefix("q=")
                .and_then(|q| q.parse::<f32>().ok())
                .is_some_and(|q| q <= 0.0)
        });
        media.eq_ignore_ascii_case("text/html") && !refused
    })
}

#[cfg(test)]
mod tests {
    use super::accepts_html;

    #[test]
    fn only_clients_that_name_html_get_html() {
        assert!(accepts_html(
            "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"
        ));
        assert!(accepts_html("application/json, Text/HTML;q=0.5"));
        assert!(!accepts_html("*/*"));
        assert!(!accepts_html(""));
        assert!(!accepts_html("text/plain"));
        assert!(!accepts_html("text/html;q=0"));
    }
}

pub async fn log(
    State(app): State<Pages>,
    Path(id): Path<String>,
    Query(q): Query<LogQuery>,
    headers: HeaderMap,
) -> Response {
    let d = match authorized(&app, &id, q.token.as_deref()).await {
        Ok(d) => d,
        Err(r) => return r,
    };
    let read = match app.logs.read_from(d.id, 0).await {
        Ok(r) => r,
        Err(e) => return unavailable(e, d.id),
    };
    let common = [
        (header::CACHE_CONTROL, "no-store"),
        // The token is in the URL: never hand it to another site.
        (header::REFERRER_POLICY, "no-referrer"),
        (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
    ];
    if wants_text(&q, &headers) {
        let mut body = header_text(&d);
        match &read {
            Some((lines, _)) => body.push_str(&super::text(lines)),
            None if d.state.is_final() && d.started_at.is_some() => body.push_str(
                "(the log of this deployment is gone: removed after storage.log_retention)\n",
            ),
            None => body.push_str("(no output yet)\n"),
        }
        return (
            common,
            [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
            body,
        )
            .into_response();
    }
    let config = app.config.get();
    let hosts: Vec<String> = config
        .target_for(&d.repository, &d.environment, &d.task)
        .map(|t| t.hosts.iter().map(ToString::to_string).collect())
        .unwrap_or_default();
    let (lines, offset) = match &read {
        Some((lines, offset)) => (Some(lines.as_slice()), *offset),
        None => (None, 0),
    };
    let token = q.token.as_deref().unwrap_or_default();
    let page = html::page(&d, lines, offset, token, &hosts);
    (
        common,
        [
            (header::CONTENT_TYPE, "text/html; charset=utf-8"),
            (header::CONTENT_SECURITY_POLICY, CSP),
        ],
        page,
    )
        .into_response()
}

pub fn header_text(d: &Deployment) -> String {
    let mut s = format!(
        "{} of {} to {} (task {})\nref {} at {}{}\nstate: {}",
        d.name(),
        d.repository,
        d.environment,
        d.task_run(),
        d.git_ref,
        d.sha,
        // GitHub may send no creator (an App's deployment, a delivery by hand).
        if d.creator.is_empty() {
            String::new()
        } else {
            format!(", by {}", d.creator)
        },
        d.state_word()
    );
    if !d.description.is_empty() {
        s.push_str(" - ");
        s.push_str(&d.description);
    }
    s.push_str("\n\n");
    s
}

#[derive(Deserialize)]
pub struct EventsQuery {
    token: Option<String>,
    #[serde(default)]
    from: u64,
    #[serde(default)]
    line: usize,
}

struct Follow {
    app: Pages,
    changes: tokio::sync::broadcast::Receiver<DeploymentId>,
    id: DeploymentId,
    offset: u64,
    line: usize,
    pending: VecDeque<Event>,
    done: bool,
}

impl Follow {
    /// Queues the lines written since the last look; false if there were none.
    async fn read_new(&mut self) -> bool {
        let Ok(Some(entries)) = self.app.logs.entries_from(self.id, self.offset).await else {
            return false;
        };
        let any = !entries.is_empty();
        for (l, end) in entries {
            self.line += 1;
            self.offset = end;
            let data = json!({
                "n": self.line,
                "host": l.host,
                "step": l.step,
                "title": html::group_title(l.host.as_deref(), l.step.as_deref()),
                                "exit": l.exit,
                "t": l.t,
                "html": html::line_html(self.line, &l),
            });
            self.pending.push_back(
                Event::default()
                    .event("line")
                    .id(format!("{}-{}", self.offset, self.line))
                    .data(data.to_string()),
            );
        }
        any
    }

    async fn next(mut self) -> Option<(Result<Event, Infallible>, Follow)> {
        loop {
            if let Some(e) = self.pending.pop_front() {
                return Some((Ok(e), self));
            }
            if self.done {
                return None;
            }
            if self.read_new().await {
                continue;
            }
            let d = match self.app.store.get(self.id).await {
                Ok(Some(d)) => d,
                // Storage trouble or a vanished row: end the stream; the
                // browser reconnects from the last line it has.
                _ => return None,
            };
            if d.state.is_final() {
                // Lines written just before the state changed come first.
                self.read_new().await;
                let took = match (d.started_at, d.finished_at) {
                    (Some(s), Some(f)) => html::duration(f - s),
                    _ => "-".into(),
                };
                let class = html::state_class(d.state);
                let data = json!({"state": d.state.as_str(), "class": class, "description": d.description, "duration": took});
                self.pending
                    .push_back(Event::default().event("end").data(data.to_string()));
                self.done = true;
                continue;
            }
            self.changed().await;
        }
    }

    /// Until this log may have new lines.
    async fn changed(&mut self) {
        use tokio::sync::broadcast::error::RecvError;
        let id = self.id;
        let changes = &mut self.changes;
        let wait = async {
            loop {
                match changes.recv().await {
                    Ok(changed) if changed != id => continue,
                    // Lagged: some notices were dropped, perhaps ours.
                    Ok(_) | Err(RecvError::Lagged(_)) => return,
                    Err(RecvError::Closed) => std::future::pending::<()>().await,
                }
            }
        };
        let _ = tokio::time::timeout(POLL, wait).await;
        // Notices that queued up while the lines were read say nothing new:
        // one look covers them all.
        while matches!(
            self.changes.try_recv(),
            Ok(_) | Err(tokio::sync::broadcast::error::TryRecvError::Lagged(_))
        ) {}
    }
}

pub async fn events(
    State(app): State<Pages>,
    Path(id): Path<String>,
    Query(q): Query<EventsQuery>,
    headers: HeaderMap,
) -> Response {
    let d = match authorized(&app, &id, q.token.as_deref()).await {
        Ok(d) => d,
        Err(r) => return r,
    };
    // A reconnecting EventSource says where it got to.
    let resume = headers
        .get("last-event-id")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split_once('-'))
        .and_then(|(o, n)| Some((o.parse().ok()?, n.parse().ok()?)));
    let (offset, line) = resume.unwrap_or((q.from, q.line));
    let follow = Follow {
        changes: app.logs.changes(),
        app,
        id: d.id,
        offset,
        line,
        pending: VecDeque::new(),
        done: false,
    };
    let stream = futures_util::stream::unfold(follow, Follow::next);
    (
        [
            (header::CACHE_CONTROL, "no-store"),
            // Proxies such as nginx would otherwise hold events back.
            (header::HeaderName::from_static("x-accel-buffering"), "no"),
        ],
        Sse::new(stream).keep_alive(KeepAlive::default()),
    )
        .into_response()
}

pub async fn asset(Path(name): Path<String>) -> Response {
    let (body, content_type) = match name.as_str() {
        "log.js" => (
            include_str!("assets/log.js"),
            "text/javascript; charset=utf-8",
        ),
        "log.css" => (include_str!("assets/log.css"), "text/css; charset=utf-8"),
        _ => return not_found(),
    };
    (
        [
            (header::CONTENT_TYPE, content_type),
            (header::CACHE_CONTROL, "public, max-age=3600"),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        ],
        body,
    )
        .into_response()
}
