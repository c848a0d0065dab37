//! `[storage]`: SQLite in a directory, or PostgreSQL shared by replicas.

use super::*;

/// The form of a PostgreSQL URL; whether the database answers is
/// `check-config`'s to find out.
pub(super) fn check_database_url(url: &str) -> Result<(), String> {
    let example = "e.g. \"postgres://ferry@db.internal/ferry\"";
    let Some(rest) = url
        .strip_prefix("postgres://")
        .or_else(|| url.strip_prefix("postgresql://"))
    else {
        return Err(format!(
            "not a PostgreSQL URL: it must start with postgres:// ({example}); \
             without database_url ferry keeps its state in SQLite under storage.dir"
        ));
    };
    let host = rest.split(['/', '?']).next().unwrap_or_default();
    let host = host.rsplit('@').next().unwrap_or_default();
    if host.is_empty() && !rest.contains("host=") {
        return Err(format!("names no host ({example})"));
    }
    Ok(())
}

impl<'a> Checker<'a> {
    pub(super) fn storage(
        &mut self,
        raw: RawStorage,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Option<Storage> {
        let from_env = env(ENV_DATABASE_URL).filter(|s| !s.trim().is_empty());
        let at = [Seg::Key("storage"), Seg::Key("database_url")];
        let backend = match from_env.or(raw.database_url) {
            None => Backend::Sqlite,
            Some(url) => {
                let url = url.trim().to_string();
                if let Err(why) = check_database_url(&url) {
                    self.problem(&at, why);
                    return None;
                }
                Backend::Postgres {
                    url: Secret::new(url.into_bytes()),
                }
            }
        };
        let log_retention = self
            .duration(
                &[Seg::Key("storage"), Seg::Key("log_retention")],
                raw.log_retention,
            )
            .unwrap_or(DEFAULT_LOG_RETENTION);
        Some(Storage {
            dir: self.path(
                raw.dir
                    .unwrap_or_else(|| PathBuf::from(DEFAULT_STORAGE_DIR)),
            ),
            log_retention,
            backend,
        })
    }
}
