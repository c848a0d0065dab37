//! `[github]`: the API, the webhook secrets, and a token or a GitHub App.

use super::*;

/// The placeholders `config/example/` ships, warned about wherever found.
const EXAMPLE_TOKEN: &str = "example-token-replace-me";
const EXAMPLE_WEBHOOK_SECRET: &str = "example-webhook-secret-replace-me";

impl<'a> Checker<'a> {
    pub(super) fn read_file(&mut self, path: &[Seg], file: &Path) -> Option<Vec<u8>> {
        match std::fs::read(file) {
            Ok(b) => Some(b),
            Err(e) => {
                let m = self.unreadable(file, &e);
                self.problem(path, m);
                None
            }
        }
    }

    /// The webhook secrets: `FERRY_WEBHOOK_SECRET`, else one per line of
    /// `webhook_secret_file` (rotation); never none.
    fn webhook_secrets(
        &mut self,
        file: Option<PathBuf>,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Option<Vec<Secret>> {
        let at = |k| [Seg::Key("github"), Seg::Key(k)];
        let from_env = env(ENV_WEBHOOK_SECRET).filter(|s| !s.trim().is_empty());
        match (from_env, file) {
            (Some(s), _) => Some(vec![Secret::new(s.trim().as_bytes())]),
            (None, Some(file)) => {
                let file = self.path(file);
                self.read_file(&at("webhook_secret_file"), &file)
                    .and_then(|bytes| {
                        let text = String::from_utf8_lossy(&bytes);
                        let secrets: Vec<Secret> = text
                            .lines()
                            .map(str::trim)
                            .filter(|l| !l.is_empty())
                            .map(|l| Secret::new(l.as_bytes()))
                            .collect();
                        if text.lines().any(|l| l.trim() == EXAMPLE_WEBHOOK_SECRET) {
                            self.warning(
                                &at("webhook_secret_file"),
                                format!(
                                    "{} holds the example's placeholder secret, which anyone can read: put a secret of your own there (`openssl rand -hex 32`) and on the GitHub webhook",
                                    file.display()
                                ),
                            );
                        }
                        if secrets.is_empty() {
                            self.problem(
                                &at("webhook_secret_file"),
                                format!("{} holds no secret (one per line)", file.display()),
                            );
                            return None;
                        }
                        Some(secrets)
                    })
            }
            (None, None) => {
                self.problem(
                    &at("webhook_secret_file"),
                    format!("missing: set it, or {ENV_WEBHOOK_SECRET}; ferry never accepts unsigned webhooks"),
                );
                None
            }
        }
    }

    /// A token (`FERRY_GITHUB_TOKEN`, else `token_file`) or a GitHub App
    /// (`app_id` and its private key), exactly one.
    fn github_auth(
        &mut self,
        token_env: Option<String>,
        token_file: Option<PathBuf>,
        app_id: Option<u64>,
        app_private_key_file: Option<PathBuf>,
    ) -> Option<GitHubAuth> {
        let at = |k| [Seg::Key("github"), Seg::Key(k)];
        match (token_env, token_file, app_id, app_private_key_file) {
            (Some(t), _, _, _) => Some(GitHubAuth::Token(Secret::new(t.trim().as_bytes()))),
            (None, Some(_), Some(_), _) => {
                self.problem(
                    &at("app_id"),
                    "token_file and app_id both set: use a token or a GitHub App, not both",
                );
                None
            }
            (None, Some(file), None, key) => {
                if key.is_some() {
                    self.problem(&at("app_private_key_file"), "set without app_id");
                }
                let file = self.path(file);
                self.read_file(&at("token_file"), &file).and_then(|b| {
                    let t = String::from_utf8_lossy(&b).trim().to_string();
                    if t.is_empty() {
                        self.problem(&at("token_file"), format!("{} is empty", file.display()));
                        return None;
                    }
                    if t == EXAMPLE_TOKEN {
                        self.warning(
                            &at("token_file"),
                            format!(
                                "{} holds the example's placeholder token: GitHub will refuse every status; put a token there (Deployments: write), or set {ENV_GITHUB_TOKEN}",
                                file.display()
                            ),
                        );
                    }
                    Some(GitHubAuth::Token(Secret::new(t.into_bytes())))
                })
            }
            (None, None, Some(app_id), Some(key)) => {
                let key = self.path(key);
                self.read_file(&at("app_private_key_file"), &key)
                    .and_then(|pem| match crate::github::app::check_private_key(&pem) {
                        Ok(()) => Some(GitHubAuth::App {
                            app_id,
                            private_key_pem: Secret::new(pem),
                        }),
                        Err(e) => {
                            self.problem(
                                &at("app_private_key_file"),
                                format!("{}: {e}", key.display()),
                            );
                            None
                        }
                    })
            }
            (None, None, Some(_), None) => {
                self.problem(
                    &at("app_private_key_file"),
                    "missing: app_id needs the App's private key (.pem)",
                );
                None
            }
            (None, None, None, _) => {
                self.problem(
                    &at("token_file"),
                    format!("missing: set token_file, {ENV_GITHUB_TOKEN}, or app_id with app_private_key_file"),
                );
                None
            }
        }
    }

    pub(super) fn github(
        &mut self,
        raw: RawGitHub,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Option<GitHubSettings> {
        let at = |k| [Seg::Key("github"), Seg::Key(k)];
        let api_url = match raw.api_url {
            Some(u) => self.http_url(&at("api_url"), &u),
            None => Some(DEFAULT_API_URL.to_string()),
        };

        let secrets = self.webhook_secrets(raw.webhook_secret_file, env);
        let auth = self.github_auth(
            env(ENV_GITHUB_TOKEN).filter(|s| !s.trim().is_empty()),
            raw.token_file,
            raw.app_id,
            raw.app_private_key_file,
        );
        let reconcile_every = self
            .duration(&at("reconcile_every"), raw.reconcile_every)
            .unwrap_or(DEFAULT_RECONCILE_EVERY);
        Some(GitHubSettings {
            api_url: api_url?,
            webhook_secrets: secrets?,
            auth: auth?,
            reconcile_every,
        })
    }
}
