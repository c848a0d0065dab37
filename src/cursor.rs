//! One consumer's cursor on the event stream ([`crate::store::Events`]),
//! for the consumers that act on each event where it stands (promotions,
//! pull request replies): read a batch under the consumer's lease, handle
//! each event, then move the cursor past them. An event is handled at
//! least once (a crash before the ack reads it again), so handlers are
//! idempotent. The notifier stores what it makes in the transaction that
//! moves its cursor instead (`notify/fanout.rs`).

use std::time::Duration;

use async_trait::async_trait;
use tokio_util::sync::CancellationToken;

use crate::store::{Event, Owner, SharedStore};
use crate::sync::Listener;

/// Events read at once.
const BATCH: i64 = 256;
/// The consumer's lease, renewed at every look.
const LEASE: Duration = Duration::from_secs(15);
/// Events where no bell rings (another replica's, the command line's) are
/// found this often.
const POLL: Duration = Duration::from_secs(1);

/// What a consumer does with each event.
#[async_trait]
pub trait Handler: Send + Sync {
    /// The consumer's name on the stream (its cursor).
    fn consumer(&self) -> &'static str;

    async fn handle(&self, event: &Event) -> crate::store::Result<()>;
}

/// Reads and handles events for `handler` until `stop`, looking when
/// `statuses` rings and at least every second.
pub async fn run(
    store: SharedStore,
    handler: impl Handler,
    mut statuses: Listener,
    stop: CancellationToken,
) {
    let owner = Owner::this_process();
    loop {
        match round(&store, &handler, &owner).await {
            Ok(true) => continue,
            Ok(false) => {}
            Err(e) => tracing::debug!(error = %e, consumer = handler.consumer(),
                "cannot read events for {}: {e}", handler.consumer()),
        }
        tokio::select! {
            _ = statuses.rung() => {}
            _ = tokio::time::sleep(POLL) => {}
            _ = stop.cancelled() => return,
        }
    }
}

/// One batch; whether it was full (there may be more at once).
async fn round(
    store: &SharedStore,
    handler: &impl Handler,
    owner: &Owner,
) -> crate::store::Result<bool> {
    let consumer = handler.consumer();
    let Some(events) = store.take_events(consumer, owner, BATCH, LEASE).await? else {
        return Ok(false);
    };
    let Some(last) = events.last() else {
        return Ok(false);
    };
    for e in &events {
        handler.handle(e).await?;
    }
    store.ack_events(consumer, owner, last.position).await?;
    Ok(events.len() as i64 == BATCH)
}
