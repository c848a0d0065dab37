//! `X-Hub-Signature-256` as an axum extractor: a handler that takes a
//! [`SignedDelivery`] only ever sees bodies signed with a configured secret.

use axum::body::Bytes;
use axum::extract::{FromRequest, Request};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};

use super::Intake;
use crate::config::Secret;
use crate::sign;

pub struct SignedDelivery {
    pub headers: HeaderMap,
    pub body: Bytes,
}

/// True when `header` is `sha256=<hex>` of `body` under any of `secrets`.
pub fn verify(secrets: &[Secret], header: Option<&[u8]>, body: &[u8]) -> bool {
    let Some(hex_tag) = header.and_then(|h| h.strip_prefix(b"sha256=")) else {
        return false;
    };
    let Ok(tag) = hex::decode(hex_tag) else {
        return false;
    };
    // Every secret is tried, so timing does not tell which one matched.
    secrets
        .iter()
        .fold(false, |ok, s| sign::verify(s.expose(), body, &tag) | ok)
}

/// The most of a refused body read and thrown away; past it the
/// connection is closed on a sender that may not see the answer.
const DISCARD_AT_MOST: usize = 64 * 1024 * 1024;

/// Reads an oversized body to its end without keeping it, within
/// [`crate::http::BODY_TIMEOUT`] and [`DISCARD_AT_MOST`].
async fn discard(body: axum::body::Body) {
    use futures_util::StreamExt;
    let mut stream = body.into_data_stream();
    let mut read = 0usize;
    let drain = async {
        while let Some(Ok(chunk)) = stream.next().await {
            read += chunk.len();
            if read > DISCARD_AT_MOST {
                break;
            }
        }
    };
    let _ = tokio::time::timeout(crate::http::BODY_TIMEOUT, drain).await;
}

/// `413`, naming the limit; logged at warning priority (docs/reference.md, "HTTP").
fn too_large(delivery: &str, declared: Option<u64>) -> Response {
    let limit = crate::http::BODY_LIMIT / (1024 * 1024);
    let size = declared.map_or("a body".to_string(), |n| format!("a body of {n} bytes"));
    let why =
        format!("{size} is over the {limit} MiB limit for webhook deliveries (GitHub's own cap)");
    crate::metrics::delivery("", "too_large");
    tracing::warn!(delivery, "refused webhook delivery {delivery} (413): {why}");
    // No `Connection: close`: a sender that did not wait for `100
    // Continue` is still writing the body, and a socket closed under it
    // resets before it reads this answer (seen as EPIPE in a test). hyper
    // closes the connection itself once the answer is out and the unread
    // body is in the way.
    (StatusCode::PAYLOAD_TOO_LARGE, format!("{why}\n")).into_response()
}

impl FromRequest<Intake> for SignedDelivery {
    type Rejection = Response;

    async fn from_request(req: Request, state: &Intake) -> Result<Self, Response> {
        let headers = req.headers().clone();
        let delivery = headers
            .get("x-github-delivery")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_string();
        // An oversized body is 413 whoever sent it, decided from its
        // Content-Length before a byte of it is read: the body is never
        // polled, so hyper sends no `100 Continue` for it either.
        let declared = headers
            .get(axum::http::header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<u64>().ok());
        if let Some(n) = declared.filter(|n| *n > crate::http::BODY_LIMIT as u64) {
            // A sender that asked `Expect: 100-continue` waits for this
            // answer and sends nothing. One that did not is writing the body
            // now: it is read and thrown away (never kept), so that the
            // sender finishes writing and reads the 413 instead of a reset.
            let waits = headers
                .get(axum::http::header::EXPECT)
                .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"100-continue"));
            if !waits {
                discard(req.into_body()).await;
            }
            return Err(too_large(&delivery, Some(n)));
        }
        // One that trickles in for longer than BODY_TIMEOUT costs its
        // connection.
        let body =
            match tokio::time::timeout(crate::http::BODY_TIMEOUT, Bytes::from_request(req, state))
                .await
            {
                // Chunked, with no length declared: the limit stops the read.
                Ok(Err(e)) if e.status() == StatusCode::PAYLOAD_TOO_LARGE => {
                    return Err(too_large(&delivery, None));
                }
                Ok(read) => read.map_err(IntoResponse::into_response)?,
                Err(_) => {
                    crate::metrics::delivery("", "bad_request");
                    let mut r = (
                        StatusCode::REQUEST_TIMEOUT,
                        "the request body did not arrive within 30 s\n",
                    )
                        .into_response();
                    r.headers_mut().insert(
                        axum::http::header::CONNECTION,
                        axum::http::HeaderValue::from_static("close"),
                    );
                    return Err(r);
                }
            };
        let header = headers.get("x-hub-signature-256").map(|v| v.as_bytes());
        if !verify(&state.config.get().github.webhook_secrets, header, &body) {
            let why = if header.is_none() {
                "missing X-Hub-Signature-256 (set a secret on the webhook; SHA-1 signatures are not accepted)"
            } else {
                "X-Hub-Signature-256 does not match any configured webhook secret"
            };
            let event = headers
                .get("x-github-event")
                .and_then(|v| v.to_str().ok())
                .unwrap_or_default();
            crate::metrics::delivery(event, "unauthorized");
            tracing::warn!(
                delivery = %delivery,
                "refused webhook delivery {delivery} (401): {why}"
            );
            return Err((StatusCode::UNAUTHORIZED, format!("{why}\n")).into_response());
        }
        Ok(SignedDelivery { headers, body })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn any_configured_secret_verifies() {
        let body = b"{}";
        let old = Secret::new("old");
        let new = Secret::new("new");
        let only_new = [new.clone()];
        let header = format!("sha256={}", hex::encode(sign::sign(b"new", body)));
        assert!(verify(
            &[old.clone(), new.clone()],
            Some(header.as_bytes()),
            body
        ));
        assert!(!verify(&[old], Some(header.as_bytes()), body));
        assert!(!verify(&only_new, None, body));
        assert!(!verify(&only_new, Some(b"sha1=abc"), body));
        assert!(!verify(&only_new, Some(b"sha256=zz"), body));
        let upper = header.to_uppercase().replace("SHA256=", "sha256=");
        assert!(verify(&only_new, Some(upper.as_bytes()), body));
        let truncated = &header[..header.len() - 8];
        assert!(!verify(&only_new, Some(truncated.as_bytes()), body));
    }
}
