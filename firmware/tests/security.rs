//! The kiosk's security controls, tested from outside (docs/SECURITY.md lists which threat each
//! one answers):
//!
//! - a raw card UID reaches no file, no log line and no byte of the sync traffic: cards are tapped
//!   and journeys completed, then every file of the data directories (journal, its WAL, the CRM
//!   database, tickets), the logs at trace level and a recording of the kiosk-to-endpoint TCP
//!   stream (gzip bodies opened) are searched for each UID as bytes, hex (both cases, with and
//!   without separators), decimal (both byte orders) and base64;
//! - cached profiles and registrations are unreadable without the device key;
//! - every socket the demo listens on is bound to loopback;
//! - the counter API refuses everything without the staff PIN.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "test code: a failed unwrap is the failure message"
)]

mod soak_support;

use std::io::Read as _;
use std::net::SocketAddr;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use base64::Engine as _;
use kiosk::config::Config;
use kiosk::credentials::Credentials;
use kiosk::runtime::{self, RunOptions, Running};
use kiosk_drivers::card::mfrc522sim::VirtualCard;
use kiosk_journal::clock::SystemClock;
use kiosk_protocol::wire::EnrollRequest;
use serde_json::{Value, json};
use soak_support::{WAIT, spawn_demo};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// Every way a UID could be written down by careless code.
fn encodings(uid: &[u8]) -> Vec<(String, Vec<u8>)> {
    let hex_lower = hex::encode(uid);
    let hex_upper = hex_lower.to_uppercase();
    let mut out = vec![
        ("hex".to_owned(), hex_lower.clone().into_bytes()),
        ("HEX".to_owned(), hex_upper.clone().into_bytes()),
    ];
    for sep in [":", " ", "-"] {
        let parts: Vec<String> = uid.iter().map(|b| format!("{b:02x}")).collect();
        out.push((format!("hex{sep}"), parts.join(sep).into_bytes()));
        out.push((
            format!("HEX{sep}"),
            parts.join(sep).to_uppercase().into_bytes(),
        ));
    }
    // `{:?}` of the byte slice.
    out.push(("debug".into(), format!("{uid:?}").into_bytes()));
    let mut be = [0u8; 16];
    be[16 - uid.len()..].copy_from_slice(uid);
    let mut le = [0u8; 16];
    for (i, b) in uid.iter().enumerate() {
        le[i] = *b;
    }
    out.push((
        "decimal".into(),
        u128::from_be_bytes(be).to_string().into_bytes(),
    ));
    out.push((
        "decimal-le".into(),
        u128::from_le_bytes(le).to_string().into_bytes(),
    ));
    out.push((
        "base64".into(),
        base64::engine::general_purpose::STANDARD_NO_PAD
            .encode(uid)
            .into_bytes(),
    ));
    out
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

/// Fails with the place and encoding of any UID found in `hay`. Raw bytes of a 4-byte UID are
/// only searched in text (logs, decoded JSON): in binary files four given bytes turn up by chance.
fn assert_no_uid(what: &str, hay: &[u8], uids: &[Vec<u8>], binary: bool) {
    for uid in uids {
        let mut forms = encodings(uid);
        if !binary || uid.len() >= 7 {
            forms.push(("raw bytes".into(), uid.clone()));
        }
        for (form, needle) in forms {
            if let Some(at) = find(hay, &needle) {
                let from = at.saturating_sub(80);
                let to = (at + needle.len() + 80).min(hay.len());
                panic!(
                    "card UID {} found as {form} in {what} at byte {at}: {:?}",
                    hex::encode(uid),
                    String::from_utf8_lossy(&hay[from..to])
                );
            }
        }
    }
}

fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            out.extend(files_under(&p));
        } else {
            out.push(p);
        }
    }
    out
}

fn demo_uids() -> Vec<Vec<u8>> {
    crm_endpoint::DEMO_CUSTOMERS
        .iter()
        .map(|c| c.uid.to_vec())
        .collect()
}

