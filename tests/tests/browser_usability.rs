//! The usability suite: the kiosk as a customer meets it, in a real browser (headless Chromium
//! through chromedriver) at the Pi display's 800x480, a portrait 1080x1920 and a full-HD
//! 1920x1080. One kiosk (`kiosk demo` with one kiosk) and one browser per size go through every
//! journey: anonymous (with the large-text and high-contrast views on), identified, registration
//! (typed through real key events, a key every 100 ms, and on the on-screen keyboard) and with
//! the printer out of paper. On every screen:
//!
//! - every control is in view without scrolling, uncovered, its label whole, and at least 44x44
//!   CSS px;
//! - axe-core (pinned in `tests/axe`, installed by `scripts/test-setup`) reports no critical or
//!   serious violation; on the counter page, the lobby and the CRM dashboard too;
//!
//! and the lobby's called number stays readable through its flash (contrast >= 4.5:1, measured
//! from the computed styles at every step of the animation). Screenshots of every step are kept
//! under `<target dir>/artifacts/usability-<size>-*`.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "test code: a failed unwrap is the failure message"
)]

use std::path::PathBuf;
use std::time::Duration;

use fantoccini::Locator;
use kiosk::demo::{Demo, DemoOptions};
use kiosk_e2e::browser::{Browser, Viewport, WAIT};
use serde_json::{Value, json};

/// A portrait screen, as kiosks in a stand often have.
const PORTRAIT: Viewport = Viewport {
    width: 1080,
    height: 1920,
};

/// The pause between two keys of a person typing.
const KEY_DELAY: Duration = Duration::from_millis(100);

/// The smallest touch target, in CSS px (WCAG 2.5.5, EN 301 549 for closed functionality).
const MIN_TARGET: f64 = 44.0;

/// The kiosk under test and a client for the simulator panel.
struct Kiosk {
    demo: Demo,
    http: reqwest::Client,
    _dir: tempfile::TempDir,
}

impl Kiosk {
    async fn start() -> Kiosk {
        let dir = tempfile::tempdir().expect("tempdir");
        let demo = kiosk::demo::start(DemoOptions {
            data_dir: dir.path().to_owned(),
            port: 0,
            kiosks: 1,
            browse_point: false,
        })
        .await
        .expect("the demo starts");
        // Created after the demo: its sync worker installs the rustls provider reqwest needs.
        let http = reqwest::Client::new();
        Kiosk {
            demo,
            http,
            _dir: dir,
        }
    }

    fn screen_url(&self) -> String {
        format!("http://{}/", self.demo.kiosk.ui_addr)
    }

    fn staff_url(&self, path: &str) -> String {
        format!("http://{}{path}", self.demo.kiosk.staff_addr)
    }

    async fn panel(&self, path: &str, body: Value) {
        let res = self
            .http
            .post(format!("http://{}{path}", self.demo.panel_addr))
            .json(&body)
            .send()
            .await
            .expect("the panel answers");
        assert!(res.status().is_success(), "panel {path} {body}");
    }

