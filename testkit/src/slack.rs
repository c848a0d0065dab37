//! A fake Slack Web API: `chat.postMessage` and `chat.update`, checked
//! against Slack's own description of the two methods
//! (`tests/data/slack/`, see its PROVENANCE.md), keeping each channel's
//! messages so that a test reads the channel as a person would.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use serde_json::{Value, json};

pub const TOKEN: &str = "xoxb-test-token";

/// A message as the channel shows it now.
#[derive(Debug, Clone)]
pub struct Message {
    pub channel: String,
    pub ts: String,
    pub text: String,
    pub blocks: Option<Value>,
    /// Its texts before each update, oldest first.
    pub history: Vec<String>,
}

/// What the fake answers instead, for the next calls.
#[derive(Debug, Clone)]
pub enum Fault {
    /// HTTP 429 with `Retry-After: secs`.
    RateLimited { secs: u64 },
    /// HTTP 200, `ok: false`, this error.
    Error(String),
    /// HTTP 500.
    ServerError,
}

#[derive(Default)]
struct Inner {
    /// Messages by channel, in posting order.
    channels: HashMap<String, Vec<Message>>,
    /// Channels the app is not a member of: posting there is `not_in_channel`.
    outside: Vec<String>,
    faults: Vec<Fault>,
    /// Every call: method and body.
    calls: Vec<(String, Value)>,
    violations: Vec<String>,
    next_ts: u64,
}

#[derive(Clone)]
pub struct FakeSlack {
    pub url: String,
    inner: Arc<Mutex<Inner>>,
    spec: Arc<Value>,
}

