//! Accessible mode in a real browser (headless Chromium) on the kiosk as `kiosk demo` runs it,
//! at the official Pi display's 800x480, operated by the simulated USB keypad alone: the start
//! key held to turn it on, arrows and Enter through a whole anonymous journey in Spanish and then
//! in English, the focus visibly marked and in view at each step. What the kiosk said is read
//! back from the simulated speech output: the real espeak-ng's WAV files (measured with sox:
//! duration, not silence) and its spoken-text log. A lobby call is spoken once, with its counter.
//! Screenshots of every step go to `<target dir>/artifacts/`.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "test code: a failed unwrap is the failure message"
)]

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use kiosk::demo::{DEMO_PIN, Demo, DemoOptions};
use kiosk_drivers::keypad::{KeypadSim, codes};
use kiosk_e2e::browser::{Browser, Viewport, WAIT};
use serde_json::{Value, json};

/// Speech plays in real time: a screen's text takes seconds before the focus is said.
const SPEECH_WAIT: Duration = Duration::from_secs(90);

/// One line of a simulated output's `spoken.log`.
#[derive(Debug, Clone)]
struct Said {
    n: String,
    class: String,
    lang: String,
    text: String,
}

/// A simulated speech output's directory.
struct Output(PathBuf);

impl Output {
    fn lines(&self) -> Vec<Said> {
        std::fs::read_to_string(self.0.join("spoken.log"))
            .unwrap_or_default()
            .lines()
            .filter_map(|l| {
                let f: Vec<&str> = l.split('\t').collect();
                (f.len() == 4).then(|| Said {
                    n: f[0].into(),
                    class: f[1].into(),
                    lang: f[2].into(),
                    text: f[3].into(),
                })
            })
            .collect()
    }

    /// Waits for a line after the first `after` lines that matches.
    async fn wait_said(&self, what: &str, after: usize, ok: impl Fn(&Said) -> bool) -> Said {
        self.wait_said_within(SPEECH_WAIT, what, after, ok).await
    }

    /// [`Output::wait_said`] with its own bound.
    async fn wait_said_within(
        &self,
        bound: Duration,
        what: &str,
        after: usize,
        ok: impl Fn(&Said) -> bool,
    ) -> Said {
        let deadline = tokio::time::Instant::now() + bound;
        loop {
            let lines = self.lines();
            if let Some(s) = lines.iter().skip(after).find(|s| ok(s)) {
                return s.clone();
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "the kiosk never said {what}; it said:\n{}",
                lines
                    .iter()
                    .map(|s| format!("{} {} {} {}", s.n, s.class, s.lang, s.text))
                    .collect::<Vec<_>>()
                    .join("\n")
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    fn wav(&self, n: &str) -> PathBuf {
        std::fs::read_dir(&self.0)
            .unwrap()
            .map(|e| e.unwrap().path())
            .find(|p| {
                let name = p.file_name().unwrap().to_string_lossy().into_owned();
                name.starts_with(&format!("{n}-")) && name.ends_with(".wav")
            })
            .unwrap_or_else(|| panic!("no wav {n} in {}", self.0.display()))
    }
}

/// Duration (s) and RMS amplitude of a WAV file, as sox measures them.
fn sox_measure(wav: &Path) -> (f64, f64) {
    let info = Command::new("sox")
        .args(["--i", "-D"])
        .arg(wav)
        .output()
        .expect("sox runs (Debian package sox)");
    assert!(info.status.success(), "sox --i {}: {info:?}", wav.display());
    let secs: f64 = String::from_utf8_lossy(&info.stdout)
        .trim()
        .parse()
        .unwrap();
    let stat = Command::new("sox")
        .arg(wav)
        .args(["-n", "stat"])
        .output()
        .expect("sox stat");
    let text = String::from_utf8_lossy(&stat.stderr).into_owned();
    let rms = text
        .lines()
        .find(|l| l.starts_with("RMS     amplitude"))
        .and_then(|l| l.rsplit(':').next())
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("no RMS amplitude in sox stat: {text}"));
    (secs, rms)
}

struct Shots<'a> {
    browser: &'a Browser,
    n: u32,
}

impl Shots<'_> {
    async fn take(&mut self, step: &str) {
        self.n += 1;
        self.browser
            .screenshot(&format!(
                "accessible-{}-{:02}-{step}",
                self.browser.viewport(),
                self.n
            ))
            .await
            .expect("screenshot");
    }
}

