//! HTTP(S) to the endpoint: one reqwest client (rustls with the *ring* provider), signed requests
//! (see `kiosk_protocol::auth`), gzip bodies, and answers sorted into what the worker acts on.
//!
//! Data flow: batch → **transport** → endpoint, and endpoint → **transport** → feed sink.

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::{Duration, Instant};

use kiosk_protocol::CardToken;
use kiosk_protocol::auth::sign_request;
use kiosk_protocol::wire::{
    BatchResponse, DeviceSecret, ENROLL_PATH, EnrollRequest, EnrollResponse, ErrorBody, ErrorCode,
    FeedResponse, Profile, ProfileLookupResponse, batches_path, feed_path_and_query, profile_path,
};
use reqwest::header::{CONTENT_ENCODING, CONTENT_TYPE, DATE, RETRY_AFTER};
use reqwest::{Method, StatusCode, Url};
use time::OffsetDateTime;

use crate::backoff::{parse_http_date, parse_retry_after};
use crate::batch::{Batch, gzip};
use crate::clock::SyncClock;
use crate::config::{DnsResolver, SyncConfig, TlsSettings};

/// Why the HTTP client could not be built (bad settings: nothing was sent).
#[derive(Debug, thiserror::Error)]
pub enum SetupError {
    /// The endpoint URL does not parse.
    #[error(
        "endpoint url {url:?} is not a valid http(s) url ({reason}); write it like https://crm.example.com"
    )]
    BadUrl {
        /// The URL as configured.
        url: String,
        /// Why it is refused (the URL parser's error type is not part of reqwest's API).
        reason: String,
    },
    /// The root CA PEM holds no usable certificate.
    #[error(
        "tls root ca pem holds no usable certificate; give the endpoint's CA certificate in PEM"
    )]
    BadRootCa(#[source] Option<reqwest::Error>),
    /// reqwest refused the settings (TLS backend could not start).
    #[error("could not build the https client; check the tls settings")]
    Client(#[source] reqwest::Error),
}

/// Why one request did not give a usable answer.
#[derive(Debug, thiserror::Error)]
pub enum RequestError {
    /// No answer: refused connection, reset, timeout, TLS failure.
    #[error("endpoint at {url} is unreachable ({kind}); the kiosk keeps events and retries")]
    Network {
        /// Where the request went.
        url: String,
        /// `timeout`, `connect` or `transfer`.
        kind: &'static str,
        /// What reqwest saw.
        #[source]
        source: reqwest::Error,
    },
    /// An HTTP error answer.
    #[error("endpoint at {url} answered {status}{}: {message}", code.map(|c| format!(" ({c:?})")).unwrap_or_default())]
    Status {
        /// Where the request went.
        url: String,
        /// The HTTP status.
        status: StatusCode,
        /// The protocol error code, when the body was an `ErrorBody`.
        code: Option<ErrorCode>,
        /// The endpoint's message (or the start of the body).
        message: String,
        /// The `Retry-After` delay, when given and readable.
        retry_after: Option<Duration>,
        /// The endpoint's `Date` header.
        server_date: Option<OffsetDateTime>,
    },
    /// A 2xx answer that is not what protocol v1 promises.
    #[error(
        "endpoint at {url} answered with something that is not protocol v1 ({what}); check that the url points at a crm-endpoint"
    )]
    Protocol {
        /// Where the request went.
        url: String,
        /// What was wrong.
        what: String,
        /// The JSON error, when it was one.
        #[source]
        source: Option<serde_json::Error>,
    },
    /// The body could not be compressed (out of memory).
    #[error("could not gzip the batch body")]
    Compress(#[source] std::io::Error),
}

/// A batch answer with the timing needed for the skew estimate.
#[derive(Debug)]
pub(crate) struct BatchReply {
    pub response: BatchResponse,
    /// Kiosk wall clock minus endpoint clock, ms, at the middle of the round trip.
    pub skew_ms: i64,
}

/// The signed HTTP client of one kiosk.
pub(crate) struct Transport {
    http: reqwest::Client,
    base: String,
    kiosk_id: String,
    secret: DeviceSecret,
    clock: Arc<dyn SyncClock>,
    gzip: bool,
    /// Endpoint clock minus kiosk clock, seconds, learned from a `stale_timestamp` refusal: signing
    /// time stamps follow the endpoint's clock so a kiosk whose clock is wrong (no RTC, no NTP yet)
    /// can still deliver. The batch's `kiosk_clock` keeps the raw reading for the skew estimate.
    signing_offset_s: AtomicI64,
    observer: Option<crate::config::BatchObserver>,
}

