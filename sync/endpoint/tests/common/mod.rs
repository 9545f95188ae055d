//! Test harness: a real endpoint (SQLite or a throwaway PostgreSQL) on a loopback port, an
//! enrolled kiosk and a reqwest client that signs like the kiosk's sync client.

#![allow(dead_code)]

pub mod fleet;

use std::sync::{Arc, OnceLock};

use crm_endpoint::ServeConfig;
use crm_endpoint::db::{SharedDb, StoreRecord};
use crm_endpoint::testing::TempPostgres;
use kiosk_protocol::auth::sign_request;
use kiosk_protocol::events::{Envelope, Event};
use kiosk_protocol::wire::{
    BatchRequest, DeviceSecret, EnrollRequest, EnrollResponse, KioskClock, batches_path,
};
use time::OffsetDateTime;
use tokio::sync::oneshot;
use uuid::Uuid;

pub const ADMIN: &str = "test-admin-token-of-at-least-32-characters";

#[derive(Debug, Clone, Copy)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// One server per test binary; a watchdog stops it when the binary exits.
fn postgres() -> &'static TempPostgres {
    static PG: OnceLock<TempPostgres> = OnceLock::new();
    PG.get_or_init(|| {
        TempPostgres::start()
            .unwrap_or_else(|e| panic!("the postgres tests need a throwaway server: {e}"))
    })
}

/// The URL of a new, empty database (and the directory of a SQLite file, to keep).
pub async fn fresh_url(backend: Backend) -> (String, Option<tempfile::TempDir>) {
    match backend {
        Backend::Sqlite => {
            let dir = tempfile::tempdir().unwrap();
            let url = format!("sqlite://{}", dir.path().join("crm.db").display());
            (url, Some(dir))
        }
        Backend::Postgres => {
            let pg = tokio::task::spawn_blocking(postgres).await.unwrap();
            (pg.fresh_database().await.unwrap(), None)
        }
    }
}

pub async fn open_db(backend: Backend) -> (SharedDb, Option<tempfile::TempDir>) {
    let (url, dir) = fresh_url(backend).await;
    (crm_endpoint::db::open(&url).await.unwrap(), dir)
}

pub fn install_crypto() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}

/// An enrolled kiosk.
#[derive(Clone)]
pub struct Kiosk {
    pub id: String,
    pub secret: DeviceSecret,
    pub enrolled: EnrollResponse,
    pub boot_id: Uuid,
}

pub struct Harness {
    pub base: String,
    pub db: SharedDb,
    /// The database's URL.
    pub url: String,
    pub client: reqwest::Client,
    pub kiosk: Kiosk,
    stop: Option<oneshot::Sender<()>>,
    server: Option<tokio::task::JoinHandle<()>>,
    _dir: Option<tempfile::TempDir>,
}

impl Harness {
    /// The SQLite database's directory (none on PostgreSQL).
    pub fn data_dir(&self) -> Option<&std::path::Path> {
        self._dir.as_ref().map(|d| d.path())
    }

    pub async fn start(backend: Backend) -> Harness {
        Self::start_with(backend, None).await
    }

    pub async fn start_with(
        backend: Backend,
        tls: Option<(Arc<rustls::ServerConfig>, reqwest::Client)>,
    ) -> Harness {
        Self::start_full(backend, tls, None).await
    }

    /// A harness whose endpoint sends turn notices by SMS through `sms`.
    pub async fn start_with_sms(backend: Backend, sms: crm_endpoint::push::SmsNotices) -> Harness {
        Self::start_full(backend, None, Some(sms)).await
    }

    async fn start_full(
        backend: Backend,
        tls: Option<(Arc<rustls::ServerConfig>, reqwest::Client)>,
        sms: Option<crm_endpoint::push::SmsNotices>,
    ) -> Harness {
        install_crypto();
        let (url, dir) = fresh_url(backend).await;
        let db = crm_endpoint::db::open(&url).await.unwrap();
        db.upsert_store(StoreRecord {
            id: "north".into(),
            name: "Tienda Norte".into(),
        })
        .await
        .unwrap();
        db.upsert_store(StoreRecord {
            id: "south".into(),
            name: "Tienda Sur".into(),
        })
        .await
        .unwrap();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (stop, stopped) = oneshot::channel::<()>();
        let (tls_config, client) = match tls {
            Some((c, client)) => (Some(c), client),
            None => (None, reqwest::Client::new()),
        };
        let scheme = if tls_config.is_some() {
            "https://localhost"
        } else {
            "http://127.0.0.1"
        };
        let config = ServeConfig {
            db: db.clone(),
            admin_token: Some(ADMIN.into()),
            tls: tls_config,
        };
        let server = tokio::spawn(async move {
            let limits = kiosk_serve::Limits::PUBLIC.fit_open_files(kiosk_serve::open_file_limit());
            crm_endpoint::serve_with_sms(config, sms, limits, listener, async {
                let _ = stopped.await;
            })
            .await
            .unwrap();
        });
        let base = format!("{scheme}:{}", addr.port());
        let mut h = Harness {
            base,
            db,
            url,
            client,
            kiosk: Kiosk {
                id: String::new(),
                secret: DeviceSecret::from_bytes([0; 32]),
                enrolled: EnrollResponse {
                    kiosk_id: String::new(),
                    device_secret: DeviceSecret::from_bytes([0; 32]),
                    tenant_key: kiosk_protocol::wire::TenantKey::from_bytes([0; 32]),
                    store_id: String::new(),
                    store_name: String::new(),
                },
                boot_id: Uuid::now_v7(),
            },
            stop: Some(stop),
            server: Some(server),
            _dir: dir,
        };
        h.kiosk = h.enroll("north").await;
        h
    }

