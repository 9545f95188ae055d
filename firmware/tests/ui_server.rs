//! The UI server on a real socket, driven with a real HTTP client: pages and assets from the
//! binary, screen pushes over server-sent events, touches into the engine's channel, the staff
//! PIN, staff commands answered by the runtime, and what the lobby may (not) see.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "test code: a failed unwrap is the failure message"
)]

use std::net::SocketAddr;
use std::time::Duration;

use axum::body::Body;
use axum::extract::connect_info::MockConnectInfo;
use axum::http::{Request, StatusCode};
use kiosk::staff::{StaffAck, StaffCommand, StaffRequest};
use kiosk::ui::{AppState, UiChannels, UiSettings, asset_exists, router, serve};
use kiosk_core::journey::{Locale, ScreenBody, ScreenView, Touch};
use kiosk_core::queue::{CustomerNote, QueueBoard, ServiceDay, ServingEntry};
use reqwest::redirect::Policy;
use time::macros::date;
use tokio::sync::{mpsc, oneshot, watch};
use tower::ServiceExt as _;
use uuid::Uuid;
use zeroize::Zeroizing;

const WAIT: Duration = Duration::from_secs(10);

fn view(version: u64, body: ScreenBody) -> ScreenView {
    ScreenView {
        version,
        locale: Locale::Es,
        printer_ok: true,
        notice: None,
        accessible: false,
        time_warning: None,
        assistance_called: false,
        role: kiosk_core::journey::KioskRole::Queue,
        body,
    }
}

fn board_with_customer() -> QueueBoard {
    let mut board = QueueBoard::empty(ServiceDay(date!(2025 - 03 - 10)));
    board.serving.push(ServingEntry {
        turn_id: Uuid::from_u128(1),
        label: "A-001".into(),
        service: "A".into(),
        counter: "3".into(),
        priority: false,
        calls: 1,
        card_token: None,
        campaign_id: Some("spring".into()),
        customer: Some(CustomerNote {
            name: "Ana Pérez".into(),
            segment: Some("vip".into()),
            campaign_script: Some("Offer the spring plan".into()),
        }),
    });
    board
}

struct Harness {
    base: String,
    client: reqwest::Client,
    inputs: mpsc::Receiver<kiosk_core::journey::Input>,
    screen: watch::Sender<ScreenView>,
    staff: mpsc::Receiver<StaffRequest>,
    state: AppState,
    _board: watch::Sender<QueueBoard>,
    _stop: oneshot::Sender<()>,
}

/// Staff member `ana` with this name and PIN.
fn ana(name: &str, pin: &str) -> kiosk::ui::StaffMember {
    kiosk::ui::StaffMember {
        id: "ana".into(),
        name: name.into(),
        pin_sha256: kiosk::ui::pin_digest(pin),
    }
}

fn settings() -> UiSettings {
    UiSettings {
        staff_pin_sha256: Some(Zeroizing::new(kiosk::ui::pin_digest("4321"))),
        staff: vec![ana("Ana García", "555555")],
        staff_token: Some(Zeroizing::new("scripted-token-0123456789".into())),
        kiosk_loopback_only: true,
        store_name: "Tienda Centro".into(),
        allowed_hosts: vec!["kiosk-3.tienda.lan".into()],
    }
}

fn channels() -> (
    UiChannels,
    mpsc::Receiver<kiosk_core::journey::Input>,
    watch::Sender<ScreenView>,
    watch::Sender<QueueBoard>,
    mpsc::Receiver<StaffRequest>,
) {
    let (inputs_tx, inputs_rx) = mpsc::channel(16);
    let (screen_tx, screen_rx) = watch::channel(view(0, ScreenBody::Attract { inviting: false }));
    let (board_tx, board_rx) = watch::channel(board_with_customer());
    let (staff_tx, staff_rx) = mpsc::channel(4);
    let ch = UiChannels {
        inputs: inputs_tx,
        screen: screen_rx,
        board: board_rx,
        staff: staff_tx,
        keys: tokio::sync::broadcast::channel(8).0,
        screen_presence: kiosk::screen::ScreenPresence::new(None),
        speech: None,
        picture: tokio::sync::watch::channel(kiosk_core::audience::StorePicture::empty(
            time::OffsetDateTime::UNIX_EPOCH,
        ))
        .1,
        signage: None,
    };
    (ch, inputs_rx, screen_tx, board_tx, staff_rx)
}