/// Installs rustls' *ring* crypto provider as the process default, once. The workspace builds
/// reqwest with `rustls-no-provider` (aws-lc-rs needs cmake and a C toolchain per cross target), so
/// without this reqwest panics when the client is built. Harmless if a provider is already
/// installed (the firmware may do it first).
pub fn install_crypto_provider() {
    // Err means a provider is already the default: that one is used, which is fine.
    let _ = rustls::crypto::ring::default_provider().install_default();
}

/// The reqwest client every request goes through.
fn http_client(
    connect_timeout: Duration,
    request_timeout: Duration,
    tls: &TlsSettings,
    resolver: Option<&DnsResolver>,
) -> Result<reqwest::Client, SetupError> {
    install_crypto_provider();
    let mut builder = reqwest::Client::builder()
        .connect_timeout(connect_timeout)
        .timeout(request_timeout)
        .user_agent(concat!("kiosk-sync/", env!("CARGO_PKG_VERSION")))
        // Redirects would re-send a signed request to a path it was not signed for.
        .redirect(reqwest::redirect::Policy::none())
        .tcp_nodelay(true);
    if let Some(pem) = &tls.root_ca_pem {
        let certs = reqwest::Certificate::from_pem_bundle(pem.as_bytes())
            .map_err(|e| SetupError::BadRootCa(Some(e)))?;
        if certs.is_empty() {
            return Err(SetupError::BadRootCa(None));
        }
        builder = builder.tls_certs_only(certs);
    }
    if let Some(resolver) = resolver {
        builder = builder.dns_resolver(resolver.0.clone());
    }
    builder.build().map_err(SetupError::Client)
}