impl FakeSlack {
    pub async fn start() -> FakeSlack {
        let spec: Value = serde_json::from_slice(
            &std::fs::read(crate::data_dir().join("slack/chat-methods.json")).unwrap(),
        )
        .unwrap();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr: SocketAddr = listener.local_addr().unwrap();
        let fake = FakeSlack {
            url: format!("http://{addr}/api"),
            inner: Arc::new(Mutex::new(Inner {
                next_ts: 1_765_101_600_000_100,
                ..Inner::default()
            })),
            spec: Arc::new(spec),
        };
        let app = Router::new()
            .route("/api/{method}", post(call))
            .with_state(fake.clone());
        tokio::spawn(async move { axum::serve(listener, app).await });
        fake
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The channel's messages, oldest first.
    pub fn messages(&self, channel: &str) -> Vec<Message> {
        self.lock()
            .channels
            .get(channel)
            .cloned()
            .unwrap_or_default()
    }

    /// Every call so far: method and body.
    pub fn calls(&self) -> Vec<(String, Value)> {
        self.lock().calls.clone()
    }

    /// The app is not invited to `channel`.
    pub fn outside(&self, channel: &str) {
        self.lock().outside.push(channel.to_string());
    }

    /// The next calls get these answers, one each, in order.
    pub fn fail_next(&self, faults: &[Fault]) {
        self.lock().faults.extend_from_slice(faults);
    }

    /// Requests that broke Slack's documented shape; none expected.
    pub fn assert_no_violations(&self) {
        let v = self.lock().violations.clone();
        assert!(v.is_empty(), "requests Slack would refuse: {v:#?}");
    }
}

fn answer(status: StatusCode, headers: &[(&'static str, String)], body: Value) -> Response {
    let mut r = (status, axum::Json(body)).into_response();
    for (k, v) in headers {
        r.headers_mut()
            .insert(*k, axum::http::HeaderValue::from_str(v).unwrap());
    }
    r
}

fn error(e: &str) -> Response {
    answer(StatusCode::OK, &[], json!({"ok": false, "error": e}))
}

/// The documented parameters of `method` and the required ones.
fn parameters(spec: &Value, method: &str) -> Option<(Vec<String>, Vec<String>)> {
    let op = &spec["paths"][format!("/{method}")]["post"];
    let params = op["parameters"].as_array()?;
    let names = params
        .iter()
        .filter(|p| p["in"] != "header")
        .filter_map(|p| p["name"].as_str().map(String::from))
        .collect();
    let required = params
        .iter()
        .filter(|p| p["in"] != "header" && p["required"] == true)
        .filter_map(|p| p["name"].as_str().map(String::from))
        .collect();
    Some((names, required))
}

async fn call(
    State(fake): State<FakeSlack>,
    Path(method): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let Some((names, required)) = parameters(&fake.spec, &method) else {
        return error("unknown_method");
    };
    let header = |k: &str| {
        headers
            .get(k)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_string()
    };
    let mut inner = fake.lock();
    let violation = |inner: &mut Inner, what: String| {
        inner.violations.push(format!("{method}: {what}"));
    };
    if header("authorization") != format!("Bearer {TOKEN}") {
        return error("invalid_auth");
    }
    if !header("content-type").starts_with("application/json") {
        violation(
            &mut inner,
            format!("content-type {:?}", header("content-type")),
        );
        return error("invalid_form_data");
    }
    let Ok(Value::Object(args)) = serde_json::from_slice::<Value>(&body) else {
        violation(&mut inner, "a body that is not a JSON object".into());
        return error("invalid_json");
    };
    inner
        .calls
        .push((method.clone(), Value::Object(args.clone())));
    for k in args.keys() {
        if !names.contains(k) {
            violation(&mut inner, format!("unknown argument {k:?}"));
            return error("invalid_arg_name");
        }
    }
    for r in &required {
        let given = args.get(r).and_then(Value::as_str).unwrap_or_default();
        if given.is_empty() {
            violation(&mut inner, format!("no {r}"));
            return error(if r == "channel" {
                "channel_not_found"
            } else {
                "invalid_arguments"
            });
        }
    }
    let text = args
        .get("text")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string();
    let blocks = args.get("blocks").cloned();
    if text.is_empty() {
        violation(
            &mut inner,
            "no text (the fallback notifications and screen readers show)".into(),
        );
        return error("no_text");
    }
    if let Some(b) = &blocks
        && !b
            .as_array()
            .is_some_and(|a| a.iter().all(|x| x["type"].is_string()))
    {
        violation(
            &mut inner,
            format!("blocks that are not an array of typed blocks: {b}"),
        );
        return error("invalid_blocks");
    }
    if !inner.faults.is_empty() {
        match inner.faults.remove(0) {
            Fault::RateLimited { secs } => {
                return answer(
                    StatusCode::TOO_MANY_REQUESTS,
                    &[("retry-after", secs.to_string())],
                    json!({"ok": false, "error": "ratelimited"}),
                );
            }
            Fault::Error(e) => return error(&e),
            Fault::ServerError => {
                return answer(StatusCode::INTERNAL_SERVER_ERROR, &[], json!({}));
            }
        }
    }
    let channel = args["channel"].as_str().unwrap_or_default().to_string();
    if inner.outside.contains(&channel) {
        return error("not_in_channel");
    }
    match method.as_str() {
        "chat.postMessage" => {
            inner.next_ts += 1;
            let n = inner.next_ts;
            let ts = format!("{}.{:06}", n / 1_000_000, n % 1_000_000);
            inner
                .channels
                .entry(channel.clone())
                .or_default()
                .push(Message {
                    channel: channel.clone(),
                    ts: ts.clone(),
                    text: text.clone(),
                    blocks,
                    history: Vec::new(),
                });
            answer(
                StatusCode::OK,
                &[],
                json!({"ok": true, "channel": channel, "ts": ts,
                       "message": {"type": "message", "subtype": "bot_message", "text": text, "ts": ts}}),
            )
        }
        _ => {
            let ts = args["ts"].as_str().unwrap_or_default().to_string();
            let Some(m) = inner
                .channels
                .get_mut(&channel)
                .and_then(|ms| ms.iter_mut().find(|m| m.ts == ts))
            else {
                return error("message_not_found");
            };
            let old = std::mem::replace(&mut m.text, text.clone());
            m.history.push(old);
            m.blocks = blocks;
            answer(
                StatusCode::OK,
                &[],
                json!({"ok": true, "channel": channel, "ts": ts, "text": text,
                       "message": {"text": text}}),
            )
        }
    }
}
