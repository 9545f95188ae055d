//! A fault-injecting HTTP/1.1 proxy between the kiosk and the endpoint: per request it passes,
//! refuses (connection reset before reading), resets mid-request, resets mid-answer (after the
//! endpoint committed), stalls, trickles, or answers 500/503/429 with `Retry-After` itself. It
//! records what it saw (path, batch id) so tests can check what was re-sent.
//!
//! Started with [`FaultProxy::start_tls`] it terminates TLS itself (the kiosk speaks HTTPS to it,
//! it speaks HTTP to the endpoint) and can present a certificate for another name
//! ([`Fault::TlsMismatch`]), as a misconfigured load balancer or a captive portal does.

use std::collections::VecDeque;
use std::io::Read as _;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Notify;
use uuid::Uuid;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    Pass,
    /// Reset the connection without reading the request.
    Refuse,
    /// Read the head and part of the body, then reset.
    ResetMidRequest,
    /// Forward the request, let the endpoint answer, send half the answer, reset.
    ResetMidAnswer,
    /// Forward the request, let the endpoint answer, send nothing and hold the connection.
    CommitThenStall,
    /// Read the request and never answer.
    Stall,
    /// Forward both ways in small, slow pieces.
    Trickle,
    /// Answer this status itself (500, 503, 429) with `Retry-After: 1` for 503/429.
    Answer(u16),
    /// TLS only: new connections get a certificate for another name (the handshake fails at the
    /// kiosk); requests on connections made before are refused, so the kiosk has to reconnect.
    TlsMismatch,
    /// A connection made before [`FaultProxy::drop_connections`] is reset at its next request
    /// (a router that rebooted), so the kiosk has to reconnect, and resolve the name again.
    Dropped,
}

const CHAOS: [Fault; 9] = [
    Fault::Refuse,
    Fault::ResetMidRequest,
    Fault::ResetMidAnswer,
    Fault::Stall,
    Fault::Trickle,
    Fault::Answer(500),
    Fault::Answer(503),
    Fault::Answer(429),
    Fault::Pass,
];

#[derive(Debug, Clone)]
pub struct Seen {
    pub path: String,
    pub batch_id: Option<Uuid>,
    pub fault: Fault,
    /// When the request's head arrived.
    pub at: std::time::Instant,
}

struct State {
    upstream: SocketAddr,
    script: VecDeque<Fault>,
    chaos: Option<(f64, StdRng)>,
    seen: Vec<Seen>,
    /// Batches holding the event with this id are refused whole with 400 `malformed`.
    poison: Option<String>,
    /// Every request gets this fault (before the script and chaos) until cleared.
    always: Option<Fault>,
    /// Bumped by [`FaultProxy::drop_connections`]: connections made before are dropped.
    generation: u64,
}

/// The certificates of a TLS-terminating proxy.
#[derive(Clone)]
pub struct ProxyTls {
    /// For the name the kiosk connects to.
    pub good: Arc<rustls::ServerConfig>,
    /// For another name ([`Fault::TlsMismatch`]).
    pub wrong: Arc<rustls::ServerConfig>,
}

pub struct FaultProxy {
    pub addr: SocketAddr,
    state: Arc<Mutex<State>>,
    /// Poked whenever a request was seen.
    pub request_seen: Arc<Notify>,
    task: tokio::task::JoinHandle<()>,
}

impl FaultProxy {
    pub async fn start(upstream: SocketAddr) -> FaultProxy {
        Self::start_with(upstream, None).await
    }

    /// A proxy that terminates TLS with `tls.good` (and `tls.wrong` for [`Fault::TlsMismatch`]).
    pub async fn start_tls(upstream: SocketAddr, tls: ProxyTls) -> FaultProxy {
        Self::start_with(upstream, Some(tls)).await
    }