/// Why enrollment failed.
#[derive(Debug, thiserror::Error)]
pub enum EnrollError {
    /// Bad settings; nothing was sent.
    #[error(transparent)]
    Setup(#[from] SetupError),
    /// The request failed or was refused (401 `invalid_code`: the code is wrong, used or expired).
    #[error(transparent)]
    Request(#[from] RequestError),
}

/// Trades a technician's one-time code for the kiosk's identity and keys (`POST /v1/enroll`,
/// unsigned: the code is the credential). Keep the answer's secrets encrypted at rest.
pub async fn enroll(
    endpoint_url: &str,
    tls: &TlsSettings,
    request: &EnrollRequest,
) -> Result<EnrollResponse, EnrollError> {
    let http = http_client(Duration::from_secs(10), Duration::from_secs(30), tls, None)?;
    let base = endpoint_url.trim_end_matches('/');
    let url = format!("{base}{ENROLL_PATH}");
    let resp = http
        .post(&url)
        .json(request)
        .send()
        .await
        .map_err(|e| network(&url, e))?;
    let status = resp.status();
    let bytes = resp.bytes().await.map_err(|e| network(&url, e))?;
    if !status.is_success() {
        let (code, message) = match serde_json::from_slice::<ErrorBody>(&bytes) {
            Ok(b) => (Some(b.error), b.message),
            Err(_) => (None, snippet(&bytes)),
        };
        return Err(RequestError::Status {
            url,
            status,
            code,
            message,
            retry_after: None,
            server_date: None,
        }
        .into());
    }
    serde_json::from_slice(&bytes).map_err(|e| {
        RequestError::Protocol {
            url,
            what: "enrollment answer is not an EnrollResponse".into(),
            source: Some(e),
        }
        .into()
    })
}

impl Transport {
    pub(crate) fn new(config: &SyncConfig, clock: Arc<dyn SyncClock>) -> Result<Self, SetupError> {
        let base = config.endpoint_url.trim_end_matches('/').to_owned();
        let parsed = Url::parse(&base).map_err(|e| SetupError::BadUrl {
            url: config.endpoint_url.clone(),
            reason: e.to_string(),
        })?;
        if !matches!(parsed.scheme(), "http" | "https") || parsed.query().is_some() {
            return Err(SetupError::BadUrl {
                url: config.endpoint_url.clone(),
                reason: "only http and https without a query are supported".into(),
            });
        }
        let http = http_client(
            config.connect_timeout,
            config.request_timeout,
            &config.tls,
            config.resolver.as_ref(),
        )?;
        Ok(Transport {
            http,
            base,
            kiosk_id: config.kiosk_id.clone(),
            secret: config.device_secret.clone(),
            clock,
            gzip: config.gzip_requests,
            signing_offset_s: AtomicI64::new(0),
            observer: config.batch_observer.clone(),
        })
    }

    fn url(&self, path_and_query: &str) -> Result<Url, RequestError> {
        let full = format!("{}{}", self.base, path_and_query);
        Url::parse(&full).map_err(|e| RequestError::Protocol {
            url: full,
            what: format!("request url does not parse: {e}"),
            source: None,
        })
    }

    /// Signs and sends one request; `Ok` for 2xx with its body and headers.
    async fn send(
        &self,
        method: Method,
        path_and_query: &str,
        body: Vec<u8>,
        gzipped: bool,
    ) -> Result<Vec<u8>, RequestError> {
        let url = self.url(path_and_query)?;
        let signed_path = match url.query() {
            Some(q) => format!("{}?{}", url.path(), q),
            None => url.path().to_owned(),
        };
        let now = self.clock.now().wall_time.unix_timestamp()
            + self.signing_offset_s.load(Ordering::Relaxed);
        let headers = sign_request(
            &self.kiosk_id,
            &self.secret,
            method.as_str(),
            &signed_path,
            &body,
            now,
        );
        let mut req = self.http.request(method, url.clone());
        for (name, value) in headers.pairs() {
            req = req.header(name, value);
        }
        if !body.is_empty() {
            req = req.header(CONTENT_TYPE, "application/json");
            if gzipped {
                req = req.header(CONTENT_ENCODING, "gzip");
            }
            req = req.body(body);
        }
        let url_text = redact(&url);
        let resp = req.send().await.map_err(|e| network(&url_text, e))?;
        let status = resp.status();
        let headers = resp.headers().clone();
        let bytes = resp.bytes().await.map_err(|e| network(&url_text, e))?;
        if status.is_success() {
            return Ok(bytes.to_vec());
        }
        let server_date = headers
            .get(DATE)
            .and_then(|v| v.to_str().ok())
            .and_then(parse_http_date);
        let retry_after = headers
            .get(RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| {
                parse_retry_after(v, server_date.unwrap_or_else(OffsetDateTime::now_utc))
            });
        let (code, message) = match serde_json::from_slice::<ErrorBody>(&bytes) {
            Ok(b) => (Some(b.error), b.message),
            Err(_) => (None, snippet(&bytes)),
        };
        Err(RequestError::Status {
            url: url_text,
            status,
            code,
            message,
            retry_after,
            server_date,
        })
    }

    /// Posts a batch. A `stale_timestamp` refusal re-times the signature from the endpoint's `Date`
    /// and retries once at once.
    pub(crate) async fn post_batch(&self, batch: &Batch) -> Result<BatchReply, RequestError> {
        let (body, gzipped) = if self.gzip {
            (gzip(&batch.body).map_err(RequestError::Compress)?, true)
        } else {
            (batch.body.clone(), false)
        };
        let path = batches_path(&self.kiosk_id);
        let mut retried = false;
        loop {
            let sent_wall = self.clock.now().wall_time;
            let started = Instant::now();
            let result = self.send(Method::POST, &path, body.clone(), gzipped).await;
            if let Some(observer) = &self.observer {
                let (status, retry_after) = match &result {
                    Ok(_) => (Some(200), None),
                    Err(RequestError::Status {
                        status,
                        retry_after,
                        ..
                    }) => (Some(status.as_u16()), *retry_after),
                    Err(_) => (None, None),
                };
                (observer.0)(&crate::config::BatchAttempt {
                    started,
                    elapsed: started.elapsed(),
                    status,
                    retry_after,
                    events: batch.seqs.len(),
                });
            }
            match result {
                Ok(bytes) => {
                    let rtt = started.elapsed();
                    let response: BatchResponse =
                        serde_json::from_slice(&bytes).map_err(|e| RequestError::Protocol {
                            url: self.base.clone(),
                            what: "batch answer is not a BatchResponse".into(),
                            source: Some(e),
                        })?;
                    let mid = sent_wall + rtt / 2;
                    let skew = mid - response.server_time;
                    let skew_ms = i64::try_from(skew.whole_milliseconds()).unwrap_or(i64::MAX);
                    return Ok(BatchReply { response, skew_ms });
                }
                Err(e) if !retried && self.relearn_signing_offset(&e) => retried = true,
                Err(e) => return Err(e),
            }
        }
    }

    /// Reads one feed page.
    pub(crate) async fn get_feed(
        &self,
        cursor: u64,
        limit: u32,
    ) -> Result<FeedResponse, RequestError> {
        let path = feed_path_and_query(&self.kiosk_id, cursor, limit);
        self.get_json(&path, "feed answer is not a FeedResponse")
            .await
    }

    /// Looks a card up at the endpoint (`None`: nobody is registered with it).
    pub(crate) async fn get_profile(
        &self,
        token: &CardToken,
    ) -> Result<Option<Profile>, RequestError> {
        let path = profile_path(&self.kiosk_id, token);
        let answer: ProfileLookupResponse = self
            .get_json(&path, "profile answer is not a ProfileLookupResponse")
            .await?;
        Ok(answer.profile)
    }

    /// A signed GET whose answer is JSON. A `stale_timestamp` refusal re-times the signature
    /// from the endpoint's `Date` and retries once at once.
    async fn get_json<T: serde::de::DeserializeOwned>(
        &self,
        path: &str,
        what: &str,
    ) -> Result<T, RequestError> {
        let mut retried = false;
        loop {
            match self.send(Method::GET, path, Vec::new(), false).await {
                Ok(bytes) => {
                    return serde_json::from_slice(&bytes).map_err(|e| RequestError::Protocol {
                        url: self.base.clone(),
                        what: what.to_owned(),
                        source: Some(e),
                    });
                }
                Err(e) if !retried && self.relearn_signing_offset(&e) => retried = true,
                Err(e) => return Err(e),
            }
        }
    }

    /// On a `stale_timestamp` refusal with a `Date` header, sets the signing offset to the
    /// endpoint's clock; true when the request is worth retrying at once.
    fn relearn_signing_offset(&self, e: &RequestError) -> bool {
        let RequestError::Status {
            code: Some(ErrorCode::StaleTimestamp),
            server_date: Some(server),
            ..
        } = e
        else {
            return false;
        };
        let kiosk = self.clock.now().wall_time.unix_timestamp();
        let offset = server.unix_timestamp() - kiosk;
        let old = self.signing_offset_s.swap(offset, Ordering::Relaxed);
        tracing::warn!(
            offset_s = offset,
            "kiosk clock is {} s away from the endpoint's; signing with the endpoint's time",
            -offset
        );
        old != offset
    }
}

fn network(url: &str, source: reqwest::Error) -> RequestError {
    let kind = if source.is_timeout() {
        "timeout"
    } else if source.is_connect() {
        "connect"
    } else {
        "transfer"
    };
    RequestError::Network {
        url: url.to_owned(),
        kind,
        source,
    }
}

/// The URL without query (the feed cursor is not secret, but logs need only the route).
fn redact(url: &Url) -> String {
    let mut u = url.clone();
    u.set_query(None);
    u.to_string()
}

/// The start of a non-JSON error body, for the status line.
fn snippet(bytes: &[u8]) -> String {
    let text = String::from_utf8_lossy(&bytes[..bytes.len().min(200)]);
    let text = text.trim();
    if text.is_empty() {
        "(empty body)".to_owned()
    } else {
        text.to_owned()
    }
}

/// Live profile lookups at the CRM endpoint, for a card the kiosk's cache does not know (a
/// customer registered at another store, or since the last feed pull). Its own connection pool
/// beside the [`crate::SyncWorker`]'s, so a lookup never waits behind a batch upload.
pub struct ProfileLookup {
    transport: Transport,
}

impl ProfileLookup {
    /// A lookup client for the endpoint and credentials of `config`.
    pub fn new(config: &SyncConfig, clock: Arc<dyn SyncClock>) -> Result<Self, SetupError> {
        install_crypto_provider();
        Ok(ProfileLookup {
            transport: Transport::new(config, clock)?,
        })
    }

    /// The profile registered with `token`, or `None` for nobody. Bounded by the config's
    /// request timeout; callers waiting on a customer put their own, shorter, bound on it.
    pub async fn lookup(&self, token: &CardToken) -> Result<Option<Profile>, RequestError> {
        self.transport.get_profile(token).await
    }
}

/// Firmware releases at the CRM endpoint (safe updates): which release this kiosk should run,
/// and its package piece by piece (each piece a signed request, so a download resumes where it
/// stopped). Its own connection pool, like [`ProfileLookup`].
pub struct ReleaseClient {
    transport: Transport,
}

impl ReleaseClient {
    /// A release client for the endpoint and credentials of `config`.
    pub fn new(config: &SyncConfig, clock: Arc<dyn SyncClock>) -> Result<Self, SetupError> {
        install_crypto_provider();
        Ok(ReleaseClient {
            transport: Transport::new(config, clock)?,
        })
    }

    /// The release assigned to this kiosk, which runs `version` on `arch`.
    pub async fn assignment(
        &self,
        arch: &str,
        version: &str,
        downloaded: Option<&str>,
    ) -> Result<kiosk_protocol::release::ReleaseAssignment, RequestError> {
        let path = kiosk_protocol::release::assignment_path(
            &self.transport.kiosk_id,
            arch,
            version,
            downloaded,
        );
        self.transport
            .get_json(&path, "release answer is not a ReleaseAssignment")
            .await
    }

    /// Bytes `offset..offset + length` of a release package (fewer at its end).
    pub async fn piece(
        &self,
        version: &str,
        arch: &str,
        offset: u64,
        length: u64,
    ) -> Result<Vec<u8>, RequestError> {
        let path = kiosk_protocol::release::piece_path(
            &self.transport.kiosk_id,
            version,
            arch,
            offset,
            length,
        );
        let mut retried = false;
        loop {
            match self
                .transport
                .send(Method::GET, &path, Vec::new(), false)
                .await
            {
                Ok(bytes) => return Ok(bytes),
                Err(e) if !retried && self.transport.relearn_signing_offset(&e) => retried = true,
                Err(e) => return Err(e),
            }
        }
    }
}
