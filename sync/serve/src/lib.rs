//! HTTP serving that slow and greedy clients cannot take down, for the CRM endpoint and the
//! kiosk's own listeners (screen, staff pages, store LAN).
//!
//! `axum::serve` installs no timer, so hyper's header-read timeout is silently off and nothing
//! caps connections: 300 clients that each send half a request and wait held the endpoint's
//! every file descriptor (`ulimit -n 256`), its health check timed out for as long as they
//! held on, and its log filled with "Too many open files". [`serve`] is our accept loop
//! instead:
//!
//! - **Admission first**: at most [`Limits::max_connections`] in all and
//!   [`Limits::max_per_peer`] from one address (an IPv6 /64 counts as one address, as one
//!   customer line gets one). A connection over a cap is answered `503` with `Retry-After` (plain
//!   HTTP) or just closed (TLS) at once, so the listener's backlog keeps moving and a flood from
//!   one address leaves room for everyone else.
//! - **TLS handshakes** (when configured) run inside the admitted connection's task, bounded by
//!   the header timeout: a client that never finishes its handshake holds one slot for a while,
//!   not a descriptor for ever.
//! - **Header-read and idle timeout**: hyper's HTTP/1 with a timer. The request head must arrive
//!   within [`Limits::header_read_timeout`] of the connection opening or of the previous
//!   response (hyper 1.6 and later start the timer on an idle kept-alive connection too), so the
//!   same setting closes idle connections.
//! - **Request timeout**: a handler must produce its response head within
//!   [`Limits::request_timeout`] (`408` otherwise), which also bounds a client that sends its body
//!   slowly. A streamed body (server-sent events) runs on once its head has gone.
//! - **Graceful shutdown**: the listener closes, requests in flight finish, within
//!   [`Limits::shutdown_grace`].
//!
//! [`raise_open_file_limit`] lifts the soft `RLIMIT_NOFILE` to the hard limit at start, and
//! [`Limits::fit_open_files`] keeps the caps under whatever limit the process has.

use std::collections::HashMap;
use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::ConnectInfo;
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, TcpStream};
use tower::ServiceExt;

/// The limits of one server.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// How long a client may take to send a request's head, from the connection's opening or
    /// the previous response; also how long a kept-alive connection may sit idle.
    pub header_read_timeout: Duration,
    /// How long a handler may take to produce its response head (reading the body included).
    pub request_timeout: Duration,
    /// Connections open at once, in all.
    pub max_connections: usize,
    /// Connections open at once from one address (an IPv6 /64 is one address).
    pub max_per_peer: usize,
    /// How long a shutdown waits for requests in flight.
    pub shutdown_grace: Duration,
}

/// Descriptors kept for everything else a process opens (databases, logs, devices, outgoing
/// connections) when the connection cap is fitted to the open-file limit.
pub const RESERVED_FILES: u64 = 64;

impl Limits {
    /// An Internet-facing server (the CRM endpoint). Kiosks of one store behind one NAT share
    /// an address: a few connections each.
    pub const PUBLIC: Limits = Limits {
        header_read_timeout: Duration::from_secs(10),
        request_timeout: Duration::from_secs(60),
        max_connections: 4096,
        max_per_peer: 256,
        shutdown_grace: Duration::from_secs(20),
    };

    /// A kiosk's listeners: the screen on loopback, the staff pages and the store's other
    /// kiosks on the shop LAN. A few browsers and peers; anything more is not a shop.
    pub const LAN: Limits = Limits {
        header_read_timeout: Duration::from_secs(10),
        request_timeout: Duration::from_secs(30),
        max_connections: 128,
        max_per_peer: 32,
        shutdown_grace: Duration::from_secs(5),
    };

    /// These limits under an open-file limit of `soft` descriptors: the connections in all
    /// leave [`RESERVED_FILES`] for the rest of the process (at least 16 connections), and one
    /// address gets at most a quarter of them, so that one greedy client can never fill the
    /// server alone.
    pub fn fit_open_files(mut self, soft: u64) -> Limits {
        let room =
            usize::try_from(soft.saturating_sub(RESERVED_FILES).max(16)).unwrap_or(usize::MAX);
        self.max_connections = self.max_connections.min(room);
        self.max_per_peer = self.max_per_peer.min((self.max_connections / 4).max(1));
        self
    }
}

/// The process's soft open-file limit (1024 when it cannot be read).
pub fn open_file_limit() -> u64 {
    nix::sys::resource::getrlimit(nix::sys::resource::Resource::RLIMIT_NOFILE)
        .map_or(1024, |(soft, _)| soft)
}

