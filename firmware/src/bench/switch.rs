//! The demo's network: TCP relays the control panel can cut, stall and restore, so the offline
//! queue, the bounded live lookups, the store's tagged numbers and the catch-up can be watched
//! live.
//!
//! - [`NetworkSwitch`]: between the kiosks and the CRM endpoint (the shop's uplink).
//! - [`StoreLan`]: the shop LAN between the kiosks of a store. Each kiosk has one port on it,
//!   relaying to its store listener: that port is the URL every other kiosk has for it in
//!   `[store].kiosks`. Cutting a kiosk's cable cuts it both ways, as pulling the cable does:
//!   connections to its port, and its own connections to the other kiosks' ports. A port tells
//!   whose connection it relays from the signed request that opens it (`x-kiosk-id`; an HTTP/1.1
//!   connection carries the requests of one kiosk only), since every kiosk has the same list of
//!   URLs.
//!
//! Cut: new connections are reset at once (before anything is relayed) and open ones, long polls
//! included, are reset on both sides. Stalled: connections are accepted and nothing comes back
//! (a black hole, as behind a captive portal or a dead uplink) until the link changes, then they
//! close.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

/// What a link does with the connections through it.
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

impl Link {
    /// Two links in a row (a kiosk's cable, then the other kiosk's): the worse of both.
    fn then(self, next: Link) -> Link {
        match (self, next) {
            (Link::Cut, _) | (_, Link::Cut) => Link::Cut,
            (Link::Stalled, _) | (_, Link::Stalled) => Link::Stalled,
            (Link::Up, Link::Up) => Link::Up,
        }
    }
}

/// Closes a connection with a reset (RST) rather than an orderly close: the other side fails at
/// once instead of reading an end of stream it could take for an answer.
fn reset(conn: TcpStream) {
    let _ = conn.set_zero_linger();
    drop(conn);
}

/// Relays `client` (of which `head` was already read) to `upstream` while `link_of(state)` is
/// [`Link::Up`], and follows every change of the state: cut resets both sides, stalled holds
/// both unread until it ends, then closes them.
async fn relay<S>(
    mut client: TcpStream,
    head: Vec<u8>,
    upstream: SocketAddr,
    mut state: watch::Receiver<S>,
    link_of: impl Fn(&S) -> Link,
) {
    let link = link_of(&state.borrow_and_update());
    match link {
        Link::Cut => reset(client),
        Link::Stalled => {
            let _held = client;
            let _ = state.wait_for(|s| link_of(s) != Link::Stalled).await;
        }
        Link::Up => {
            let Ok(mut server) = TcpStream::connect(upstream).await else {
                reset(client);
                return;
            };
            let _ = server.set_nodelay(true);
            let _ = client.set_nodelay(true);
            let changed = {
                let relayed = async {
                    server.write_all(&head).await?;
                    tokio::io::copy_bidirectional(&mut client, &mut server).await
                };
                tokio::select! {
                    _ = relayed => None,
                    changed = state.wait_for(|s| link_of(s) != Link::Up) => {
                        changed.ok().map(|s| link_of(&s))
                    }
                }
            };
            match changed {
                Some(Link::Cut) => {
                    reset(client);
                    reset(server);
                }
                Some(Link::Stalled) => {
                    let _held = (client, server);
                    let _ = state.wait_for(|s| link_of(s) != Link::Stalled).await;
                }
                // The relay ended by itself, or the switch is gone.
                Some(Link::Up) | None => {}
            }
        }
    }
}

/// Accepts connections on `listener` until `shutdown`, each handed to `handle`.
fn accept_loop<F, Fut>(
    listener: TcpListener,
    what: &'static str,
    shutdown: CancellationToken,
    handle: F,
) where
    F: Fn(TcpStream) -> Fut + Send + 'static,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    tokio::spawn(async move {
        loop {
            let conn = tokio::select! {
                _ = shutdown.cancelled() => break,
                accepted = listener.accept() => match accepted {
                    Ok((conn, _)) => conn,
                    Err(e) => {
                        tracing::warn!(error = %e, "{what} cannot accept");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                },
            };
            tokio::spawn(handle(conn));
        }
    });
}

