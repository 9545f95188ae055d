//! The UI server: the kiosk's touchscreen page, the staff's counter page and the lobby display,
//! served by the kiosk binary with their assets embedded (no Node build).
//!
//! Data flow: engine → [`ScreenView`] (watch) → `/api/kiosk/stream` (server-sent events) → kiosk
//! browser → touches → `POST /api/kiosk/touch` → [`Input::Touch`] (mpsc) → engine. The queue's
//! [`QueueBoard`] (watch) feeds the counter page (with customer names, behind a PIN) and the lobby
//! (projected to [`LobbyView`]: labels and counters only). Staff actions go to the runtime as
//! [`StaffRequest`]s, each answered on its own oneshot channel.
//!
//! Pushes use server-sent events rather than a WebSocket: the browser reconnects by itself, the
//! stream is plain HTTP (testable with any client) and touches are ordinary POSTs. An idle screen
//! holds one open response and receives nothing but a keep-alive comment every 30 s.
//!
//! The kiosk's own page and API answer only loopback clients by default (the customer's name is
//! on that screen); counter and lobby pages are meant for the store's LAN.

mod assets;
mod auth;
mod routes;
mod store_routes;

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use axum::Router;
use serde::{Deserialize, Serialize};
use tokio::sync::{mpsc, watch};
use zeroize::Zeroizing;

use kiosk_core::journey::{Input, ScreenView};
use kiosk_core::queue::{QueueBoard, TurnStatus};

use crate::executor::staff::StaffRequest;

pub use assets::exists as asset_exists;
pub use auth::pin_digest;
pub use routes::router;

/// How the UI server is set up (from the config). `Debug` hides the PIN and token.
#[derive(Clone)]
pub struct UiSettings {
    /// SHA-256 (lowercase hex) of the PIN that opens the counter page (entered on the page; a
    /// cookie keeps the session). The config holds only the digest, never the PIN.
    pub staff_pin_sha256: Option<Zeroizing<String>>,
    /// Staff members with PINs of their own (`[[ui.staff]]`): whoever logs in with one is named
    /// on the turns they call and serve.
    pub staff: Vec<StaffMember>,
    /// Token for scripted access to the counter API (`Authorization: Bearer ...`).
    pub staff_token: Option<Zeroizing<String>>,
    /// Answer the kiosk screen's page and API only from this machine (default: true).
    pub kiosk_loopback_only: bool,
    /// The store's name, shown on the lobby display.
    pub store_name: String,
    /// Host names requests may carry besides IP addresses, `localhost` and the machine's own
    /// name (`ui.allowed_hosts`).
    pub allowed_hosts: Vec<String>,
}

impl std::fmt::Debug for UiSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UiSettings")
            .field(
                "staff_pin_sha256",
                &self.staff_pin_sha256.as_ref().map(|_| "<redacted>"),
            )
            .field(
                "staff",
                &self.staff.iter().map(|m| &m.id).collect::<Vec<_>>(),
            )
            .field(
                "staff_token",
                &self.staff_token.as_ref().map(|_| "<redacted>"),
            )
            .field("kiosk_loopback_only", &self.kiosk_loopback_only)
            .field("store_name", &self.store_name)
            .field("allowed_hosts", &self.allowed_hosts)
            .finish()
    }
}

impl Default for UiSettings {
    fn default() -> Self {
        UiSettings {
            staff_pin_sha256: None,
            staff: Vec::new(),
            staff_token: None,
            kiosk_loopback_only: true,
            store_name: String::new(),
            allowed_hosts: Vec::new(),
        }
    }
}

/// The channels between the UI server and the rest of the kiosk.
#[derive(Debug, Clone)]
pub struct UiChannels {
    /// Touches from the kiosk screen, to the journey engine.
    pub inputs: mpsc::Sender<Input>,
    /// The current kiosk screen, from the runtime after each engine step.
    pub screen: watch::Receiver<ScreenView>,
    /// The queue board (with customer notes filled in by the runtime), after each queue change.
    pub board: watch::Receiver<QueueBoard>,
    /// Staff actions from the counter page, to the runtime.
    pub staff: mpsc::Sender<StaffRequest>,
    /// Keypad keys, forwarded to the kiosk screen on its event stream.
    pub keys: tokio::sync::broadcast::Sender<kiosk_drivers::keypad::Key>,
    /// Counts the kiosk pages open on a screen (their event streams), for the screen watchdog
    /// and `kiosk status`.
    pub screen_presence: crate::screen::ScreenPresence,
    /// The kiosk's own speech for the customer, if the hardware profile has it.
    pub speech: Option<crate::accessibility::CustomerSpeech>,
    /// Who is in the store (the executor's picture), for the counter page.
    pub picture: watch::Receiver<kiosk_core::audience::StorePicture>,
    /// The lobby's signage (`None`: the lobby shows turns only).
    pub signage: Option<std::sync::Arc<crate::signage::Signage>>,
}

/// What the lobby display shows: no names, no card tokens.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LobbyView {
    /// The store.
    pub store_name: String,
    /// Turns being served now.
    pub serving: Vec<LobbyEntry>,
    /// Latest calls, newest first.
    pub recent: Vec<LobbyEntry>,
}