/// Raises the soft open-file limit to the hard limit where allowed; returns the soft limit the
/// process has afterwards (to give [`Limits::fit_open_files`]).
pub fn raise_open_file_limit() -> u64 {
    use nix::sys::resource::{Resource, getrlimit, setrlimit};
    match getrlimit(Resource::RLIMIT_NOFILE) {
        Ok((soft, hard)) if soft < hard => match setrlimit(Resource::RLIMIT_NOFILE, hard, hard) {
            Ok(()) => {
                tracing::debug!(from = soft, to = hard, "open-file limit raised");
                hard
            }
            Err(e) => {
                tracing::warn!(error = %e, soft, hard, "cannot raise the open-file limit");
                soft
            }
        },
        Ok((soft, _)) => soft,
        Err(e) => {
            tracing::warn!(error = %e, "cannot read the open-file limit");
            1024
        }
    }
}

/// What one address is counted as: an IPv4 address, or the /64 of an IPv6 one (IPv4-mapped
/// IPv6 addresses count as their IPv4 address).
fn peer_key(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(_) => ip,
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => {
                let mut s = v6.segments();
                s[4..].fill(0);
                IpAddr::V6(s.into())
            }
        },
    }
}

/// The connection counts, per address and in all.
#[derive(Debug)]
struct Admission {
    limits: Limits,
    open: Mutex<(usize, HashMap<IpAddr, usize>)>,
    refused: AtomicU64,
    last_warned: Mutex<Option<Instant>>,
}

/// A connection let in; counted until dropped.
struct Admitted {
    admission: Arc<Admission>,
    key: IpAddr,
}

impl Drop for Admitted {
    fn drop(&mut self) {
        let mut open = self
            .admission
            .open
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        open.0 = open.0.saturating_sub(1);
        if let Some(n) = open.1.get_mut(&self.key) {
            *n -= 1;
            if *n == 0 {
                open.1.remove(&self.key);
            }
        }
    }
}

impl Admission {
    fn admit(self: &Arc<Self>, ip: IpAddr) -> Option<Admitted> {
        let key = peer_key(ip);
        let mut open = self.open.lock().unwrap_or_else(PoisonError::into_inner);
        let from_peer = open.1.get(&key).copied().unwrap_or(0);
        if open.0 >= self.limits.max_connections || from_peer >= self.limits.max_per_peer {
            drop(open);
            self.refused(ip);
            return None;
        }
        open.0 += 1;
        *open.1.entry(key).or_default() += 1;
        Some(Admitted {
            admission: self.clone(),
            key,
        })
    }

    /// Counts a refusal; warns at most once a minute with the count since the last warning.
    fn refused(&self, ip: IpAddr) {
        let n = self.refused.fetch_add(1, Ordering::Relaxed) + 1;
        let mut last = self
            .last_warned
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if last.is_none_or(|t| t.elapsed() >= Duration::from_secs(60)) {
            *last = Some(Instant::now());
            self.refused.store(0, Ordering::Relaxed);
            tracing::warn!(
                refused = n,
                last_from = %peer_key(ip),
                max_connections = self.limits.max_connections,
                max_per_peer = self.limits.max_per_peer,
                "connections refused: the server is at its connection cap"
            );
        }
    }
}

/// What a connection over a cap is told before it is closed.
const BUSY: &[u8] = b"HTTP/1.1 503 Service Unavailable\r\nretry-after: 1\r\ncontent-length: 0\r\nconnection: close\r\n\r\n";