/// A handle on the switch between the kiosks and the CRM.
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
        let up = Arc::new(watch::channel(Link::Up).0);
        let state = up.clone();
        accept_loop(listener, "network switch", shutdown, move |conn| {
            relay(conn, Vec::new(), upstream, state.subscribe(), |l: &Link| *l)
        });
        Ok(NetworkSwitch { addr, up })
    }

    /// Where the kiosks connect.
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

/// Longest request head a LAN port reads to learn whose connection it is.
const MAX_HEAD: usize = 16 * 1024;
/// How long a LAN port waits for the request that opens a connection.
const HEAD_WAIT: Duration = Duration::from_secs(30);

/// One kiosk's place on the [`StoreLan`].
#[derive(Debug)]
pub struct LanPort {
    /// The port's listener: the kiosk's URL for the other kiosks.
    pub listener: TcpListener,
    /// The kiosk's store listener, where the port relays to.
    pub upstream: SocketAddr,
    /// The kiosk's id, as its signed requests carry it.
    pub kiosk_id: String,
}

/// The shop LAN between the kiosks of the demo's store: one cable per kiosk (position 0 is the
/// first kiosk of `[store].kiosks`), each of which the panel can cut, stall and restore.
#[derive(Clone)]
pub struct StoreLan {
    addrs: Vec<SocketAddr>,
    ids: Arc<[String]>,
    cables: Arc<watch::Sender<Vec<Link>>>,
}

impl std::fmt::Debug for StoreLan {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StoreLan")
            .field("addrs", &self.addrs)
            .field("ids", &self.ids)
            .field("cables", &*self.cables.borrow())
            .finish()
    }
}

impl StoreLan {
    /// Starts one relaying port per kiosk, in the store's order, until `shutdown`.
    pub fn start(ports: Vec<LanPort>, shutdown: CancellationToken) -> std::io::Result<Self> {
        let addrs = ports
            .iter()
            .map(|p| p.listener.local_addr())
            .collect::<std::io::Result<Vec<_>>>()?;
        let ids: Arc<[String]> = ports.iter().map(|p| p.kiosk_id.clone()).collect();
        let cables = Arc::new(watch::channel(vec![Link::Up; ports.len()]).0);
        for (to, port) in ports.into_iter().enumerate() {
            let (cables, ids, upstream) = (cables.clone(), ids.clone(), port.upstream);
            accept_loop(port.listener, "store LAN", shutdown.clone(), move |conn| {
                lan_connection(conn, to, upstream, cables.subscribe(), ids.clone())
            });
        }
        Ok(StoreLan { addrs, ids, cables })
    }

    /// How many kiosks are on the LAN.
    pub fn len(&self) -> usize {
        self.addrs.len()
    }

    /// Whether no kiosk is (never: a LAN has at least one port).
    pub fn is_empty(&self) -> bool {
        self.addrs.is_empty()
    }

    /// Where the other kiosks reach kiosk `position`.
    pub fn addr(&self, position: usize) -> Option<SocketAddr> {
        self.addrs.get(position).copied()
    }

    /// The state of kiosk `position`'s cable.
    pub fn link(&self, position: usize) -> Option<Link> {
        self.cables.borrow().get(position).copied()
    }

    /// Sets kiosk `position`'s cable, open connections included; `false` if there is no such
    /// kiosk.
    pub fn set_link(&self, position: usize, link: Link) -> bool {
        if position >= self.addrs.len() {
            return false;
        }
        self.cables.send_modify(|c| c[position] = link);
        tracing::info!(
            kiosk = position + 1,
            id = %self.ids[position],
            ?link,
            "demo store LAN: kiosk's cable switched"
        );
        true
    }
}

