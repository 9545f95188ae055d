//! The PostgreSQL database, for a fleet: several endpoint replicas share one database through a
//! small pool of connections each. The logic is `db::shared`'s, run through `PgExec`;
//! this file holds the pool, the batch's one-statement insert and its folded dashboard facts.
//! Dedupe
//! rests on the primary key of `events` (`INSERT ... ON CONFLICT DO NOTHING` inside the batch's
//! transaction), and feed changes are numbered under a transaction-scoped advisory lock so that
//! their sequence order is their commit order (a kiosk's cursor never skips a change that commits
//! late).

use std::collections::{BTreeSet, HashSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use futures::future::BoxFuture;
use kiosk_protocol::CardToken;
use kiosk_protocol::wire::EventStatus;
use tokio::sync::Mutex;
use tokio_postgres::types::{ToSql, Type};
use tokio_postgres::{Client, GenericClient, NoTls, Transaction};

use super::database::Database;
use super::dialect::Dialect;
use super::exec::{Exec, Row, Value, args};
use super::model::{DbError, DbKind, DbResult, IngestBatch, IngestEvent, OpsFact};
use super::{methods, migrations, shared};

/// Fills the dashboard's tables from the events stored before they existed (once per database).
const DASHBOARD_BACKFILL: &str = r#"
INSERT INTO turns (turn_id, store_id, kiosk_id, service, identified, issued_ms)
    SELECT envelope::jsonb #>> '{payload,turn_id}', MIN(store_id), MIN(kiosk_id),
           MIN(envelope::jsonb #>> '{payload,service}'), bool_or(card_token IS NOT NULL),
           MIN(corrected_ms)
    FROM events WHERE type = 'ticket_issued' GROUP BY 1
    ON CONFLICT (turn_id) DO NOTHING;
INSERT INTO turns (turn_id, store_id, kiosk_id, called_ms)
    SELECT envelope::jsonb #>> '{payload,turn_id}', MIN(store_id), MIN(kiosk_id), MIN(corrected_ms)
    FROM events WHERE type = 'turn_called' GROUP BY 1
    ON CONFLICT (turn_id) DO UPDATE SET called_ms = excluded.called_ms;
INSERT INTO turns (turn_id, store_id, kiosk_id, served_ms)
    SELECT envelope::jsonb #>> '{payload,turn_id}', MIN(store_id), MIN(kiosk_id), MIN(corrected_ms)
    FROM events WHERE type = 'turn_served' GROUP BY 1
    ON CONFLICT (turn_id) DO UPDATE SET served_ms = excluded.served_ms;
INSERT INTO kiosk_devices (kiosk_id, device, status, reason, at_ms)
    SELECT DISTINCT ON (kiosk_id, envelope::jsonb #>> '{payload,device}')
           kiosk_id, envelope::jsonb #>> '{payload,device}', envelope::jsonb #>> '{payload,status}',
           envelope::jsonb #>> '{payload,reason}', corrected_ms
    FROM events WHERE type = 'device_status_changed'
    ORDER BY kiosk_id, envelope::jsonb #>> '{payload,device}', corrected_ms DESC, seq DESC
    ON CONFLICT (kiosk_id, device) DO NOTHING;
"#;

/// Advisory lock ids (arbitrary, fixed): schema migration, feed-change numbering.
const MIGRATION_LOCK: i64 = 0x6b69_6f73_6b01;
const CHANGES_LOCK: i64 = 0x6b69_6f73_6b02;

/// The channel replicas tell each other about changed stores on ([`crate::fleet`]).
pub const CHANGES_CHANNEL: &str = "crm_store_changes";

/// Connections per endpoint replica.
const POOL_SIZE: usize = 8;

/// The PostgreSQL database: a small pool of connections.
pub struct PgDb {
    spec: ConnectSpec,
    pool: Vec<Mutex<Client>>,
    next: AtomicUsize,
}

/// How to reach the server: the URL for tokio-postgres and the TLS to use, from the URL's
/// `sslmode` and `sslrootcert` read as libpq reads them:
/// - `disable`: plain TCP;
/// - `prefer` (libpq's default) and `require`: encrypted, the certificate not verified (as libpq
///   does without a root certificate; with `sslrootcert`, `require` verifies the chain as
///   `verify-ca` does);
/// - `verify-ca`: the chain must lead to `sslrootcert`;
/// - `verify-full` (production): that, and the certificate must name the host.
#[derive(Clone)]
pub(crate) struct ConnectSpec {
    url: String,
    tls: Option<tokio_postgres_rustls::MakeRustlsConnect>,
}

impl ConnectSpec {
    pub(crate) fn parse(url: &str) -> DbResult<Self> {
        let bad = |m: String| DbError::BadUrl(format!("{}: {m}", super::model::redact_url(url)));
        let (base, query) = url.split_once('?').unwrap_or((url, ""));
        let mut mode = "prefer".to_owned();
        let mut root: Option<String> = None;
        let mut kept = Vec::new();
        for pair in query.split('&').filter(|p| !p.is_empty()) {
            match pair.split_once('=') {
                Some(("sslmode", v)) => mode = v.to_owned(),
                Some(("sslrootcert", v)) => root = Some(v.to_owned()),
                _ => kept.push(pair),
            }
        }
        let roots = match &root {
            Some(path) => {
                let pem = std::fs::read(path)
                    .map_err(|e| bad(format!("cannot read sslrootcert {path}: {e}")))?;
                let mut store = rustls::RootCertStore::empty();
                for cert in rustls_pemfile::certs(&mut &pem[..]) {
                    let cert = cert.map_err(|e| bad(format!("sslrootcert {path}: {e}")))?;
                    store
                        .add(cert)
                        .map_err(|e| bad(format!("sslrootcert {path}: {e}")))?;
                }
                if store.is_empty() {
                    return Err(bad(format!("sslrootcert {path} holds no certificate")));
                }
                Some(Arc::new(store))
            }
            None => None,
        };
        let verify = match (mode.as_str(), roots) {
            ("disable", _) => None,
            ("prefer" | "require", None) => Some(Verify::Nothing),
            ("require" | "verify-ca", Some(r)) => Some(Verify::Chain(r)),
            ("prefer", Some(r)) => Some(Verify::Chain(r)),
            ("verify-full", Some(r)) => Some(Verify::Full(r)),
            ("verify-ca" | "verify-full", None) => {
                return Err(bad(format!(
                    "sslmode={mode} needs sslrootcert=PATH (the CA that signed the server's certificate)"
                )));
            }
            (other, _) => {
                return Err(bad(format!(
                    "sslmode={other} is not one of disable, prefer, require, verify-ca, verify-full"
                )));
            }
        };
        // tokio-postgres knows disable, prefer and require: the verification is ours.
        let pg_mode = match (&verify, mode.as_str()) {
            (None, _) => "disable",
            (Some(_), "prefer") => "prefer",
            (Some(_), _) => "require",
        };
        kept.push(match pg_mode {
            "disable" => "sslmode=disable",
            "prefer" => "sslmode=prefer",
            _ => "sslmode=require",
        });
        let url = format!("{base}?{}", kept.join("&"));
        let tls = verify.map(|v| tokio_postgres_rustls::MakeRustlsConnect::new(v.client_config()));
        Ok(ConnectSpec { url, tls })
    }
}

/// What the client checks of the server's certificate.
enum Verify {
    Nothing,
    Chain(Arc<rustls::RootCertStore>),
    Full(Arc<rustls::RootCertStore>),
}

impl Verify {
    fn client_config(self) -> rustls::ClientConfig {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let builder = rustls::ClientConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .unwrap_or_else(|_| {
                rustls::ClientConfig::builder_with_protocol_versions(rustls::DEFAULT_VERSIONS)
            });
        match self {
            Verify::Full(roots) => builder.with_root_certificates(roots).with_no_client_auth(),
            Verify::Chain(roots) => {
                match rustls::client::WebPkiServerVerifier::builder_with_provider(
                    roots,
                    provider.clone(),
                )
                .build()
                {
                    Ok(chain) => builder
                        .dangerous()
                        .with_custom_certificate_verifier(Arc::new(Lenient {
                            chain: Some(chain),
                            provider,
                        }))
                        .with_no_client_auth(),
                    // An empty store is refused at parse time; fail closed anyway.
                    Err(_) => builder
                        .with_root_certificates(rustls::RootCertStore::empty())
                        .with_no_client_auth(),
                }
            }
            Verify::Nothing => builder
                .dangerous()
                .with_custom_certificate_verifier(Arc::new(Lenient {
                    chain: None,
                    provider,
                }))
                .with_no_client_auth(),
        }
    }
}

/// `verify-ca` (with the chain's verifier: the chain is checked, the name is not) and
/// `require` without a root certificate (none: any certificate, libpq's own behaviour). The
/// handshake's signatures are checked either way, so the channel is the certificate holder's.
#[derive(Debug)]
struct Lenient {
    chain: Option<Arc<rustls::client::WebPkiServerVerifier>>,
    provider: Arc<rustls::crypto::CryptoProvider>,
}

impl rustls::client::danger::ServerCertVerifier for Lenient {
    fn verify_server_cert(
        &self,
        end_entity: &rustls::pki_types::CertificateDer<'_>,
        intermediates: &[rustls::pki_types::CertificateDer<'_>],
        server_name: &rustls::pki_types::ServerName<'_>,
        ocsp: &[u8],
        now: rustls::pki_types::UnixTime,
    ) -> Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
        let Some(chain) = &self.chain else {
            return Ok(rustls::client::danger::ServerCertVerified::assertion());
        };
        match chain.verify_server_cert(end_entity, intermediates, server_name, ocsp, now) {
            Err(rustls::Error::InvalidCertificate(rustls::CertificateError::NotValidForName))
            | Err(rustls::Error::InvalidCertificate(
                rustls::CertificateError::NotValidForNameContext { .. },
            )) => Ok(rustls::client::danger::ServerCertVerified::assertion()),
            other => other,
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &rustls::pki_types::CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &rustls::pki_types::CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

async fn connect_one(spec: &ConnectSpec) -> DbResult<Client> {
    let client = match &spec.tls {
        None => {
            let (client, connection) = tokio_postgres::connect(&spec.url, NoTls).await?;
            tokio::spawn(async move {
                if let Err(e) = connection.await {
                    tracing::warn!(error = %e, "postgres connection closed");
                }
            });
            client
        }
        Some(tls) => {
            let (client, connection) = tokio_postgres::connect(&spec.url, tls.clone()).await?;
            tokio::spawn(async move {
                if let Err(e) = connection.await {
                    tracing::warn!(error = %e, "postgres connection closed");
                }
            });
            client
        }
    };
    Ok(client)
}

/// Brings the database to the newest schema (see [`super::migrations`]); the caller holds the
/// migration lock.
async fn migrate(client: &mut Client) -> DbResult<()> {
    client
        .batch_execute(migrations::CREATE_VERSION_TABLE)
        .await?;
    let found: Option<i64> = client
        .query_opt(migrations::READ_VERSION, &[])
        .await?
        .map(|r| r.get(0));
    let write = Dialect::Postgres.sql(migrations::WRITE_VERSION);
    if found.is_some_and(|f| f > migrations::latest(Dialect::Postgres)) {
        // A schema this old endpoint does not know: a newer replica migrated it. Before 7 the
        // table does not exist and the query fails: refused below as before.
        let oldest: Option<i64> = match client.query_opt(migrations::READ_COMPAT, &[]).await {
            Ok(row) => row.map(|r| r.get(0)),
            Err(_) => None,
        };
        if migrations::tolerates_newer(Dialect::Postgres, found, oldest) {
            tracing::warn!(
                found,
                supported = migrations::latest(Dialect::Postgres),
                "postgres schema is newer than this endpoint but declared compatible; serving it unchanged (finish the rolling upgrade)"
            );
            return Ok(());
        }
    }
    for m in migrations::pending(Dialect::Postgres, found)? {
        let tx = client.transaction().await?;
        tx.batch_execute(m.sql).await?;
        tx.execute(write.as_ref(), &[&m.version]).await?;
        tx.commit().await?;
        tracing::info!(
            version = m.version,
            name = m.name,
            "postgres schema migrated"
        );
    }
    Ok(())
}

impl PgDb {
    /// Connects to `url` (a libpq-style URL), migrates the schema and creates the tenant key if
    /// this is a new database.
    pub async fn connect(url: &str) -> DbResult<Self> {
        let spec = ConnectSpec::parse(url)?;
        let mut first = connect_one(&spec).await?;
        // Replicas starting together: one migrates, the others wait on the lock.
        first
            .batch_execute(&format!("SELECT pg_advisory_lock({MIGRATION_LOCK})"))
            .await?;
        let migrated = migrate(&mut first).await;
        first
            .batch_execute(&format!("SELECT pg_advisory_unlock({MIGRATION_LOCK})"))
            .await?;
        migrated?;
        {
            // Replicas starting together: the second waits on the settings key, then skips.
            let tx = first.transaction().await?;
            shared::finish_open(&PgExec::Tx(&tx), DASHBOARD_BACKFILL).await?;
            tx.commit().await?;
        }
        let mut pool = vec![Mutex::new(first)];
        for _ in 1..POOL_SIZE {
            pool.push(Mutex::new(connect_one(&spec).await?));
        }
        Ok(PgDb {
            spec,
            pool,
            next: AtomicUsize::new(0),
        })
    }

    /// Runs `f` with a pooled connection, reconnecting it first if the server dropped it.
    fn with<'a, T, F>(&'a self, f: F) -> BoxFuture<'a, DbResult<T>>
    where
        T: Send + 'a,
        F: for<'c> FnOnce(&'c mut Client) -> BoxFuture<'c, DbResult<T>> + Send + 'a,
    {
        Box::pin(async move {
            let start = self.next.fetch_add(1, Ordering::Relaxed);
            // Prefer an idle connection; otherwise queue on the round-robin one.
            let mut guard = None;
            for i in 0..self.pool.len() {
                if let Ok(g) = self.pool[(start + i) % self.pool.len()].try_lock() {
                    guard = Some(g);
                    break;
                }
            }
            let mut guard = match guard {
                Some(g) => g,
                None => self.pool[start % self.pool.len()].lock().await,
            };
            if guard.is_closed() {
                *guard = connect_one(&self.spec).await?;
            }
            f(&mut guard).await
        })
    }
}

fn i64_of(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

/// [`Exec`] over a pooled connection or one of its transactions.
pub(crate) enum PgExec<'c> {
    /// Statements commit one by one.
    Client(&'c Client),
    /// Statements run in this transaction.
    Tx(&'c Transaction<'c>),
}

impl Exec for PgExec<'_> {
    fn dialect(&self) -> Dialect {
        Dialect::Postgres
    }

    async fn execute(&self, sql: &str, params: &[Value]) -> DbResult<u64> {
        let sql = Dialect::Postgres.sql(sql);
        match self {
            PgExec::Client(c) => pg_execute(*c, &sql, params).await,
            PgExec::Tx(t) => pg_execute(*t, &sql, params).await,
        }
    }

    async fn query(&self, sql: &str, params: &[Value]) -> DbResult<Vec<Row>> {
        let sql = Dialect::Postgres.sql(sql);
        let rows = match self {
            PgExec::Client(c) => pg_query(*c, &sql, params).await?,
            PgExec::Tx(t) => pg_query(*t, &sql, params).await?,
        };
        rows.iter().map(row_of).collect()
    }

    async fn lock_changes(&self) -> DbResult<()> {
        self.execute("SELECT pg_advisory_xact_lock(?1)", args![CHANGES_LOCK])
            .await?;
        Ok(())
    }

    async fn batch(&self, sql: &str) -> DbResult<()> {
        match self {
            PgExec::Client(c) => c.batch_execute(sql).await?,
            PgExec::Tx(t) => t.batch_execute(sql).await?,
        }
        Ok(())
    }
}

/// A parameter as the type the server expects for it (an integer may be an INT4 or a BOOLEAN
/// column; a NULL must be typed).
fn param_of(v: &Value, ty: &Type) -> Box<dyn ToSql + Sync + Send> {
    match (v, ty) {
        (Value::Null, t) if *t == Type::INT8 => Box::new(None::<i64>),
        (Value::Null, t) if *t == Type::INT4 => Box::new(None::<i32>),
        (Value::Null, t) if *t == Type::BOOL => Box::new(None::<bool>),
        (Value::Null, t) if *t == Type::FLOAT8 => Box::new(None::<f64>),
        (Value::Null, _) => Box::new(None::<String>),
        (Value::Int(i), t) if *t == Type::INT4 => {
            Box::new(i32::try_from(*i).unwrap_or(if *i < 0 { i32::MIN } else { i32::MAX }))
        }
        (Value::Int(i), t) if *t == Type::BOOL => Box::new(*i != 0),
        (Value::Int(i), _) => Box::new(*i),
        (Value::Bool(b), t) if *t == Type::INT8 || *t == Type::INT4 => Box::new(i64::from(*b)),
        (Value::Bool(b), _) => Box::new(*b),
        (Value::Text(s), _) => Box::new(s.clone()),
        (Value::Real(f), _) => Box::new(*f),
    }
}

async fn prepared<C: GenericClient>(
    c: &C,
    sql: &str,
    params: &[Value],
) -> DbResult<(tokio_postgres::Statement, Vec<Box<dyn ToSql + Sync + Send>>)> {
    let stmt = c.prepare(sql).await?;
    let values = params
        .iter()
        .zip(stmt.params())
        .map(|(v, ty)| param_of(v, ty))
        .collect();
    Ok((stmt, values))
}

async fn pg_execute<C: GenericClient>(c: &C, sql: &str, params: &[Value]) -> DbResult<u64> {
    let (stmt, values) = prepared(c, sql, params).await?;
    let refs: Vec<&(dyn ToSql + Sync)> = values.iter().map(|v| &**v as _).collect();
    Ok(c.execute(&stmt, &refs).await?)
}

async fn pg_query<C: GenericClient>(
    c: &C,
    sql: &str,
    params: &[Value],
) -> DbResult<Vec<tokio_postgres::Row>> {
    let (stmt, values) = prepared(c, sql, params).await?;
    let refs: Vec<&(dyn ToSql + Sync)> = values.iter().map(|v| &**v as _).collect();
    Ok(c.query(&stmt, &refs).await?)
}

/// A row as [`Value`]s, by each column's type.
fn row_of(r: &tokio_postgres::Row) -> DbResult<Row> {
    let mut out = Vec::with_capacity(r.len());
    for (i, column) in r.columns().iter().enumerate() {
        let ty = column.type_();
        let v = if *ty == Type::INT8 {
            r.try_get::<_, Option<i64>>(i)?.map(Value::Int)
        } else if *ty == Type::INT4 {
            r.try_get::<_, Option<i32>>(i)?
                .map(|v| Value::Int(v.into()))
        } else if *ty == Type::INT2 {
            r.try_get::<_, Option<i16>>(i)?
                .map(|v| Value::Int(v.into()))
        } else if *ty == Type::BOOL {
            r.try_get::<_, Option<bool>>(i)?.map(Value::Bool)
        } else if *ty == Type::FLOAT8 {
            r.try_get::<_, Option<f64>>(i)?.map(Value::Real)
        } else {
            r.try_get::<_, Option<String>>(i)?.map(Value::Text)
        };
        out.push(v.unwrap_or(Value::Null));
    }
    Ok(Row(out))
}

/// Shared logic handed a [`PgExec`].
type Job<T> = Box<dyn for<'e> FnOnce(&'e PgExec<'e>) -> BoxFuture<'e, DbResult<T>> + Send>;

impl PgDb {
    /// Shared logic on a pooled connection, each statement committing on its own.
    fn auto<T, F>(&self, f: F) -> BoxFuture<'_, DbResult<T>>
    where
        T: Send + 'static,
        F: for<'e> FnOnce(&'e PgExec<'e>) -> BoxFuture<'e, DbResult<T>> + Send + 'static,
    {
        let job: Job<T> = Box::new(f);
        self.with(move |c| Box::pin(async move { job(&PgExec::Client(c)).await }))
    }

    /// The read path of kiosk requests: [`Self::auto`] (every connection of the pool reads).
    fn read<T, F>(&self, f: F) -> BoxFuture<'_, DbResult<T>>
    where
        T: Send + 'static,
        F: for<'e> FnOnce(&'e PgExec<'e>) -> BoxFuture<'e, DbResult<T>> + Send + 'static,
    {
        self.auto(f)
    }

    /// Shared logic in one transaction.
    fn write<T, F>(&self, f: F) -> BoxFuture<'_, DbResult<T>>
    where
        T: Send + 'static,
        F: for<'e> FnOnce(&'e PgExec<'e>) -> BoxFuture<'e, DbResult<T>> + Send + 'static,
    {
        self.transact(false, Box::new(f))
    }

    /// Shared logic reading one repeatable-read, read-only snapshot.
    fn snapshot<T, F>(&self, f: F) -> BoxFuture<'_, DbResult<T>>
    where
        T: Send + 'static,
        F: for<'e> FnOnce(&'e PgExec<'e>) -> BoxFuture<'e, DbResult<T>> + Send + 'static,
    {
        self.transact(true, Box::new(f))
    }

    fn transact<T: Send + 'static>(
        &self,
        snapshot: bool,
        job: Job<T>,
    ) -> BoxFuture<'_, DbResult<T>> {
        self.with(move |c| {
            Box::pin(async move {
                let mut tx = c.build_transaction();
                if snapshot {
                    tx = tx
                        .isolation_level(tokio_postgres::IsolationLevel::RepeatableRead)
                        .read_only(true);
                }
                let tx = tx.start().await?;
                let out = job(&PgExec::Tx(&tx)).await?;
                tx.commit().await?;
                Ok(out)
            })
        })
    }
}

/// Records what a batch's accepted events tell the dashboard (see [`OpsFact`]): at most
/// one statement per kind of fact, whatever the batch's size. The facts are folded first, per turn
/// and per device, into what applying them one by one in order would leave (the first call and
/// service of a turn, the latest status of a device, the last issue of a turn), since one
/// `INSERT ... ON CONFLICT DO UPDATE` may not touch a row twice. Sorted keys keep the row locks of
/// concurrent batches in one order.
async fn apply_ops<'e>(
    tx: &Transaction<'_>,
    batch: &IngestBatch,
    accepted: impl Iterator<Item = &'e IngestEvent>,
) -> DbResult<()> {
    use std::collections::BTreeMap;
    let mut issued: BTreeMap<uuid::Uuid, (&str, bool, i64)> = BTreeMap::new();
    let mut called: BTreeMap<uuid::Uuid, i64> = BTreeMap::new();
    let mut served: BTreeMap<uuid::Uuid, i64> = BTreeMap::new();
    // Each device's latest report: by corrected time, and within 5 s (the clock estimate's
    // jitter between batches) by the kiosk's own sequence (migration 18).
    let mut devices: BTreeMap<&str, (&str, Option<&str>, i64, i64)> = BTreeMap::new();
    for ev in accepted {
        let at = ev.corrected_ms;
        match &ev.ops {
            None => {}
            Some(OpsFact::TurnIssued {
                turn_id,
                service,
                identified,
            }) => {
                issued.insert(*turn_id, (service, *identified, at));
            }
            Some(OpsFact::TurnCalled { turn_id }) => {
                called
                    .entry(*turn_id)
                    .and_modify(|t| *t = (*t).min(at))
                    .or_insert(at);
            }
            Some(OpsFact::TurnServed { turn_id }) => {
                served
                    .entry(*turn_id)
                    .and_modify(|t| *t = (*t).min(at))
                    .or_insert(at);
            }
            Some(OpsFact::DeviceStatus {
                device,
                status,
                reason,
            }) => {
                let seq = i64::try_from(ev.seq).unwrap_or(i64::MAX);
                let later = devices
                    .get(device)
                    .is_none_or(|(_, _, t, s)| at > *t + 5_000 || (at >= *t - 5_000 && seq >= *s));
                if later {
                    devices.insert(device, (status, reason.as_deref(), at, seq));
                }
            }
        }
    }
    let (store, kiosk) = (&batch.store_id, &batch.kiosk_id);
    if !issued.is_empty() {
        let turns: Vec<String> = issued.keys().map(ToString::to_string).collect();
        let services: Vec<&str> = issued.values().map(|v| v.0).collect();
        let identified: Vec<bool> = issued.values().map(|v| v.1).collect();
        let at: Vec<i64> = issued.values().map(|v| v.2).collect();
        tx.execute(
            "INSERT INTO turns (turn_id, store_id, kiosk_id, service, identified, issued_ms)
             SELECT u.turn_id, $1, $2, u.service, u.identified, u.at
             FROM UNNEST($3::text[], $4::text[], $5::bool[], $6::int8[])
               AS u(turn_id, service, identified, at)
             ON CONFLICT (turn_id) DO UPDATE SET store_id = excluded.store_id,
               kiosk_id = excluded.kiosk_id, service = excluded.service,
               identified = excluded.identified, issued_ms = excluded.issued_ms",
            &[store, kiosk, &turns, &services, &identified, &at],
        )
        .await?;
    }
    for (column, facts) in [("called_ms", &called), ("served_ms", &served)] {
        if facts.is_empty() {
            continue;
        }
        let turns: Vec<String> = facts.keys().map(ToString::to_string).collect();
        let at: Vec<i64> = facts.values().copied().collect();
        tx.execute(
            &format!(
                "INSERT INTO turns (turn_id, store_id, kiosk_id, {column})
                 SELECT u.turn_id, $1, $2, u.at FROM UNNEST($3::text[], $4::int8[]) AS u(turn_id, at)
                 ON CONFLICT (turn_id) DO UPDATE
                   SET {column} = LEAST(COALESCE(turns.{column}, excluded.{column}), excluded.{column})"
            ),
            &[store, kiosk, &turns, &at],
        )
        .await?;
    }
    if !devices.is_empty() {
        let names: Vec<&str> = devices.keys().copied().collect();
        let statuses: Vec<&str> = devices.values().map(|v| v.0).collect();
        let reasons: Vec<Option<&str>> = devices.values().map(|v| v.1).collect();
        let at: Vec<i64> = devices.values().map(|v| v.2).collect();
        let seqs: Vec<i64> = devices.values().map(|v| v.3).collect();
        tx.execute(
            "INSERT INTO kiosk_devices (kiosk_id, device, status, reason, at_ms, seq)
             SELECT $1, u.device, u.status, u.reason, u.at, u.seq
             FROM UNNEST($2::text[], $3::text[], $4::text[], $5::int8[], $6::int8[])
               AS u(device, status, reason, at, seq)
             ON CONFLICT (kiosk_id, device) DO UPDATE SET status = excluded.status,
               reason = excluded.reason, at_ms = excluded.at_ms, seq = excluded.seq
             WHERE excluded.at_ms > kiosk_devices.at_ms + 5000
               OR (excluded.at_ms >= kiosk_devices.at_ms - 5000
                   AND (kiosk_devices.seq IS NULL OR excluded.seq >= kiosk_devices.seq))",
            &[kiosk, &names, &statuses, &reasons, &at, &seqs],
        )
        .await?;
    }
    Ok(())
}

/// Inserts a batch's events in one statement (the rows travel as arrays; a statement per row
/// made the store a round trip per event) and returns the ids it inserted: an id already stored,
/// or repeated within the batch, is inserted once. The partitioned `events` table cannot be
/// unique on `id` alone (schema version 8), so `event_ids` decides: only the ids it takes are
/// inserted.
async fn insert_events(
    tx: &Transaction<'_>,
    batch: &IngestBatch,
    envelopes: &[&str],
) -> DbResult<HashSet<uuid::Uuid>> {
    let evs = &batch.events;
    let ids: Vec<String> = evs.iter().map(|e| e.id.to_string()).collect();
    let seqs: Vec<i64> = evs.iter().map(|e| i64_of(e.seq)).collect();
    let kinds: Vec<&str> = evs.iter().map(|e| e.kind).collect();
    let versions: Vec<i32> = evs.iter().map(|e| i32::from(e.schema_version)).collect();
    let device_ms: Vec<i64> = evs.iter().map(|e| e.device_ms).collect();
    let corrected_ms: Vec<i64> = evs.iter().map(|e| e.corrected_ms).collect();
    let tokens: Vec<Option<&str>> = evs
        .iter()
        .map(|e| e.card_token.as_ref().map(CardToken::as_str))
        .collect();
    let rows = tx
        .query(
            "WITH u AS (
               SELECT DISTINCT ON (id) * FROM UNNEST($4::text[], $5::int8[], $6::text[],
                   $7::int4[], $8::int8[], $9::int8[], $10::text[], $11::text[])
                 WITH ORDINALITY
                 AS u(id, seq, type, version, device_ms, corrected_ms, card_token, envelope, n)
               ORDER BY id, n),
             fresh AS (
               INSERT INTO event_ids (id, received_ms) SELECT id, $3 FROM u
               ON CONFLICT (id) DO NOTHING RETURNING id)
             INSERT INTO events (id, kiosk_id, store_id, seq, type, schema_version, device_ms,
               corrected_ms, received_ms, card_token, envelope)
             SELECT u.id, $1, $2, u.seq, u.type, u.version, u.device_ms, u.corrected_ms, $3,
               u.card_token, u.envelope
             FROM u JOIN fresh ON fresh.id = u.id
             RETURNING id",
            &[
                &batch.kiosk_id,
                &batch.store_id,
                &batch.received_ms,
                &ids,
                &seqs,
                &kinds,
                &versions,
                &device_ms,
                &corrected_ms,
                &tokens,
                &envelopes,
            ],
        )
        .await?;
    rows.iter()
        .map(|r| {
            let id: &str = r.get(0);
            uuid::Uuid::parse_str(id).map_err(|e| DbError::Corrupt(format!("event id {id}: {e}")))
        })
        .collect()
}

