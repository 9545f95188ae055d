//! The customer's turn page in a headless phone-sized browser (360x640): a turn followed from
//! issue to call to survey as the customer sees it, live, with every control in view and at
//! least 44 px, axe-core clean at each step, screenshots saved. The store's kiosk is played by
//! signed batches to the real endpoint, as the kiosk's sync client sends them; the ticket's
//! link is signed with the key the kiosks derive from the tenant key (`runtime::TURN_KEY_LABEL`,
//! pinned equal to the endpoint's here).

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "test code: a failed unwrap is the failure message"
)]

use std::time::Duration;

use crm_endpoint::db::StoreRecord;
use kiosk_drivers::scanner::code::{TurnTicket, sign_turn};
use kiosk_e2e::browser::{Browser, Viewport, WAIT};
use kiosk_protocol::auth::sign_request;
use kiosk_protocol::events::{Envelope, Event, TicketIssued, TurnCalled, TurnServed};
use kiosk_protocol::wire::{BatchRequest, EnrollRequest, EnrollResponse, KioskClock, batches_path};
use time::OffsetDateTime;
use uuid::Uuid;

const PHONE: Viewport = Viewport {
    width: 360,
    height: 640,
};
const MIN_TARGET: f64 = 44.0;

/// An endpoint on loopback with one store and one enrolled kiosk.
struct Store {
    base: String,
    http: reqwest::Client,
    kiosk: EnrollResponse,
    boot: Uuid,
    seq: u64,
    _stop: tokio::sync::oneshot::Sender<()>,
}

impl Store {
    async fn start() -> Store {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let db = crm_endpoint::db::open("sqlite::memory:").await.unwrap();
        db.upsert_store(StoreRecord {
            id: "centro".into(),
            name: "Tienda Centro".into(),
        })
        .await
        .unwrap();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let config = crm_endpoint::ServeConfig {
            db: db.clone(),
            admin_token: None,
            tls: None,
        };
        tokio::spawn(crm_endpoint::serve(config, listener, async {
            let _ = stopped.await;
        }));
        let code = crm_endpoint::api::issue_enroll_code(&db, "centro", Duration::from_secs(60))
            .await
            .unwrap()
            .0;
        let http = reqwest::Client::new();
        let kiosk: EnrollResponse = http
            .post(format!("{base}/v1/enroll"))
            .json(&EnrollRequest {
                code,
                hardware_profile: "simulated".into(),
                firmware_version: "0.1.0".into(),
            })
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        Store {
            base,
            http,
            kiosk,
            boot: Uuid::now_v7(),
            seq: 0,
            _stop: stop,
        }
    }

    /// Sends `event` as the kiosk's sync client does.
    async fn send(&mut self, event: Event) {
        self.seq += 1;
        let env = Envelope {
            id: Uuid::now_v7(),
            kiosk_id: self.kiosk.kiosk_id.clone(),
            seq: self.seq,
            boot_id: self.boot,
            wall_time: OffsetDateTime::now_utc(),
            mono_ms: self.seq * 10,
            schema_version: 1,
            event,
        };
        let batch = BatchRequest::new(
            &self.kiosk.kiosk_id,
            KioskClock::now(self.boot, self.seq * 10),
            vec![env],
        )
        .unwrap();
        let body = serde_json::to_vec(&batch).unwrap();
        let path = batches_path(&self.kiosk.kiosk_id);
        let now = OffsetDateTime::now_utc().unix_timestamp();
        let headers = sign_request(
            &self.kiosk.kiosk_id,
            &self.kiosk.device_secret,
            "POST",
            &path,
            &body,
            now,
        );
        let mut req = self
            .http
            .post(format!("{}{path}", self.base))
            .header("content-type", "application/json")
            .body(body);
        for (k, v) in headers.pairs() {
            req = req.header(k, v);
        }
        assert_eq!(req.send().await.unwrap().status(), 200);
    }

    /// The ticket's link, signed as the kiosk signs it.
    fn link(&self, label: &str, turn_id: Uuid) -> String {
        assert_eq!(
            kiosk::runtime::TURN_KEY_LABEL,
            crm_endpoint::phone::TURN_KEY_LABEL
        );
        let key = crm_endpoint::phone::turn_key(&self.kiosk.tenant_key).unwrap();
        let token = sign_turn(
            &TurnTicket {
                store_id: "centro".into(),
                kiosk_id: self.kiosk.kiosk_id.clone(),
                business_day: OffsetDateTime::now_utc().date(),
                turn: label.into(),
                turn_id,
            },
            &key,
        )
        .unwrap();
        format!("{}/t/{token}", self.base)
    }
}

