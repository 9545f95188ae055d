//! The store on the shop LAN: this kiosk's link to the other kiosks of its store.
//!
//! ```text
//!  executor ──(own ops)──> op log ──> GET /store/v1/ops (long poll) ──> peers' pull loops
//!  peers ──> pull loop ──> StoreMsg::Ops ──> executor (persist, merge, board)
//!  executor (issue, not the sequencer) ──> POST /store/v1/numbers ──> sequencer's executor
//! ```
//!
//! The rules (what an op is, how ops merge, why numbers cannot collide) are `kiosk_store`'s;
//! this module moves ops and number requests between kiosks. Every request is signed with a
//! key derived from the tenant key for this store ([`store_key_label`]), as the CRM requests
//! are, and only kiosks of the store's list are answered.

mod client;
mod numbers;
mod server;

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use kiosk_protocol::wire::Key32;
use kiosk_store::StoreOp;
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use tokio::sync::{mpsc, oneshot, watch};

pub use client::spawn_pulls;
pub use numbers::Sequencer;
pub use server::router;

/// The label of the key kiosks of one store sign each other's requests with.
pub fn store_key_label(store_id: &str) -> String {
    format!("kiosk store lan v1:{store_id}")
}

/// One kiosk of the store, as the site config lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Member {
    /// Kiosk id (from enrollment).
    pub id: String,
    /// Base URL of its store listener (`http://10.0.0.12:8082`).
    pub url: String,
}

/// A number handed out by the sequencer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Allocated {
    /// The number.
    pub number: u32,
    /// The sequencer's time when it handed it out: the turn's issue time.
    #[serde(with = "time::serde::rfc3339")]
    pub at: OffsetDateTime,
}

/// What the store link asks of the executor.
#[derive(Debug)]
pub enum StoreMsg {
    /// Ops pulled from a peer. `firsts`: the first sequence the peer still holds per kiosk
    /// (older ones were pruned everywhere). Answered once they are persisted and merged.
    Ops {
        /// The ops.
        ops: Vec<StoreOp>,
        /// First sequence held by the peer, per origin.
        firsts: BTreeMap<String, u64>,
        /// Done.
        done: oneshot::Sender<()>,
    },
}

/// What one kiosk holds of every kiosk's ops, for its peers to pull.
#[derive(Debug, Default)]
pub struct OpLog {
    by_origin: BTreeMap<String, BTreeMap<u64, StoreOp>>,
}

impl OpLog {
    /// Adds ops (already accepted by the executor's merge).
    pub fn extend(&mut self, ops: impl IntoIterator<Item = StoreOp>) {
        for op in ops {
            self.by_origin
                .entry(op.origin.clone())
                .or_default()
                .insert(op.seq, op);
        }
    }

    /// Highest sequence held per origin.
    pub fn heads(&self) -> BTreeMap<String, u64> {
        self.by_origin
            .iter()
            .filter_map(|(o, ops)| ops.keys().next_back().map(|s| (o.clone(), *s)))
            .collect()
    }

    /// First sequence held per origin.
    pub fn firsts(&self) -> BTreeMap<String, u64> {
        self.by_origin
            .iter()
            .filter_map(|(o, ops)| ops.keys().next().map(|s| (o.clone(), *s)))
            .collect()
    }

    /// Ops a peer holding `after` lacks, oldest first per origin, at most `limit` in all.
    pub fn after(&self, after: &BTreeMap<String, u64>, limit: usize) -> Vec<StoreOp> {
        let mut out = Vec::new();
        for (origin, ops) in &self.by_origin {
            let from = after.get(origin).copied().unwrap_or(0);
            for op in ops.range(from + 1..).map(|(_, op)| op) {
                if out.len() >= limit {
                    return out;
                }
                out.push(op.clone());
            }
        }
        out
    }

    /// Drops ops for which `old` says yes (pruned service days).
    pub fn retain(&mut self, keep: impl Fn(&StoreOp) -> bool) {
        for ops in self.by_origin.values_mut() {
            ops.retain(|_, op| keep(op));
        }
    }
}

/// How a peer answered lately.
#[derive(Debug, Clone, Copy, Default)]
struct PeerState {
    last_ok: Option<Instant>,
    last_err: Option<Instant>,
}

impl PeerState {
    /// Answered, and more recently than it failed.
    fn reachable(&self) -> bool {
        self.last_ok
            .is_some_and(|ok| self.last_err.is_none_or(|err| ok > err))
    }
}

/// Whether a peer is reachable, for the status page and the board.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PeerStatus {
    /// Kiosk id.
    pub id: String,
    /// Answered its last request.
    pub reachable: bool,
    /// Seconds since it last answered, if ever.
    pub last_seen_s: Option<u64>,
}

