//! The demo's simulator control panel: tap a seeded card or an unknown one, take it away, scan a
//! code (the last ticket's QR, a product barcode, any text, noise), take the paper out, open the
//! cover, cut the network, and see the printed tickets. Every button drives a simulator through
//! the real protocol (MFRC522 registers, pty bytes, ESC/POS status), never the engine directly.

use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use axum::extract::{Path, State};
use axum::http::{StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use kiosk_drivers::card::mfrc522sim::VirtualCard;
use serde::{Deserialize, Serialize};

use super::switch::{Link, NetworkSwitch};
use crate::runtime::Simulators;

/// What the panel handlers share.
#[derive(Clone)]
pub struct PanelState {
    /// The simulated devices.
    pub sims: Simulators,
    /// The network switch.
    pub network: NetworkSwitch,
    /// The last ticket's signed QR.
    pub last_ticket_qr: Arc<Mutex<Option<String>>>,
    /// Printed tickets (PNG).
    pub tickets_dir: PathBuf,
    /// The kiosk screen, for the link.
    pub kiosk_url: String,
}

/// The panel's routes.
pub fn router(state: PanelState) -> Router {
    Router::new()
        .route("/", get(page))
        .route("/api/state", get(panel_state))
        .route("/api/card", post(card))
        .route("/api/scan", post(scan))
        .route("/api/printer", post(printer))
        .route("/api/network", post(network))
        .route("/api/presence", post(presence))
        .route("/tickets/{name}", get(ticket_png))
        .with_state(state)
}

/// A card action.
#[derive(Debug, Deserialize)]
#[serde(tag = "action", rename_all = "snake_case")]
pub enum CardAction {
    /// Tap a seeded customer's card (index into the demo customers).
    Customer {
        /// Which one.
        index: usize,
    },
    /// Tap a card nobody registered.
    Unknown,
    /// Take every card away.
    Remove,
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

/// The network state to set.
#[derive(Debug, Deserialize)]
pub struct NetworkAction {
    /// Up or cut.
    pub up: bool,
    /// With `up`: a black hole instead (connections open, nothing comes back).
    #[serde(default)]
    pub stalled: bool,
}

/// What the panel shows.
#[derive(Debug, Serialize)]
pub struct PanelView {
    network_up: bool,
    network: Link,
    customers: Vec<String>,
    tickets: Vec<String>,
    last_ticket: Option<String>,
    paper_out: bool,
    cover_open: bool,
    offline: bool,
    someone_here: bool,
    status_led: bool,
}

fn unavailable(what: &str) -> Response {
    (
        StatusCode::CONFLICT,
        format!("the {what} is not simulated in this kiosk"),
    )
        .into_response()
}

async fn page(State(s): State<PanelState>) -> Html<String> {
    Html(PAGE.replace("{{KIOSK_URL}}", &s.kiosk_url))
}

async fn panel_state(State(s): State<PanelState>) -> Json<PanelView> {
    let faults = s
        .sims
        .printer
        .as_ref()
        .map(|p| p.lock().faults())
        .unwrap_or_default();
    let mut tickets: Vec<String> = std::fs::read_dir(&s.tickets_dir)
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
    let last_ticket = s.last_ticket_qr.lock().ok().and_then(|q| q.clone());
    Json(PanelView {
        network_up: s.network.is_up(),
        network: s.network.link(),
        customers: crm_endpoint::DEMO_CUSTOMERS
            .iter()
            .map(|c| format!("{} ({}, {})", c.display_name, c.segment, c.locale))
            .collect(),
        tickets,
        last_ticket,
        paper_out: faults.paper_out,
        cover_open: faults.cover_open,
        offline: faults.offline,
        someone_here: s.sims.gpio.as_ref().is_some_and(|g| g.presence()),
        status_led: s.sims.gpio.as_ref().is_some_and(|g| g.led()),
    })
}

async fn card(State(s): State<PanelState>, Json(action): Json<CardAction>) -> Response {
    let Some(sim) = &s.sims.card else {
        return unavailable("card reader");
    };
    let uid: Vec<u8> = match action {
        CardAction::Remove => {
            sim.remove_all();
            return StatusCode::NO_CONTENT.into_response();
        }
        CardAction::Customer { index } => match crm_endpoint::DEMO_CUSTOMERS.get(index) {
            Some(c) => c.uid.to_vec(),
            None => return (StatusCode::NOT_FOUND, "no such demo customer").into_response(),
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

async fn scan(State(s): State<PanelState>, Json(action): Json<ScanAction>) -> Response {
    let Some(sim) = &s.sims.scanner else {
        return unavailable("scanner");
    };
    let result = match action {
        ScanAction::LastTicket => {
            let last = s.last_ticket_qr.lock().ok().and_then(|q| q.clone());
            match last {
                Some(qr) => sim.scan(&qr),
                None => {
                    return (StatusCode::CONFLICT, "no ticket was issued yet").into_response();
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

async fn printer(State(s): State<PanelState>, Json(a): Json<PrinterAction>) -> Response {
    let Some(p) = &s.sims.printer else {
        return unavailable("printer");
    };
    p.update_faults(|f| {
        f.paper_out = a.paper_out;
        f.paper_near_end = a.paper_out;
        f.cover_open = a.cover_open;
        f.offline = a.offline || a.cover_open || a.paper_out;
    });
    StatusCode::NO_CONTENT.into_response()
}

async fn presence(State(s): State<PanelState>, Json(a): Json<PresenceAction>) -> Response {
    let Some(gpio) = &s.sims.gpio else {
        return unavailable("presence sensor");
    };
    gpio.set_presence(a.here);
    StatusCode::NO_CONTENT.into_response()
}

async fn network(State(s): State<PanelState>, Json(a): Json<NetworkAction>) -> StatusCode {
    s.network.set_link(match (a.up, a.stalled) {
        (false, _) => Link::Cut,
        (true, true) => Link::Stalled,
        (true, false) => Link::Up,
    });
    StatusCode::NO_CONTENT
}

async fn ticket_png(State(s): State<PanelState>, Path(name): Path<String>) -> Response {
    let safe = !name.contains('/') && !name.starts_with('.') && name.ends_with(".png");
    if !safe {
        return StatusCode::NOT_FOUND.into_response();
    }
    match std::fs::read(s.tickets_dir.join(&name)) {
        Ok(png) => ([(header::CONTENT_TYPE, "image/png")], png).into_response(),
        Err(_) => StatusCode::NOT_FOUND.into_response(),
    }
}

const PAGE: &str = r#"<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Kiosk demo: simulators</title>
<style>
body{font-family:system-ui,sans-serif;margin:1.5rem;background:#f4f5f7;color:#111}
h1{font-size:1.4rem}section{background:#fff;border-radius:8px;padding:1rem;margin:0 0 1rem;box-shadow:0 1px 3px #0002}
button{font-size:1rem;padding:.5rem .9rem;margin:.2rem;border-radius:6px;border:1px solid #888;background:#fff;cursor:pointer}
button.on{background:#0a58ca;color:#fff}#tickets img{height:260px;margin:.3rem;border:1px solid #ccc}
#msg{min-height:1.2rem;color:#a00}code{word-break:break-all}
</style></head><body>
<h1>Kiosk demo: simulator control panel</h1>
<p>Kiosk screen: <a href="{{KIOSK_URL}}" target="_blank">{{KIOSK_URL}}</a></p>
<p id="msg"></p>
<section><h2>Card reader (MFRC522 simulator)</h2><div id="cards"></div>
<button data-testid="tap-unknown" onclick="post('/api/card',{action:'unknown'})">Tap an unknown card</button>
<button data-testid="remove-card" onclick="post('/api/card',{action:'remove'})">Take the card away</button></section>
<section><h2>Scanner (pty)</h2>
<button data-testid="scan-last-ticket" onclick="post('/api/scan',{action:'last_ticket'})">Scan the last ticket's QR</button>
<button onclick="post('/api/scan',{action:'product'})">Scan a product EAN-13</button>
<button onclick="post('/api/scan',{action:'noise'})">Send noise</button>
<input id="text" placeholder="any text"><button onclick="post('/api/scan',{action:'text',text:document.getElementById('text').value})">Scan text</button>
<p>Last ticket QR: <code id="last"></code></p></section>
<section><h2>Printer (virtual ESC/POS)</h2>
<button id="paper" data-testid="paper-out" onclick="printer('paper_out')">Paper out</button>
<button id="cover" onclick="printer('cover_open')">Cover open</button>
<button id="offline" onclick="printer('offline')">Offline</button></section>
<section><h2>Presence sensor and status LED (GPIO)</h2><button id="presence" data-testid="presence" onclick="post('/api/presence',{here:!st.someone_here})"></button>
<span id="led"></span></section>
<section><h2>Network to the CRM</h2><button id="net" data-testid="network" onclick="post('/api/network',{up:st.network!=='up'})"></button> <button id="stall" data-testid="network-stall" onclick="post('/api/network',{up:true,stalled:st.network!=='stalled'})"></button></section>
<section><h2>Printed tickets</h2><div id="tickets"></div></section>
<script>
let st={};
async function post(url,body){const r=await fetch(url,{method:'POST',headers:{'content-type':'application/json'},body:JSON.stringify(body)});
document.getElementById('msg').textContent=r.ok?'':await r.text();refresh();}
function printer(k){const f={paper_out:st.paper_out,cover_open:st.cover_open,offline:st.offline};f[k]=!f[k];post('/api/printer',f);}
async function refresh(){st=await (await fetch('/api/state')).json();
const c=document.getElementById('cards');if(!c.children.length){st.customers.forEach((n,i)=>{const b=document.createElement('button');
b.textContent='Tap '+n;b.dataset.testid='tap-'+i;b.onclick=()=>post('/api/card',{action:'customer',index:i});c.appendChild(b);});}
document.getElementById('last').textContent=st.last_ticket||'(none yet)';
for(const [id,on] of [['paper',st.paper_out],['cover',st.cover_open],['offline',st.offline]])document.getElementById(id).className=on?'on':'';
const n=document.getElementById('net');n.textContent=st.network==='up'?'Network is up: cut it':(st.network==='cut'?'Network is cut: restore it':'Network is stalled: restore it');n.className=st.network==='up'?'':'on';
const sl=document.getElementById('stall');sl.textContent=st.network==='stalled'?'Stalled (nothing answers): restore':'Stall it (nothing answers)';sl.className=st.network==='stalled'?'on':'';
const p=document.getElementById('presence');p.textContent=st.someone_here?'Someone is there: walk away':'Nobody there: step in front';p.className=st.someone_here?'on':'';
document.getElementById('led').textContent='Status LED: '+(st.status_led?'lit':'dark');
document.getElementById('tickets').innerHTML=st.tickets.map(t=>'<a href="/tickets/'+t+'" target="_blank"><img alt="'+t+'" src="/tickets/'+t+'"></a>').join('');}
refresh();setInterval(refresh,2000);
</script></body></html>
"#;