/// One connection to kiosk `to`'s port: refused while its cable is cut; otherwise the request
/// that opens it says which kiosk connects, and the connection lives while both cables are up.
async fn lan_connection(
    mut conn: TcpStream,
    to: usize,
    upstream: SocketAddr,
    mut cables: watch::Receiver<Vec<Link>>,
    ids: Arc<[String]>,
) {
    let cable = move |c: &Vec<Link>, k: usize| c.get(k).copied().unwrap_or(Link::Up);
    if cable(&cables.borrow(), to) == Link::Cut {
        return reset(conn);
    }
    let head = tokio::select! {
        head = tokio::time::timeout(HEAD_WAIT, read_head(&mut conn)) => head.ok().and_then(Result::ok),
        _ = cables.wait_for(|c| cable(c, to) == Link::Cut) => None,
    };
    let Some(head) = head else {
        return reset(conn);
    };
    // Unsigned (not a kiosk of the store): only the destination's cable matters; its store
    // listener refuses the request anyway.
    let from = header(&head, kiosk_protocol::wire::HEADER_KIOSK_ID)
        .and_then(|id| ids.iter().position(|k| *k == id));
    relay(conn, head, upstream, cables, move |c: &Vec<Link>| {
        let to = cable(c, to);
        from.map_or(to, |from| cable(c, from).then(to))
    })
    .await;
}

/// Reads the start of a connection up to the end of its first request head (or [`MAX_HEAD`]
/// bytes, or the end of the stream).
async fn read_head(conn: &mut TcpStream) -> std::io::Result<Vec<u8>> {
    let mut head = Vec::with_capacity(1024);
    let mut buf = [0u8; 2048];
    while head.len() < MAX_HEAD && !head.windows(4).any(|w| w == b"\r\n\r\n") {
        let n = conn.read(&mut buf).await?;
        if n == 0 {
            break;
        }
        head.extend_from_slice(&buf[..n]);
    }
    Ok(head)
}