/// This kiosk's place in its store and its link to the others.
pub struct StoreLink {
    /// This kiosk's id.
    pub me: String,
    /// Its position in the store's list (0 is the sequencer).
    pub position: usize,
    /// Every kiosk of the store, in the config's order.
    pub members: Vec<Member>,
    key: Key32,
    peers: Mutex<HashMap<String, PeerState>>,
    /// The ops this kiosk holds, for peers to pull.
    pub log: RwLock<OpLog>,
    /// Bumped whenever the log grows (long polls wait on it).
    pub grown: watch::Sender<u64>,
    /// Requests for the executor.
    pub executor: mpsc::Sender<StoreMsg>,
    /// Bumped when a peer becomes reachable or unreachable (the board shows it).
    pub peers_changed: watch::Sender<u64>,
    http: reqwest::Client,
    /// How long a number request to the sequencer may take.
    pub sequencer_timeout: Duration,
    /// Set once a pull from any peer succeeded (or there is no peer).
    heard_from_peers: std::sync::atomic::AtomicBool,
    /// The number sequence, on the sequencer (set by the runtime once the journal is open).
    sequencer: std::sync::OnceLock<Arc<Sequencer>>,
}

impl std::fmt::Debug for StoreLink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StoreLink")
            .field("me", &self.me)
            .field("members", &self.members)
            .finish_non_exhaustive()
    }
}

/// A store config that cannot work.
#[derive(Debug, thiserror::Error)]
pub enum StoreSetupError {
    /// This kiosk is not in the list.
    #[error(
        "this kiosk ({0}) is not in [store].kiosks; list every kiosk of the store, this one included, in the same order on each"
    )]
    NotListed(String),
    /// The HTTP client could not be built.
    #[error("cannot build the store's HTTP client: {0}")]
    Client(String),
}