/// Serves `router` on `listener` (TLS with `tls`) under `limits` until `shutdown` resolves,
/// then lets the requests in flight finish (at most [`Limits::shutdown_grace`]). Each request
/// carries its peer as `ConnectInfo<C>` (`C` is `SocketAddr`, or a type made from one).
pub async fn serve<C>(
    listener: TcpListener,
    tls: Option<Arc<rustls::ServerConfig>>,
    router: Router,
    limits: Limits,
    shutdown: impl Future<Output = ()> + Send,
) -> std::io::Result<()>
where
    C: From<SocketAddr> + Clone + Send + Sync + 'static,
{
    let router = router.layer(tower_http::timeout::TimeoutLayer::with_status_code(
        axum::http::StatusCode::REQUEST_TIMEOUT,
        limits.request_timeout,
    ));
    let admission = Arc::new(Admission {
        limits,
        open: Mutex::new((0, HashMap::new())),
        refused: AtomicU64::new(0),
        last_warned: Mutex::new(None),
    });
    let tls = tls.map(tokio_rustls::TlsAcceptor::from);
    let graceful = GracefulShutdown::new();
    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(limits.header_read_timeout)
        .keep_alive(true);
    let http = Arc::new(http);
    tokio::pin!(shutdown);
    loop {
        let (stream, peer) = tokio::select! {
            () = &mut shutdown => break,
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    // Out of descriptors and the like: back off instead of spinning.
                    tracing::debug!(error = %e, "accepting a connection failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        let Some(admitted) = admission.admit(peer.ip()) else {
            if tls.is_none() {
                tokio::spawn(refuse(stream));
            }
            continue;
        };
        // Best effort: a socket that refuses NODELAY still works.
        let _ = stream.set_nodelay(true);
        let service = {
            let router = router.clone();
            let info = ConnectInfo(C::from(peer));
            hyper::service::service_fn(move |mut req: hyper::Request<Incoming>| {
                req.extensions_mut().insert(info.clone());
                router.clone().oneshot(req)
            })
        };
        let http = http.clone();
        let watcher = graceful.watcher();
        let handshake = limits.header_read_timeout;
        let tls = tls.clone();
        tokio::spawn(async move {
            let _admitted = admitted;
            match tls {
                None => {
                    let conn = http.serve_connection(TokioIo::new(stream), service);
                    if let Err(e) = watcher.watch(conn).await {
                        tracing::debug!(%peer, error = %e, "connection ended with an error");
                    }
                }
                Some(acceptor) => {
                    match tokio::time::timeout(handshake, acceptor.accept(stream)).await {
                        Ok(Ok(stream)) => {
                            let conn = http.serve_connection(TokioIo::new(stream), service);
                            if let Err(e) = watcher.watch(conn).await {
                                tracing::debug!(%peer, error = %e, "connection ended with an error");
                            }
                        }
                        Ok(Err(e)) => tracing::debug!(%peer, error = %e, "tls handshake failed"),
                        Err(_) => tracing::debug!(%peer, "tls handshake timed out"),
                    }
                }
            }
        });
    }
    drop(listener);
    if tokio::time::timeout(limits.shutdown_grace, graceful.shutdown())
        .await
        .is_err()
    {
        tracing::warn!(
            grace_s = limits.shutdown_grace.as_secs(),
            "requests still in flight at the end of the shutdown grace; closed"
        );
    }
    Ok(())
}

/// Tells a connection over the cap to come back later, and closes it.
async fn refuse(mut stream: TcpStream) {
    let _ = tokio::time::timeout(Duration::from_secs(1), async {
        let _ = stream.write_all(BUSY).await;
        let _ = stream.shutdown().await;
    })
    .await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_ipv6_slash_64_is_one_peer_and_a_mapped_ipv4_is_its_ipv4() {
        let a: IpAddr = "2001:db8:1:2:aaaa::1".parse().unwrap();
        let b: IpAddr = "2001:db8:1:2:bbbb::2".parse().unwrap();
        let c: IpAddr = "2001:db8:1:3::1".parse().unwrap();
        assert_eq!(peer_key(a), peer_key(b));
        assert_ne!(peer_key(a), peer_key(c));
        let mapped: IpAddr = "::ffff:192.0.2.7".parse().unwrap();
        assert_eq!(peer_key(mapped), "192.0.2.7".parse::<IpAddr>().unwrap());
    }

    #[test]
    fn the_caps_fit_under_the_open_file_limit_and_one_peer_gets_a_quarter() {
        let l = Limits::PUBLIC.fit_open_files(256);
        assert_eq!(l.max_connections, 192);
        assert_eq!(l.max_per_peer, 48);
        let l = Limits::PUBLIC.fit_open_files(1 << 20);
        assert_eq!((l.max_connections, l.max_per_peer), (4096, 256));
        let l = Limits::LAN.fit_open_files(10);
        assert_eq!((l.max_connections, l.max_per_peer), (16, 4));
    }

    #[test]
    fn admission_counts_per_peer_and_in_all_and_frees_on_drop() {
        let admission = Arc::new(Admission {
            limits: Limits {
                max_connections: 3,
                max_per_peer: 2,
                ..Limits::LAN
            },
            open: Mutex::new((0, HashMap::new())),
            refused: AtomicU64::new(0),
            last_warned: Mutex::new(None),
        });
        let one: IpAddr = "192.0.2.1".parse().unwrap();
        let two: IpAddr = "192.0.2.2".parse().unwrap();
        let a = admission.admit(one).unwrap();
        let _b = admission.admit(one).unwrap();
        assert!(admission.admit(one).is_none(), "per peer");
        let _c = admission.admit(two).unwrap();
        assert!(admission.admit(two).is_none(), "in all");
        drop(a);
        assert!(
            admission.admit(two).is_some(),
            "a closed connection frees its slot"
        );
    }
}