/// The value of header `name` in an HTTP/1 request head.
fn header(head: &[u8], name: &str) -> Option<String> {
    let end = head.windows(4).position(|w| w == b"\r\n\r\n")?;
    let text = std::str::from_utf8(&head[..end]).ok()?;
    text.split("\r\n").skip(1).find_map(|line| {
        let (n, v) = line.split_once(':')?;
        n.trim()
            .eq_ignore_ascii_case(name)
            .then(|| v.trim().to_owned())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

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

    /// A store listener stand-in: answers each request with `name`, except `GET /hold`, which
    /// it holds open without answering (a long poll with nothing new).
    async fn store_listener(name: &'static str) -> SocketAddr {
        let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = l.local_addr().unwrap();
        tokio::spawn(async move {
            loop {
                let (mut s, _) = l.accept().await.unwrap();
                tokio::spawn(async move {
                    let head = read_head(&mut s).await.unwrap_or_default();
                    if head.starts_with(b"GET /hold ") {
                        let mut rest = Vec::new();
                        let _ = s.read_to_end(&mut rest).await;
                        return;
                    }
                    let answer = format!(
                        "HTTP/1.1 200 OK\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{name}",
                        name.len()
                    );
                    let _ = s.write_all(answer.as_bytes()).await;
                });
            }
        });
        addr
    }

    /// A request to `port` from kiosk `from` (unsigned without it): the answer's body, or the
    /// error that ended the connection (a reset, or an end of stream with nothing read).
    async fn request(port: SocketAddr, from: Option<&str>, path: &str) -> std::io::Result<String> {
        let mut s = TcpStream::connect(port).await?;
        let id = from
            .map(|f| format!("X-Kiosk-Id: {f}\r\n"))
            .unwrap_or_default();
        s.write_all(format!("GET {path} HTTP/1.1\r\nhost: lan\r\n{id}\r\n").as_bytes())
            .await?;
        let mut answer = Vec::new();
        s.read_to_end(&mut answer).await?;
        let answer = String::from_utf8_lossy(&answer).into_owned();
        match answer.split_once("\r\n\r\n") {
            Some((_, body)) => Ok(body.to_owned()),
            None => Err(std::io::Error::other(format!("no answer: {answer:?}"))),
        }
    }

    /// Generous: a dropped connection ends at once; one left open would hang forever.
    const ENDS: std::time::Duration = std::time::Duration::from_secs(20);

    #[tokio::test]
    async fn a_cut_cable_cuts_a_kiosk_both_ways_drops_its_open_long_polls_and_a_restored_one_relays_again()
     {
        let stop = CancellationToken::new();
        let mut ports = Vec::new();
        for (name, id) in [("a", "k-a"), ("b", "k-b")] {
            ports.push(LanPort {
                listener: TcpListener::bind("127.0.0.1:0").await.unwrap(),
                upstream: store_listener(name).await,
                kiosk_id: id.to_owned(),
            });
        }
        let lan = StoreLan::start(ports, stop.clone()).unwrap();
        let (a, b) = (lan.addr(0).unwrap(), lan.addr(1).unwrap());
        assert_eq!(request(a, Some("k-b"), "/ops").await.unwrap(), "a");
        assert_eq!(request(b, Some("k-a"), "/ops").await.unwrap(), "b");

        // Long polls both ways, held open by the listeners.
        let a_polls_b = tokio::spawn(request(b, Some("k-a"), "/hold"));
        let b_polls_a = tokio::spawn(request(a, Some("k-b"), "/hold"));
        let other_polls_a = tokio::spawn(request(a, Some("k-c"), "/hold"));
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
        assert!(!a_polls_b.is_finished() && !b_polls_a.is_finished());

        assert!(lan.set_link(1, Link::Cut));
        assert_eq!(lan.link(1), Some(Link::Cut));
        for (what, poll) in [("to b", a_polls_b), ("from b", b_polls_a)] {
            let ended = tokio::time::timeout(ENDS, poll).await;
            let ended = ended.unwrap_or_else(|_| panic!("the long poll {what} stayed open"));
            assert!(ended.unwrap().is_err(), "the long poll {what} was dropped");
        }
        // New connections of b, both ways, fail; a and the others still reach each other.
        assert!(request(b, Some("k-a"), "/ops").await.is_err());
        assert!(request(a, Some("k-b"), "/ops").await.is_err());
        assert!(request(b, None, "/ops").await.is_err());
        assert_eq!(request(a, None, "/ops").await.unwrap(), "a");
        assert!(
            !other_polls_a.is_finished(),
            "a connection between others was dropped"
        );

        lan.set_link(1, Link::Up);
        assert_eq!(request(a, Some("k-b"), "/ops").await.unwrap(), "a");
        assert_eq!(request(b, Some("k-a"), "/ops").await.unwrap(), "b");

        // Stalled: connected, nothing comes back until the cable changes, then it closes.
        lan.set_link(0, Link::Stalled);
        let stalled = tokio::spawn(request(a, Some("k-b"), "/ops"));
        tokio::time::sleep(std::time::Duration::from_millis(300)).await;
        assert!(!stalled.is_finished(), "a stalled cable answered");
        lan.set_link(0, Link::Up);
        let ended = tokio::time::timeout(ENDS, stalled).await.unwrap();
        assert!(ended.unwrap().is_err(), "closed when the stall ends");
        assert_eq!(request(a, Some("k-b"), "/ops").await.unwrap(), "a");
        assert!(!lan.set_link(2, Link::Cut), "no third kiosk");
        other_polls_a.abort();
        stop.cancel();
    }

    #[test]
    fn the_kiosk_id_is_read_from_the_request_head_whatever_the_case_of_its_name() {
        let head = b"GET /store/v1/ops HTTP/1.1\r\nhost: x\r\nX-KIOSK-ID:  k-7 \r\n\r\nbody";
        assert_eq!(header(head, "x-kiosk-id").as_deref(), Some("k-7"));
        assert_eq!(header(head, "x-kiosk-timestamp"), None);
        assert_eq!(
            header(b"GET / HTTP/1.1\r\nx-kiosk-id: k", "x-kiosk-id"),
            None
        );
    }
}
