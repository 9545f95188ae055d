//! The speech driver with the real espeak-ng (Debian package `espeak-ng`) and the simulated
//! output: WAV files that hold speech of a plausible length, the spoken-text log, the queue's
//! order, and a new screen cutting stale screen speech but never a call.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "test code: a failed unwrap is the failure message"
)]

use std::path::Path;
use std::time::Duration;

use kiosk_drivers::speech::{Class, Lang, Sink, Speaker, Voice, Voices, wav};

const WAIT: Duration = Duration::from_secs(60);

fn speaker(dir: &Path) -> Speaker {
    Speaker::start(
        "test",
        Sink::Files(dir.to_owned()),
        Voice {
            espeak_ng: "espeak-ng".into(),
            aplay: "aplay".into(),
            voices: Voices::default(),
            rate_wpm: 170,
        },
        100,
    )
    .unwrap()
}

fn log(dir: &Path) -> Vec<Vec<String>> {
    std::fs::read_to_string(dir.join("spoken.log"))
        .unwrap_or_default()
        .lines()
        .map(|l| l.split('\t').map(str::to_owned).collect())
        .collect()
}

fn wav_of(dir: &Path, n: &str) -> wav::Pcm {
    let file = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| {
            p.file_name()
                .unwrap()
                .to_string_lossy()
                .starts_with(&format!("{n}-"))
        })
        .unwrap_or_else(|| panic!("no wav {n} in {}", dir.display()));
    wav::parse(&std::fs::read(file).unwrap()).expect("a 16-bit wav")
}

#[test]
fn espeak_ng_speaks_spanish_and_english_into_wav_files_in_queue_order() {
    let dir = tempfile::tempdir().unwrap();
    let s = speaker(dir.path());
    s.say(Class::Screen, "¿Qué necesita?", Lang::Es, true);
    s.say(Class::Focus, "Caja, 1 de 3", Lang::Es, false);
    s.say(Class::Screen, "Your turn: A 12", Lang::En, false);
    s.tone();
    assert!(s.wait_idle(WAIT), "the queue drains");
    assert_eq!(s.last_error(), None);
    let lines = log(dir.path());
    let said: Vec<(&str, &str, &str)> = lines
        .iter()
        .map(|l| (l[1].as_str(), l[2].as_str(), l[3].as_str()))
        .collect();
    assert_eq!(
        said,
        [
            ("screen", "es", "¿Qué necesita?"),
            ("focus", "es", "Caja, 1 de 3"),
            ("screen", "en", "Your turn: A 12"),
            ("cue", "-", "<tone>"),
        ]
    );
    for n in ["0001", "0002", "0003"] {
        let pcm = wav_of(dir.path(), n);
        assert!(
            (0.5..6.0).contains(&pcm.seconds()),
            "{n}: {} s of speech",
            pcm.seconds()
        );
        assert!(pcm.rms() > 0.01, "{n} is not silence: rms {}", pcm.rms());
    }
}

#[test]
fn a_new_screen_cuts_stale_screen_speech_but_a_call_is_never_cut() {
    let dir = tempfile::tempdir().unwrap();
    let s = speaker(dir.path());
    s.say(
        Class::Screen,
        "Esta es una frase larga de una pantalla que el cliente ya ha dejado atrás hace rato",
        Lang::Es,
        true,
    );
    s.say(Class::Focus, "Cancelar, 2 de 2", Lang::Es, false);
    // Wait until the long sentence plays, then a new screen arrives.
    let deadline = std::time::Instant::now() + WAIT;
    while log(dir.path()).is_empty() {
        assert!(std::time::Instant::now() < deadline, "nothing was said");
        std::thread::sleep(Duration::from_millis(20));
    }
    s.say(Class::Screen, "Su turno", Lang::Es, true);
    assert!(s.wait_idle(WAIT));
    let lines = log(dir.path());
    let texts: Vec<String> = lines.iter().map(|l| l[1..].join(" ")).collect();
    assert_eq!(
        texts,
        [
            "screen es Esta es una frase larga de una pantalla que el cliente ya ha dejado atrás hace rato",
            "cut",
            "screen es Su turno",
        ],
        "the stale sentence was cut, the queued focus dropped"
    );

    let calls = tempfile::tempdir().unwrap();
    let c = speaker(calls.path());
    c.say(Class::Call, "Turno A 1, mostrador 1", Lang::Es, false);
    c.say(Class::Call, "Turno A 2, mostrador 2", Lang::Es, true);
    assert!(c.wait_idle(WAIT));
    let texts: Vec<String> = log(calls.path()).iter().map(|l| l[3].clone()).collect();
    assert_eq!(texts, ["Turno A 1, mostrador 1", "Turno A 2, mostrador 2"]);
}

#[test]
fn a_missing_espeak_ng_is_reported_with_the_package_to_install() {
    let dir = tempfile::tempdir().unwrap();
    let s = Speaker::start(
        "test",
        Sink::Files(dir.path().to_owned()),
        Voice {
            espeak_ng: "/nonexistent/espeak-ng".into(),
            aplay: "aplay".into(),
            voices: Voices::default(),
            rate_wpm: 170,
        },
        100,
    )
    .unwrap();
    s.say(Class::Screen, "hola", Lang::Es, true);
    assert!(s.wait_idle(WAIT));
    let err = s.last_error().expect("an error");
    assert!(
        err.contains("install the Debian package espeak-ng"),
        "{err}"
    );
}