    async fn start_with(upstream: SocketAddr, tls: Option<ProxyTls>) -> FaultProxy {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let state = Arc::new(Mutex::new(State {
            upstream,
            script: VecDeque::new(),
            chaos: None,
            seen: Vec::new(),
            poison: None,
            always: None,
            generation: 0,
        }));
        let request_seen = Arc::new(Notify::new());
        let (st, seen) = (state.clone(), request_seen.clone());
        let task = tokio::spawn(async move {
            loop {
                let Ok((client, _)) = listener.accept().await else {
                    continue;
                };
                let _ = client.set_nodelay(true);
                let (st, seen) = (st.clone(), seen.clone());
                let Some(tls) = tls.clone() else {
                    tokio::spawn(serve_connection(client, st, seen));
                    continue;
                };
                tokio::spawn(async move {
                    let mismatch = st.lock().unwrap().always == Some(Fault::TlsMismatch);
                    let config = if mismatch { tls.wrong } else { tls.good };
                    let accepted = tokio::time::timeout(
                        Duration::from_secs(10),
                        tokio_rustls::TlsAcceptor::from(config).accept(client),
                    )
                    .await;
                    if mismatch {
                        record(
                            &st,
                            &seen,
                            "(tls handshake)".into(),
                            None,
                            Fault::TlsMismatch,
                        );
                    }
                    if let Ok(Ok(stream)) = accepted {
                        serve_connection(stream, st, seen).await;
                    }
                });
            }
        });
        FaultProxy {
            addr,
            state,
            request_seen,
            task,
        }
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Faults for the next requests, in order (before any chaos).
    pub fn script(&self, faults: &[Fault]) {
        self.state
            .lock()
            .unwrap()
            .script
            .extend(faults.iter().copied());
    }

    /// From now on, each request gets a random fault with probability `p`.
    pub fn chaos(&self, p: f64, seed: u64) {
        self.state.lock().unwrap().chaos = Some((p, StdRng::seed_from_u64(seed)));
    }

    /// Every request gets `fault` until [`FaultProxy::heal`] or `always(None)`: an outage
    /// (`Refuse`), an endpoint answering 503 for a while, a certificate swap (`TlsMismatch`).
    pub fn always(&self, fault: Option<Fault>) {
        self.state.lock().unwrap().always = fault;
    }

    /// Everything passes from now on.
    pub fn heal(&self) {
        let mut s = self.state.lock().unwrap();
        s.chaos = None;
        s.always = None;
        s.script.clear();
    }

    /// Refuse every batch holding the event `id` with 400 `malformed`, as a stricter endpoint
    /// would refuse a batch holding an event it cannot parse.
    pub fn refuse_batches_containing(&self, id: Uuid) {
        self.state.lock().unwrap().poison = Some(id.to_string());
    }

    pub fn seen(&self) -> Vec<Seen> {
        self.state.lock().unwrap().seen.clone()
    }

    /// Every connection open now is reset at its next request ([`Fault::Dropped`]).
    pub fn drop_connections(&self) {
        self.state.lock().unwrap().generation += 1;
    }

    fn next_fault(state: &Mutex<State>) -> (Fault, SocketAddr) {
        let mut s = state.lock().unwrap();
        let upstream = s.upstream;
        match s.always {
            // An established connection: the kiosk must reconnect to meet the new certificate.
            Some(Fault::TlsMismatch) => return (Fault::Refuse, upstream),
            Some(f) => return (f, upstream),
            None => {}
        }
        if let Some(f) = s.script.pop_front() {
            return (f, upstream);
        }
        if let Some((p, rng)) = &mut s.chaos {
            if rng.gen_bool(*p) {
                let i = rng.gen_range(0..CHAOS.len());
                return (CHAOS[i], upstream);
            }
        }
        (Fault::Pass, upstream)
    }
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// One HTTP/1.1 message: head bytes and body bytes (de-chunked bodies are re-sent as read).
struct Message {
    head: Vec<u8>,
    body: Vec<u8>,
}

impl Message {
    fn bytes(&self) -> Vec<u8> {
        let mut v = self.head.clone();
        v.extend_from_slice(&self.body);
        v
    }

    fn header(&self, name: &str) -> Option<String> {
        let text = String::from_utf8_lossy(&self.head);
        text.lines().skip(1).find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.trim()
                .eq_ignore_ascii_case(name)
                .then(|| v.trim().to_owned())
        })
    }

