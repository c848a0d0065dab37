//! The config in force and what is built from it (the GitHub client, the
//! SSH connector), replaced together on reload or not at all.

use super::*;

/// The config in force and what is built from it; a reload replaces all
/// three or none.
pub(super) struct Live {
    pub(super) config: Publisher<Config>,
    pub(super) github: Publisher<GitHub>,
    pub(super) connector: Publisher<Connector>,
}

/// Built from one config, before anything is put in force.
pub(super) struct Built {
    pub(super) config: Arc<Config>,
    pub(super) github: Arc<GitHub>,
    pub(super) connector: Arc<Connector>,
}

impl Built {
    pub(super) fn new(config: Config) -> anyhow::Result<Built> {
        Ok(Built {
            github: Arc::new(GitHub::new(&config.github)?),
            connector: Arc::new(Connector::new(&config.ssh)?),
            config: Arc::new(config),
        })
    }
}

impl Live {
    /// Puts `new` in force, all of it or (on error) none of it. What cannot
    /// change without a restart is kept, and returned as warnings. Running
    /// deployments keep the target and connection they started with.
    pub(super) fn reload(&self, mut new: Config) -> anyhow::Result<Vec<String>> {
        let old = self.config.get();
        let mut kept = Vec::new();
        if new.server.listen != old.server.listen {
            kept.push(format!(
                "server.listen stays {} until ferry restarts",
                old.server.listen
            ));
        }
        if new.server.metrics_listen != old.server.metrics_listen {
            kept.push(match old.server.metrics_listen {
                Some(m) => format!("server.metrics_listen stays {m} until ferry restarts"),
                None => "/metrics stays on server.listen until ferry restarts".into(),
            });
        }
        if new.server.public_url != old.server.public_url {
            kept.push(format!(
                "server.public_url stays {} until ferry restarts",
                old.server.public_url
            ));
        }
        if new.storage.dir != old.storage.dir {
            kept.push(format!(
                "storage.dir stays {} until ferry restarts",
                old.storage.dir.display()
            ));
        }
        let url = |b: &Backend| match b {
            Backend::Postgres { url } => Some(url.expose().to_vec()),
            Backend::Sqlite => None,
        };
        if url(&new.storage.backend) != url(&old.storage.backend) {
            kept.push("storage.database_url stays as it was until ferry restarts".into());
        }
        new.server = old.server.clone();
        new.storage = old.storage.clone();
        let built = Built::new(new)?;
        self.config.publish(built.config);
        self.github.publish(built.github);
        self.connector.publish(built.connector);
        Ok(kept)
    }
}
