//! `ferry serve`: the daemon ([`crate::daemon::serve`]).

use super::ConfigArg;

/// Run the daemon.
#[derive(clap::Args)]
pub struct Serve {
    #[command(flatten)]
    config: ConfigArg,
}

impl Serve {
    pub async fn run(self) -> anyhow::Result<()> {
        let config = self.config.load()?;
        for w in &config.warnings {
            tracing::warn!("{}", w.at(&config.path));
        }
        let signals = async {
            if let Err(e) = crate::daemon::signals().await {
                // No signal handler: ferry runs until it is killed.
                tracing::error!("cannot listen for SIGTERM and SIGINT: {e}");
                std::future::pending::<()>().await;
            }
        };
        crate::daemon::serve(config, signals).await
    }
}