impl Database for PgDb {
    fn kind(&self) -> DbKind {
        DbKind::Postgres
    }

    fn purge_erased(&self) -> BoxFuture<'_, DbResult<()>> {
        self.with(|c| {
            Box::pin(async move {
                // The erased rows' old versions are dead tuples until vacuumed; VACUUM (outside
                // any transaction) removes them, skipping the pages that did not change.
                c.batch_execute("VACUUM customers, customer_stores, changes, events")
                    .await?;
                Ok(())
            })
        })
    }

    fn ingest(&self, batch: IngestBatch) -> BoxFuture<'_, DbResult<Vec<EventStatus>>> {
        self.write(move |e| Box::pin(ingest(e, batch)))
    }

    fn insert_events_bare(&self, batch: IngestBatch) -> BoxFuture<'_, DbResult<u64>> {
        self.with(move |c| {
            Box::pin(async move {
                let tx = c.transaction().await?;
                let envelopes: Vec<&str> =
                    batch.events.iter().map(|e| e.envelope.as_str()).collect();
                let n = insert_events(&tx, &batch, &envelopes).await?.len();
                tx.commit().await?;
                Ok(n as u64)
            })
        })
    }

    fn publish_change(&self, payload: String) -> BoxFuture<'_, DbResult<()>> {
        self.auto(move |e| {
            Box::pin(async move {
                e.query("SELECT pg_notify(?1, ?2)", args![CHANGES_CHANNEL, payload])
                    .await?;
                Ok(())
            })
        })
    }

    fn maintain_events(
        &self,
        cutoff_ms: Option<i64>,
        now_ms: i64,
    ) -> BoxFuture<'_, DbResult<crate::db::storage::StorageReport>> {
        self.with(move |c| {
            Box::pin(async move {
                let mut report = crate::db::storage::StorageReport::default();
                crate::db::storage::pg_create_ahead(c, now_ms, &mut report).await?;
                if let Some(cutoff) = cutoff_ms {
                    crate::db::storage::pg_drop_before(c, cutoff, &mut report).await?;
                }
                Ok(report)
            })
        })
    }

    fn listen_changes(
        &self,
    ) -> BoxFuture<'_, DbResult<Option<futures::stream::BoxStream<'static, String>>>> {
        Box::pin(async move {
            let stream = match &self.spec.tls {
                None => {
                    let (client, connection) =
                        tokio_postgres::connect(&self.spec.url, NoTls).await?;
                    listen_on(client, connection).await?
                }
                Some(tls) => {
                    let (client, connection) =
                        tokio_postgres::connect(&self.spec.url, tls.clone()).await?;
                    listen_on(client, connection).await?
                }
            };
            Ok(Some(stream))
        })
    }

    fn event_partitions(&self) -> BoxFuture<'_, DbResult<Vec<String>>> {
        self.with(|c| {
            Box::pin(async move {
                Ok(crate::db::storage::pg_partitions(c)
                    .await?
                    .into_iter()
                    .map(crate::db::storage::Month::partition)
                    .collect())
            })
        })
    }

    methods::shared_methods!(remember_signature: auto);
}