    pub async fn code(&self, store: &str) -> String {
        crm_endpoint::api::issue_enroll_code(&self.db, store, std::time::Duration::from_secs(60))
            .await
            .unwrap()
            .0
    }

    pub async fn enroll_with(&self, code: &str) -> reqwest::Response {
        self.client
            .post(format!("{}/v1/enroll", self.base))
            .json(&EnrollRequest {
                code: code.into(),
                hardware_profile: "simulated".into(),
                firmware_version: "0.1.0".into(),
            })
            .send()
            .await
            .unwrap()
    }

    pub async fn enroll(&self, store: &str) -> Kiosk {
        let code = self.code(store).await;
        let resp = self.enroll_with(&code).await;
        assert_eq!(resp.status(), 200);
        let enrolled: EnrollResponse = resp.json().await.unwrap();
        Kiosk {
            id: enrolled.kiosk_id.clone(),
            secret: enrolled.device_secret.clone(),
            enrolled,
            boot_id: Uuid::now_v7(),
        }
    }

    /// A signed request as the kiosk's sync client makes it.
    pub fn signed(
        &self,
        kiosk: &Kiosk,
        method: reqwest::Method,
        path_and_query: &str,
        body: Vec<u8>,
    ) -> reqwest::RequestBuilder {
        let now = OffsetDateTime::now_utc().unix_timestamp();
        self.signed_at(kiosk, method, path_and_query, body, now)
    }

    pub fn signed_at(
        &self,
        kiosk: &Kiosk,
        method: reqwest::Method,
        path_and_query: &str,
        body: Vec<u8>,
        now: i64,
    ) -> reqwest::RequestBuilder {
        let headers = sign_request(
            &kiosk.id,
            &kiosk.secret,
            method.as_str(),
            path_and_query,
            &body,
            now,
        );
        let mut req = self
            .client
            .request(method, format!("{}{}", self.base, path_and_query))
            .header("content-type", "application/json")
            .body(body);
        for (k, v) in headers.pairs() {
            req = req.header(k, v);
        }
        req
    }

    pub fn envelope(&self, kiosk: &Kiosk, seq: u64, event: Event) -> Envelope {
        Envelope {
            id: Uuid::now_v7(),
            kiosk_id: kiosk.id.clone(),
            seq,
            boot_id: kiosk.boot_id,
            wall_time: OffsetDateTime::now_utc(),
            mono_ms: seq * 10,
            schema_version: 1,
            event,
        }
    }

    pub fn batch_body(&self, kiosk: &Kiosk, events: Vec<Envelope>) -> Vec<u8> {
        let mono = events.last().map(|e| e.mono_ms).unwrap_or(0);
        let batch =
            BatchRequest::new(&kiosk.id, KioskClock::now(kiosk.boot_id, mono), events).unwrap();
        serde_json::to_vec(&batch).unwrap()
    }

    pub async fn post_events(&self, kiosk: &Kiosk, events: Vec<Envelope>) -> reqwest::Response {
        let body = self.batch_body(kiosk, events);
        self.signed(kiosk, reqwest::Method::POST, &batches_path(&kiosk.id), body)
            .send()
            .await
            .unwrap()
    }

    pub fn admin(&self, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
        self.client
            .request(method, format!("{}{}", self.base, path))
            .header("x-admin-token", ADMIN)
    }

    pub async fn event_count(&self) -> u64 {
        self.db.event_count().await.unwrap()
    }

    pub async fn stop(mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
        if let Some(t) = self.server.take() {
            t.await.unwrap();
        }
    }
}

/// Generates a `sqlite` and a `postgres` test from one async fn taking a [`Backend`].
#[macro_export]
macro_rules! on_both_databases {
    ($($name:ident),* $(,)?) => {
        $(
            mod $name {
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn sqlite() {
                    super::$name($crate::common::Backend::Sqlite).await
                }
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn postgres() {
                    super::$name($crate::common::Backend::Postgres).await
                }
            }
        )*
    };
}