    async fn wait_for_profile(&self, index: usize) {
        let token = crm_endpoint::demo_token(&crm_endpoint::DEMO_CUSTOMERS[index]);
        let deadline = tokio::time::Instant::now() + WAIT;
        while self
            .demo
            .kiosk
            .db
            .profile(&token)
            .expect("profile cache")
            .is_none()
        {
            assert!(
                tokio::time::Instant::now() < deadline,
                "the feed never brought demo customer {index}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Waits until the outbox is empty: everything journaled reached the CRM.
    async fn wait_synced(&self) {
        let deadline = tokio::time::Instant::now() + WAIT;
        loop {
            let stats = self.demo.kiosk.db.journal().stats().expect("stats");
            if stats.pending == 0 {
                return;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "{} events never left the outbox",
                stats.pending
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

/// `tests/axe/node_modules/axe-core/axe.min.js`, installed by `scripts/test-setup`.
fn axe_source() -> String {
    let path =
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("axe/node_modules/axe-core/axe.min.js");
    std::fs::read_to_string(&path).unwrap_or_else(|e| {
        panic!(
            "cannot read {}: {e}; run scripts/test-setup (npm ci in tests/axe installs the pinned axe-core)",
            path.display()
        )
    })
}

/// Every control of the page that is shown: out of view, covered by something else, smaller
/// than 44x44 px; and a page or kiosk screen that scrolls.
const USABILITY_PROBLEMS: &str = r#"
const min = arguments[0];
const vw = window.innerWidth, vh = window.innerHeight;
const de = document.documentElement, app = document.getElementById('app');
const bad = [];
if (de.scrollWidth > vw) bad.push(`page is ${de.scrollWidth}px wide`);
if (de.scrollHeight > vh) bad.push(`page is ${de.scrollHeight}px tall`);
if (app && app.scrollHeight > app.clientHeight + 1) bad.push(`screen scrolls: ${app.scrollHeight}px of content in ${app.clientHeight}px`);
const controls = document.querySelectorAll('button, input, select, textarea, summary, a[href], [role=checkbox], [role=button]');
let n = 0;
for (const c of controls) {
  if (c.getClientRects().length === 0 || getComputedStyle(c).visibility === 'hidden') continue;
  n++;
  const r = c.getBoundingClientRect();
  const label = (c.getAttribute('aria-label') || c.textContent || c.value || '').trim().replace(/\s+/g, ' ').slice(0, 30);
  const name = `${c.tagName.toLowerCase()}${c.id ? '#' + c.id : ''} "${label}"`;
  if (r.width < min || r.height < min) bad.push(`${name} is ${Math.round(r.width)}x${Math.round(r.height)} px`);
  if (c.tagName !== 'INPUT' && c.scrollWidth > c.clientWidth + 1) bad.push(`${name}: label cut (${c.scrollWidth}px in ${c.clientWidth}px)`);
  if (r.left < -0.5 || r.top < -0.5 || r.right > vw + 0.5 || r.bottom > vh + 0.5) {
    bad.push(`${name} is out of view (${Math.round(r.left)},${Math.round(r.top)} to ${Math.round(r.right)},${Math.round(r.bottom)})`);
    continue;
  }
  const hit = document.elementFromPoint((r.left + r.right) / 2, (r.top + r.bottom) / 2);
  if (!(hit && (hit === c || c.contains(hit)))) bad.push(`${name} is covered by ${hit ? hit.outerHTML.slice(0, 60) : 'nothing'}`);
}
if (n === 0) bad.push('no control shown at all');
return bad;
"#;

/// The critical and serious violations axe-core finds on the page (its rule, what it asks, where).
const AXE_RUN: &str = r#"
return axe.run(document, { resultTypes: ['violations'] }).then((r) => r.violations
  .filter((v) => v.impact === 'critical' || v.impact === 'serious')
  .map((v) => `${v.id} (${v.impact}): ${v.help}: ` + v.nodes.slice(0, 4)
    .map((n) => n.target.join(' ') + ' ' + (n.failureSummary || '').replace(/\s+/g, ' ').slice(0, 240)).join(' | ')));
"#;

/// The lowest contrast between the called number (and its counter) and the card behind it,
/// sampled every 50 ms through the flash of a new call, from the computed styles.
const FLASH_CONTRAST: &str = r#"
const card = document.querySelector('#serving .call.new');
if (!card) return { error: 'no new call on the lobby' };
// Start the flash again, paused, so every step of it is measured whatever time it is now.
card.classList.remove('new'); void card.offsetWidth; card.classList.add('new');
const anims = card.getAnimations({ subtree: true });
if (anims.length === 0) return { error: 'the new call does not flash' };
const rgb = (c) => c.match(/[\d.]+/g).map(Number);
const lum = (c) => { const f = (v) => { v /= 255; return v <= 0.03928 ? v / 12.92 : Math.pow((v + 0.055) / 1.055, 2.4); };
  const [r, g, b] = rgb(c); return 0.2126 * f(r) + 0.7152 * f(g) + 0.0722 * f(b); };
const ratio = (a, b) => { const [x, y] = [lum(a), lum(b)].sort((p, q) => q - p); return (x + 0.05) / (y + 0.05); };
const samples = [];
for (let t = 0; t <= 3000; t += 50) {
  for (const a of anims) { a.pause(); a.currentTime = t; }
  const bg = getComputedStyle(card).backgroundColor;
  if (rgb(bg).length > 3 && rgb(bg)[3] < 1) return { error: `the card's background is see-through: ${bg}` };
  for (const sel of ['.label', '.counter']) {
    const fg = getComputedStyle(card.querySelector(sel)).color;
    samples.push({ t, sel, fg, bg, ratio: ratio(fg, bg) });
  }
}
for (const a of anims) a.finish();
const worst = samples.reduce((w, s) => (s.ratio < w.ratio ? s : w));
const backgrounds = new Set(samples.map((s) => s.bg));
return { worst, backgrounds: [...backgrounds], n: samples.length };
"#;

/// One browser on one kiosk at one size: the checks every screen goes through.
struct Probe {
    browser: Browser,
    axe: String,
    size: String,
    n: u32,
}

impl Probe {
    fn new(browser: Browser) -> Self {
        let size = browser.viewport().to_string();
        Probe {
            browser,
            axe: axe_source(),
            size,
            n: 0,
        }
    }

    async fn shot(&mut self, step: &str) {
        self.n += 1;
        self.browser
            .screenshot(&format!("usability-{}-{:02}-{step}", self.size, self.n))
            .await
            .expect("screenshot");
    }

    /// Every control of the kiosk screen in view, uncovered and >= 44 px; the screen does not
    /// scroll.
    async fn assert_usable(&self, what: &str) {
        let problems = self
            .browser
            .eval(USABILITY_PROBLEMS, vec![json!(MIN_TARGET)])
            .await
            .expect("layout probe");
        assert_eq!(
            problems,
            json!([]),
            "{what} at {} is hard to use",
            self.size
        );
    }

    /// axe-core finds nothing critical or serious on the page.
    async fn assert_axe_clean(&self, what: &str) {
        let loaded = self
            .browser
            .eval("return typeof window.axe === 'object';", vec![])
            .await
            .expect("axe probe");
        if loaded != json!(true) {
            // Run as WebDriver script (not inline script), so the page's CSP does not refuse it.
            self.browser
                .eval(&format!("{}\nreturn true;", self.axe), vec![])
                .await
                .expect("axe-core injected");
        }
        let violations = self.browser.eval(AXE_RUN, vec![]).await.expect("axe.run");
        assert_eq!(
            violations,
            json!([]),
            "axe-core: critical or serious violations on {what} at {}",
            self.size
        );
    }

    /// A kiosk screen: screenshot, usable, axe-clean.
    async fn check(&mut self, step: &str, what: &str) {
        self.shot(step).await;
        self.assert_usable(what).await;
        self.assert_axe_clean(what).await;
    }

    async fn value(&self, css: &str) -> String {
        self.browser
            .eval(
                "const e = document.querySelector(arguments[0]); return e ? e.value : null;",
                vec![json!(css)],
            )
            .await
            .expect("field value")
            .as_str()
            .unwrap_or_default()
            .to_owned()
    }

    /// Types `text` into `css` as a person does: one key event at a time, 100 ms apart, into the
    /// same element (a redraw of the form between two keys would make it stale: a failure).
    async fn type_slowly(&self, css: &str, text: &str) {
        let field = self.browser.wait_for(css, WAIT).await.expect(css);
        for ch in text.chars() {
            field
                .send_keys(&ch.to_string())
                .await
                .unwrap_or_else(|e| panic!("typing {ch:?} into {css} at {}: {e}", self.size));
            tokio::time::sleep(KEY_DELAY).await;
        }
    }

    /// Taps the on-screen keys `keys` (their `data-key` or `data-key-fn`).
    async fn tap_keys(&self, keys: &[&str]) {
        for k in keys {
            let css = if k.chars().count() == 1 || k.starts_with('.') {
                format!(".key[data-key='{k}']")
            } else {
                format!(".key[data-key-fn='{k}']")
            };
            self.browser.click(&css).await.expect(&css);
        }
    }
}

async fn usability_at(viewport: Viewport) {
    let kiosk = Kiosk::start().await;
    let browser = Browser::launch(viewport)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let mut p = Probe::new(browser);
    let b = &p.browser;
    b.goto(&kiosk.screen_url()).await.expect("kiosk screen");
    b.wait_for_screen("attract").await.expect("attract");
    p.check("attract", "the attract screen").await;

    // ---- the large-text and high-contrast views, kept through an anonymous journey ------------
    let b = &p.browser;
    b.click("[data-testid=large-text]")
        .await
        .expect("large text");
    b.click("[data-testid=contrast]")
        .await
        .expect("high contrast");
    b.wait_until(
        "both views on",
        "document.body.classList.contains('large-text') && document.body.classList.contains('high-contrast') && document.querySelector('[data-testid=contrast]').getAttribute('aria-pressed') === 'true'",
        WAIT,
    )
    .await
    .expect("the views switch on");
    let sizes = b
        .eval(
            "return [parseFloat(getComputedStyle(document.querySelector('#app h1')).fontSize), getComputedStyle(document.body).backgroundColor];",
            vec![],
        )
        .await
        .expect("styles");
    assert_eq!(sizes[1], json!("rgb(0, 0, 0)"), "high contrast is black");
    p.check(
        "attract-large-contrast",
        "the attract screen in large text and high contrast",
    )
    .await;
    let b = &p.browser;
    b.click("[data-action=start]").await.expect("start");
    b.wait_for_screen("choose_service").await.expect("services");
    p.check(
        "services-large-contrast",
        "the services in large text and high contrast",
    )
    .await;
    let b = &p.browser;
    b.click(".service:nth-child(2) [data-action=choose_service]")
        .await
        .expect("service B");
    b.wait_for_screen("goodbye").await.expect("goodbye");
    let about = b
        .wait_for_text("[data-testid=turn-about]", "·", WAIT)
        .await
        .expect("turn text");
    assert!(
        about.starts_with("Atención al cliente · ") && about.contains("Es el siguiente"),
        "the service, who is ahead and the wait, apart: {about:?}"
    );
    b.wait_for_text("#app", "Recoja su ticket", WAIT)
        .await
        .expect("printed");
    // The ticket says what the screen says.
    let printed = kiosk
        .demo
        .kiosk
        .sims
        .printer
        .as_ref()
        .expect("simulated printer")
        .record()
        .text();
    assert!(
        printed.contains("Es el siguiente") && printed.contains("Atención al cliente"),
        "the ticket: {printed}"
    );
    p.check(
        "goodbye-large-contrast",
        "the goodbye in large text and high contrast",
    )
    .await;
    let b = &p.browser;
    b.click("[data-action=done]").await.expect("finish");
    b.wait_for_screen("attract").await.expect("attract");
    b.wait_until(
        "the views back to normal for the next customer",
        "!document.body.classList.contains('large-text') && !document.body.classList.contains('high-contrast') && document.querySelector('[data-testid=large-text]').getAttribute('aria-pressed') === 'false'",
        WAIT,
    )
    .await
    .expect("views reset at attract");

    // ---- an identified customer, switching language on the goodbye --------------------------
    kiosk.wait_for_profile(0).await;
    kiosk
        .panel("/api/card", json!({"action": "customer", "index": 0}))
        .await;
    b.wait_for_screen("greeting").await.expect("greeting");
    b.wait_for_text("#app h1", "Hola, Ana", WAIT)
        .await
        .expect("greeted");
    kiosk.panel("/api/card", json!({"action": "remove"})).await;
    p.check("greeting", "the greeting").await;
    let b = &p.browser;
    b.click("[data-action=continue]").await.expect("continue");
    b.wait_for_screen("choose_service").await.expect("services");
    p.check("services", "the services").await;
    let b = &p.browser;
    b.click("[data-action=choose_service]").await.expect("A");
    b.wait_for_screen("goodbye").await.expect("goodbye");
    b.wait_for_text("#app", "Su cupón", WAIT)
        .await
        .expect("coupon");
    p.check("goodbye-coupon", "the goodbye with a coupon").await;
    let b = &p.browser;
    b.click("[data-testid=lang]").await.expect("to English");
    let about = b
        .wait_for_text("[data-testid=turn-about]", "Cashier · ", WAIT)
        .await
        .expect("the service name follows the language");
    assert!(
        about.contains("ahead of you") || about.contains("You are next"),
        "{about}"
    );
    p.check("goodbye-english", "the English goodbye").await;
    let b = &p.browser;
    b.click("[data-action=done]").await.expect("finish");
    b.wait_for_screen("attract").await.expect("attract");
    b.wait_until(
        "Spanish again",
        "document.documentElement.lang === 'es'",
        WAIT,
    )
    .await
    .expect("Spanish at attract");

    registration(&kiosk, &mut p).await;
    printer_out(&kiosk, &mut p).await;
    staff_pages(&kiosk, &mut p).await;

    p.browser.close().await.expect("the browser closes");
    kiosk.demo.stop().await;
}

/// An unknown card registers: the on-screen keyboard's capitals, then a person typing on a
/// physical keyboard, errors beside their field, and the CRM gets exactly what was typed.
async fn registration(kiosk: &Kiosk, p: &mut Probe) {
    const NAME: &str = "Lucía Martín-Núñez";
    const EMAIL: &str = "lucia.mn@example.es";
    const PHONE: &str = "+34 600 123 456";
    let b = &p.browser;
    kiosk.panel("/api/card", json!({"action": "unknown"})).await;
    b.wait_for_screen("offer_registration")
        .await
        .expect("offer");
    kiosk.panel("/api/card", json!({"action": "remove"})).await;
    p.check("offer", "the registration offer").await;
    let b = &p.browser;
    b.click("[data-action=register]").await.expect("register");
    b.wait_for_screen("registering").await.expect("form");
    b.wait_for("#f-name", WAIT).await.expect("name field");
    p.check("reg-name", "the name step with its keyboard").await;

    // The on-screen keyboard: a capital at the start of each word, shift overrides it.
    p.tap_keys(&[
        "m", "a", "r", "space", "r", "u", "i", "z", "space", "shift", "d", "e",
    ])
    .await;
    assert_eq!(
        p.value("#f-name").await,
        "Mar Ruiz de",
        "auto capitals, shift overrides"
    );
    p.tap_keys(&["space", "caps", "ñ", "ú", "caps", "del", "del"])
        .await;
    assert_eq!(
        p.value("#f-name").await,
        "Mar Ruiz de ",
        "caps lock and delete"
    );
    p.shot("reg-name-on-screen-keys").await;
    let b = &p.browser;
    // Clear it as a person would: select all, delete (real key events).
    let field = b.wait_for("#f-name", WAIT).await.expect("name");
    field
        .send_keys("\u{E009}a\u{E000}\u{E003}")
        .await
        .expect("select all and delete");
    assert_eq!(p.value("#f-name").await, "");

    // A physical keyboard: every character arrives, capitals and accents as typed.
    p.type_slowly("#f-name", NAME).await;
    assert_eq!(p.value("#f-name").await, NAME, "the name as typed");
    p.type_slowly("#f-name", "\u{E007}").await; // Enter: next step
    b.wait_for("#f-email", WAIT).await.expect("email step");
    p.check("reg-email", "the email step with its keyboard")
        .await;
    // Large text on the busiest screen: still every key in view and >= 44 px, nothing typed lost.
    let b = &p.browser;
    b.click("[data-testid=large-text]")
        .await
        .expect("large text");
    b.wait_until(
        "large text",
        "document.body.classList.contains('large-text')",
        WAIT,
    )
    .await
    .expect("large text on");
    p.shot("reg-email-large-text").await;
    p.assert_usable("the email step in large text").await;
    let b = &p.browser;
    b.click("[data-step=name]").await.expect("back to the name");
    assert_eq!(p.value("#f-name").await, NAME, "the name kept");
    p.assert_usable("the name step in large text").await;
    let b = &p.browser;
    b.click("[data-testid=large-text]")
        .await
        .expect("normal text");
    b.click("[data-step=email]").await.expect("the email step");
    b.wait_until(
        "normal text",
        "!document.body.classList.contains('large-text')",
        WAIT,
    )
    .await
    .expect("large text off");
    p.type_slowly("#f-email", EMAIL).await;
    assert_eq!(p.value("#f-email").await, EMAIL, "the email as typed");
    p.type_slowly("#f-email", "\u{E007}").await;
    let b = &p.browser;
    b.wait_for("#f-phone", WAIT).await.expect("phone step");
    p.check("reg-phone", "the phone step with its number pad")
        .await;
    // Too short a phone first: its error comes back beside the phone field.
    p.type_slowly("#f-phone", "+34").await;
    let b = &p.browser;
    b.click("[data-step=consents]").await.expect("permissions");
    b.wait_for("[data-purpose=profile]", WAIT)
        .await
        .expect("consents");
    p.check("reg-consents", "the permissions step").await;
    let b = &p.browser;
    b.click("[data-action=submit_registration]")
        .await
        .expect("submit");
    b.wait_for("#msg-phone.error", WAIT)
        .await
        .expect("the phone error on the phone step");
    assert_error_beside(p, "#f-phone", "#msg-phone", "teléfono").await;
    p.check("reg-phone-error", "the phone step with its error")
        .await;

    p.type_slowly("#f-phone", &PHONE[3..]).await;
    assert_eq!(p.value("#f-phone").await, PHONE, "the phone as typed");
    let b = &p.browser;
    b.wait_until(
        "the error gone once the phone is corrected",
        "document.getElementById('msg-phone').hidden",
        WAIT,
    )
    .await
    .expect("error cleared");
    p.type_slowly("#f-phone", "\u{E007}").await;
    let b = &p.browser;
    b.wait_for("[data-purpose=profile]", WAIT)
        .await
        .expect("consents");
    // No profile consent: the error beside the boxes, in view.
    b.click("[data-action=submit_registration]")
        .await
        .expect("submit");
    b.wait_for("#msg-consents.error", WAIT)
        .await
        .expect("the consent error");
    assert_error_beside(
        p,
        ".consent:last-child",
        "#msg-consents",
        "guardar mi perfil",
    )
    .await;
    p.check("reg-consent-error", "the permissions with their error")
        .await;

    let b = &p.browser;
    for purpose in ["profile", "marketing_email", "marketing_sms", "turn_sms"] {
        b.click(&format!("[data-purpose={purpose}]"))
            .await
            .expect(purpose);
    }
    let checked = b
        .eval(
            "return [...document.querySelectorAll('[role=checkbox]')].map((c) => c.getAttribute('aria-checked'));",
            vec![],
        )
        .await
        .expect("boxes");
    assert_eq!(checked, json!(["true", "true", "true", "true"]));
    // The values the form holds survived every step.
    b.click("[data-step=name]").await.expect("back to the name");
    assert_eq!(p.value("#f-name").await, NAME);
    b.click("[data-step=consents]").await.expect("permissions");
    b.click("[data-action=submit_registration]")
        .await
        .expect("submit");
    b.wait_for_screen("greeting").await.expect("greeting");
    b.wait_for_text("#app h1", &format!("Hola, {NAME}"), WAIT)
        .await
        .expect("greeted by the name as typed");
    p.check("reg-greeted", "the greeting of the new customer")
        .await;
    let b = &p.browser;
    b.click("[data-action=cancel]").await.expect("cancel");
    b.wait_for_screen("attract").await.expect("attract");

    kiosk.wait_synced().await;
    let token: String = kiosk
        .demo
        .kiosk
        .db
        .journal()
        .sql()
        .query_row(
            "SELECT card_token FROM events WHERE type = 'customer_registered'",
            [],
            |r| r.get(0),
        )
        .expect("the registration was journaled");
    let customer = kiosk
        .demo
        .crm
        .customer(kiosk_protocol::CardToken::try_from(token).expect("token"))
        .await
        .expect("crm")
        .expect("the CRM has the customer");
    assert_eq!(customer.display_name.as_deref(), Some(NAME));
    assert_eq!(customer.email.as_deref(), Some(EMAIL));
    assert_eq!(customer.phone.as_deref(), Some(PHONE));
    let mut given: Vec<&str> = customer
        .consents
        .iter()
        .filter(|c| c.given)
        .map(|c| c.purpose.as_str())
        .collect();
    given.sort_unstable();
    assert_eq!(
        given,
        ["marketing_email", "marketing_sms", "profile", "turn_sms"],
        "every permission ticked reaches the CRM, the turn notices by SMS among them"
    );
}

/// The error `msg` is shown right under `field` (within 80 px), inside the window, names the
/// problem (`says`), and is what the field's description points at.
async fn assert_error_beside(p: &Probe, field: &str, msg: &str, says: &str) {
    let geometry = p
        .browser
        .eval(
            r#"const f = document.querySelector(arguments[0]).getBoundingClientRect();
               const m = document.querySelector(arguments[1]);
               const r = m.getBoundingClientRect();
               return { gap: r.top - f.bottom, top: r.top, bottom: r.bottom, vh: window.innerHeight,
                        text: m.textContent, role: m.getAttribute('role') };"#,
            vec![json!(field), json!(msg)],
        )
        .await
        .expect("error geometry");
    let gap = geometry["gap"].as_f64().unwrap();
    assert!(
        (-1.0..=80.0).contains(&gap),
        "{msg} is {gap} px from {field} at {}: {geometry}",
        p.size
    );
    assert!(
        geometry["top"].as_f64().unwrap() >= 0.0
            && geometry["bottom"].as_f64().unwrap() <= geometry["vh"].as_f64().unwrap(),
        "{msg} is out of view at {}: {geometry}",
        p.size
    );
    assert!(
        geometry["text"].as_str().unwrap().contains(says),
        "{msg}: {geometry}"
    );
    assert_eq!(geometry["role"], "alert", "{msg} is announced");
}

/// The paper runs out: the screens say so without covering a button, "finish" stays in view.
async fn printer_out(kiosk: &Kiosk, p: &mut Probe) {
    kiosk
        .panel("/api/printer", json!({"paper_out": true}))
        .await;
    let b = &p.browser;
    b.wait_for_text("#printer", "Impresora sin servicio", WAIT)
        .await
        .expect("printer warning");
    p.check(
        "attract-printer-out",
        "the attract screen with the printer out",
    )
    .await;
    let b = &p.browser;
    b.click("[data-action=start]").await.expect("start");
    b.wait_for_screen("choose_service").await.expect("services");
    b.click("[data-action=choose_service]").await.expect("A");
    b.wait_for_screen("goodbye").await.expect("goodbye");
    b.wait_for(".qr svg", WAIT).await.expect("QR on screen");
    p.check(
        "goodbye-printer-out",
        "the unprinted goodbye with the printer notice",
    )
    .await;
    let b = &p.browser;
    b.click("[data-action=done]").await.expect("finish");
    b.wait_for_screen("attract").await.expect("attract");
    kiosk
        .panel("/api/printer", json!({"paper_out": false}))
        .await;
    b.wait_until(
        "the printer back",
        "document.getElementById('printer').hidden",
        WAIT,
    )
    .await
    .expect("printer back");
}

/// The lobby (and its flash), the counter page, and at full HD the CRM dashboard.
async fn staff_pages(kiosk: &Kiosk, p: &mut Probe) {
    let b = &p.browser;
    let kiosk_window = b.client().window().await.expect("window");
    b.open_window().await.expect("lobby window");
    b.goto(&kiosk.staff_url("/lobby")).await.expect("lobby");
    b.wait_for("#store", WAIT).await.expect("lobby page");
    let lobby_window = b.client().window().await.expect("window");

    b.open_window().await.expect("counter window");
    b.goto(&kiosk.staff_url("/counter")).await.expect("counter");
    b.wait_for("#pin", WAIT).await.expect("PIN form");
    p.assert_axe_clean("the counter login").await;
    let b = &p.browser;
    // A staff member's own PIN: her name shows in the header, which must fit and pass axe too.
    let (_, staff_name, staff_pin) = kiosk::demo::DEMO_STAFF[1];
    b.type_into("#pin", staff_pin).await.expect("PIN");
    b.click("button[type=submit]").await.expect("log in");
    b.wait_for_text("#staff-name", staff_name, WAIT)
        .await
        .expect("the member's name");
    b.wait_until(
        "turns waiting on the counter board",
        "!!document.getElementById('call-any') && !document.getElementById('call-any').disabled",
        WAIT,
    )
    .await
    .expect("counter board");
    p.shot("counter").await;
    p.assert_axe_clean("the counter page").await;
    let b = &p.browser;
    b.click("#call-any").await.expect("call next");
    b.wait_for("#current .turn", WAIT).await.expect("serving");
    // Why "call next" is disabled now, in words on the page.
    b.wait_until(
        "call next disabled with its reason shown",
        "document.getElementById('call-any').disabled && document.getElementById('call-any-why').offsetParent !== null && document.getElementById('call-any-why').textContent.length > 10",
        WAIT,
    )
    .await
    .expect("the reason a button is disabled");
    p.shot("counter-serving").await;
    p.assert_axe_clean("the counter page serving a turn").await;

    let b = &p.browser;
    b.switch_to(lobby_window).await.expect("lobby");
    b.wait_for("#serving .call.new", WAIT)
        .await
        .expect("the new call");
    let counter = b.text("#serving .call .counter").await.expect("counter");
    assert_eq!(counter.trim(), "mostrador 1", "words, not an arrow");
    p.shot("lobby").await;
    p.assert_axe_clean("the lobby").await;
    let flash = p
        .browser
        .eval(FLASH_CONTRAST, vec![])
        .await
        .expect("flash probe");
    assert!(flash.get("error").is_none(), "{flash}");
    assert!(
        flash["backgrounds"].as_array().unwrap().len() >= 2,
        "the call flashes: {flash}"
    );
    let worst = flash["worst"]["ratio"].as_f64().unwrap();
    assert!(
        worst >= 4.5,
        "the called number is hard to read during its flash (contrast {worst:.2}:1) at {}: {flash}",
        p.size
    );

    if p.browser.viewport() == Viewport::FULL_HD {
        dashboard(kiosk, p).await;
    }
    p.browser.switch_to(kiosk_window).await.expect("kiosk");
}

async fn dashboard(kiosk: &Kiosk, p: &mut Probe) {
    let b = &p.browser;
    b.open_window().await.expect("dashboard window");
    b.goto(&format!("http://{}/dashboard", kiosk.demo.crm_addr))
        .await
        .expect("dashboard");
    b.wait_for("#user", WAIT).await.expect("login form");
    p.assert_axe_clean("the dashboard login").await;
    let b = &p.browser;
    let manager = kiosk
        .demo
        .accounts
        .iter()
        .find(|a| a.name == "tienda")
        .expect("the demo's store manager");
    b.log_in_dashboard(&manager.name, &manager.password)
        .await
        .expect("log in");
    b.wait_until(
        "the dashboard live with the kiosk's tickets",
        "document.getElementById('live').dataset.state === 'live' && document.getElementById('kpi-tickets').textContent.trim() !== '–'",
        WAIT,
    )
    .await
    .expect("dashboard");
    // Its charts draw after the figures arrive.
    let b = &p.browser;
    b.client()
        .find(Locator::Css("#chart-tickets svg"))
        .await
        .ok();
    p.shot("dashboard").await;
    p.assert_axe_clean("the CRM dashboard").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_journey_is_usable_and_accessible_on_the_pi_display() {
    usability_at(Viewport::PI_DISPLAY).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_journey_is_usable_and_accessible_on_a_portrait_screen() {
    usability_at(PORTRAIT).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_journey_is_usable_and_accessible_on_a_full_hd_screen() {
    usability_at(Viewport::FULL_HD).await;
}
