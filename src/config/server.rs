//! `[server]`: where ferry listens and the URL it is reached at.

use super::*;

impl<'a> Checker<'a> {
    pub(super) fn server(&mut self, raw: RawServer) -> Option<Server> {
        let at = |k| [Seg::Key("server"), Seg::Key(k)];
        let listen = raw.listen.as_deref().unwrap_or(DEFAULT_LISTEN);
        let listen = match listen.parse::<SocketAddr>() {
            Ok(a) => Some(a),
            Err(_) => {
                self.problem(
                    &at("listen"),
                    format!("{listen:?} is not an address and port, e.g. \"127.0.0.1:8080\""),
                );
                None
            }
        };
        let public_url = match raw.public_url {
            None => {
                self.problem(
                    &at("public_url"),
                    "missing: set the URL GitHub users reach ferry at, e.g. \"https://deploy.example.com\" (every log_url starts with it)",
                );
                None
            }
            Some(u) => self.http_url(&at("public_url"), &u),
        };
        let metrics_listen = match raw.metrics_listen.as_deref() {
            None => Ok(None),
            Some(m) => match m.parse::<SocketAddr>() {
                Ok(a) if Some(a) == listen => {
                    self.problem(
                        &at("metrics_listen"),
                        format!("{m:?} is server.listen too: give /metrics a port of its own, e.g. \"127.0.0.1:9184\", or leave metrics_listen out to serve it on listen"),
                    );
                    Err(())
                }
                Ok(a) => Ok(Some(a)),
                Err(_) => {
                    self.problem(
                        &at("metrics_listen"),
                        format!("{m:?} is not an address and port, e.g. \"127.0.0.1:9184\""),
                    );
                    Err(())
                }
            },
        };
        Some(Server {
            listen: listen?,
            public_url: public_url?,
            metrics_listen: metrics_listen.ok()?,
        })
    }

    pub(super) fn http_url(&mut self, path: &[Seg], url: &str) -> Option<String> {
        let rest = url
            .strip_prefix("https://")
            .or_else(|| url.strip_prefix("http://"));
        match rest {
            Some(r) if !r.is_empty() && !r.starts_with('/') && !url.contains(['?', '#', ' ']) => {
                Some(url.trim_end_matches('/').to_string())
            }
            _ => {
                self.problem(
                    path,
                    format!(
                        "{url:?} is not an http(s) URL without query, e.g. \"https://host/path\""
                    ),
                );
                None
            }
        }
    }
}
