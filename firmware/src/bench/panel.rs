//! The simulator control panel, of the demo's store and of a bench kiosk (`kiosk run` on a
//! profile with simulators): for each kiosk, tap a known card (the demo's seeded customers, the
//! bench's `[bench].cards`), an unknown one or one by its UID, take it away, scan a code (the
//! last ticket's QR, a product barcode, any text, noise), take the paper out, open the cover,
//! step in front of it, cut its cable on the shop LAN and see which kiosks it reaches and the
//! tickets it printed; for the demo's whole store, cut the network to the CRM. Every button
//! drives a simulator or a relay through the real protocol (MFRC522 registers, pty bytes,
//! ESC/POS status, TCP), never the engine directly.
//!
//! The API: `/api/kiosks/{n}/card|scan|printer|presence|lan` act on kiosk `n` (1 to N);
//! `/api/card|scan|printer|presence` on kiosk 1, as before the store had several kiosks;
//! `/api/network` on the link to the CRM (the demo only); `/api/state` shows everything.
//!
//! The panel listens on loopback only and answers only requests addressed to a loopback name
//! (`127.0.0.1`, `[::1]`, `localhost`), so a web page elsewhere cannot drive it by DNS
//! rebinding.

use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use axum::extract::{Path, State};
use axum::http::{StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use kiosk_drivers::card::mfrc522sim::VirtualCard;
use serde::{Deserialize, Serialize};

use super::switch::{Link, NetworkSwitch, StoreLan};
use crate::runtime::Simulators;
use crate::store::StoreLink;

/// One kiosk as the panel drives it.
#[derive(Clone)]
pub struct PanelKiosk {
    /// Its number in the store (1 to N; 1 is the sequencer).
    pub number: usize,
    /// The simulated devices.
    pub sims: Simulators,
    /// The last ticket's signed QR.
    pub last_ticket_qr: Arc<Mutex<Option<String>>>,
    /// Printed tickets (PNG).
    pub tickets_dir: PathBuf,
    /// The kiosk screen, for the link.
    pub kiosk_url: String,
    /// Where its counter page and lobby display are served (`http://host:port`).
    pub staff_url: String,
    /// Its link to the rest of the store: its id, and which kiosks it reaches.
    pub store: Arc<StoreLink>,
    /// The panel's own "Offline" switch. The printer reports itself offline while its paper is
    /// out or its cover open too; the switch remembers what the user asked for, so that putting
    /// the paper back brings the printer back unless the switch is on.
    pub offline_switch: Arc<std::sync::atomic::AtomicBool>,
}

/// A known card the panel can tap.
#[derive(Debug, Clone)]
pub struct PanelCard {
    /// What the button says (`Ana (vip, es)`).
    pub label: String,
    /// Its UID (4, 7 or 10 bytes). Never shown: the panel names the card by its label.
    pub uid: Vec<u8>,
}

/// Whose panel this is.
#[derive(Debug, Clone)]
pub enum PanelKind {
    /// `kiosk demo`: the staff PIN is the demo's.
    Demo {
        /// The counter page's PIN, shown beside its link.
        pin: &'static str,
    },
    /// `kiosk run` on a bench kiosk: the site's own staff PIN (not shown).
    Bench,
}

/// What the panel handlers share.
#[derive(Clone)]
pub struct PanelState {
    /// The kiosks, kiosk 1 first.
    pub kiosks: Arc<[PanelKiosk]>,
    /// The network switch to the CRM (the demo's; a bench kiosk syncs with its own CRM).
    pub network: Option<NetworkSwitch>,
    /// The shop LAN between the kiosks (2 kiosks or more).
    pub lan: Option<StoreLan>,
    /// The known cards.
    pub cards: Arc<[PanelCard]>,
    /// Demo or bench.
    pub kind: PanelKind,
}

/// A kiosk number the store does not have.
struct NoSuchKiosk {
    number: usize,
    kiosks: usize,
}

impl IntoResponse for NoSuchKiosk {
    fn into_response(self) -> Response {
        (
            StatusCode::NOT_FOUND,
            format!(
                "no kiosk {}: the demo's store has kiosks 1 to {}",
                self.number, self.kiosks
            ),
        )
            .into_response()
    }
}

impl PanelState {
    fn kiosk(&self, number: usize) -> Result<&PanelKiosk, NoSuchKiosk> {
        number
            .checked_sub(1)
            .and_then(|i| self.kiosks.get(i))
            .ok_or(NoSuchKiosk {
                number,
                kiosks: self.kiosks.len(),
            })
    }
}

/// The panel's routes.
pub fn router(state: PanelState) -> Router {
    let app = Router::new()
        .route("/", get(page))
        .route("/api/state", get(panel_state))
        .route("/api/card", post(card_at_first))
        .route("/api/scan", post(scan_at_first))
        .route("/api/printer", post(printer_at_first))
        .route("/api/presence", post(presence_at_first))
        .route("/api/network", post(network))
        .route("/api/kiosks/{n}/card", post(card))
        .route("/api/kiosks/{n}/scan", post(scan))
        .route("/api/kiosks/{n}/printer", post(printer))
        .route("/api/kiosks/{n}/presence", post(presence))
        .route("/api/kiosks/{n}/lan", post(lan))
        .route("/api/kiosks/{n}/keypad", post(keypad))
        .route("/tickets/{name}", get(ticket_png_of_first))
        .route("/kiosks/{n}/tickets/{name}", get(ticket_png))
        .with_state(state);
    app.layer(axum::middleware::from_fn(loopback_host_only))
}

/// Refuses requests whose `Host` is not a loopback name: the panel drives the kiosk's devices
/// without a password, so only this machine's own pages may reach it.
async fn loopback_host_only(req: axum::extract::Request, next: axum::middleware::Next) -> Response {
    let host = req
        .headers()
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .unwrap_or("");
    if is_loopback_host(host) {
        next.run(req).await
    } else {
        (
            StatusCode::MISDIRECTED_REQUEST,
            "the simulator panel answers only at 127.0.0.1, [::1] or localhost",
        )
            .into_response()
    }
}

/// `127.0.0.1:8083`, `[::1]:8083`, `localhost:8083` (port optional).
fn is_loopback_host(host: &str) -> bool {
    let name = match host.strip_prefix('[') {
        Some(rest) => rest.split_once(']').map_or(rest, |(ip, _)| ip),
        None => host.rsplit_once(':').map_or(host, |(name, _)| name),
    };
    name.eq_ignore_ascii_case("localhost")
        || name
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

// Kiosk 1's devices at the paths they had before the store had several kiosks.
async fn card_at_first(s: State<PanelState>, a: Json<CardAction>) -> Response {
    card(s, Path(1), a).await
}
async fn scan_at_first(s: State<PanelState>, a: Json<ScanAction>) -> Response {
    scan(s, Path(1), a).await
}
async fn printer_at_first(s: State<PanelState>, a: Json<PrinterAction>) -> Response {
    printer(s, Path(1), a).await
}
async fn presence_at_first(s: State<PanelState>, a: Json<PresenceAction>) -> Response {
    presence(s, Path(1), a).await
}
async fn ticket_png_of_first(s: State<PanelState>, Path(name): Path<String>) -> Response {
    ticket_png(s, Path((1, name))).await
}

/// A card action.
#[derive(Debug, Deserialize)]
#[serde(tag = "action", rename_all = "snake_case")]
pub enum CardAction {
    /// Tap a known card (index into the panel's cards: the demo's customers, the bench's
    /// `[bench].cards`).
    Customer {
        /// Which one.
        index: usize,
    },
    /// Tap a card nobody registered.
    Unknown,
    /// Tap the card with this UID (hex, 4, 7 or 10 bytes; `:`, `-` and spaces ignored), e.g. to
    /// reproduce what a customer's card did.
    Uid {
        /// The UID.
        uid: String,
    },
    /// Take every card away.
    Remove,
}

/// A key on the simulated USB keypad.
#[derive(Debug, Deserialize)]
#[serde(tag = "action", rename_all = "snake_case")]
pub enum KeypadAction {
    /// Hold the start key (the nibbed 5) for 2.2 s: accessible mode on or off.
    HoldStart,
    /// Press and release a key: `up`, `down`, `enter`, `back`, `help`.
    Tap {
        /// Which.
        key: String,
    },
}

/// A scan.
#[derive(Debug, Deserialize)]
#[serde(tag = "action", rename_all = "snake_case")]
pub enum ScanAction {
    /// The QR of the last ticket issued.
    LastTicket,
    /// A product EAN-13.
    Product,
    /// Any text.
    Text {
        /// What the scanner reads.
        text: String,
    },
    /// Binary noise, as a scanner with a bad cable sends.
    Noise,
}

/// A printer fault to set.
#[derive(Debug, Deserialize)]
pub struct PrinterAction {
    /// Paper out.
    #[serde(default)]
    pub paper_out: bool,
    /// Cover open.
    #[serde(default)]
    pub cover_open: bool,
    /// Offline.
    #[serde(default)]
    pub offline: bool,
}

/// Someone in front of the kiosk, or not.
#[derive(Debug, Deserialize)]
pub struct PresenceAction {
    /// Someone is there.
    pub here: bool,
}

/// The state to set a link to (the network to the CRM, a kiosk's cable on the shop LAN).
#[derive(Debug, Deserialize)]
pub struct NetworkAction {
    /// Up or cut.
    pub up: bool,
    /// With `up`: a black hole instead (connections open, nothing comes back).
    #[serde(default)]
    pub stalled: bool,
}

impl NetworkAction {
    fn link(&self) -> Link {
        match (self.up, self.stalled) {
            (false, _) => Link::Cut,
            (true, true) => Link::Stalled,
            (true, false) => Link::Up,
        }
    }
}

/// What one kiosk's devices show.
#[derive(Debug, Serialize)]
pub struct DevicesView {
    tickets: Vec<String>,
    last_ticket: Option<String>,
    paper_out: bool,
    cover_open: bool,
    offline: bool,
    someone_here: bool,
    status_led: bool,
}

/// Another kiosk of the store, as one kiosk sees it.
#[derive(Debug, Serialize)]
pub struct PeerView {
    number: usize,
    id: String,
    reachable: bool,
    last_seen_s: Option<u64>,
}

/// One kiosk on the panel.
#[derive(Debug, Serialize)]
pub struct KioskView {
    number: usize,
    id: String,
    /// It numbers the store's turns.
    sequencer: bool,
    screen: String,
    counter: String,
    lobby: String,
    /// Its cable on the shop LAN (`null` for a store of one).
    lan: Option<Link>,
    /// The other kiosks and whether it reaches them.
    peers: Vec<PeerView>,
    #[serde(flatten)]
    devices: DevicesView,
}

/// What the panel shows: the whole store, with kiosk 1's devices at the top level as before.
#[derive(Debug, Serialize)]
pub struct PanelView {
    /// Whether the link to the CRM is up (always, where the panel has no switch).
    network_up: bool,
    /// The demo's switch to the CRM (`null` on a bench kiosk).
    network: Option<Link>,
    customers: Vec<String>,
    kiosks: Vec<KioskView>,
    #[serde(flatten)]
    devices: DevicesView,
}

fn unavailable(what: &str) -> Response {
    (
        StatusCode::CONFLICT,
        format!("the {what} is not simulated in this kiosk"),
    )
        .into_response()
}

fn devices_view(k: &PanelKiosk) -> DevicesView {
    let faults = k
        .sims
        .printer
        .as_ref()
        .map(|p| p.lock().faults())
        .unwrap_or_default();
    let mut tickets: Vec<String> = std::fs::read_dir(&k.tickets_dir)
        .map(|d| {
            d.filter_map(|e| e.ok())
                .filter_map(|e| {
                    let modified = e.metadata().and_then(|m| m.modified()).ok()?;
                    Some((modified, e.file_name().to_string_lossy().into_owned()))
                })
                .collect::<Vec<_>>()
        })
        .unwrap_or_default()
        .into_iter()
        .map(|(m, n)| (std::cmp::Reverse(m), n))
        .collect::<std::collections::BTreeSet<_>>()
        .into_iter()
        .map(|(_, n)| n)
        .take(12)
        .collect();
    tickets.retain(|n| n.ends_with(".png"));
    DevicesView {
        tickets,
        last_ticket: k.last_ticket_qr.lock().ok().and_then(|q| q.clone()),
        paper_out: faults.paper_out,
        cover_open: faults.cover_open,
        offline: k.offline_switch.load(std::sync::atomic::Ordering::Relaxed),
        someone_here: k.sims.gpio.as_ref().is_some_and(|g| g.presence()),
        status_led: k.sims.gpio.as_ref().is_some_and(|g| g.led()),
    }
}

fn kiosk_view(s: &PanelState, k: &PanelKiosk) -> KioskView {
    let link = &k.store;
    let number_of = |id: &str| {
        link.members
            .iter()
            .position(|m| m.id == id)
            .map_or(0, |i| i + 1)
    };
    KioskView {
        number: k.number,
        id: link.me.clone(),
        sequencer: link.is_sequencer(),
        screen: k.kiosk_url.clone(),
        counter: format!("{}/counter", k.staff_url),
        lobby: format!("{}/lobby", k.staff_url),
        lan: s.lan.as_ref().and_then(|lan| lan.link(k.number - 1)),
        peers: link
            .peer_status()
            .into_iter()
            .map(|p| PeerView {
                number: number_of(&p.id),
                id: p.id,
                reachable: p.reachable,
                last_seen_s: p.last_seen_s,
            })
            .collect(),
        devices: devices_view(k),
    }
}

async fn page(State(s): State<PanelState>) -> Html<String> {
    Html(render_page(&s))
}

async fn panel_state(State(s): State<PanelState>) -> Json<PanelView> {
    let devices = s.kiosks.first().map(devices_view).unwrap_or(DevicesView {
        tickets: Vec::new(),
        last_ticket: None,
        paper_out: false,
        cover_open: false,
        offline: false,
        someone_here: false,
        status_led: false,
    });
    Json(PanelView {
        network_up: s.network.as_ref().is_none_or(NetworkSwitch::is_up),
        network: s.network.as_ref().map(NetworkSwitch::link),
        customers: s.cards.iter().map(|c| c.label.clone()).collect(),
        kiosks: s.kiosks.iter().map(|k| kiosk_view(&s, k)).collect(),
        devices,
    })
}

async fn card(
    State(s): State<PanelState>,
    Path(n): Path<usize>,
    Json(action): Json<CardAction>,
) -> Response {
    let k = match s.kiosk(n) {
        Ok(k) => k,
        Err(r) => return r.into_response(),
    };
    let Some(sim) = &k.sims.card else {
        return unavailable("card reader");
    };
    let uid: Vec<u8> = match action {
        CardAction::Remove => {
            sim.remove_all();
            return StatusCode::NO_CONTENT.into_response();
        }
        CardAction::Customer { index } => match s.cards.get(index) {
            Some(c) => c.uid.clone(),
            None => {
                return (
                    StatusCode::NOT_FOUND,
                    format!(
                        "no known card {index}: the panel has {} (0 to {})",
                        s.cards.len(),
                        s.cards.len().saturating_sub(1)
                    ),
                )
                    .into_response();
            }
        },
        CardAction::Uid { uid } => match crate::config::parse_card_uid(&uid) {
            Ok(uid) => uid,
            Err(e) => return (StatusCode::BAD_REQUEST, e).into_response(),
        },
        // A fresh 7-byte UID each time (NXP manufacturer byte 0x04).
        CardAction::Unknown => {
            let mut uid = vec![0x04];
            uid.extend(rand::random::<[u8; 6]>());
            uid
        }
    };
    // One card in the field at a time, as a customer does it.
    sim.remove_all();
    match VirtualCard::new(&uid) {
        Ok(card) => {
            sim.place(card);
            StatusCode::NO_CONTENT.into_response()
        }
        Err(e) => (StatusCode::BAD_REQUEST, e.to_string()).into_response(),
    }
}

async fn scan(
    State(s): State<PanelState>,
    Path(n): Path<usize>,
    Json(action): Json<ScanAction>,
) -> Response {
    let k = match s.kiosk(n) {
        Ok(k) => k,
        Err(r) => return r.into_response(),
    };
    let Some(sim) = &k.sims.scanner else {
        return unavailable("scanner");
    };
    let result = match action {
        ScanAction::LastTicket => {
            let last = k.last_ticket_qr.lock().ok().and_then(|q| q.clone());
            match last {
                Some(qr) => sim.scan(&qr),
                None => {
                    return (
                        StatusCode::CONFLICT,
                        format!("kiosk {n} issued no ticket yet"),
                    )
                        .into_response();
                }
            }
        }
        ScanAction::Product => sim.scan("8410076472885"),
        ScanAction::Text { text } => sim.scan(&text),
        ScanAction::Noise => sim.write_raw(&[0x00, 0xff, 0xfe, 0x1b, 0x80, b'\r']),
    };
    match result {
        Ok(()) => StatusCode::NO_CONTENT.into_response(),
        Err(e) => (StatusCode::SERVICE_UNAVAILABLE, e.to_string()).into_response(),
    }
}

async fn keypad(
    State(s): State<PanelState>,
    Path(n): Path<usize>,
    Json(action): Json<KeypadAction>,
) -> Response {
    use kiosk_drivers::keypad::codes;
    let k = match s.kiosk(n) {
        Ok(k) => k,
        Err(r) => return r.into_response(),
    };
    let Some(sim) = k.sims.keypad.clone() else {
        return unavailable("keypad");
    };
    let code = match &action {
        KeypadAction::HoldStart => codes::KP5,
        KeypadAction::Tap { key } => match key.as_str() {
            "up" => codes::UP,
            "down" => codes::DOWN,
            "enter" => codes::KP_ENTER,
            "back" => codes::BACKSPACE,
            "help" => codes::KP_ASTERISK,
            other => {
                return (
                    StatusCode::BAD_REQUEST,
                    format!("no key `{other}`: expected up, down, enter, back or help"),
                )
                    .into_response();
            }
        },
    };
    let hold = matches!(action, KeypadAction::HoldStart);
    // A hold lasts as long as a finger on the key: off the async threads.
    let pressed = tokio::task::spawn_blocking(move || {
        if hold {
            sim.hold(code, std::time::Duration::from_millis(2_200))
        } else {
            sim.tap(code)
        }
    })
    .await;
    match pressed {
        Ok(Ok(())) => StatusCode::NO_CONTENT.into_response(),
        Ok(Err(e)) => (StatusCode::SERVICE_UNAVAILABLE, e.to_string()).into_response(),
        Err(_) => (
            StatusCode::INTERNAL_SERVER_ERROR,
            "the keypad simulator stopped",
        )
            .into_response(),
    }
}

async fn printer(
    State(s): State<PanelState>,
    Path(n): Path<usize>,
    Json(a): Json<PrinterAction>,
) -> Response {
    let k = match s.kiosk(n) {
        Ok(k) => k,
        Err(r) => return r.into_response(),
    };
    let Some(p) = &k.sims.printer else {
        return unavailable("printer");
    };
    k.offline_switch
        .store(a.offline, std::sync::atomic::Ordering::Relaxed);
    p.update_faults(|f| {
        f.paper_out = a.paper_out;
        f.paper_near_end = a.paper_out;
        f.cover_open = a.cover_open;
        f.offline = a.offline || a.cover_open || a.paper_out;
    });
    StatusCode::NO_CONTENT.into_response()
}

async fn presence(
    State(s): State<PanelState>,
    Path(n): Path<usize>,
    Json(a): Json<PresenceAction>,
) -> Response {
    let k = match s.kiosk(n) {
        Ok(k) => k,
        Err(r) => return r.into_response(),
    };
    let Some(gpio) = &k.sims.gpio else {
        return unavailable("presence sensor");
    };
    gpio.set_presence(a.here);
    StatusCode::NO_CONTENT.into_response()
}

async fn network(State(s): State<PanelState>, Json(a): Json<NetworkAction>) -> Response {
    match &s.network {
        Some(network) => {
            network.set_link(a.link());
            StatusCode::NO_CONTENT.into_response()
        }
        None => (
            StatusCode::CONFLICT,
            "a bench kiosk syncs with its CRM directly: there is no switch to cut (unplug the network instead)",
        )
            .into_response(),
    }
}

/// Cuts, stalls or restores kiosk `n`'s cable on the shop LAN.
async fn lan(
    State(s): State<PanelState>,
    Path(n): Path<usize>,
    Json(a): Json<NetworkAction>,
) -> Response {
    if let Err(r) = s.kiosk(n) {
        return r.into_response();
    }
    match &s.lan {
        Some(lan) if lan.set_link(n - 1, a.link()) => StatusCode::NO_CONTENT.into_response(),
        _ => (
            StatusCode::CONFLICT,
            "a store of one kiosk has no LAN between kiosks: start the demo with --kiosks 2",
        )
            .into_response(),
    }
}

async fn ticket_png(
    State(s): State<PanelState>,
    Path((n, name)): Path<(usize, String)>,
) -> Response {
    let safe = !name.contains('/') && !name.starts_with('.') && name.ends_with(".png");
    let Ok(k) = s.kiosk(n) else {
        return StatusCode::NOT_FOUND.into_response();
    };
    if !safe {
        return StatusCode::NOT_FOUND.into_response();
    }
    match std::fs::read(k.tickets_dir.join(&name)) {
        Ok(png) => ([(header::CONTENT_TYPE, "image/png")], png).into_response(),
        Err(_) => StatusCode::NOT_FOUND.into_response(),
    }
}

/// Escapes text for HTML.
fn esc(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
        .replace('\'', "&#39;")
}

/// The page: one section per kiosk (its devices, its LAN cable and the kiosks it reaches), then
/// the network to the CRM. The script fills in the state every two seconds.
fn render_page(s: &PanelState) -> String {
    let store = s.kiosks.len() > 1;
    let mut kiosks = String::new();
    for k in s.kiosks.iter() {
        let n = k.number;
        let title = if store {
            let role = if k.store.is_sequencer() {
                " (numbers the store's turns)"
            } else {
                ""
            };
            format!("Kiosk {n}{role}")
        } else {
            "Kiosk".to_owned()
        };
        let lan = if store {
            format!(
                r#"<h3 id="k{n}-lan-title">Shop LAN</h3>
<p><button type="button" data-testid="lan" data-act="lan" aria-describedby="k{n}-peers">Cut this kiosk's LAN cable</button></p>
<p id="k{n}-peers" data-role="peers" aria-live="polite">Other kiosks: …</p>"#
            )
        } else {
            String::new()
        };
        kiosks.push_str(&format!(
            r#"<section class="kiosk" data-kiosk="{n}" aria-labelledby="k{n}-title">
<h2 id="k{n}-title">{title}</h2>
<p class="links"><a href="{screen}" target="_blank">Screen</a> · <a href="{staff}/counter" target="_blank">Counter page</a> ({pin}) · <a href="{staff}/lobby" target="_blank">Lobby display</a> <span class="id">id {id}</span></p>
{lan}
<h3>Card reader (MFRC522 simulator)</h3>
<div class="buttons" data-role="cards"></div>
<div class="buttons"><button type="button" data-testid="tap-unknown" data-act="card" data-body='{{"action":"unknown"}}'>Tap an unknown card</button>
<button type="button" data-testid="remove-card" data-act="card" data-body='{{"action":"remove"}}'>Take the card away</button></div>
<p class="scan-text"><label for="k{n}-uid">Card UID (hex)</label> <input id="k{n}-uid" data-role="uid" autocomplete="off" spellcheck="false" placeholder="e.g. 04 11 22 33">
<button type="button" data-testid="tap-uid" data-act="card-uid">Tap this card</button></p>
<h3>Scanner (pty)</h3>
<div class="buttons"><button type="button" data-testid="scan-last-ticket" data-act="scan" data-body='{{"action":"last_ticket"}}'>Scan the last ticket's QR</button>
<button type="button" data-testid="scan-product" data-act="scan" data-body='{{"action":"product"}}'>Scan a product EAN-13</button>
<button type="button" data-testid="scan-noise" data-act="scan" data-body='{{"action":"noise"}}'>Send noise</button></div>
<p class="scan-text"><label for="k{n}-text">Text to scan</label> <input id="k{n}-text" data-role="text" autocomplete="off">
<button type="button" data-testid="scan-text" data-act="scan-text">Scan text</button></p>
<p>Last ticket QR: <code data-role="last"></code></p>
<h3>Printer (virtual ESC/POS)</h3>
<div class="buttons"><button type="button" data-testid="paper-out" data-act="printer" data-fault="paper_out" aria-pressed="false">Paper out</button>
<button type="button" data-testid="cover-open" data-act="printer" data-fault="cover_open" aria-pressed="false">Cover open</button>
<button type="button" data-testid="printer-offline" data-act="printer" data-fault="offline" aria-pressed="false">Offline</button></div>
<h3>Presence sensor and status LED (GPIO)</h3>
<p><button type="button" data-testid="presence" data-act="presence">Nobody there: step in front</button> <span data-role="led"></span></p>
<h3>USB keypad (accessible mode; speech under the data dir's speech/)</h3>
<div class="buttons"><button type="button" data-testid="keypad-hold" data-act="keypad" data-body='{{"action":"hold_start"}}'>Hold the 5 (2 s): accessible mode</button>
<button type="button" data-act="keypad" data-body='{{"action":"tap","key":"up"}}'>Up</button>
<button type="button" data-act="keypad" data-body='{{"action":"tap","key":"down"}}'>Down</button>
<button type="button" data-act="keypad" data-body='{{"action":"tap","key":"enter"}}'>Enter</button>
<button type="button" data-act="keypad" data-body='{{"action":"tap","key":"back"}}'>Back</button>
<button type="button" data-act="keypad" data-body='{{"action":"tap","key":"help"}}'>Help (*)</button></div>
<h3>Printed tickets</h3>
<div class="tickets" data-role="tickets"></div>
</section>
"#,
            screen = esc(&k.kiosk_url),
            staff = esc(&k.staff_url),
            pin = match &s.kind {
                PanelKind::Demo { pin } => format!("PIN {pin}"),
                PanelKind::Bench => "the site's staff PIN".to_owned(),
            },
            id = esc(&k.store.me),
        ));
    }
    let (title, crm) = match (&s.kind, &s.network) {
        (PanelKind::Demo { .. }, Some(_)) => ("Kiosk demo: simulator control panel", CRM_SECTION),
        (PanelKind::Demo { .. }, None) => ("Kiosk demo: simulator control panel", ""),
        (PanelKind::Bench, _) => ("Bench kiosk: simulator control panel", ""),
    };
    PAGE.replace("{{KIOSKS}}", &kiosks)
        .replace("{{STORE_CLASS}}", if store { "store" } else { "single" })
        .replace("{{TITLE}}", title)
        .replace("{{CRM}}", crm)
}

/// The demo's switch to the CRM.
const CRM_SECTION: &str = r#"<section aria-labelledby="crm-title"><h2 id="crm-title">Network to the CRM</h2>
<button type="button" id="net" data-testid="network" data-act="network"></button>
<button type="button" id="stall" data-testid="network-stall" data-act="network-stall"></button></section>"#;

const PAGE: &str = r#"<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>{{TITLE}}</title>
<style>
body{font-family:system-ui,sans-serif;margin:1.5rem;background:#f4f5f7;color:#111;line-height:1.4}
h1{font-size:1.4rem}h2{font-size:1.2rem;margin:0 0 .4rem}h3{font-size:1rem;margin:.9rem 0 .3rem}
section{background:#fff;border-radius:8px;padding:1rem;margin:0 0 1rem;box-shadow:0 1px 3px #0002;min-width:0}
.kiosks.store{display:grid;grid-template-columns:repeat(auto-fit,minmax(24rem,1fr));gap:1rem;align-items:start;margin:0 0 1rem}
.kiosks.store section{margin:0}
button{font-size:1rem;min-height:44px;min-width:44px;padding:.5rem .9rem;margin:.2rem;border-radius:6px;border:1px solid #555;background:#fff;color:#111;cursor:pointer}
button:focus-visible,a:focus-visible,input:focus-visible{outline:3px solid #0a58ca;outline-offset:2px}
button[aria-pressed=true],button.on{background:#0a58ca;color:#fff;border-color:#0a58ca}
button.cut{background:#b00020;color:#fff;border-color:#b00020}
input{font-size:1rem;min-height:44px;padding:0 .5rem;border:1px solid #555;border-radius:6px;box-sizing:border-box}
.tickets img{height:220px;margin:.3rem;border:1px solid #ccc}
#msg{min-height:1.4rem;color:#a00020;font-weight:600}code{word-break:break-all}
.id{color:#444;font-size:.9rem}.peer-ok{color:#0a6b2d}.peer-down{color:#a00020}
</style></head><body>
<h1>{{TITLE}}</h1>
<p id="msg" role="status" aria-live="polite"></p>
<div class="kiosks {{STORE_CLASS}}">
{{KIOSKS}}</div>
{{CRM}}
<script>
let st={kiosks:[]};
const say=(t)=>{document.getElementById('msg').textContent=t;};
async function post(url,body){
  try{const r=await fetch(url,{method:'POST',headers:{'content-type':'application/json'},body:JSON.stringify(body)});
    say(r.ok?'':await r.text());}catch(e){say('The demo does not answer: '+e);}
  refresh();}
function kiosk(n){return st.kiosks.find((k)=>k.number===n)||{};}
document.addEventListener('click',(ev)=>{
  const b=ev.target.closest('button[data-act]');if(!b)return;
  const sec=b.closest('[data-kiosk]');const n=sec?Number(sec.dataset.kiosk):1;const k=kiosk(n);
  const base='/api/kiosks/'+n+'/';
  switch(b.dataset.act){
    case 'card':case 'scan':case 'keypad':post(base+b.dataset.act,JSON.parse(b.dataset.body));break;
    case 'scan-text':post(base+'scan',{action:'text',text:sec.querySelector('[data-role=text]').value});break;
    case 'card-uid':post(base+'card',{action:'uid',uid:sec.querySelector('[data-role=uid]').value});break;
    case 'printer':{const f={paper_out:k.paper_out,cover_open:k.cover_open,offline:k.offline};f[b.dataset.fault]=!f[b.dataset.fault];post(base+'printer',f);break;}
    case 'presence':post(base+'presence',{here:!k.someone_here});break;
    case 'lan':post(base+'lan',{up:k.lan!=='up'});break;
    case 'network':post('/api/network',{up:st.network!=='up'});break;
    case 'network-stall':post('/api/network',{up:true,stalled:st.network!=='stalled'});break;
  }
});
function peersText(k){
  if(!k.peers.length)return '';
  return 'Other kiosks: '+k.peers.map((p)=>'kiosk '+p.number+(p.reachable?' ✓ reachable':(p.last_seen_s==null?' … no answer yet':' ✗ unreachable'))).join(', ');
}
function show(sec,k){
  const n=k.number;const cards=sec.querySelector('[data-role=cards]');
  if(!cards.children.length){st.customers.forEach((name,i)=>{const b=document.createElement('button');b.type='button';
    b.textContent='Tap '+name;b.dataset.testid='tap-'+i;b.dataset.act='card';b.dataset.body=JSON.stringify({action:'customer',index:i});cards.appendChild(b);});}
  sec.querySelector('[data-role=last]').textContent=k.last_ticket||'(none yet)';
  for(const b of sec.querySelectorAll('[data-act=printer]'))b.setAttribute('aria-pressed',String(!!k[b.dataset.fault]));
  const p=sec.querySelector('[data-act=presence]');p.textContent=k.someone_here?'Someone is there: walk away':'Nobody there: step in front';p.className=k.someone_here?'on':'';
  sec.querySelector('[data-role=led]').textContent='Status LED: '+(k.status_led?'lit':'dark');
  const lan=sec.querySelector('[data-act=lan]');
  if(lan){const up=k.lan==='up';lan.textContent=up?"LAN cable plugged in: cut it":(k.lan==='cut'?"LAN cable cut: restore it":"LAN cable stalled: restore it");
    lan.className=up?'':'cut';
    const peers=sec.querySelector('[data-role=peers]');const text=peersText(k);if(peers.textContent!==text)peers.textContent=text;}
  const t=sec.querySelector('[data-role=tickets]');const html=k.tickets.map((x)=>'<a href="/kiosks/'+n+'/tickets/'+encodeURIComponent(x)+'" target="_blank"><img alt="Ticket '+x.replace(/[<>&"]/g,'')+'" src="/kiosks/'+n+'/tickets/'+encodeURIComponent(x)+'"></a>').join('')||'<p>None yet.</p>';
  if(t.dataset.html!==html){t.innerHTML=html;t.dataset.html=html;}
}
async function refresh(){
  try{st=await (await fetch('/api/state')).json();}catch(e){say('The demo does not answer: '+e);return;}
  for(const k of st.kiosks){const sec=document.querySelector('[data-kiosk="'+k.number+'"]');if(sec)show(sec,k);}
  const n=document.getElementById('net');if(!n){document.body.dataset.ready='1';return;}
  n.textContent=st.network==='up'?'Network is up: cut it':(st.network==='cut'?'Network is cut: restore it':'Network is stalled: restore it');n.className=st.network==='up'?'':'on';
  const sl=document.getElementById('stall');sl.textContent=st.network==='stalled'?'Stalled (nothing answers): restore':'Stall it (nothing answers)';sl.className=st.network==='stalled'?'on':'';
  document.body.dataset.ready='1';
}
refresh();setInterval(refresh,2000);
</script></body></html>
"#;
