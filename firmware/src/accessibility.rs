//! Accessible mode's device side: the keypad thread (keys to the screen, the held start key to
//! the journey, volume keys to the speech output), the speech the page asks for (with the
//! customer's name kept out unless the output is private), and the announcer that speaks the
//! lobby's calls and sounds the time-limit warning.
//!
//! Data flow: keypad → [`spawn_keypad`] → `Key` (broadcast) → `/api/kiosk/stream` → page, which
//! moves focus among its real controls and posts what to say → [`CustomerSpeech::say`] →
//! espeak-ng. Queue board → [`spawn_announcer`] → calls output. The browser owns rendering and
//! focus, the binary owns the devices, so the speech is exactly what the screen shows.

use std::collections::HashSet;
use std::time::Duration;

use kiosk_core::journey::{Input, ScreenBody, ScreenView};
use kiosk_core::queue::QueueBoard;
use kiosk_drivers::keypad::{Key, KeypadEvent, KeypadHandle};
use kiosk_drivers::speech::{Class, Lang, Speaker};
use tokio::sync::{broadcast, mpsc, watch};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::devices::DeviceMsg;

/// How much one press of a volume key moves the loudness (espeak-ng amplitude, 0 to 200).
const VOLUME_STEP: i32 = 20;

/// The customer's speech output, as the UI server uses it.
#[derive(Debug, Clone)]
pub struct CustomerSpeech {
    /// The output.
    pub speaker: Speaker,
    /// Whether only the customer hears it (a headset): only then is their name said.
    pub private_listening: bool,
}

/// Why a speech request was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SpeakRefused {
    /// Screen speech outside accessible mode: the kiosk talks only to someone who asked.
    #[error("the kiosk speaks the screen only in accessible mode")]
    NotAccessible,
    /// Lobby calls are the announcer's.
    #[error("calls are spoken by the queue, not by the screen")]
    CallFromScreen,
    /// Too long to be a screen's text.
    #[error("{0} characters is too long for one utterance (at most 2000)")]
    TooLong(usize),
}

impl CustomerSpeech {
    /// Says `text` for the screen `view` shows: screen and focus speech only in accessible mode
    /// (cues always), the customer's name removed unless listening is private. `personal` (what
    /// the customer typed into a field) is said after the text only with private listening.
    pub fn say(
        &self,
        view: &ScreenView,
        class: Class,
        text: &str,
        personal: Option<&str>,
        lang: Lang,
        new_screen: bool,
    ) -> Result<(), SpeakRefused> {
        let chars = text.chars().count() + personal.map_or(0, |p| p.chars().count());
        if chars > 2000 {
            return Err(SpeakRefused::TooLong(chars));
        }
        match class {
            Class::Call => return Err(SpeakRefused::CallFromScreen),
            Class::Screen | Class::Focus if !view.accessible => {
                return Err(SpeakRefused::NotAccessible);
            }
            _ => {}
        }
        let text = match (self.private_listening, personal) {
            (true, Some(p)) if !p.trim().is_empty() => format!("{text}, {p}"),
            (true, _) => text.to_owned(),
            (false, _) => without_name(text, customer_name(view)),
        };
        self.speaker.say(class, &text, lang, new_screen);
        Ok(())
    }
}

/// The customer's name on the screen `view` shows, if any.
pub fn customer_name(view: &ScreenView) -> Option<&str> {
    match &view.body {
        ScreenBody::Greeting { name, .. } => Some(name.as_str()),
        ScreenBody::ChooseService { name, .. } | ScreenBody::Goodbye { name, .. } => {
            name.as_deref()
        }
        _ => None,
    }
    .filter(|n| !n.trim().is_empty())
}

/// `text` with every occurrence of `name` taken out, and the punctuation left dangling
/// ("Hola, Marta." → "Hola.").
pub fn without_name(text: &str, name: Option<&str>) -> String {
    let Some(name) = name else {
        return text.to_owned();
    };
    let mut out = text.replace(name.trim(), "");
    for (from, to) in [
        (" ,", ","),
        (",.", "."),
        (", .", "."),
        (",,", ","),
        ("  ", " "),
    ] {
        while out.contains(from) {
            out = out.replace(from, to);
        }
    }
    out.trim().trim_end_matches(',').trim().to_owned()
}