async fn screen(http: &reqwest::Client, ui: &str) -> Value {
    http.get(format!("{ui}/api/kiosk/view"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

async fn screen_until(http: &reqwest::Client, ui: &str, what: &str, pred: impl Fn(&str) -> bool) {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let v = screen(http, ui).await;
        if pred(v["body"]["screen"].as_str().unwrap_or_default()) {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "screen never showed {what}: {v}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn touch(http: &reqwest::Client, ui: &str, body: Value) {
    let r = http
        .post(format!("{ui}/api/kiosk/touch"))
        .json(&body)
        .send()
        .await
        .unwrap();
    assert!(
        r.status().is_success(),
        "touch {body} refused: {}",
        r.status()
    );
}

/// One journey after a card was put on the reader by `tap`: greeting or registration, a
/// service, the goodbye, back to attract.
async fn journey_after_tap(
    http: &reqwest::Client,
    ui: &str,
    remove: impl AsyncFnOnce(),
    register_as: Option<&str>,
) {
    screen_until(http, ui, "the tap handled", |s| {
        s != "attract" && s != "identifying"
    })
    .await;
    remove().await;
    let v = screen(http, ui).await;
    match v["body"]["screen"].as_str().unwrap_or_default() {
        "greeting" => touch(http, ui, json!({"action": "continue"})).await,
        "offer_registration" => {
            if let Some(name) = register_as {
                touch(http, ui, json!({"action": "register"})).await;
                screen_until(http, ui, "the form", |s| s == "registering").await;
                touch(
                    http,
                    ui,
                    json!({"action": "submit_registration", "name": name,
                        "email": format!("{}@example.invalid", name.to_lowercase()),
                        "phone": "+34600111222", "consents": ["profile", "marketing_email"]}),
                )
                .await;
                screen_until(http, ui, "the greeting", |s| s == "greeting").await;
                touch(http, ui, json!({"action": "continue"})).await;
            } else {
                touch(http, ui, json!({"action": "skip_registration"})).await;
            }
        }
        other => panic!("unexpected screen after a tap: {other}: {v}"),
    }
    screen_until(http, ui, "the services", |s| s == "choose_service").await;
    touch(
        http,
        ui,
        json!({"action": "choose_service", "service": "A"}),
    )
    .await;
    screen_until(http, ui, "the goodbye", |s| s == "goodbye").await;
    touch(http, ui, json!({"action": "done"})).await;
    screen_until(http, ui, "attract", |s| s == "attract").await;
}

/// Sockets in LISTEN state owned by `pid`, from /proc (IPv4 and IPv6).
fn listening_sockets(pid: u32) -> Vec<String> {
    let mut inodes = std::collections::HashSet::new();
    for fd in std::fs::read_dir(format!("/proc/{pid}/fd")).unwrap() {
        if let Ok(target) = std::fs::read_link(fd.unwrap().path()) {
            let t = target.to_string_lossy().into_owned();
            if let Some(inode) = t.strip_prefix("socket:[").and_then(|s| s.strip_suffix(']')) {
                inodes.insert(inode.to_owned());
            }
        }
    }
    let mut out = Vec::new();
    for table in ["tcp", "tcp6"] {
        let text = std::fs::read_to_string(format!("/proc/{pid}/net/{table}")).unwrap();
        for line in text.lines().skip(1) {
            let f: Vec<&str> = line.split_whitespace().collect();
            // local_address st ... inode
            if f.len() > 9 && f[3] == "0A" && inodes.contains(f[9]) {
                out.push(f[1].to_owned());
            }
        }
    }
    out
}

/// Whether a /proc/net/tcp{,6} local address (`HEXIP:PORT`) is a loopback address.
fn is_loopback(local: &str) -> bool {
    let ip = local.split(':').next().unwrap_or_default();
    match ip.len() {
        // 127.0.0.0/8, stored little-endian: the last byte pair is 7F.
        8 => ip.ends_with("7F"),
        // ::1, or ::ffff:127.x.y.z
        32 => {
            ip == "00000000000000000000000001000000"
                || (ip.starts_with("0000000000000000FFFF0000") && ip.ends_with("7F"))
        }
        _ => false,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_demo_binary_writes_no_raw_card_uid_to_its_logs_or_files_listens_on_loopback_only_and_guards_the_counter_api()
 {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("demo");
    let log_path = dir.path().join("stderr.log");
    let log = std::fs::File::create(&log_path).unwrap();
    let filter = "debug,kiosk=trace,kiosk_drivers=trace,kiosk_sync=trace,crm_endpoint=trace";
    let demo = spawn_demo(
        &data,
        &[("RUST_LOG", filter), ("NO_COLOR", "1")],
        Stdio::from(log),
        WAIT,
    )
    .await
    .unwrap_or_else(|_| panic!("the demo did not start; see {}", log_path.display()));
    let http = soak_support::http_client();

    // Every demo card, twice (the second tap greets from the profile cache).
    for round in 0..2 {
        if round > 0 {
            // A card presented again before the reader has polled it absent `removal_polls`
            // times is the same card still held, rightly no second tap; four journeys take well
            // under that window here. A customer's card is away longer than this.
            // 50 ms: at least `poll_interval_ms` of hw-config/simulated.toml (20 ms).
            let poll_ms = 50 * u64::from(kiosk_drivers::card::DEFAULT_REMOVAL_POLLS + 2);
            tokio::time::sleep(Duration::from_millis(poll_ms)).await;
        }
        for index in 0..crm_endpoint::DEMO_CUSTOMERS.len() {
            let r = http
                .post(format!("{}/api/card", demo.panel))
                .json(&json!({"action": "customer", "index": index}))
                .send()
                .await
                .unwrap();
            assert!(r.status().is_success(), "tap {index}: {}", r.status());
            let (http2, panel) = (http.clone(), demo.panel.clone());
            journey_after_tap(
                &http,
                &demo.ui,
                async move || {
                    http2
                        .post(format!("{panel}/api/card"))
                        .json(&json!({"action": "remove"}))
                        .send()
                        .await
                        .unwrap();
                },
                None,
            )
            .await;
            let _ = round;
        }
    }
    soak_support::wait_until_synced(&data.join("kiosk").join("journal.db")).await;

    // Loopback only: every listening socket of the process.
    let pid = demo.child.id().unwrap();
    let sockets = listening_sockets(pid);
    assert!(
        sockets.len() >= 4,
        "screen, CRM, switch, panel: {sockets:?}"
    );
    for s in &sockets {
        assert!(is_loopback(s), "the demo listens on {s}, not loopback");
    }

    // The counter API and board: nothing without the PIN, nothing with a wrong one.
    let command = json!({"counter": "1", "command": {"action": "call_next", "services": ["A"]}});
    let r = http
        .post(format!("{}/api/counter/command", demo.ui))
        .json(&command)
        .send()
        .await
        .unwrap();
    assert!(
        r.status() == 401 || r.status() == 403,
        "counter command without PIN: {}",
        r.status()
    );
    let r = http
        .get(format!("{}/api/counter/board", demo.ui))
        .send()
        .await
        .unwrap();
    assert!(
        r.status() == 401 || r.status() == 403,
        "board: {}",
        r.status()
    );
    let r = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
        .post(format!("{}/counter/login", demo.ui))
        .header("content-type", "application/x-www-form-urlencoded")
        .body("pin=0000")
        .send()
        .await
        .unwrap();
    assert!(
        r.headers().get("set-cookie").is_none(),
        "a wrong PIN got a session"
    );
    let r = http
        .post(format!("{}/api/counter/command", demo.ui))
        .header("cookie", "kiosk_staff=forged")
        .header("authorization", "Bearer forged")
        .json(&command)
        .send()
        .await
        .unwrap();
    assert!(
        r.status() == 401 || r.status() == 403,
        "forged session: {}",
        r.status()
    );

    let status = demo.stop().await;
    assert!(status.success(), "{status}");

    let uids = demo_uids();
    let logs = std::fs::read(&log_path).unwrap();
    assert!(
        find(&logs, b"kiosk ready").is_some() && find(&logs, b"DEBUG").is_some(),
        "the debug log was captured"
    );
    assert_no_uid("the trace log", &logs, &uids, false);
    let ana = crm_endpoint::demo_token(&crm_endpoint::DEMO_CUSTOMERS[0]);
    let journal = std::fs::read(data.join("kiosk").join("journal.db")).unwrap();
    assert!(
        find(&journal, ana.as_str().as_bytes()).is_some(),
        "the scan reads the journal: Ana's card token is in it"
    );
    let files = files_under(&data);
    assert!(files.len() >= 6, "{files:?}");
    assert!(
        files
            .iter()
            .any(|f| f.extension().is_some_and(|e| e == "png")),
        "ticket pictures among the files: {files:?}"
    );
    for f in files {
        let bytes = std::fs::read(&f).unwrap();
        assert_no_uid(&f.display().to_string(), &bytes, &uids, true);
        // Journal, its WAL, the embedded CRM's database, ticket pictures, configs, keys: the
        // owner's only (measured 0644 before).
        let mode = std::fs::metadata(&f).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode & 0o077, 0, "{} is mode {mode:04o}", f.display());
    }
    let mode = std::fs::metadata(data.join("kiosk"))
        .unwrap()
        .permissions()
        .mode()
        & 0o777;
    assert_eq!(mode & 0o077, 0, "the data directory is mode {mode:04o}");
}

/// A TCP relay that records both directions.
async fn recording_relay(upstream: SocketAddr) -> (SocketAddr, Arc<Mutex<Vec<u8>>>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let tape = Arc::new(Mutex::new(Vec::new()));
    let t = tape.clone();
    tokio::spawn(async move {
        loop {
            let Ok((client, _)) = listener.accept().await else {
                return;
            };
            let Ok(server) = TcpStream::connect(upstream).await else {
                continue;
            };
            let (cr, cw) = client.into_split();
            let (sr, sw) = server.into_split();
            for (mut from, mut to) in [(cr, sw), (sr, cw)].map(|(r, w)| (Box::new(r), Box::new(w)))
            {
                let t = t.clone();
                tokio::spawn(async move {
                    let mut buf = vec![0u8; 16 * 1024];
                    loop {
                        let n = match from.read(&mut buf).await {
                            Ok(0) | Err(_) => break,
                            Ok(n) => n,
                        };
                        t.lock().unwrap().extend_from_slice(&buf[..n]);
                        if to.write_all(&buf[..n]).await.is_err() {
                            break;
                        }
                    }
                    let _ = to.shutdown().await;
                });
            }
        }
    });
    (addr, tape)
}

/// The recording with every gzip member it contains opened and appended.
fn opened(tape: &[u8]) -> Vec<u8> {
    let mut out = tape.to_vec();
    let mut at = 0;
    while let Some(i) = find(&tape[at..], &[0x1f, 0x8b, 0x08]) {
        let start = at + i;
        let mut plain = Vec::new();
        // A member cut short by the end of a message still yields what precedes the cut.
        let _ = flate2::read::GzDecoder::new(&tape[start..]).read_to_end(&mut plain);
        out.extend_from_slice(&plain);
        at = start + 3;
    }
    out
}

fn site_config(data: &Path, ui: SocketAddr, crm: &str) -> String {
    format!(
        r#"[kiosk]
store = "{store}"
store_name = "Security test"
locale = "es"
hardware_profile = "simulated"
data_dir = "{data}"
timezone = "Europe/Madrid"

[crm]
url = "{crm}"
backoff_base_ms = 100
backoff_cap_ms = 1000
feed_interval_s = 1

[queue]
opening_time = "00:00"

[[queue.services]]
letter = "A"
name = {{ es = "Caja", en = "Cashier" }}

[ui]
listen = "{ui}"
staff_pin_sha256 = "{pin}"

[privacy]
policy_version = "sec-1"
policy_text = {{ es = "Política", en = "Policy" }}
"#,
        store = crm_endpoint::DEMO_STORE_ID,
        data = data.display(),
        pin = kiosk::ui::pin_digest("4321"),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sync_traffic_and_kiosk_files_carry_no_raw_card_uid_and_cached_personal_data_is_sealed() {
    let dir = tempfile::tempdir().unwrap();
    let kiosk_dir = dir.path().join("kiosk");
    std::fs::create_dir_all(&kiosk_dir).unwrap();

    // The real endpoint on SQLite, seeded with the demo customers, behind a recording relay.
    let crm = crm_endpoint::db::open(&format!("sqlite://{}", dir.path().join("crm.db").display()))
        .await
        .unwrap();
    let seed = crm_endpoint::seed_demo(&crm).await.unwrap();
    let crm_listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let crm_addr = crm_listener.local_addr().unwrap();
    let stop_crm = tokio_util::sync::CancellationToken::new();
    let serve = tokio::spawn(crm_endpoint::serve(
        crm_endpoint::ServeConfig {
            db: crm.clone(),
            admin_token: None,
            tls: None,
        },
        crm_listener,
        stop_crm.clone().cancelled_owned(),
    ));
    let (relay, tape) = recording_relay(crm_addr).await;
    let url = format!("http://{relay}");

    let ui_listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let ui_addr = ui_listener.local_addr().unwrap();
    let site = dir.path().join("site.toml");
    std::fs::write(&site, site_config(&kiosk_dir, ui_addr, &url)).unwrap();
    let config = Config::load(&site).unwrap();
    let answer = kiosk_sync::enroll(
        &url,
        &kiosk_sync::TlsSettings::default(),
        &EnrollRequest {
            code: seed.enroll_code.clone(),
            hardware_profile: "simulated".into(),
            firmware_version: "test".into(),
        },
    )
    .await
    .unwrap();
    let credentials = Credentials::from_enrollment(&url, answer);
    credentials
        .save(&kiosk_dir.join("credentials.toml"))
        .unwrap();
    let kiosk: Running = runtime::start(RunOptions {
        config,
        credentials,
        endpoint_url: Some(url.clone()),
        ui_listener: Some(ui_listener),
        staff_listener: None,
        store_listener: None,
        ticket_previews: Some(kiosk_dir.join("tickets")),
        clock: Arc::new(SystemClock),
        updates: None,
    })
    .await
    .unwrap();
    let ui = format!("http://{ui_addr}");
    let http = soak_support::http_client();
    let card = kiosk.sims.card.clone().expect("simulated card reader");

    // The feed brings the demo profiles into the sealed cache.
    let deadline = tokio::time::Instant::now() + WAIT;
    while kiosk.db.profile_count().unwrap() < crm_endpoint::DEMO_CUSTOMERS.len() as u64 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the feed never came"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    // Fresh 7-byte cards that register (name, email, phone), then every demo card.
    let mut uids = demo_uids();
    let mut names = Vec::new();
    for i in 0..3u8 {
        let mut uid = vec![0x04];
        uid.extend(rand::random::<[u8; 6]>());
        let name = format!("Registrant{i}x{:08x}", rand::random::<u32>());
        card.remove_all();
        card.place(VirtualCard::new(&uid).unwrap());
        let c = card.clone();
        journey_after_tap(&http, &ui, async move || c.remove_all(), Some(&name)).await;
        uids.push(uid);
        names.push(name);
    }
    for c in crm_endpoint::DEMO_CUSTOMERS {
        card.remove_all();
        card.place(VirtualCard::new(c.uid).unwrap());
        let h = card.clone();
        journey_after_tap(&http, &ui, async move || h.remove_all(), None).await;
    }
    let deadline = tokio::time::Instant::now() + WAIT;
    while kiosk.db.journal().stats().unwrap().pending > 0 {
        assert!(tokio::time::Instant::now() < deadline, "never synced");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    // The capture: opened gzip bodies hold the events (positive control), never a UID.
    let capture = opened(&tape.lock().unwrap());
    let ana = crm_endpoint::demo_token(&crm_endpoint::DEMO_CUSTOMERS[0]);
    assert!(
        find(&capture, b"ticket_issued").is_some()
            && find(&capture, ana.as_str().as_bytes()).is_some()
            && find(&capture, names[0].as_bytes()).is_some(),
        "the capture holds the decoded batches ({} bytes)",
        capture.len()
    );
    assert_no_uid("the sync traffic", &capture, &uids, false);

    // The kiosk's files while it runs (journal, WAL, shm, credentials, tickets) and the CRM's.
    for f in files_under(dir.path()) {
        let bytes = std::fs::read(&f).unwrap();
        assert_no_uid(&f.display().to_string(), &bytes, &uids, true);
    }

    // Cached personal data is sealed: plain SQLite sees no name, email or phone anywhere in the
    // kiosk's journal; with the device key the runtime reads the profiles back.
    let token = crm_endpoint::demo_token(&crm_endpoint::DEMO_CUSTOMERS[2]);
    let carmen = kiosk.db.profile(&token).unwrap().expect("Carmen cached");
    assert!(serde_json::to_string(&carmen).unwrap().contains("Carmen"));
    let plain = rusqlite::Connection::open_with_flags(
        kiosk_dir.join("journal.db"),
        rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY,
    )
    .unwrap();
    let cached: i64 = plain
        .query_row("SELECT count(*) FROM profiles", [], |r| r.get(0))
        .unwrap();
    assert!(cached as usize >= crm_endpoint::DEMO_CUSTOMERS.len() + names.len() - 1);
    let mut secrets: Vec<String> = crm_endpoint::DEMO_CUSTOMERS
        .iter()
        .map(|c| format!("\"{}\"", c.display_name))
        .collect();
    for n in &names {
        secrets.push(n.clone());
        secrets.push(format!("{}@example.invalid", n.to_lowercase()));
    }
    secrets.push("600111222".into());
    for f in ["journal.db", "journal.db-wal"] {
        let Ok(bytes) = std::fs::read(kiosk_dir.join(f)) else {
            continue;
        };
        for s in &secrets {
            assert!(
                find(&bytes, s.as_bytes()).is_none(),
                "{s} in clear in the kiosk's {f}"
            );
        }
    }

    kiosk.stop().await;
    stop_crm.cancel();
    let _ = tokio::time::timeout(WAIT, serve).await;
    for f in files_under(&kiosk_dir) {
        let bytes = std::fs::read(&f).unwrap();
        assert_no_uid(&f.display().to_string(), &bytes, &uids, true);
        for s in &secrets {
            assert!(
                find(&bytes, s.as_bytes()).is_none(),
                "{s} in clear in {}",
                f.display()
            );
        }
    }
}

#[test]
fn a_kiosk_screen_configured_to_listen_beyond_loopback_is_refused_at_start_up() {
    let text = site_config(
        Path::new("/tmp/kiosk-sec"),
        "0.0.0.0:8080".parse().unwrap(),
        "https://crm.example.invalid",
    );
    let err = Config::from_text(Path::new("site.toml"), &text).unwrap_err();
    let shown = err.to_string();
    assert!(shown.contains("ui.listen"), "{shown}");
}

#[test]
fn the_uid_scan_finds_each_encoding_it_searches_for() {
    let uid = vec![0x04, 0xa1, 0xb2, 0xc3];
    for (form, needle) in encodings(&uid) {
        let mut hay = b"tapped card ".to_vec();
        hay.extend_from_slice(&needle);
        let found = std::panic::catch_unwind(|| {
            assert_no_uid(
                "a planted log line",
                &hay,
                std::slice::from_ref(&uid),
                false,
            )
        });
        assert!(found.is_err(), "{form} not found");
    }
    let clean = b"card token 6f1d0c5e9a and turn A-001".to_vec();
    assert_no_uid("a clean line", &clean, &[uid], true);
}