async fn start() -> Harness {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let (ch, inputs, screen, board, staff) = channels();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind loopback");
    let addr = listener.local_addr().expect("local addr");
    let (stop_tx, stop_rx) = oneshot::channel::<()>();
    let state = AppState::new(settings(), ch);
    tokio::spawn(serve(listener, state.clone(), async move {
        let _ = stop_rx.await;
    }));
    let client = reqwest::Client::builder()
        .redirect(Policy::none())
        .build()
        .expect("http client");
    Harness {
        base: format!("http://{addr}"),
        client,
        inputs,
        screen,
        staff,
        state,
        _board: board,
        _stop: stop_tx,
    }
}

impl Harness {
    fn url(&self, path: &str) -> String {
        format!("{}{}", self.base, path)
    }

    async fn login(&self) -> String {
        self.login_with("4321").await
    }

    /// Logs in with `pin`; returns the session cookie.
    async fn login_with(&self, pin: &str) -> String {
        let res = self
            .client
            .post(self.url("/counter/login"))
            .header("content-type", "application/x-www-form-urlencoded")
            .body(format!("pin={pin}"))
            .send()
            .await
            .expect("login");
        assert_eq!(res.status(), StatusCode::SEE_OTHER);
        let cookie = res
            .headers()
            .get("set-cookie")
            .expect("session cookie")
            .to_str()
            .expect("ascii")
            .to_owned();
        assert!(cookie.contains("HttpOnly") && cookie.contains("SameSite=Strict"));
        cookie.split(';').next().unwrap_or_default().to_owned()
    }
}

/// Reads an event stream until `needle` appears.
async fn read_until(res: &mut reqwest::Response, seen: &mut String, needle: &str) {
    tokio::time::timeout(WAIT, async {
        while !seen.contains(needle) {
            let chunk = res
                .chunk()
                .await
                .expect("stream chunk")
                .expect("stream still open");
            seen.push_str(&String::from_utf8_lossy(&chunk));
        }
    })
    .await
    .unwrap_or_else(|_| panic!("{needle:?} never arrived; got {seen:?}"));
}