fn issued(id: Uuid, n: u32) -> Event {
    Event::TicketIssued(TicketIssued {
        turn_id: id,
        turn: format!("A-{n:03}"),
        service: "A".into(),
        number: n,
        business_day: OffsetDateTime::now_utc().date().to_string(),
        priority: false,
        position: n,
        estimated_wait_s: 0,
        card_token: None,
        locale: "es".into(),
        campaign_id: None,
        out_of_sequence: false,
    })
}

fn called(id: Uuid, n: u32) -> Event {
    Event::TurnCalled(TurnCalled {
        staff: None,
        turn_id: id,
        turn: format!("A-{n:03}"),
        counter: "3".into(),
        recall: false,
        waited_s: 60,
    })
}

struct Phone {
    browser: Browser,
    n: u32,
}

impl Phone {
    async fn check(&mut self, step: &str) {
        self.n += 1;
        self.browser
            .screenshot(&format!("turn-page-{}-{:02}-{step}", PHONE, self.n))
            .await
            .expect("screenshot");
        let problems = self
            .browser
            .usability_problems(MIN_TARGET)
            .await
            .expect("layout probe");
        assert_eq!(
            problems,
            Vec::<String>::new(),
            "the turn page at {step} is hard to use"
        );
        let violations = self.browser.axe_violations().await.expect("axe.run");
        assert_eq!(
            violations,
            Vec::<String>::new(),
            "axe-core on the turn page at {step}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_phone_follows_its_turn_from_issue_to_call_to_survey() {
    let mut store = Store::start().await;
    let (first, mine) = (Uuid::now_v7(), Uuid::now_v7());
    store.send(issued(first, 1)).await;
    store.send(issued(mine, 2)).await;
    let browser = Browser::launch(PHONE).await.expect("chromium starts");
    let mut phone = Phone { browser, n: 0 };
    let link = store.link("A-002", mine);
    // Headless Chromium asks for English (Accept-Language en-US): Spanish through the switch's link.
    phone
        .browser
        .goto(&format!("{link}?lang=es"))
        .await
        .unwrap();
    phone
        .browser
        .wait_for_text("#status", "Hay 1 turno antes que usted.", WAIT)
        .await
        .unwrap();
    assert!(phone.browser.text("h1").await.unwrap().contains("A-002"));
    phone.check("waiting-es").await;

    // The language switch, then live updates without reloading.
    phone.browser.click("a[hreflang=en]").await.unwrap();
    phone
        .browser
        .wait_for_text("#status", "There is 1 turn ahead of you.", WAIT)
        .await
        .unwrap();
    phone.check("waiting-en").await;
    // The opt-in for notices is offered while the turn is ahead (Chromium has Web Push).
    phone
        .browser
        .wait_until(
            "the notify button shown",
            "(() => { const b = document.getElementById('push'); return !!b && !b.hidden; })()",
            WAIT,
        )
        .await
        .unwrap();
    store.send(called(first, 1)).await;
    phone
        .browser
        .wait_for_text("#status", "You are next.", WAIT)
        .await
        .unwrap();
    store.send(called(mine, 2)).await;
    phone
        .browser
        .wait_for_text("#status", "It’s your turn: counter 3", WAIT)
        .await
        .unwrap();
    phone.check("called").await;

    store
        .send(Event::TurnServed(TurnServed {
            staff: None,
            turn_id: mine,
            counter: "3".into(),
            service_s: 90,
        }))
        .await;
    phone
        .browser
        .wait_for(".scores button[value='9']", WAIT)
        .await
        .unwrap();
    // Served: nothing left to be notified of, so the button is gone.
    phone
        .browser
        .wait_until(
            "the notify button gone once served",
            "document.getElementById('push') === null",
            WAIT,
        )
        .await
        .unwrap();
    phone.check("survey").await;
    phone
        .browser
        .click(".scores button[value='9']")
        .await
        .unwrap();
    phone
        .browser
        .wait_for_text(".thanks", "Thank you for your answer.", WAIT)
        .await
        .unwrap();
    phone.check("thanks").await;
    phone.browser.close().await.unwrap();
}
