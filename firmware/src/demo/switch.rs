//! The demo's network switch: a TCP relay between the kiosk and the CRM endpoint that the
//! control panel can cut (new connections are refused by closing them at once, open ones are
//! reset), stall (a black hole: connections are accepted and nothing comes back, as behind a
//! captive portal or a dead uplink) and restore, so the offline queue, the bounded live lookups
//! and the catch-up can be watched live.

use std::net::SocketAddr;
use std::sync::Arc;

use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

/// What the switch does with the kiosk's connections.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Link {
    /// Relays both ways.
    Up,
    /// Refuses new connections and resets open ones.
    Cut,
    /// Accepts connections and relays nothing, until the link changes (then they close).
    Stalled,
}

/// A handle on the switch.
#[derive(Clone)]
pub struct NetworkSwitch {
    addr: SocketAddr,
    up: Arc<watch::Sender<Link>>,
}

impl std::fmt::Debug for NetworkSwitch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NetworkSwitch")
            .field("addr", &self.addr)
            .field("link", &self.link())
            .finish()
    }
}

impl NetworkSwitch {
    /// Relays connections on `listener` to `upstream` until `shutdown`.
    pub fn start(
        listener: TcpListener,
        upstream: SocketAddr,
        shutdown: CancellationToken,
    ) -> std::io::Result<Self> {
        let addr = listener.local_addr()?;
        let (up, _) = watch::channel(Link::Up);
        let up = Arc::new(up);
        let state = up.clone();
        tokio::spawn(async move {
            loop {
                let (conn, _) = tokio::select! {
                    _ = shutdown.cancelled() => break,
                    accepted = listener.accept() => match accepted {
                        Ok(c) => c,
                        Err(e) => {
                            tracing::warn!(error = %e, "network switch cannot accept");
                            continue;
                        }
                    },
                };
                let mut rx = state.subscribe();
                let link = *rx.borrow();
                match link {
                    Link::Cut => drop(conn),
                    // Held open and unread until the link changes, then closed.
                    Link::Stalled => {
                        tokio::spawn(async move {
                            let _held = conn;
                            let _ = rx.wait_for(|l| *l != Link::Stalled).await;
                        });
                    }
                    Link::Up => {
                        tokio::spawn(async move {
                            let Ok(mut server) = TcpStream::connect(upstream).await else {
                                return;
                            };
                            let mut client = conn;
                            let changed = tokio::select! {
                                _ = tokio::io::copy_bidirectional(&mut client, &mut server) => None,
                                changed = rx.wait_for(|l| *l != Link::Up) => changed.ok().map(|l| *l),
                            };
                            // Cut: both sides are dropped, closing the connection mid-stream.
                            // Stalled: both are held, nothing more relayed, until it ends.
                            if changed == Some(Link::Stalled) {
                                let _ = rx.wait_for(|l| *l != Link::Stalled).await;
                            }
                        });
                    }
                }
            }
        });
        Ok(NetworkSwitch { addr, up })
    }

    /// Where the kiosk connects.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Whether the network is up.
    pub fn is_up(&self) -> bool {
        self.link() == Link::Up
    }

    /// What the switch does now.
    pub fn link(&self) -> Link {
        *self.up.borrow()
    }

    /// Cuts (`false`) or restores (`true`) the network.
    pub fn set_up(&self, up: bool) {
        self.set_link(if up { Link::Up } else { Link::Cut });
    }

    /// Sets what the switch does with connections, open ones included.
    pub fn set_link(&self, link: Link) {
        self.up.send_replace(link);
        tracing::info!(?link, "demo network switched");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    #[tokio::test]
    async fn a_cut_network_refuses_a_stalled_one_holds_and_a_restored_one_relays_again() {
        let echo = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let echo_addr = echo.local_addr().unwrap();
        tokio::spawn(async move {
            loop {
                let (mut s, _) = echo.accept().await.unwrap();
                tokio::spawn(async move {
                    let mut buf = [0u8; 64];
                    while let Ok(n) = s.read(&mut buf).await {
                        if n == 0 || s.write_all(&buf[..n]).await.is_err() {
                            break;
                        }
                    }
                });
            }
        });
        let stop = CancellationToken::new();
        let switch = NetworkSwitch::start(
            TcpListener::bind("127.0.0.1:0").await.unwrap(),
            echo_addr,
            stop.clone(),
        )
        .unwrap();

        async fn round_trip(addr: SocketAddr) -> std::io::Result<Vec<u8>> {
            let mut s = TcpStream::connect(addr).await?;
            s.write_all(b"ping").await?;
            let mut buf = [0u8; 4];
            s.read_exact(&mut buf).await?;
            Ok(buf.to_vec())
        }

        assert_eq!(round_trip(switch.addr()).await.unwrap(), b"ping");
        switch.set_up(false);
        assert!(round_trip(switch.addr()).await.is_err());
        switch.set_up(true);
        assert_eq!(round_trip(switch.addr()).await.unwrap(), b"ping");

        // Stalled: a connection opens, and nothing comes back until the link changes.
        switch.set_link(Link::Stalled);
        let stalled = tokio::spawn(round_trip(switch.addr()));
        tokio::time::sleep(std::time::Duration::from_millis(300)).await;
        assert!(!stalled.is_finished(), "a stalled link answered");
        switch.set_up(true);
        assert!(
            stalled.await.unwrap().is_err(),
            "closed when the stall ends"
        );
        assert_eq!(round_trip(switch.addr()).await.unwrap(), b"ping");
        stop.cancel();
    }
}
