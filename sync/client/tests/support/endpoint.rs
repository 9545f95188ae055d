//! The real crm-endpoint (SQLite store in a temp dir) on its own runtime and thread, so a test can
//! kill it abruptly (every connection and request task dropped at once) and start it again on the
//! same port and database.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use crm_endpoint::{ServeConfig, SharedDb};
use kiosk_protocol::wire::{EnrollRequest, EnrollResponse};
use rusqlite::Connection;
use tokio::sync::oneshot;
use uuid::Uuid;

/// The test endpoint's admin token.
pub const ADMIN_TOKEN: &str = "sync-test-admin-token-0123456789abcdef";

pub struct Endpoint {
    pub addr: SocketAddr,
    pub db_path: PathBuf,
    kill: Option<oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Endpoint {
    /// Starts the endpoint on `addr` (port 0 for any) over the SQLite database at `db_path`;
    /// returns it and, on first start, a one-time enrollment code for the demo store.
    pub async fn start(db_path: &Path, addr: SocketAddr) -> (Endpoint, String) {
        Self::start_url(
            format!("sqlite://{}", db_path.display()),
            db_path,
            addr,
            None,
        )
        .await
    }

    /// Like [`Endpoint::start`] over any store URL (`postgres://...`); `db_path` is only used by
    /// [`Endpoint::stored_ids`].
    pub async fn start_url(
        url: String,
        db_path: &Path,
        addr: SocketAddr,
        tls: Option<Arc<rustls::ServerConfig>>,
    ) -> (Endpoint, String) {
        let (ready_tx, ready_rx) = oneshot::channel::<(SocketAddr, String)>();
        let (kill_tx, kill_rx) = oneshot::channel::<()>();
        let thread = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async move {
                let db: SharedDb = crm_endpoint::db::open(&url).await.unwrap();
                let seed = crm_endpoint::seed_demo(&db).await.unwrap();
                let listener = bind_retrying(addr).await;
                let bound = listener.local_addr().unwrap();
                ready_tx.send((bound, seed.enroll_code)).unwrap();
                let config = ServeConfig {
                    db,
                    admin_token: Some(ADMIN_TOKEN.into()),
                    tls,
                };
                tokio::select! {
                    r = crm_endpoint::serve(config, listener, std::future::pending()) => r.unwrap(),
                    _ = kill_rx => {}
                }
            });
            // Abrupt: in-flight requests and their connections are dropped, not finished.
            rt.shutdown_background();
        });
        let (addr, code) = ready_rx.await.unwrap();
        (
            Endpoint {
                addr,
                db_path: db_path.to_owned(),
                kill: Some(kill_tx),
                thread: Some(thread),
            },
            code,
        )
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Kills the endpoint like a crash (connections reset, requests in flight dropped).
    pub fn kill(mut self) {
        self.stop();
    }

    fn stop(&mut self) {
        if let Some(k) = self.kill.take() {
            let _ = k.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }

    /// Enrolls a kiosk with `code`.
    pub async fn enroll(&self, code: &str) -> EnrollResponse {
        kiosk_sync::enroll(
            &self.url(),
            &Default::default(),
            &EnrollRequest {
                code: code.to_owned(),
                hardware_profile: "simulated".into(),
                firmware_version: "0.1.0".into(),
            },
        )
        .await
        .unwrap()
    }

    /// (id, times stored) of every event stored for `kiosk_id`, read from the endpoint's database.
    pub fn stored_ids(&self, kiosk_id: &str) -> Vec<Uuid> {
        stored_ids(&self.db_path, kiosk_id)
    }
}

impl Drop for Endpoint {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Ids of the events the endpoint's database holds for `kiosk_id` (one row per stored event).
pub fn stored_ids(db_path: &Path, kiosk_id: &str) -> Vec<Uuid> {
    let conn = Connection::open(db_path).unwrap();
    conn.busy_timeout(Duration::from_secs(10)).unwrap();
    let mut stmt = conn
        .prepare("SELECT id FROM events WHERE kiosk_id = ?1")
        .unwrap();
    stmt.query_map([kiosk_id], |r| r.get::<_, String>(0))
        .unwrap()
        .map(|s| s.unwrap().parse().unwrap())
        .collect()
}

async fn bind_retrying(addr: SocketAddr) -> tokio::net::TcpListener {
    // A restarted endpoint takes its old port back; the previous runtime may still be releasing it.
    let mut last = None;
    for _ in 0..100 {
        match tokio::net::TcpListener::bind(addr).await {
            Ok(l) => return l,
            Err(e) => {
                last = Some(e);
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    }
    panic!("cannot bind {addr}: {last:?}");
}
