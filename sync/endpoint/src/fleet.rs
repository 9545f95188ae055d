//! What ties endpoint replicas together beyond the tables they share (issue 20, docs/FLEET.md):
//! the change bus. A batch stored by one replica must wake the live streams (dashboard, turn
//! pages) connected to every other one within a second, not at their next 15 s refresh.
//!
//! Data flow: ingest → [`AppState::store_changed`] → **publisher** → PostgreSQL `NOTIFY
//! crm_store_changes 'REPLICA STORE'` → every replica's **listener** (`LISTEN`, a connection of
//! its own) → [`AppState::remote_store_changed`] → its live streams. A replica skips its own
//! notices (its streams already woke). On SQLite (one process) there is no bus.
//!
//! Notices are wake-ups, not data: a lost one (the listener reconnecting, a full queue) costs a
//! stream at most its periodic refresh, never a wrong figure.

use std::collections::BTreeSet;
use std::time::Duration;

use futures::StreamExt;
use tokio::sync::broadcast::error::{RecvError, TryRecvError};

use crate::http::AppState;

/// Longest pause between two attempts to (re)open the listening connection.
const LISTEN_RETRY_CAP: Duration = Duration::from_secs(30);

/// The payload of a notice: the replica that stored the batch and the store.
fn payload(replica: &str, store: &str) -> String {
    format!("{replica} {store}")
}

/// The store of a notice from another replica (`None` for our own or a malformed one).
fn from_other<'p>(payload: &'p str, replica: &str) -> Option<&'p str> {
    let (origin, store) = payload.split_once(' ')?;
    (origin != replica && !store.is_empty()).then_some(store)
}

/// Runs the publisher and the listener until the state's shutdown (returns at once on a
/// database without a bus).
pub async fn run(st: AppState) {
    let publisher = tokio::spawn(publish(st.clone()));
    listen(st).await;
    publisher.abort();
}

/// Publishes this replica's changes, several stores changed meanwhile in one go.
async fn publish(st: AppState) {
    let mut local = st.subscribe_local_changes();
    loop {
        let mut stores = BTreeSet::new();
        match local.recv().await {
            Ok(store) => {
                stores.insert(store);
            }
            Err(RecvError::Lagged(_)) => continue,
            Err(RecvError::Closed) => return,
        }
        loop {
            match local.try_recv() {
                Ok(store) => {
                    stores.insert(store);
                }
                Err(TryRecvError::Lagged(_)) => continue,
                Err(TryRecvError::Empty | TryRecvError::Closed) => break,
            }
        }
        for store in stores {
            if let Err(e) = st.db.publish_change(payload(st.replica(), &store)).await {
                tracing::warn!(error = %e, "cannot tell the other replicas about a change; their dashboards catch up at their next refresh");
            }
        }
    }
}

/// Follows the other replicas' changes, reconnecting with a growing pause when the
/// connection is lost.
async fn listen(st: AppState) {
    let mut pause = Duration::from_millis(250);
    loop {
        let stream = tokio::select! {
            s = st.db.listen_changes() => s,
            () = st.closing().cancelled() => return,
        };
        match stream {
            Ok(None) => return,
            Ok(Some(mut notices)) => {
                tracing::debug!(
                    replica = st.replica(),
                    "listening to the other replicas' changes"
                );
                pause = Duration::from_millis(250);
                loop {
                    let notice = tokio::select! {
                        n = notices.next() => n,
                        () = st.closing().cancelled() => return,
                    };
                    let Some(notice) = notice else { break };
                    if let Some(store) = from_other(&notice, st.replica()) {
                        st.remote_store_changed(store);
                    }
                }
                tracing::warn!(
                    "lost the connection that listens to the other replicas' changes; reconnecting"
                );
            }
            Err(e) => {
                tracing::warn!(error = %e, retry_in_ms = pause.as_millis(), "cannot listen to the other replicas' changes");
            }
        }
        tokio::select! {
            () = tokio::time::sleep(pause) => {}
            () = st.closing().cancelled() => return,
        }
        pause = (pause * 2).min(LISTEN_RETRY_CAP);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_replica_skips_its_own_notices_and_malformed_ones() {
        let p = payload("aa11", "north");
        assert_eq!(from_other(&p, "bb22"), Some("north"));
        assert_eq!(from_other(&p, "aa11"), None);
        assert_eq!(from_other("garbage", "bb22"), None);
        assert_eq!(from_other("aa11 ", "bb22"), None);
    }
}
