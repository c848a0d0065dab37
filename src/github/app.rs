//! GitHub App authentication: an RS256 JWT signed with the App's key is
//! exchanged for a short-lived installation token, cached per installation.

use crate::sync::LockExt;
use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde::{Deserialize, Serialize};

use super::{CallError, GitHub};
use crate::config::Secret;

/// Tokens are renewed this long before GitHub says they expire.
const RENEW_BEFORE: Duration = Duration::from_secs(5 * 60);

#[derive(Serialize)]
struct Claims {
    iat: u64,
    exp: u64,
    iss: String,
}

#[derive(Deserialize)]
struct AccessToken {
    token: String,
    expires_at: String,
}

pub struct AppAuth {
    app_id: u64,
    key: EncodingKey,
    /// installation id → (token, renew at)
    cache: Mutex<HashMap<i64, (Secret, SystemTime)>>,
}

fn jwt(app_id: u64, key: &EncodingKey) -> Result<String, jsonwebtoken::errors::Error> {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs();
    // iat in the past absorbs clock drift between us and GitHub; exp well
    // inside GitHub's 10-minute limit.
    let claims = Claims {
        iat: now.saturating_sub(60),
        exp: now + 9 * 60,
        iss: app_id.to_string(),
    };
    jsonwebtoken::encode(&Header::new(Algorithm::RS256), &claims, key)
}

/// Used by `check-config`: the key must parse and be able to sign.
pub fn check_private_key(pem: &[u8]) -> Result<(), String> {
    let key = EncodingKey::from_rsa_pem(pem)
        .map_err(|e| format!("not an RSA private key in PEM form ({e})"))?;
    jwt(1, &key)
        .map(drop)
        .map_err(|e| format!("cannot sign with this key ({e})"))
}

impl AppAuth {
    pub fn new(app_id: u64, pem: &Secret) -> anyhow::Result<AppAuth> {
        let key = EncodingKey::from_rsa_pem(pem.expose())
            .map_err(|e| anyhow::anyhow!("github.app_private_key_file: {e}"))?;
        Ok(AppAuth {
            app_id,
            key,
            cache: Mutex::new(HashMap::new()),
        })
    }

    pub fn forget(&self, installation: i64) -> bool {
        self.cache.locked().remove(&installation).is_some()
    }

    /// `GET /repos/{repository}/installation`: the installation of this
    /// App that covers the repository, for calls no event came with.
    pub async fn repository_installation(
        &self,
        github: &GitHub,
        repository: &str,
    ) -> Result<i64, CallError> {
        #[derive(serde::Deserialize)]
        struct Installation {
            id: i64,
        }
        let jwt = jwt(self.app_id, &self.key).map_err(|e| CallError::Permanent {
            reason: format!("cannot sign the App JWT: {e}"),
        })?;
        let url = format!("{}/repos/{repository}/installation", github.api_url);
        let response = github
            .send(github.http.get(url).bearer_auth(jwt))
            .await
            .map_err(|e| match e {
                CallError::Permanent { reason } => CallError::Permanent {
                    reason: format!("the App is not installed on {repository}: {reason}"),
                },
                other => other,
            })?;
        let found: Installation = response.json().await.map_err(|e| CallError::Retry {
            after: None,
            reason: format!("unreadable installation answer: {e}"),
        })?;
        Ok(found.id)
    }

    pub async fn installation_token(
        &self,
        github: &GitHub,
        installation: Option<i64>,
    ) -> Result<Secret, CallError> {
        let Some(id) = installation else {
            return Err(CallError::Permanent {
                reason: "the event named no installation; in GitHub App mode the webhook must be the App's own".into(),
            });
        };
        if let Some((token, renew_at)) = self.cache.locked().get(&id)
            && SystemTime::now() < *renew_at
        {
            return Ok(token.clone());
        }
        let jwt = jwt(self.app_id, &self.key).map_err(|e| CallError::Permanent {
            reason: format!("cannot sign the App JWT: {e}"),
        })?;
        let url = format!("{}/app/installations/{id}/access_tokens", github.api_url);
        let response = github
            .send(github.http.post(url).bearer_auth(jwt))
            .await
            .map_err(|e| match e {
                CallError::Permanent { reason } => CallError::Permanent {
                    reason: format!("installation {id} token refused: {reason}"),
                },
                // No status went out: nothing about one is in doubt.
                CallError::Unanswered { reason } => CallError::Retry {
                    after: None,
                    reason,
                },
                retry => retry,
            })?;
        let access: AccessToken = response.json().await.map_err(|e| CallError::Retry {
            after: None,
            reason: format!("unreadable installation token answer: {e}"),
        })?;
        let expires = humantime::parse_rfc3339(&access.expires_at)
            .unwrap_or_else(|_| SystemTime::now() + Duration::from_secs(3600));
        let renew_at = expires.checked_sub(RENEW_BEFORE).unwrap_or(expires);
        let token = Secret::new(access.token);
        self.cache.locked().insert(id, (token.clone(), renew_at));
        Ok(token)
    }
}