async fn tap(sim: &KeypadSim, code: u16) {
    let sim = sim.clone();
    tokio::task::spawn_blocking(move || sim.tap(code))
        .await
        .unwrap()
        .expect("key tapped");
}

async fn hold_start_key(sim: &KeypadSim) {
    let sim = sim.clone();
    tokio::task::spawn_blocking(move || sim.hold(codes::KP5, Duration::from_millis(2_300)))
        .await
        .unwrap()
        .expect("start key held");
}

/// The focused control: marked, outlined, inside the window; returns its label.
const FOCUS_PROBE: &str = r#"
const el = document.activeElement;
if (!el || el === document.body) return { problem: 'nothing has the focus' };
const r = el.getBoundingClientRect(), s = getComputedStyle(el);
const hit = document.elementFromPoint((r.left + r.right) / 2, (r.top + r.bottom) / 2);
return {
  label: el.textContent.trim(),
  marked: el.classList.contains('a11y-focus'),
  outline: parseFloat(s.outlineWidth) || 0,
  outlineStyle: s.outlineStyle,
  inView: r.top >= 0 && r.left >= 0 && r.bottom <= window.innerHeight && r.right <= window.innerWidth,
  onTop: !!hit && (el === hit || el.contains(hit)),
};
"#;

async fn assert_focus_shown(browser: &Browser, expect: &str) {
    let mut last = Value::Null;
    for _ in 0..100 {
        last = browser
            .eval(FOCUS_PROBE, vec![])
            .await
            .expect("focus probe");
        if last["label"].as_str().is_some_and(|l| l.contains(expect)) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(
        last["label"].as_str().is_some_and(|l| l.contains(expect)),
        "focus on {expect:?}: {last}"
    );
    assert_eq!(last["marked"], json!(true), "focus marked: {last}");
    assert!(
        last["outline"].as_f64().unwrap_or(0.0) >= 3.0 && last["outlineStyle"] != json!("none"),
        "a visible outline: {last}"
    );
    assert_eq!(last["inView"], json!(true), "in view at 800x480: {last}");
    assert_eq!(last["onTop"], json!(true), "not covered: {last}");
}

/// Logs in at the counter page and calls the next turn at counter `counter`; returns its label.
async fn call_next(demo: &Demo, counter: &str) -> String {
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let base = format!("http://{}", demo.kiosk.staff_addr);
    let login = http
        .post(format!("{base}/counter/login"))
        .header(
            reqwest::header::CONTENT_TYPE,
            "application/x-www-form-urlencoded",
        )
        .body(format!("pin={DEMO_PIN}"))
        .send()
        .await
        .expect("login");
    let cookie = login
        .headers()
        .get(reqwest::header::SET_COOKIE)
        .expect("a session cookie")
        .to_str()
        .unwrap()
        .split(';')
        .next()
        .unwrap()
        .to_owned();
    let answer: Value = http
        .post(format!("{base}/api/counter/command"))
        .header(reqwest::header::COOKIE, cookie)
        .json(&json!({ "counter": counter, "command": { "action": "call_next", "services": [] } }))
        .send()
        .await
        .expect("call next")
        .json()
        .await
        .expect("an answer");
    answer["label"]
        .as_str()
        .expect("a turn was called")
        .to_owned()
}

/// "A-007" as the page hands it to the speech: "A 7".
fn spoken_label(label: &str) -> String {
    let (prefix, n) = label.rsplit_once('-').unwrap();
    format!("{prefix} {}", n.trim_start_matches('0'))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_blind_customer_takes_a_turn_by_keypad_alone_and_hears_every_screen_in_spanish_and_english()
 {
    let dir = tempfile::tempdir().expect("tempdir");
    let demo = kiosk::demo::start(DemoOptions {
        data_dir: dir.path().to_owned(),
        port: 0,
        kiosks: 1,
        browse_point: false,
    })
    .await
    .expect("the demo starts");
    let keypad = demo.kiosk.sims.keypad.clone().expect("simulated keypad");
    let speech_dir = demo
        .kiosk
        .sims
        .speech_dir
        .clone()
        .expect("simulated speech");
    let customer = Output(speech_dir.join("customer"));
    let calls = Output(speech_dir.join("calls"));
    let browser = Browser::launch(Viewport::PI_DISPLAY)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    browser
        .goto(&format!("http://{}/", demo.kiosk.ui_addr))
        .await
        .expect("kiosk screen");
    browser.wait_for_screen("attract").await.expect("attract");
    let mut shots = Shots {
        browser: &browser,
        n: 0,
    };
    shots.take("attract").await;
    assert!(
        customer.lines().is_empty(),
        "the kiosk is silent until asked"
    );

    // Spanish: hold the 5 (the nibbed key) for 2 s.
    hold_start_key(&keypad).await;
    browser
        .wait_until(
            "accessible mode on screen",
            "document.body.classList.contains('accessible') && !document.getElementById('a11y-badge').hidden",
            WAIT,
        )
        .await
        .expect("accessible mode");
    let on = customer
        .wait_said("that accessible mode is on", 0, |s| {
            s.class == "screen" && s.text.contains("Modo accesible activado")
        })
        .await;
    assert_eq!(on.lang, "es");
    assert!(on.text.contains("Bienvenido"), "the screen's title: {on:?}");
    customer
        .wait_said("the focused button", 0, |s| {
            s.class == "focus" && s.text.contains("Continuar sin tarjeta, 1 de 3")
        })
        .await;
    assert_focus_shown(&browser, "Continuar sin tarjeta").await;
    shots.take("accessible-on").await;

    let mark = customer.lines().len();
    tap(&keypad, codes::KP_ENTER).await;
    browser
        .wait_for_screen("choose_service")
        .await
        .expect("services");
    let title = customer
        .wait_said("the services screen", mark, |s| s.class == "screen")
        .await;
    assert!(title.text.contains("¿Qué necesita?"), "{title:?}");
    customer
        .wait_said("the first service focused", mark, |s| {
            s.class == "focus" && s.text.contains("Caja, 1 de")
        })
        .await;
    assert_focus_shown(&browser, "Caja").await;
    let mark = customer.lines().len();
    tap(&keypad, codes::DOWN).await;
    customer
        .wait_said("the second service", mark, |s| {
            s.class == "focus" && s.text.contains("Atención al cliente, 2 de")
        })
        .await;
    assert_focus_shown(&browser, "Atención al cliente").await;
    shots.take("services-second-focused").await;
    let mark = customer.lines().len();
    tap(&keypad, codes::UP).await;
    customer
        .wait_said("the first service again", mark, |s| {
            s.class == "focus" && s.text.contains("Caja, 1 de")
        })
        .await;
    assert_focus_shown(&browser, "Caja").await;
    // Number keys pick the n-th choice.
    let mark = customer.lines().len();
    tap(&keypad, codes::KP3).await;
    customer
        .wait_said("the third service, by its number", mark, |s| {
            s.class == "focus" && s.text.contains("Atención preferente, 3 de")
        })
        .await;
    assert_focus_shown(&browser, "Atención preferente").await;
    let mark = customer.lines().len();
    tap(&keypad, codes::KP1).await;
    customer
        .wait_said("the first service, by its number", mark, |s| {
            s.class == "focus" && s.text.contains("Caja, 1 de")
        })
        .await;
    assert_focus_shown(&browser, "Caja").await;

    let mark = customer.lines().len();
    tap(&keypad, codes::KP_ENTER).await;
    browser.wait_for_screen("goodbye").await.expect("goodbye");
    let label = browser
        .wait_for_text("[data-testid=turn]", "A-", WAIT)
        .await
        .expect("turn number")
        .trim()
        .to_owned();
    shots.take("ticket").await;
    let ticket = customer
        .wait_said("the ticket", mark, |s| {
            s.class == "screen" && s.text.contains(&spoken_label(&label)) && s.text.contains("Caja")
        })
        .await;
    assert_eq!(ticket.lang, "es");
    assert!(
        ticket.text.contains("Es el siguiente") || ticket.text.contains("por delante"),
        "the wait: {ticket:?}"
    );

    // Measure what espeak-ng made of the ticket and the first screen.
    for said in [&on, &ticket] {
        let (secs, rms) = sox_measure(&customer.wav(&said.n));
        assert!(
            secs > 1.0 && secs < 60.0,
            "{}: {secs} s for {:?}",
            said.n,
            said.text
        );
        assert!(rms > 0.005, "{} is not silence: RMS {rms}", said.n);
    }

    // Back ends the journey; at the attract screen accessible mode ends and says so.
    let mark = customer.lines().len();
    tap(&keypad, codes::BACKSPACE).await;
    browser.wait_for_screen("attract").await.expect("attract");
    customer
        .wait_said("that accessible mode is off", mark, |s| {
            s.class == "cue" && s.text.contains("Modo accesible desactivado")
        })
        .await;
    browser
        .wait_until(
            "accessible mode off on screen",
            "!document.body.classList.contains('accessible')",
            WAIT,
        )
        .await
        .expect("accessible mode off");

    // English: on again, to the language button, Enter: the screen is said again in English.
    hold_start_key(&keypad).await;
    let mark_on = customer.lines().len();
    customer
        .wait_said("accessible mode on again", mark, |s| {
            s.class == "focus" && s.text.contains("Continuar sin tarjeta, 1 de 3")
        })
        .await;
    let mark = customer.lines().len().max(mark_on);
    tap(&keypad, codes::DOWN).await;
    customer
        .wait_said("the language button", mark, |s| {
            s.class == "focus" && s.text.contains("English, 2 de 3")
        })
        .await;
    // "Call an assistant" is the last control of every screen, reached and said like the others.
    let mark = customer.lines().len();
    tap(&keypad, codes::DOWN).await;
    customer
        .wait_said("the call-an-assistant button", mark, |s| {
            s.class == "focus" && s.text.contains("Llamar a un asistente, 3 de 3")
        })
        .await;
    assert_focus_shown(&browser, "Llamar a un asistente").await;
    let mark = customer.lines().len();
    tap(&keypad, codes::UP).await;
    customer
        .wait_said("the language button again", mark, |s| {
            s.class == "focus" && s.text.contains("English, 2 de 3")
        })
        .await;
    let mark = customer.lines().len();
    tap(&keypad, codes::KP_ENTER).await;
    let welcome = customer
        .wait_said("the attract screen in English", mark, |s| {
            s.class == "screen" && s.lang == "en"
        })
        .await;
    assert!(welcome.text.contains("Welcome"), "{welcome:?}");
    customer
        .wait_said("the start button in English", mark, |s| {
            s.class == "focus" && s.text.contains("Continue without a card, 1 of 3")
        })
        .await;
    let mark = customer.lines().len();
    tap(&keypad, codes::KP_ENTER).await;
    browser
        .wait_for_screen("choose_service")
        .await
        .expect("services");
    let title = customer
        .wait_said("the services in English", mark, |s| s.class == "screen")
        .await;
    assert_eq!(title.lang, "en");
    assert!(title.text.contains("What do you need?"), "{title:?}");
    customer
        .wait_said("Cashier focused", mark, |s| {
            s.class == "focus" && s.text.contains("Cashier, 1 of")
        })
        .await;
    assert_focus_shown(&browser, "Cashier").await;
    shots.take("services-english").await;
    let mark = customer.lines().len();
    tap(&keypad, codes::KP_ENTER).await;
    browser.wait_for_screen("goodbye").await.expect("goodbye");
    let label2 = browser
        .wait_for_text("[data-testid=turn]", "A-", WAIT)
        .await
        .expect("turn number")
        .trim()
        .to_owned();
    assert_ne!(label2, label);
    let ticket = customer
        .wait_said("the English ticket", mark, |s| {
            s.class == "screen"
                && s.text.contains(&spoken_label(&label2))
                && s.text.contains("Cashier")
        })
        .await;
    assert_eq!(ticket.lang, "en");
    assert!(ticket.text.contains("Cashier"), "{ticket:?}");
    assert!(
        ticket.text.contains("ahead of you") || ticket.text.contains("You are next"),
        "{ticket:?}"
    );
    assert_focus_shown(&browser, "").await;
    shots.take("ticket-english").await;

    // The counter calls the first turn: the lobby hears it once per language, with the counter.
    let called = call_next(&demo, "3").await;
    assert_eq!(called, label);
    let es = calls
        .wait_said("the call in Spanish", 0, |s| {
            s.class == "call" && s.lang == "es"
        })
        .await;
    assert_eq!(
        es.text,
        format!("Turno {}, mostrador 3", spoken_label(&label))
    );
    let en = calls
        .wait_said("the call in English", 0, |s| {
            s.class == "call" && s.lang == "en"
        })
        .await;
    assert_eq!(en.text, format!("Turn {}, counter 3", spoken_label(&label)));
    tokio::time::sleep(Duration::from_secs(2)).await;
    let all = calls.lines();
    assert_eq!(all.len(), 2, "each call said once: {all:?}");
    let (secs, rms) = sox_measure(&calls.wav(&es.n));
    assert!(
        secs > 1.0 && rms > 0.005,
        "the call's audio: {secs} s, RMS {rms}"
    );

    browser.close().await.expect("the browser closes");
    demo.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_screen_about_to_time_out_warns_on_screen_and_with_a_tone_and_more_time_keeps_it() {
    let dir = tempfile::tempdir().expect("tempdir");
    let demo = kiosk::demo::start(DemoOptions {
        data_dir: dir.path().to_owned(),
        port: 0,
        kiosks: 1,
        browse_point: false,
    })
    .await
    .expect("the demo starts");
    let speech_dir = demo
        .kiosk
        .sims
        .speech_dir
        .clone()
        .expect("simulated speech");
    let customer = Output(speech_dir.join("customer"));
    let browser = Browser::launch(Viewport::PI_DISPLAY)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    browser
        .goto(&format!("http://{}/", demo.kiosk.ui_addr))
        .await
        .expect("kiosk screen");
    browser.wait_for_screen("attract").await.expect("attract");
    let mut shots = Shots {
        browser: &browser,
        n: 0,
    };
    // A sighted customer by touch, not in accessible mode: the demo's limit is 45 s, the
    // warning comes 20 s before.
    browser.click("[data-action=start]").await.expect("start");
    browser
        .wait_for_screen("choose_service")
        .await
        .expect("services");
    let started = tokio::time::Instant::now();
    let banner = browser
        .wait_for_text("#time-warning", "s", Duration::from_secs(60))
        .await
        .expect("the time-limit warning");
    let waited = started.elapsed();
    assert!(
        (Duration::from_secs(20)..Duration::from_secs(35)).contains(&waited),
        "the warning came after {waited:?}, expected about 25 s (45 s limit, 20 s warning)"
    );
    assert!(banner.contains("La pantalla se cerrará en"), "{banner}");
    assert!(banner.contains("Más tiempo"), "{banner}");
    shots.take("warning").await;
    let fits = browser
        .eval(
            "const b = document.querySelector('[data-action=more_time]').getBoundingClientRect(); \
             return b.height >= 44 && b.width >= 44 && b.bottom <= window.innerHeight && b.top >= 0;",
            vec![],
        )
        .await
        .expect("banner probe");
    assert_eq!(fits, json!(true), "More time is large and in view");
    let covered = browser
        .eval(
            "const bad = []; for (const b of document.querySelectorAll('#app [data-action]')) { \
               b.scrollIntoView({ block: 'nearest' }); const r = b.getBoundingClientRect(); \
               const hit = document.elementFromPoint((r.left + r.right) / 2, (r.top + r.bottom) / 2); \
               if (!hit || !b.contains(hit)) bad.push(b.textContent.trim()); } return bad;",
            vec![],
        )
        .await
        .expect("cover probe");
    assert_eq!(
        covered,
        json!([]),
        "the banner covers no control of the screen"
    );
    let tone = customer
        .wait_said("the warning tone", 0, |s| {
            s.class == "cue" && s.text == "<tone>"
        })
        .await;
    let (secs, rms) = sox_measure(&customer.wav(&tone.n));
    assert!(
        (0.3..1.0).contains(&secs) && rms > 0.05,
        "two beeps: {secs} s, RMS {rms}"
    );
    assert!(
        customer.lines().iter().all(|s| s.class == "cue"),
        "outside accessible mode the screen is not spoken: {:?}",
        customer.lines()
    );

    browser
        .click("[data-action=more_time]")
        .await
        .expect("More time");
    browser
        .wait_until(
            "the warning gone",
            "document.getElementById('time-warning').hidden",
            WAIT,
        )
        .await
        .expect("the warning goes");
    shots.take("more-time").await;
    // The whole limit again: still there after the old deadline has passed.
    tokio::time::sleep(Duration::from_secs(22)).await;
    let screen = browser
        .eval(
            "return document.getElementById('app').getAttribute('data-screen');",
            vec![],
        )
        .await
        .expect("screen");
    assert_eq!(screen, json!("choose_service"), "More time kept the screen");
    browser.close().await.expect("the browser closes");
    demo.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn in_accessible_mode_the_warning_is_spoken_and_enter_on_more_time_keeps_the_screen() {
    let dir = tempfile::tempdir().expect("tempdir");
    let demo = kiosk::demo::start(DemoOptions {
        data_dir: dir.path().to_owned(),
        port: 0,
        kiosks: 1,
        browse_point: false,
    })
    .await
    .expect("the demo starts");
    let keypad = demo.kiosk.sims.keypad.clone().expect("simulated keypad");
    let speech_dir = demo
        .kiosk
        .sims
        .speech_dir
        .clone()
        .expect("simulated speech");
    let customer = Output(speech_dir.join("customer"));
    let browser = Browser::launch(Viewport::PI_DISPLAY)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    browser
        .goto(&format!("http://{}/", demo.kiosk.ui_addr))
        .await
        .expect("kiosk screen");
    browser.wait_for_screen("attract").await.expect("attract");
    let mut shots = Shots {
        browser: &browser,
        n: 0,
    };
    // Accessible mode on the attract screen has the tripled limit (3 x 45 s), then ends.
    hold_start_key(&keypad).await;
    let started = tokio::time::Instant::now();
    customer
        .wait_said("the start button", 0, |s| {
            s.class == "focus" && s.text.contains("Continuar sin tarjeta")
        })
        .await;
    let warning = customer
        .wait_said_within(Duration::from_secs(180), "the spoken warning", 0, |s| {
            s.class == "cue" && s.text.contains("Atención: la pantalla se cerrará en")
        })
        .await;
    let waited = started.elapsed();
    assert!(
        (Duration::from_secs(100)..Duration::from_secs(130)).contains(&waited),
        "spoken after {waited:?}: expected about 115 s (3 x 45 s limit, 20 s warning)"
    );
    assert!(warning.text.contains("Intro"), "{warning:?}");
    customer
        .wait_said("the beeps", 0, |s| s.class == "cue" && s.text == "<tone>")
        .await;
    assert_focus_shown(&browser, "Más tiempo").await;
    shots.take("accessible-warning").await;
    tap(&keypad, codes::KP_ENTER).await;
    browser
        .wait_until(
            "the warning gone",
            "document.getElementById('time-warning').hidden",
            WAIT,
        )
        .await
        .expect("More time by keypad");
    tokio::time::sleep(Duration::from_secs(22)).await;
    let still = browser
        .eval(
            "return document.body.classList.contains('accessible');",
            vec![],
        )
        .await
        .expect("mode");
    assert_eq!(still, json!(true), "More time kept accessible mode on");
    browser.close().await.expect("the browser closes");
    demo.stop().await;
}
