//! A crafted attacker against [`kiosk_serve::serve`]: hundreds of connections that send half a
//! request and wait, from one address, while a client from another address asks for health.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "test code: a failed unwrap is the failure message"
)]

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::ConnectInfo;
use axum::routing::get;
use kiosk_serve::{Limits, serve};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpSocket, TcpStream};
use tokio_util::sync::CancellationToken;

const LIMITS: Limits = Limits {
    header_read_timeout: Duration::from_secs(2),
    request_timeout: Duration::from_secs(1),
    max_connections: 64,
    max_per_peer: 16,
    shutdown_grace: Duration::from_secs(2),
};

async fn start() -> (SocketAddr, CancellationToken, tokio::task::JoinHandle<()>) {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let app = Router::new()
        .route("/health", get(|| async { "ok" }))
        .route(
            "/peer",
            get(|ConnectInfo(peer): ConnectInfo<SocketAddr>| async move { peer.ip().to_string() }),
        )
        .route(
            "/slow",
            get(|| async {
                tokio::time::sleep(Duration::from_secs(30)).await;
                "late"
            }),
        );
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let stop = CancellationToken::new();
    let stopped = stop.clone().cancelled_owned();
    let task = tokio::spawn(async move {
        serve::<SocketAddr>(listener, None, app, LIMITS, stopped)
            .await
            .unwrap();
    });
    (addr, stop, task)
}

/// A connection from 127.0.0.2 (another address than the health check's 127.0.0.1).
async fn from_attacker(addr: SocketAddr) -> TcpStream {
    let socket = TcpSocket::new_v4().unwrap();
    socket.bind("127.0.0.2:0".parse().unwrap()).unwrap();
    socket.connect(addr).await.unwrap()
}

/// Reads until the server closes the connection (or `within` passes: then `None`).
async fn read_to_close(stream: &mut TcpStream, within: Duration) -> Option<String> {
    let mut got = Vec::new();
    match tokio::time::timeout(within, stream.read_to_end(&mut got)).await {
        Ok(_) => Some(String::from_utf8_lossy(&got).into_owned()),
        Err(_) => None,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn half_requests_from_one_address_neither_block_health_nor_stay_open() {
    let (addr, stop, task) = start().await;
    let http = reqwest::Client::new();

    // 300 half requests from one address, held.
    let mut held = Vec::new();
    for _ in 0..300 {
        let mut s = from_attacker(addr).await;
        let _ = s.write_all(b"GET /health HTTP/1.1\r\nhost: x\r\n").await;
        held.push(s);
    }
    // Meanwhile health answers another address at once.
    let started = Instant::now();
    let health = http
        .get(format!("http://{addr}/health"))
        .timeout(Duration::from_secs(5))
        .send()
        .await
        .expect("health answers while 300 half requests are held");
    assert_eq!(health.text().await.unwrap(), "ok");
    eprintln!("health answered in {:?} under the hold", started.elapsed());

    // Every held connection is closed by the server: the ones over the per-peer cap at once with
    // a 503, the admitted ones when their head does not arrive within the header timeout.
    let (mut busy, mut timed_out) = (0, 0);
    for s in &mut held {
        let answer = read_to_close(s, LIMITS.header_read_timeout + Duration::from_secs(10))
            .await
            .expect("the server closes a half request");
        if answer.starts_with("HTTP/1.1 503") {
            assert!(
                answer.to_ascii_lowercase().contains("retry-after: 1"),
                "{answer}"
            );
            busy += 1;
        } else {
            timed_out += 1;
        }
    }
    assert_eq!(
        timed_out, LIMITS.max_per_peer,
        "admitted up to the per-peer cap"
    );
    assert_eq!(busy, 300 - LIMITS.max_per_peer);
    drop(held);

    // The slots are free again: the attacker's address is served normally.
    let mut s = from_attacker(addr).await;
    s.write_all(b"GET /peer HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n")
        .await
        .unwrap();
    let answer = read_to_close(&mut s, Duration::from_secs(5)).await.unwrap();
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert!(
        answer.ends_with("127.0.0.2"),
        "the handler sees its peer: {answer}"
    );

    stop.cancel();
    task.await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idle_kept_alive_connection_is_closed_and_a_slow_handler_answers_408() {
    let (addr, stop, task) = start().await;

    // A whole request on a kept-alive connection, then silence.
    let mut s = TcpStream::connect(addr).await.unwrap();
    s.write_all(b"GET /health HTTP/1.1\r\nhost: x\r\n\r\n")
        .await
        .unwrap();
    let mut buf = [0u8; 512];
    let n = s.read(&mut buf).await.unwrap();
    assert!(String::from_utf8_lossy(&buf[..n]).starts_with("HTTP/1.1 200"));
    let rest = read_to_close(&mut s, LIMITS.header_read_timeout + Duration::from_secs(10)).await;
    assert_eq!(
        rest.as_deref(),
        Some(""),
        "the idle connection is closed, nothing more sent"
    );

    // A handler that takes longer than the request timeout.
    let slow = reqwest::Client::new()
        .get(format!("http://{addr}/slow"))
        .timeout(Duration::from_secs(20))
        .send()
        .await
        .unwrap();
    assert_eq!(slow.status(), reqwest::StatusCode::REQUEST_TIMEOUT);

    stop.cancel();
    task.await.unwrap();
}