/// Notices queued for the bus at most (wake-ups: past it they are dropped, the live streams'
/// periodic refresh catches up).
const NOTICE_QUEUE: usize = 4096;

/// `LISTEN`s on `client` and yields the payloads of [`CHANGES_CHANNEL`]'s notices; the
/// stream owns the client and ends when the connection does.
async fn listen_on<S, T>(
    client: Client,
    mut connection: tokio_postgres::Connection<S, T>,
) -> DbResult<futures::stream::BoxStream<'static, String>>
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
    T: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    use futures::StreamExt;
    let (tx, rx) = tokio::sync::mpsc::channel::<String>(NOTICE_QUEUE);
    // The connection's messages: the answers to LISTEN and then the notices.
    tokio::spawn(async move {
        let mut messages = futures::stream::poll_fn(move |cx| connection.poll_message(cx));
        while let Some(message) = messages.next().await {
            match message {
                Ok(tokio_postgres::AsyncMessage::Notification(n)) => {
                    if let Err(tokio::sync::mpsc::error::TrySendError::Closed(_)) =
                        tx.try_send(n.payload().to_owned())
                    {
                        return;
                    }
                }
                Ok(_) => {}
                Err(e) => {
                    tracing::warn!(error = %e, "the listening postgres connection failed");
                    return;
                }
            }
        }
    });
    client
        .batch_execute(&format!("LISTEN {}", CHANGES_CHANNEL))
        .await?;
    Ok(
        futures::stream::unfold((rx, client), |(mut rx, client)| async move {
            let payload = rx.recv().await?;
            Some((payload, (rx, client)))
        })
        .boxed(),
    )
}