impl StoreLink {
    /// The link of kiosk `me` in a store of `members` (a store of one when empty).
    pub fn new(
        me: &str,
        members: Vec<Member>,
        key: &[u8],
        executor: mpsc::Sender<StoreMsg>,
        sequencer_timeout: Duration,
    ) -> Result<Arc<Self>, StoreSetupError> {
        let members = if members.is_empty() {
            vec![Member {
                id: me.to_owned(),
                url: String::new(),
            }]
        } else {
            members
        };
        let position = members
            .iter()
            .position(|m| m.id == me)
            .ok_or_else(|| StoreSetupError::NotListed(me.to_owned()))?;
        let mut bytes = [0u8; 32];
        let n = key.len().min(32);
        bytes[..n].copy_from_slice(&key[..n]);
        kiosk_sync::install_crypto_provider();
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(2))
            .redirect(reqwest::redirect::Policy::none())
            .tcp_nodelay(true)
            .pool_idle_timeout(Duration::from_secs(30))
            .build()
            .map_err(|e| StoreSetupError::Client(e.to_string()))?;
        let alone = members.len() == 1;
        Ok(Arc::new(StoreLink {
            me: me.to_owned(),
            position,
            members,
            key: Key32::from_bytes(bytes),
            peers: Mutex::new(HashMap::new()),
            log: RwLock::new(OpLog::default()),
            grown: watch::channel(0).0,
            executor,
            peers_changed: watch::channel(0).0,
            http,
            sequencer_timeout,
            heard_from_peers: std::sync::atomic::AtomicBool::new(alone),
            sequencer: std::sync::OnceLock::new(),
        }))
    }

    /// Sets the number sequence this kiosk keeps (the sequencer only; once).
    pub fn set_sequencer(&self, sequencer: Arc<Sequencer>) {
        if self.heard_from_peers() {
            sequencer.set_ready();
        }
        let _ = self.sequencer.set(sequencer);
    }

    /// The number sequence, when this kiosk keeps it.
    pub fn numbers(&self) -> Option<&Arc<Sequencer>> {
        self.sequencer.get()
    }

    /// Whether this kiosk keeps the store's number sequence.
    pub fn is_sequencer(&self) -> bool {
        self.position == 0
    }

    /// The sequencer.
    pub fn sequencer(&self) -> &Member {
        &self.members[0]
    }

    /// The other kiosks.
    pub fn peers(&self) -> impl Iterator<Item = &Member> {
        self.members.iter().filter(move |m| m.id != self.me)
    }

    /// The tag of this kiosk's labels while cut off (`A2-001`).
    pub fn tag(&self) -> u8 {
        kiosk_store::numbering::tag_of(self.position)
    }

    /// Whether any peer answered since start (always true for a store of one).
    pub fn heard_from_peers(&self) -> bool {
        self.heard_from_peers
            .load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Adds ops to the log and wakes the long polls.
    pub fn publish(&self, ops: impl IntoIterator<Item = StoreOp>) {
        if let Ok(mut log) = self.log.write() {
            log.extend(ops);
        }
        self.grown.send_modify(|v| *v += 1);
    }

    fn mark(&self, peer: &str, ok: bool) {
        if ok {
            self.heard_from_peers
                .store(true, std::sync::atomic::Ordering::Relaxed);
            if let Some(s) = self.sequencer.get() {
                s.set_ready();
            }
        }
        let mut peers = self
            .peers
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let st = peers.entry(peer.to_owned()).or_default();
        let was = st.reachable();
        if ok {
            st.last_ok = Some(Instant::now());
        } else {
            st.last_err = Some(Instant::now());
        }
        if st.reachable() != was {
            self.peers_changed.send_modify(|v| *v += 1);
        }
    }

    /// Whether `peer`'s last exchange failed.
    fn down(&self, peer: &str) -> bool {
        let peers = self
            .peers
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        peers
            .get(peer)
            .is_some_and(|st| st.last_err.is_some() && !st.reachable())
    }

    /// Each peer's reachability.
    pub fn peer_status(&self) -> Vec<PeerStatus> {
        let peers = self
            .peers
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        self.peers()
            .map(|m| {
                let st = peers.get(&m.id).copied().unwrap_or_default();
                PeerStatus {
                    id: m.id.clone(),
                    reachable: st.last_ok.is_some()
                        && st
                            .last_err
                            .is_none_or(|e| st.last_ok.is_some_and(|ok| ok > e)),
                    last_seen_s: st.last_ok.map(|ok| ok.elapsed().as_secs()),
                }
            })
            .collect()
    }

    /// Signed headers for a request to a peer.
    fn sign(&self, method: &str, path_and_query: &str, body: &[u8]) -> [(&'static str, String); 3] {
        let now = OffsetDateTime::now_utc().unix_timestamp();
        kiosk_protocol::auth::sign_request(&self.me, &self.key, method, path_and_query, body, now)
            .pairs()
    }

    /// Asks the sequencer for the next number of `service`. `None` when it cannot answer in
    /// time (cut off, unplugged, stalled): the caller numbers from its own block. After a
    /// failure the sequencer is not asked again until a pull from it succeeds (the pull loop
    /// notices the heal), so a cut-off kiosk issues at once.
    pub async fn request_number(&self, service: &str, turn_id: uuid::Uuid) -> Option<Allocated> {
        let seq = self.sequencer().clone();
        if self.down(&seq.id) {
            return None;
        }
        let path = "/store/v1/numbers";
        let body = serde_json::to_vec(&NumberRequest {
            service: service.to_owned(),
            turn_id,
        })
        .ok()?;
        let mut req = self
            .http
            .post(format!("{}{path}", seq.url.trim_end_matches('/')))
            .timeout(self.sequencer_timeout)
            .header("content-type", "application/json");
        for (k, v) in self.sign("POST", path, &body) {
            req = req.header(k, v);
        }
        let answer = async {
            let resp = req.body(body).send().await.map_err(|e| e.to_string())?;
            if !resp.status().is_success() {
                let status = resp.status();
                let text = resp.text().await.unwrap_or_default();
                return Err(format!("{status}: {text}"));
            }
            resp.json::<Allocated>().await.map_err(|e| e.to_string())
        };
        let outcome = match tokio::time::timeout(self.sequencer_timeout, answer).await {
            Ok(outcome) => outcome,
            Err(_) => Err(format!("no answer within {:?}", self.sequencer_timeout)),
        };
        match outcome {
            Ok(a) => {
                self.mark(&seq.id, true);
                Some(a)
            }
            Err(reason) => {
                tracing::warn!(sequencer = %seq.id, %reason, "the sequencer did not hand out a number");
                self.mark(&seq.id, false);
                None
            }
        }
    }
}

/// `POST /store/v1/numbers`.
#[derive(Debug, Serialize, Deserialize)]
pub struct NumberRequest {
    /// Service letter.
    pub service: String,
    /// The turn the number is for: a request sent twice gets the same number (and two requests
    /// never sign alike, so the replay guard does not refuse the second turn of a second).
    pub turn_id: uuid::Uuid,
}

/// `GET /store/v1/ops`.
#[derive(Debug, Serialize, Deserialize)]
pub struct OpsPage {
    /// The answering kiosk.
    pub from: String,
    /// Ops the asker lacks.
    pub ops: Vec<StoreOp>,
    /// First sequence the answering kiosk holds per origin.
    pub firsts: BTreeMap<String, u64>,
}

/// `after` as a query value: `origin:seq,origin:seq`.
pub fn encode_heads(heads: &BTreeMap<String, u64>) -> String {
    heads
        .iter()
        .map(|(o, s)| format!("{o}:{s}"))
        .collect::<Vec<_>>()
        .join(",")
}

/// The inverse of [`encode_heads`]; malformed entries are skipped.
pub fn decode_heads(text: &str) -> BTreeMap<String, u64> {
    text.split(',')
        .filter_map(|part| {
            let (o, s) = part.rsplit_once(':')?;
            Some((o.to_owned(), s.parse().ok()?))
        })
        .collect()
}
