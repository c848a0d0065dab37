//! A real HTTP receiver for ferry's generic webhook notifications: it
//! verifies `X-Ferry-Signature-256` as a receiver in the field would
//! (HMAC-SHA256 of the raw body, compared in constant time), keeps every
//! request, and answers as told: a status code per request, or never.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use serde_json::Value;

/// One request as received.
#[derive(Debug, Clone)]
pub struct Received {
    pub event: String,
    pub delivery: String,
    pub body: Vec<u8>,
    /// Whether `X-Ferry-Signature-256` verified with the secret (None: no
    /// secret set, or no header).
    pub signed: Option<bool>,
    pub content_type: String,
    pub user_agent: String,
    /// The status the receiver answered (0: it never answered).
    pub answered: u16,
    /// When it arrived.
    pub at: std::time::Instant,
}

impl Received {
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap()
    }
}

#[derive(Default)]
struct Inner {
    received: Vec<Received>,
    /// Answers for the next requests, in order; then 200.
    answers: Vec<u16>,
    hang: bool,
}

#[derive(Clone)]
pub struct Receiver {
    pub url: String,
    secret: Option<String>,
    inner: Arc<Mutex<Inner>>,
}

impl Receiver {
    pub async fn start(secret: Option<&str>) -> Receiver {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr: SocketAddr = listener.local_addr().unwrap();
        let r = Receiver {
            url: format!("http://{addr}/hook"),
            secret: secret.map(String::from),
            inner: Arc::default(),
        };
        let app = Router::new()
            .route("/hook", post(receive))
            .with_state(r.clone());
        tokio::spawn(async move { axum::serve(listener, app).await });
        r
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The next requests get these statuses, one each; then 200.
    pub fn answer_next(&self, codes: &[u16]) {
        self.lock().answers.extend_from_slice(codes);
    }

    /// Never answer from now on (until [`Receiver::recover`]).
    pub fn hang(&self) {
        self.lock().hang = true;
    }

    /// Forget the answers queued with [`Receiver::answer_next`]: 200 from now on.
    pub fn answer_now_ok(&self) {
        self.lock().answers.clear();
    }

    pub fn recover(&self) {
        self.lock().hang = false;
    }

    pub fn received(&self) -> Vec<Received> {
        self.lock().received.clone()
    }

    /// The requests answered 2xx.
    pub fn delivered(&self) -> Vec<Received> {
        self.received()
            .into_iter()
            .filter(|r| (200..300).contains(&r.answered))
            .collect()
    }
}

async fn receive(State(r): State<Receiver>, headers: HeaderMap, body: Bytes) -> StatusCode {
    let header = |k: &str| {
        headers
            .get(k)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_string()
    };
    let signature = header("x-ferry-signature-256");
    let signed = match (&r.secret, signature.strip_prefix("sha256=")) {
        (Some(secret), Some(hex)) => Some(
            hex::decode(hex).is_ok_and(|tag| ferry::sign::verify(secret.as_bytes(), &body, &tag)),
        ),
        _ => None,
    };
    let (hang, code) = {
        let mut inner = r.lock();
        let code = if inner.answers.is_empty() {
            200
        } else {
            inner.answers.remove(0)
        };
        let hang = inner.hang;
        inner.received.push(Received {
            event: header("x-ferry-event"),
            delivery: header("x-ferry-delivery"),
            body: body.to_vec(),
            signed,
            content_type: header("content-type"),
            user_agent: header("user-agent"),
            answered: if hang { 0 } else { code },
            at: std::time::Instant::now(),
        });
        (hang, code)
    };
    if hang {
        std::future::pending::<()>().await;
    }
    StatusCode::from_u16(code).unwrap()
}
