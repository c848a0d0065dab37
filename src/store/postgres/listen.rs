//! LISTEN for what other replicas do. A hint only: a listener that
//! reconnects misses what was sent meanwhile, and PgBouncer in transaction
//! mode cannot LISTEN at all, so every part also polls.

use std::time::Duration;

use sqlx::PgPool;

/// The channel the database announces new work on (see the migration).
pub const WORK_CHANNEL: &str = "ferry_work";

/// Listens on `channels` for as long as it runs, calling `on` with each
/// notification's channel and payload. A lost connection is opened again;
/// notifications sent meanwhile are lost, so `on` is then called with an
/// empty channel: look at everything.
pub async fn listen(pool: PgPool, channels: Vec<&'static str>, on: impl Fn(&str, &str)) {
    let mut failing = false;
    loop {
        let listener = async {
            let mut l = sqlx::postgres::PgListener::connect_with(&pool).await?;
            l.listen_all(channels.iter().copied()).await?;
            Ok::<_, sqlx::Error>(l)
        };
        let mut listener = match listener.await {
            Ok(l) => l,
            Err(e) => {
                if !failing {
                    tracing::warn!(
                        "cannot listen for other replicas' work, polling meanwhile: {e}"
                    );
                    failing = true;
                }
                tokio::time::sleep(Duration::from_secs(5)).await;
                continue;
            }
        };
        if failing {
            tracing::info!("listening for other replicas' work again");
            failing = false;
        }
        on("", "");
        loop {
            match listener.try_recv().await {
                Ok(Some(n)) => on(n.channel(), n.payload()),
                // The connection dropped; the next call reconnects.
                Ok(None) => on("", ""),
                Err(e) => {
                    tracing::warn!(
                        "lost the connection that listens for other replicas' work: {e}"
                    );
                    break;
                }
            }
        }
    }
}