#[tokio::test]
async fn pages_and_assets_are_served_from_the_binary_with_revalidation() {
    let h = start().await;
    for path in [
        "kiosk.html",
        "kiosk.js",
        "counter.html",
        "counter.js",
        "lobby.html",
        "lobby.js",
        "login.html",
        "app.css",
    ] {
        assert!(asset_exists(path), "{path} is embedded");
    }
    let page = h.client.get(h.url("/")).send().await.expect("kiosk page");
    assert_eq!(page.status(), StatusCode::OK);
    assert!(
        page.headers()["content-security-policy"]
            .to_str()
            .expect("ascii")
            .contains("default-src 'self'")
    );
    assert!(
        page.text()
            .await
            .expect("body")
            .contains("/assets/kiosk.js")
    );

    let css = h
        .client
        .get(h.url("/assets/app.css"))
        .send()
        .await
        .expect("css");
    assert_eq!(css.headers()["content-type"], "text/css; charset=utf-8");
    let etag = css.headers()["etag"].clone();
    let again = h
        .client
        .get(h.url("/assets/app.css"))
        .header("if-none-match", etag)
        .send()
        .await
        .expect("css again");
    assert_eq!(again.status(), StatusCode::NOT_MODIFIED);
    let missing = h
        .client
        .get(h.url("/assets/nope.js"))
        .send()
        .await
        .expect("404");
    assert_eq!(missing.status(), StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn the_kiosk_stream_pushes_the_current_screen_then_every_change() {
    let h = start().await;
    let mut res = h
        .client
        .get(h.url("/api/kiosk/stream"))
        .send()
        .await
        .expect("stream");
    assert_eq!(res.headers()["content-type"], "text/event-stream");
    let mut seen = String::new();
    read_until(&mut res, &mut seen, "\"screen\":\"attract\"").await;
    assert!(seen.contains("event: view"));
    h.screen.send_replace(view(1, ScreenBody::Identifying));
    read_until(&mut res, &mut seen, "\"screen\":\"identifying\"").await;
    assert!(seen.contains("\"version\":1"));
}

#[tokio::test]
async fn touches_reach_the_engine_and_malformed_ones_are_refused() {
    let mut h = start().await;
    let res = h
        .client
        .post(h.url("/api/kiosk/touch"))
        .json(&serde_json::json!({"action": "choose_service", "service": "A", "priority": true}))
        .send()
        .await
        .expect("touch");
    assert_eq!(res.status(), StatusCode::ACCEPTED);
    let input = tokio::time::timeout(WAIT, h.inputs.recv())
        .await
        .expect("input in time")
        .expect("input");
    assert_eq!(
        input,
        kiosk_core::journey::Input::Touch(Touch::ChooseService {
            service: "A".into(),
            priority: true
        })
    );

    let bad = h
        .client
        .post(h.url("/api/kiosk/touch"))
        .json(&serde_json::json!({"action": "launch_rockets"}))
        .send()
        .await
        .expect("bad touch");
    assert!(bad.status().is_client_error());
    assert!(h.inputs.try_recv().is_err(), "nothing reaches the engine");
}

#[tokio::test]
async fn the_counter_page_needs_the_staff_pin_and_keeps_a_session_cookie() {
    let h = start().await;
    let login_page = h
        .client
        .get(h.url("/counter"))
        .send()
        .await
        .expect("counter")
        .text()
        .await
        .expect("body");
    assert!(
        login_page.contains("/counter/login"),
        "without a session the PIN form is shown"
    );
    let denied = h
        .client
        .get(h.url("/api/counter/board"))
        .send()
        .await
        .expect("board");
    assert_eq!(denied.status(), StatusCode::UNAUTHORIZED);

    let wrong = h
        .client
        .post(h.url("/counter/login"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body("pin=0000")
        .send()
        .await
        .expect("wrong pin");
    assert_eq!(wrong.headers()["location"], "/counter?error=pin");
    assert!(wrong.headers().get("set-cookie").is_none());

    let cookie = h.login().await;
    let page = h
        .client
        .get(h.url("/counter"))
        .header("cookie", &cookie)
        .send()
        .await
        .expect("counter")
        .text()
        .await
        .expect("body");
    assert!(page.contains("/assets/counter.js"));
    let forged = h
        .client
        .get(h.url("/api/counter/board"))
        .header("cookie", "kiosk_staff=00")
        .send()
        .await
        .expect("board");
    assert_eq!(forged.status(), StatusCode::UNAUTHORIZED);
    let board = h
        .client
        .get(h.url("/api/counter/board"))
        .header("cookie", &cookie)
        .send()
        .await
        .expect("board");
    assert!(
        board.text().await.expect("body").contains("Ana Pérez"),
        "staff see the customer's name"
    );
}

#[tokio::test]
async fn each_login_has_its_own_session_and_a_logged_out_cookie_reads_nothing_more() {
    let h = start().await;
    let first = h.login().await;
    let second = h.login().await;
    assert_ne!(first, second, "a session per login, not one per process");
    let board = |cookie: String| {
        let req = h
            .client
            .get(h.url("/api/counter/board"))
            .header("cookie", cookie);
        async move { req.send().await.expect("board").status() }
    };
    assert_eq!(board(first.clone()).await, StatusCode::OK);
    let out = h
        .client
        .post(h.url("/counter/logout"))
        .header("cookie", &first)
        .send()
        .await
        .expect("logout");
    assert_eq!(out.status(), StatusCode::SEE_OTHER);
    // The measured hole: the old cookie still read the board and ran call_next after logout.
    assert_eq!(board(first.clone()).await, StatusCode::UNAUTHORIZED);
    let command = h
        .client
        .post(h.url("/api/counter/command"))
        .header("cookie", &first)
        .json(&serde_json::json!({"counter": "1", "command": {"action": "call_next"}}))
        .send()
        .await
        .expect("command");
    assert_eq!(command.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(
        board(second).await,
        StatusCode::OK,
        "the other session goes on"
    );
}

#[tokio::test]
async fn wrong_pins_lock_out_their_own_address_not_the_other_counters() {
    let h = start().await;
    // A device at 127.0.0.2 guesses.
    let guesser = reqwest::Client::builder()
        .redirect(Policy::none())
        .local_address(Some("127.0.0.2".parse().unwrap()))
        .build()
        .unwrap();
    for _ in 0..6 {
        guesser
            .post(h.url("/counter/login"))
            .header("content-type", "application/x-www-form-urlencoded")
            .body("pin=1111")
            .send()
            .await
            .expect("wrong pin");
    }
    let locked = guesser
        .post(h.url("/counter/login"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body("pin=4321")
        .send()
        .await
        .expect("right pin from the guesser");
    assert_eq!(locked.headers()["location"], "/counter?error=locked");
    // The counters (127.0.0.1) log in as usual.
    h.login().await;
}

#[tokio::test]
async fn a_post_from_another_sites_page_is_refused() {
    let h = start().await;
    let cross = h
        .client
        .post(h.url("/counter/login"))
        .header("origin", "http://evil.example")
        .header("content-type", "application/x-www-form-urlencoded")
        .body("pin=4321")
        .send()
        .await
        .expect("cross-site login");
    assert_eq!(cross.status(), StatusCode::FORBIDDEN);
    assert!(cross.headers().get("set-cookie").is_none());
    let cookie = h.login().await;
    let command = h
        .client
        .post(h.url("/api/counter/command"))
        .header("cookie", &cookie)
        .header("origin", "http://evil.example")
        .json(&serde_json::json!({"counter": "1", "command": {"action": "call_next"}}))
        .send()
        .await
        .expect("cross-site command");
    assert_eq!(command.status(), StatusCode::FORBIDDEN);
    let own = h
        .client
        .post(h.url("/api/counter/command"))
        .header("cookie", &cookie)
        .header("origin", h.base.clone())
        .json(&serde_json::json!({"counter": "1", "command": {"action": "call_next"}}))
        .send();
    // The page's own origin passes (the runtime behind this harness answers it).
    let mut h = h;
    let answer = tokio::spawn(own);
    let request = tokio::time::timeout(WAIT, h.staff.recv())
        .await
        .expect("the command reached the runtime")
        .expect("staff channel open");
    let _ = request.reply.send(Ok(StaffAck::default()));
    assert!(
        answer
            .await
            .unwrap()
            .expect("own-origin command")
            .status()
            .is_success()
    );
}

#[tokio::test]
async fn a_request_naming_another_host_is_refused_as_dns_rebinding() {
    let h = start().await;
    let port = h.base.rsplit(':').next().unwrap().to_owned();
    let get = |path: &str, host: String| h.client.get(h.url(path)).header("host", host).send();
    // A page of evil.example whose name was rebound to 127.0.0.1 reads the screen: refused.
    for path in ["/", "/api/kiosk/view", "/lobby", "/counter", "/api/health"] {
        let r = get(path, format!("evil.example:{port}")).await.unwrap();
        assert_eq!(r.status(), StatusCode::MISDIRECTED_REQUEST, "{path}");
    }
    for host in [
        format!("127.0.0.1:{port}"),
        format!("localhost:{port}"),
        format!("kiosk-3.tienda.lan:{port}"),
        format!("[::1]:{port}"),
    ] {
        let r = get("/api/kiosk/view", host.clone()).await.unwrap();
        assert_eq!(r.status(), StatusCode::OK, "{host}");
    }
}

#[tokio::test]
async fn repeated_wrong_pins_lock_the_login_even_for_the_right_pin() {
    let h = start().await;
    for _ in 0..5 {
        h.client
            .post(h.url("/counter/login"))
            .header("content-type", "application/x-www-form-urlencoded")
            .body("pin=1111")
            .send()
            .await
            .expect("wrong pin");
    }
    let locked = h
        .client
        .post(h.url("/counter/login"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body("pin=4321")
        .send()
        .await
        .expect("right pin");
    assert_eq!(locked.headers()["location"], "/counter?error=locked");
}

#[tokio::test]
async fn staff_commands_are_carried_out_and_answered_by_the_runtime() {
    let mut h = start().await;
    let cookie = h.login().await;
    let runtime = tokio::spawn(async move {
        let first = h.staff.recv().await.expect("first request");
        assert_eq!(first.counter, "3");
        assert_eq!(
            first.command,
            StaffCommand::CallNext {
                services: vec!["A".into()]
            }
        );
        let _ = first.reply.send(Ok(StaffAck {
            label: Some("A-002".into()),
            ..StaffAck::default()
        }));
        let second = h.staff.recv().await.expect("second request");
        assert_eq!(second.command, StaffCommand::PrintReport);
        let _ = second
            .reply
            .send(Err("printer at /dev/usb/lp0 reports paper out".into()));
    });
    let client = reqwest::Client::new();
    let ok = client
        .post(format!("{}/api/counter/command", h.base))
        .header("cookie", &cookie)
        .json(&serde_json::json!({"counter": "3", "command": {"action": "call_next", "services": ["A"]}}))
        .send()
        .await
        .expect("call next");
    assert_eq!(ok.status(), StatusCode::OK);
    let body: serde_json::Value = ok.json().await.expect("json");
    assert_eq!(body["label"], "A-002");
    let failed = client
        .post(format!("{}/api/counter/command", h.base))
        .bearer_auth("scripted-token-0123456789")
        .json(&serde_json::json!({"counter": "3", "command": {"action": "print_report"}}))
        .send()
        .await
        .expect("report");
    assert_eq!(failed.status(), StatusCode::CONFLICT);
    let body: serde_json::Value = failed.json().await.expect("json");
    assert_eq!(body["message"], "printer at /dev/usb/lp0 reports paper out");
    tokio::time::timeout(WAIT, runtime)
        .await
        .expect("runtime done")
        .expect("runtime assertions");
}

/// `/api/counter/me` as `cookie`: the answer, or the refusal's status.
async fn me(h: &Harness, cookie: &str) -> Result<serde_json::Value, StatusCode> {
    let res = h
        .client
        .get(h.url("/api/counter/me"))
        .header("cookie", cookie)
        .send()
        .await
        .expect("me");
    match res.status() {
        StatusCode::OK => Ok(res.json().await.expect("json")),
        other => Err(other),
    }
}

#[tokio::test]
async fn a_members_own_pin_names_them_on_the_page_and_on_their_commands_until_they_leave_the_list()
{
    let mut h = start().await;
    let ana_session = h.login_with("555555").await;
    let store_session = h.login().await;
    assert_eq!(
        me(&h, &ana_session).await.unwrap()["staff"],
        serde_json::json!({ "id": "ana", "name": "Ana García" })
    );
    assert_eq!(
        me(&h, &store_session).await.unwrap()["staff"],
        serde_json::Value::Null
    );

    // Her commands carry her id; the store PIN's and the token's carry none.
    let mut staff = std::mem::replace(&mut h.staff, mpsc::channel(1).1);
    let runtime = tokio::spawn(async move {
        let mut seen = Vec::new();
        for _ in 0..3 {
            let r = staff.recv().await.expect("request");
            seen.push(r.staff.clone());
            let _ = r.reply.send(Ok(StaffAck::default()));
        }
        seen
    });
    for auth in [
        ("cookie", ana_session.clone()),
        ("cookie", store_session.clone()),
        ("authorization", "Bearer scripted-token-0123456789".into()),
    ] {
        let res = h
            .client
            .post(h.url("/api/counter/command"))
            .header(auth.0, &auth.1)
            .json(&serde_json::json!({"counter": "2", "command": {"action": "call_next"}}))
            .send()
            .await
            .expect("command");
        assert_eq!(res.status(), StatusCode::OK);
    }
    let seen = tokio::time::timeout(WAIT, runtime)
        .await
        .expect("runtime done")
        .expect("runtime");
    assert_eq!(seen, [Some("ana".to_owned()), None, None]);

    // A new name shows at once; a new PIN logs her out (the old one opens nothing more).
    let logins = |members: Vec<kiosk::ui::StaffMember>, store_pin: bool| kiosk::ui::StaffLogins {
        store_pin_sha256: store_pin.then(|| Zeroizing::new(kiosk::ui::pin_digest("4321"))),
        members,
    };
    h.state
        .set_staff_logins(logins(vec![ana("Ana García Ruiz", "555555")], true));
    assert_eq!(
        me(&h, &ana_session).await.unwrap()["staff"]["name"],
        "Ana García Ruiz"
    );
    h.state
        .set_staff_logins(logins(vec![ana("Ana García Ruiz", "777777")], true));
    assert_eq!(me(&h, &ana_session).await, Err(StatusCode::UNAUTHORIZED));
    let old_pin = h
        .client
        .post(h.url("/counter/login"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body("pin=555555")
        .send()
        .await
        .expect("login");
    assert_eq!(old_pin.headers()["location"], "/counter?error=pin");
    let ana_again = h.login_with("777777").await;
    assert!(
        me(&h, &store_session).await.is_ok(),
        "the store PIN's session goes on"
    );

    // She leaves the list: logged out. The store-wide PIN removed: its sessions end too.
    h.state.set_staff_logins(logins(Vec::new(), true));
    assert_eq!(me(&h, &ana_again).await, Err(StatusCode::UNAUTHORIZED));
    assert!(me(&h, &store_session).await.is_ok());
    h.state
        .set_staff_logins(logins(vec![ana("Ana", "777777")], false));
    assert_eq!(me(&h, &store_session).await, Err(StatusCode::UNAUTHORIZED));
}

#[tokio::test]
async fn the_lobby_shows_turns_and_counters_but_never_customer_names() {
    let h = start().await;
    let lobby = h
        .client
        .get(h.url("/api/lobby/view"))
        .send()
        .await
        .expect("lobby")
        .text()
        .await
        .expect("body");
    assert!(lobby.contains("A-001") && lobby.contains("Tienda Centro"));
    assert!(!lobby.contains("Ana") && !lobby.contains("spring plan"));
    let mut res = h
        .client
        .get(h.url("/api/lobby/stream"))
        .send()
        .await
        .expect("stream");
    let mut seen = String::new();
    read_until(&mut res, &mut seen, "A-001").await;
    assert!(!seen.contains("Ana"));
}

#[tokio::test]
async fn the_kiosk_screen_is_refused_to_other_machines_but_the_lobby_is_not() {
    let (ch, _inputs, _screen, _board, _staff) = channels();
    let app = router(AppState::new(settings(), ch)).layer(MockConnectInfo(SocketAddr::from((
        [192, 168, 1, 20],
        50000,
    ))));
    let kiosk = app
        .clone()
        .oneshot(
            Request::get("/api/kiosk/view")
                .body(Body::empty())
                .expect("request"),
        )
        .await
        .expect("answer");
    assert_eq!(kiosk.status(), StatusCode::FORBIDDEN);
    let lobby = app
        .oneshot(Request::get("/lobby").body(Body::empty()).expect("request"))
        .await
        .expect("answer");
    assert_eq!(lobby.status(), StatusCode::OK);
}