/// One turn on the lobby display.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LobbyEntry {
    /// Label (`A-042`).
    pub label: String,
    /// Counter.
    pub counter: String,
    /// Changes on every call and recall: the display announces each new key once.
    pub key: String,
    /// Whether the turn is still being called (not yet served or no-show).
    pub active: bool,
}

impl LobbyView {
    /// The lobby's projection of the board.
    pub fn from_board(store_name: &str, board: &QueueBoard) -> Self {
        let serving = board
            .serving
            .iter()
            .map(|s| LobbyEntry {
                label: s.label.clone(),
                counter: s.counter.clone(),
                key: format!("{}:{}", s.turn_id, s.calls),
                active: true,
            })
            .collect();
        let recent = board
            .recent_calls
            .iter()
            .map(|c| LobbyEntry {
                label: c.label.clone(),
                counter: c.counter.clone(),
                key: format!("{}:{}", c.turn_id, c.calls),
                active: c.status == TurnStatus::Called,
            })
            .collect();
        LobbyView {
            store_name: store_name.to_owned(),
            serving,
            recent,
        }
    }
}

pub use kiosk_protocol::store_config::StaffMember;

/// Who may open the counter pages: the store-wide PIN, whose sessions name nobody, and the
/// members with PINs of their own. Only SHA-256 digests, never PINs.
#[derive(Clone, Default)]
pub struct StaffLogins {
    /// SHA-256 (lowercase hex) of the store-wide PIN.
    pub store_pin_sha256: Option<Zeroizing<String>>,
    /// The members with PINs of their own.
    pub members: Vec<StaffMember>,
}

impl StaffLogins {
    /// Whether no PIN opens the counter pages.
    pub fn is_empty(&self) -> bool {
        self.store_pin_sha256.is_none() && self.members.is_empty()
    }
}

/// Shared state of every handler.
#[derive(Clone)]
pub struct AppState(Arc<Inner>);

struct Inner {
    settings: UiSettings,
    /// The staff PINs in force: `settings`' at start, then the store configuration's from the
    /// CRM when one sets them.
    logins: std::sync::RwLock<StaffLogins>,
    channels: UiChannels,
    /// Open staff sessions and wrong PINs per address (kept in memory: sessions end when the
    /// kiosk restarts).
    staff: Mutex<auth::Staff>,
    /// What `/api/status` and `/metrics` report (set once the runtime runs).
    status: std::sync::OnceLock<crate::status::StatusSource>,
    /// The Step-In devices (set by the runtime when `[[stepin.devices]]` lists any).
    stepin: std::sync::OnceLock<Arc<crate::stepin::StepIn>>,
}

impl AppState {
    /// The state for [`router`].
    pub fn new(settings: UiSettings, channels: UiChannels) -> Self {
        AppState(Arc::new(Inner {
            logins: std::sync::RwLock::new(StaffLogins {
                store_pin_sha256: settings.staff_pin_sha256.clone(),
                members: settings.staff.clone(),
            }),
            settings,
            channels,
            staff: Mutex::new(auth::Staff::default()),
            status: std::sync::OnceLock::new(),
            stepin: std::sync::OnceLock::new(),
        }))
    }

    /// The staff PINs in force.
    fn staff_logins(&self) -> StaffLogins {
        self.0
            .logins
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    /// Serves the Step-In API (`/api/stepin/v1/...`) for these devices (it answers 404 until
    /// set; a second call is ignored).
    pub fn set_stepin(&self, stepin: Arc<crate::stepin::StepIn>) {
        let _ = self.0.stepin.set(stepin);
    }

    /// Serves `/api/status` and `/metrics` from `source` (they answer 503 until set; a second
    /// call is ignored).
    pub fn set_status(&self, source: crate::status::StatusSource) {
        let _ = self.0.status.set(source);
    }
}

/// A UI server that could not run.
#[derive(Debug, thiserror::Error)]
pub enum UiError {
    /// Serving failed.
    #[error("ui server on {addr} stopped: {source}")]
    Serve {
        /// The address it listened on.
        addr: String,
        /// Why.
        #[source]
        source: std::io::Error,
    },
}

/// Serves [`router`] on `listener` until `shutdown` completes, with the peer addresses the
/// loopback check needs, under [`kiosk_serve::Limits::LAN`]: the staff listener is on the shop
/// LAN in the same process as the customer screen, so a slow or greedy client there must not
/// take the screen down.
pub async fn serve(
    listener: tokio::net::TcpListener,
    state: AppState,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> Result<(), UiError> {
    let addr = listener
        .local_addr()
        .map(|a| a.to_string())
        .unwrap_or_default();
    let app: Router = router(state);
    let limits = kiosk_serve::Limits::LAN.fit_open_files(kiosk_serve::open_file_limit());
    kiosk_serve::serve::<SocketAddr>(listener, None, app, limits, shutdown)
        .await
        .map_err(|source| UiError::Serve { addr, source })
}