/// A call as the lobby hears it: `A-012` at counter `3` is "Turno A 12, mostrador 3".
pub fn call_text(label: &str, counter: &str, lang: Lang) -> String {
    let spoken = match label.rsplit_once('-') {
        Some((prefix, number)) => {
            let n = number.trim_start_matches('0');
            format!("{prefix} {}", if n.is_empty() { "0" } else { n })
        }
        None => label.to_owned(),
    };
    let numbered = !counter.is_empty() && counter.chars().all(|c| c.is_ascii_digit());
    match (lang, numbered) {
        (Lang::Es, true) => format!("Turno {spoken}, mostrador {counter}"),
        (Lang::Es, false) => format!("Turno {spoken}, {counter}"),
        (Lang::En, true) => format!("Turn {spoken}, counter {counter}"),
        (Lang::En, false) => format!("Turn {spoken}, {counter}"),
    }
}

/// The calls on `board` not yet in `seen` (each call and recall once), in board order.
fn new_calls(board: &QueueBoard, seen: &mut HashSet<String>) -> Vec<(String, String)> {
    board
        .serving
        .iter()
        .filter(|s| seen.insert(format!("{}:{}", s.turn_id, s.calls)))
        .map(|s| (s.label.clone(), s.counter.clone()))
        .collect()
}

/// Speaks each new call on the board (in every call language, queued: calls never cut each
/// other off) and sounds the warning tone on the customer's output whenever a time-limit
/// warning appears on the screen.
pub fn spawn_announcer(
    mut board: watch::Receiver<QueueBoard>,
    mut screen: watch::Receiver<ScreenView>,
    calls: Option<(Speaker, Vec<Lang>)>,
    customer: Option<Speaker>,
    shutdown: CancellationToken,
) -> JoinHandle<()> {
    tokio::spawn(async move {
        // Calls made before the kiosk started were announced then.
        let mut seen = HashSet::new();
        new_calls(&board.borrow_and_update(), &mut seen);
        let mut warned = screen.borrow_and_update().time_warning.is_some();
        loop {
            tokio::select! {
                () = shutdown.cancelled() => break,
                changed = board.changed() => {
                    if changed.is_err() {
                        break;
                    }
                    let fresh = new_calls(&board.borrow_and_update(), &mut seen);
                    if let Some((speaker, langs)) = &calls {
                        for (label, counter) in fresh {
                            for lang in langs {
                                speaker.say(Class::Call, &call_text(&label, &counter, *lang), *lang, false);
                            }
                        }
                    }
                }
                changed = screen.changed() => {
                    if changed.is_err() {
                        break;
                    }
                    let warning = screen.borrow_and_update().time_warning.is_some();
                    if warning && !warned && let Some(speaker) = &customer {
                        speaker.tone();
                    }
                    warned = warning;
                }
            }
        }
    })
}

