//! Pull loops: one per peer, each a long poll for the ops this kiosk lacks.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use super::{Member, OpsPage, StoreLink, StoreMsg, encode_heads};

/// How long a pull waits at the peer for new ops.
const WAIT: Duration = Duration::from_secs(5);

/// Starts one pull loop per peer.
pub fn spawn_pulls(link: &Arc<StoreLink>, stop: &CancellationToken) -> Vec<JoinHandle<()>> {
    link.peers()
        .cloned()
        .map(|peer| {
            let link = link.clone();
            let stop = stop.clone();
            tokio::spawn(async move {
                tokio::select! {
                    _ = stop.cancelled() => {}
                    _ = pull_loop(link, peer) => {}
                }
            })
        })
        .collect()
}

async fn pull_loop(link: Arc<StoreLink>, peer: Member) {
    let mut backoff = Duration::from_millis(100);
    // The first pull, and the first after an error, answers at once: reachability (and a
    // sequencer's readiness) is known within a round trip, not a long poll.
    let mut wait = Duration::ZERO;
    loop {
        let pulled = pull_once(&link, &peer, wait).await;
        wait = if pulled.is_ok() { WAIT } else { Duration::ZERO };
        match pulled {
            Ok(page) => {
                let was_down = link.down(&peer.id);
                link.mark(&peer.id, true);
                if was_down {
                    tracing::info!(peer = %peer.id, "store peer reachable again");
                }
                backoff = Duration::from_millis(100);
                if page.ops.is_empty() {
                    continue;
                }
                let (done, merged) = oneshot::channel();
                let sent = link
                    .executor
                    .send(StoreMsg::Ops {
                        ops: page.ops,
                        firsts: page.firsts,
                        done,
                    })
                    .await;
                if sent.is_err() {
                    return;
                }
                let _ = merged.await;
            }
            Err(e) => {
                if !link.down(&peer.id) {
                    tracing::warn!(peer = %peer.id, error = %e, "store peer unreachable; retrying");
                }
                link.mark(&peer.id, false);
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(2));
            }
        }
    }
}

async fn pull_once(link: &StoreLink, peer: &Member, wait: Duration) -> Result<OpsPage, String> {
    let heads = link.log.read().map(|l| l.heads()).unwrap_or_default();
    let path = format!(
        "/store/v1/ops?after={}&wait_ms={}",
        encode_heads(&heads),
        wait.as_millis()
    );
    let mut req = link
        .http
        .get(format!("{}{path}", peer.url.trim_end_matches('/')))
        .timeout(WAIT + Duration::from_secs(3));
    for (k, v) in link.sign("GET", &path, b"") {
        req = req.header(k, v);
    }
    let resp = req.send().await.map_err(|e| e.to_string())?;
    let status = resp.status();
    if !status.is_success() {
        let text = resp.text().await.unwrap_or_default();
        return Err(format!("{status}: {text}"));
    }
    let page: OpsPage = resp.json().await.map_err(|e| e.to_string())?;
    if page.from != peer.id {
        return Err(format!(
            "{} answered for {}: check [store].kiosks",
            page.from, peer.id
        ));
    }
    Ok(page)
}