    fn path(&self) -> String {
        let text = String::from_utf8_lossy(&self.head);
        text.split_whitespace().nth(1).unwrap_or("").to_owned()
    }
}

async fn read_head<R: AsyncBufReadExt + Unpin>(r: &mut R) -> Option<Vec<u8>> {
    let mut head = Vec::new();
    loop {
        let n = r.read_until(b'\n', &mut head).await.ok()?;
        if n == 0 {
            return None;
        }
        if head.ends_with(b"\r\n\r\n") {
            return Some(head);
        }
    }
}

/// Reads a whole message (Content-Length or chunked body; raw chunked bytes kept).
async fn read_message<R: AsyncBufReadExt + Unpin>(r: &mut R, no_body: bool) -> Option<Message> {
    let head = read_head(r).await?;
    let mut m = Message {
        head,
        body: Vec::new(),
    };
    if no_body {
        return Some(m);
    }
    if let Some(len) = m.header("content-length") {
        let len: usize = len.parse().ok()?;
        m.body = vec![0; len];
        r.read_exact(&mut m.body).await.ok()?;
    } else if m
        .header("transfer-encoding")
        .is_some_and(|v| v.eq_ignore_ascii_case("chunked"))
    {
        loop {
            let mut line = Vec::new();
            r.read_until(b'\n', &mut line).await.ok()?;
            m.body.extend_from_slice(&line);
            let size = usize::from_str_radix(String::from_utf8_lossy(&line).trim(), 16).ok()?;
            let mut chunk = vec![0; size + 2];
            r.read_exact(&mut chunk).await.ok()?;
            m.body.extend_from_slice(&chunk);
            if size == 0 {
                break;
            }
        }
    }
    Some(m)
}

fn body_of(m: &Message) -> Vec<u8> {
    if m.header("content-encoding").is_some_and(|v| v == "gzip") {
        let mut out = Vec::new();
        match flate2::read::GzDecoder::new(&m.body[..]).read_to_end(&mut out) {
            Ok(_) => out,
            Err(_) => Vec::new(),
        }
    } else {
        m.body.clone()
    }
}

fn batch_id_of(m: &Message) -> Option<Uuid> {
    let v: serde_json::Value = serde_json::from_slice(&body_of(m)).ok()?;
    v["batch_id"].as_str()?.parse().ok()
}

/// A connection from the kiosk: plain TCP or TLS over TCP.
trait Conn: AsyncRead + AsyncWrite + Unpin + Send + 'static {
    fn tcp(&self) -> &TcpStream;
}

impl Conn for TcpStream {
    fn tcp(&self) -> &TcpStream {
        self
    }
}

impl Conn for tokio_rustls::server::TlsStream<TcpStream> {
    fn tcp(&self) -> &TcpStream {
        self.get_ref().0
    }
}

fn reset<S: Conn>(stream: S) {
    // Linger 0: close sends RST instead of FIN (and, with a zero timeout, never blocks on drop,
    // which is what tokio's deprecation warns about).
    #[allow(deprecated)]
    let _ = stream.tcp().set_linger(Some(Duration::ZERO));
    drop(stream);
}