/// Starts the keypad thread: keys go to the screen (`keys`), the held start key to the journey,
/// volume keys to the customer's speech output.
pub fn spawn_keypad(
    keypad: KeypadHandle,
    device_tx: mpsc::Sender<DeviceMsg>,
    keys: broadcast::Sender<Key>,
    speaker: Option<Speaker>,
) -> std::io::Result<std::thread::JoinHandle<()>> {
    std::thread::Builder::new()
        .name("keypad-events".into())
        .spawn(move || {
            loop {
                if device_tx.is_closed() {
                    break;
                }
                let Some(event) = keypad.next_event(Duration::from_millis(200)) else {
                    continue;
                };
                match event {
                    KeypadEvent::StartHeld => {
                        if device_tx
                            .blocking_send(DeviceMsg::Input(Input::AccessibilityKey))
                            .is_err()
                        {
                            break;
                        }
                    }
                    KeypadEvent::Key(Key::VolumeUp) => {
                        if let Some(s) = &speaker {
                            s.adjust_volume(VOLUME_STEP);
                        }
                    }
                    KeypadEvent::Key(Key::VolumeDown) => {
                        if let Some(s) = &speaker {
                            s.adjust_volume(-VOLUME_STEP);
                        }
                    }
                    // Nobody listening (no screen open) is not an error.
                    KeypadEvent::Key(key) => drop(keys.send(key)),
                    KeypadEvent::Health(health) => {
                        tracing::info!(health = %health, "keypad");
                    }
                }
            }
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn calls_say_the_turn_without_its_leading_zeros_and_the_counter() {
        assert_eq!(call_text("A-012", "3", Lang::Es), "Turno A 12, mostrador 3");
        assert_eq!(call_text("A-012", "3", Lang::En), "Turn A 12, counter 3");
        assert_eq!(
            call_text("B2-001", "Caja 2", Lang::Es),
            "Turno B2 1, Caja 2"
        );
        assert_eq!(call_text("C-000", "1", Lang::En), "Turn C 0, counter 1");
    }

    #[test]
    fn the_name_is_taken_out_with_its_punctuation() {
        assert_eq!(without_name("Hola, Marta", Some("Marta")), "Hola");
        assert_eq!(
            without_name("Hola, Marta. ¿Qué necesita?", Some("Marta")),
            "Hola. ¿Qué necesita?"
        );
        assert_eq!(
            without_name("Hello, Ana Ruiz. Your turn", Some("Ana Ruiz")),
            "Hello. Your turn"
        );
        assert_eq!(without_name("Su turno", None), "Su turno");
    }
}

#[cfg(test)]
mod speech_tests {
    use super::*;
    use kiosk_core::journey::{Locale, ScreenBody, ServiceChoice};
    use kiosk_drivers::speech::{Sink, Voice, Voices};

    fn view(accessible: bool) -> ScreenView {
        ScreenView {
            role: kiosk_core::journey::KioskRole::Queue,
            version: 1,
            locale: Locale::Es,
            printer_ok: true,
            notice: None,
            accessible,
            time_warning: None,
            assistance_called: false,
            body: ScreenBody::ChooseService {
                name: Some("Marta".into()),
                services: vec![ServiceChoice {
                    letter: "A".into(),
                    name: "Caja".into(),
                    priority_allowed: false,
                }],
            },
        }
    }

    fn speech(dir: &std::path::Path, private_listening: bool) -> CustomerSpeech {
        CustomerSpeech {
            speaker: Speaker::start(
                "test",
                Sink::Files(dir.to_owned()),
                Voice {
                    espeak_ng: "espeak-ng".into(),
                    aplay: "aplay".into(),
                    voices: Voices::default(),
                    rate_wpm: 200,
                },
                100,
            )
            .unwrap(),
            private_listening,
        }
    }

    fn said(dir: &std::path::Path) -> Vec<String> {
        std::fs::read_to_string(dir.join("spoken.log"))
            .unwrap_or_default()
            .lines()
            .map(|l| l.rsplit('\t').next().unwrap_or_default().to_owned())
            .collect()
    }

    #[test]
    fn the_screen_is_spoken_only_in_accessible_mode_and_calls_never_from_the_screen() {
        let dir = tempfile::tempdir().unwrap();
        let s = speech(dir.path(), false);
        assert_eq!(
            s.say(
                &view(false),
                Class::Screen,
                "¿Qué necesita?",
                None,
                Lang::Es,
                true
            ),
            Err(SpeakRefused::NotAccessible)
        );
        assert_eq!(
            s.say(&view(true), Class::Call, "Turno A 1", None, Lang::Es, false),
            Err(SpeakRefused::CallFromScreen)
        );
        assert_eq!(
            s.say(
                &view(false),
                Class::Cue,
                "Modo accesible desactivado.",
                None,
                Lang::Es,
                false
            ),
            Ok(())
        );
        assert!(s.speaker.wait_idle(Duration::from_secs(30)));
        assert_eq!(said(dir.path()), ["Modo accesible desactivado."]);
    }

    #[test]
    fn the_customers_name_and_what_they_type_are_said_only_with_private_listening() {
        let say = |dir: &std::path::Path, private: bool| {
            let s = speech(dir, private);
            s.say(
                &view(true),
                Class::Screen,
                "Hola, Marta. ¿Qué necesita?",
                None,
                Lang::Es,
                true,
            )
            .unwrap();
            s.say(
                &view(true),
                Class::Focus,
                "Email (opcional)",
                Some("marta@example.com"),
                Lang::Es,
                false,
            )
            .unwrap();
            assert!(s.speaker.wait_idle(Duration::from_secs(30)));
            said(dir)
        };
        let shared = tempfile::tempdir().unwrap();
        assert_eq!(
            say(shared.path(), false),
            ["Hola. ¿Qué necesita?", "Email (opcional)"]
        );
        let private = tempfile::tempdir().unwrap();
        assert_eq!(
            say(private.path(), true),
            [
                "Hola, Marta. ¿Qué necesita?",
                "Email (opcional), marta@example.com"
            ]
        );
    }
}