/// One batch in its transaction (see [`Database::ingest`]): the events inserted in one statement,
/// the shared logic deciding their stored form and applying their effects and live-queue steps,
/// the dashboard's facts folded per batch.
async fn ingest(e: &PgExec<'_>, batch: IngestBatch) -> DbResult<Vec<EventStatus>> {
    let PgExec::Tx(tx) = e else {
        return Err(DbError::Internal("a batch is stored in a transaction"));
    };
    if let Some(guard) = &batch.replay
        && !shared::remember(e, guard).await?
    {
        return Err(DbError::Replayed);
    }
    let mut forms = Vec::with_capacity(batch.events.len());
    let mut refused = HashSet::new();
    for ev in &batch.events {
        if !shared::admit(e, &batch.store_id, ev).await? {
            // Acknowledged as a duplicate below, stored nowhere.
            refused.insert(ev.id);
        }
        forms.push(shared::stored_form(e, ev).await?);
    }
    let mut inserted = if refused.is_empty() {
        let envelopes: Vec<&str> = forms
            .iter()
            .map(|(envelope, _)| envelope.as_ref())
            .collect();
        insert_events(tx, &batch, &envelopes).await?
    } else {
        let (kept, envelopes): (Vec<IngestEvent>, Vec<&str>) = batch
            .events
            .iter()
            .zip(&forms)
            .filter(|(ev, _)| !refused.contains(&ev.id))
            .map(|(ev, (envelope, _))| (ev.clone(), envelope.as_ref()))
            .unzip();
        let kept = IngestBatch {
            events: kept,
            replay: None,
            ..batch.clone()
        };
        insert_events(tx, &kept, &envelopes).await?
    };
    let mut statuses = Vec::with_capacity(batch.events.len());
    let mut accepted = Vec::with_capacity(inserted.len());
    let mut dirty = BTreeSet::new();
    for (ev, (_, effect)) in batch.events.iter().zip(&forms) {
        // The first of the batch's events with an inserted id is the accepted one.
        if inserted.remove(&ev.id) {
            let id = ev.id.to_string();
            shared::apply_effect(e, &batch.store_id, &id, ev.corrected_ms, effect, &mut dirty)
                .await?;
            accepted.push(ev);
            statuses.push(EventStatus::Accepted);
        } else {
            statuses.push(EventStatus::Duplicate);
        }
    }
    apply_ops(tx, &batch, accepted.iter().copied()).await?;
    shared::apply_queue(e, &batch, &accepted).await?;
    shared::emit_profiles(e, &dirty).await?;
    shared::record_kiosk_state(e, &batch).await?;
    // The outbox of the forwarding, in the same transaction (docs/DESIGN.md invariant 21).
    super::forward::enqueue_batch(e, &batch, &accepted).await?;
    Ok(statuses)
}