async fn trickle<W: AsyncWrite + Unpin>(w: &mut W, bytes: &[u8]) -> std::io::Result<()> {
    for piece in bytes.chunks(512) {
        w.write_all(piece).await?;
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    Ok(())
}

async fn serve_connection<S: Conn>(client: S, state: Arc<Mutex<State>>, seen: Arc<Notify>) {
    let mut client = BufReader::new(client);
    let born = state.lock().unwrap().generation;
    loop {
        let (mut fault, upstream) = FaultProxy::next_fault(&state);
        if state.lock().unwrap().generation != born {
            fault = Fault::Dropped;
        }
        if matches!(fault, Fault::Refuse | Fault::Dropped) {
            // Wait for the request to start so the reset hits a request, not an idle connection.
            if client
                .fill_buf()
                .await
                .map(|b| b.is_empty())
                .unwrap_or(true)
            {
                return;
            }
            let what = if fault == Fault::Dropped {
                "(dropped)"
            } else {
                "(refused)"
            };
            record(&state, &seen, what.into(), None, fault);
            reset(client.into_inner());
            return;
        }
        if fault == Fault::ResetMidRequest {
            let Some(head) = read_head(&mut client).await else {
                return;
            };
            let path = String::from_utf8_lossy(&head)
                .split_whitespace()
                .nth(1)
                .unwrap_or("")
                .to_owned();
            let mut some = vec![0u8; 100];
            let _ = tokio::time::timeout(Duration::from_millis(200), client.read(&mut some)).await;
            record(&state, &seen, path, None, fault);
            reset(client.into_inner());
            return;
        }
        let Some(request) = read_message(&mut client, false).await else {
            return;
        };
        record(&state, &seen, request.path(), batch_id_of(&request), fault);
        let poison = state.lock().unwrap().poison.clone();
        let poisoned = poison.is_some_and(|p| {
            serde_json::from_slice::<serde_json::Value>(&body_of(&request))
                .ok()
                .and_then(|v| v["events"].as_array().cloned())
                .is_some_and(|events| events.iter().any(|e| e["id"] == p.as_str()))
        });
        if poisoned {
            let body = "{\"error\":\"malformed\",\"message\":\"batch holds an event this endpoint cannot read\"}";
            let answer = format!(
                "HTTP/1.1 400 Bad Request\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n{body}",
                body.len()
            );
            if client.get_mut().write_all(answer.as_bytes()).await.is_err() {
                return;
            }
            continue;
        }
        match fault {
            Fault::Stall => {
                // Hold until the client gives up.
                let mut sink = [0u8; 1];
                let _ = client.read(&mut sink).await;
                return;
            }
            Fault::Answer(status) => {
                let (reason, code) = match status {
                    429 => ("Too Many Requests", "rate_limited"),
                    503 => ("Service Unavailable", "unavailable"),
                    _ => ("Internal Server Error", "internal"),
                };
                let body =
                    format!("{{\"error\":\"{code}\",\"message\":\"injected by the test proxy\"}}");
                let retry = if status == 500 {
                    ""
                } else {
                    "Retry-After: 1\r\n"
                };
                let answer = format!(
                    "HTTP/1.1 {status} {reason}\r\ncontent-type: application/json\r\n{retry}content-length: {}\r\nconnection: close\r\n\r\n{body}",
                    body.len()
                );
                let _ = client.get_mut().write_all(answer.as_bytes()).await;
                let _ = client.get_mut().shutdown().await;
                return;
            }
            _ => {}
        }
        let Ok(mut up) = TcpStream::connect(upstream).await else {
            reset(client.into_inner());
            return;
        };
        let _ = up.set_nodelay(true);
        let sent = if fault == Fault::Trickle {
            trickle(&mut up, &request.bytes()).await
        } else {
            up.write_all(&request.bytes()).await
        };
        if sent.is_err() {
            reset(client.into_inner());
            return;
        }
        let is_head = request.head.starts_with(b"HEAD ");
        let mut up = BufReader::new(up);
        let Some(answer) = read_message(&mut up, is_head).await else {
            reset(client.into_inner());
            return;
        };
        let bytes = answer.bytes();
        let ok = match fault {
            Fault::ResetMidAnswer => {
                let _ = client.get_mut().write_all(&bytes[..bytes.len() / 2]).await;
                let _ = client.get_mut().flush().await;
                reset(client.into_inner());
                return;
            }
            Fault::CommitThenStall => {
                let mut sink = [0u8; 1];
                let _ = client.read(&mut sink).await;
                return;
            }
            Fault::Trickle => trickle(client.get_mut(), &bytes).await,
            _ => client.get_mut().write_all(&bytes).await,
        };
        if ok.is_err() {
            return;
        }
    }
}

fn record(state: &Mutex<State>, seen: &Notify, path: String, batch_id: Option<Uuid>, fault: Fault) {
    state.lock().unwrap().seen.push(Seen {
        path,
        batch_id,
        fault,
        at: std::time::Instant::now(),
    });
    seen.notify_waiters();
}
