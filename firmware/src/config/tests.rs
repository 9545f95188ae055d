use super::*;

const EXAMPLE: &str = include_str!("../../config/site.example.toml");

fn site(text: &str) -> Result<Config, ConfigError> {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("site.toml");
    std::fs::write(&path, text).unwrap();
    Config::load(&path)
}

fn with(replace: &str, by: &str) -> String {
    assert!(EXAMPLE.contains(replace), "example lacks {replace:?}");
    EXAMPLE.replacen(replace, by, 1)
}

fn line_of(text: &str, needle: &str) -> usize {
    text.lines().position(|l| l.contains(needle)).unwrap() + 1
}

#[test]
fn example_site_config_and_every_shipped_profile_load() {
    let config = site(EXAMPLE).unwrap();
    assert_eq!(config.site.queue.services.len(), 3);
    assert_eq!(config.hardware.name, "pi4-mfrc522-usb-printer");
    for name in embedded_profiles() {
        let text = with(
            "hardware_profile = \"pi4-mfrc522-usb-printer\"",
            &format!("hardware_profile = \"{name}\""),
        );
        let config = site(&text).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(
            config.hardware.name, name,
            "profile name matches its file name"
        );
    }
    assert!(embedded_profiles().contains(&"simulated".to_owned()));
}

#[test]
fn unknown_key_is_an_error_with_file_line_and_key() {
    let text = with("counters = 2", "counters = 2\ncounterz = 3");
    let err = site(&text).unwrap_err();
    assert_eq!(err.line, Some(line_of(&text, "counterz")), "{err}");
    assert!(err.message.contains("unknown field `counterz`"), "{err}");
    assert!(
        err.message.contains("expected"),
        "says what was expected: {err}"
    );
    assert!(err.to_string().contains("site.toml:"), "{err}");
}

#[test]
fn the_kiosk_role_is_queue_by_default_browse_when_set_and_anything_else_is_refused() {
    let config = site(EXAMPLE).unwrap();
    assert_eq!(
        config.site.kiosk.role,
        kiosk_core::journey::KioskRole::Queue
    );
    let text = with(
        "timezone = \"Europe/Madrid\"",
        "timezone = \"Europe/Madrid\"\nrole = \"browse\"",
    );
    let config = site(&text).unwrap();
    assert_eq!(
        config.site.kiosk.role,
        kiosk_core::journey::KioskRole::Browse
    );
    let text = with(
        "timezone = \"Europe/Madrid\"",
        "timezone = \"Europe/Madrid\"\nrole = \"signage\"",
    );
    let err = site(&text).unwrap_err();
    assert_eq!(err.key.as_deref(), Some("kiosk.role"), "{err}");
    assert_eq!(err.line, Some(line_of(&text, "signage")), "{err}");
    assert!(
        err.message.contains("queue") && err.message.contains("browse"),
        "names the roles there are: {err}"
    );
}

#[test]
fn wrong_type_names_the_key_and_the_expected_type() {
    let text = with("retention_days = 30", "retention_days = \"thirty\"");
    let err = site(&text).unwrap_err();
    assert_eq!(err.line, Some(line_of(&text, "thirty")), "{err}");
    assert_eq!(err.key.as_deref(), Some("journal.retention_days"), "{err}");
    assert!(err.message.contains("expected u32"), "{err}");
}

#[test]
fn missing_required_key_names_it() {
    let text = with("store_name = \"Madrid Centro\"\n", "");
    let err = site(&text).unwrap_err();
    assert!(err.message.contains("missing field `store_name`"), "{err}");
    assert!(err.line.is_some(), "{err}");
}

#[test]
fn semantic_errors_point_at_the_offending_key() {
    let cases = [
        (
            "opening_time = \"09:00\"",
            "opening_time = \"9h\"",
            "queue.opening_time",
            "HH:MM",
        ),
        (
            "url = \"https://crm.example.com\"",
            "url = \"http://crm.example.com\"",
            "crm.url",
            "https://",
        ),
        (
            "timezone = \"Europe/Madrid\"",
            "timezone = \"Mars/Olympus\"",
            "kiosk.timezone",
            "IANA",
        ),
        (
            "listen = \"127.0.0.1:8080\"",
            "listen = \"0.0.0.0:8080\"",
            "ui.listen",
            "127.0.0.1",
        ),
        (
            "letter = \"B\"",
            "letter = \"A\"",
            "queue.services[1].letter",
            "used twice",
        ),
        (
            "letter = \"P\"",
            "letter = \"pp\"",
            "queue.services[2].letter",
            "one capital letter",
        ),
    ];
    for (from, to, key, hint) in cases {
        let text = with(from, to);
        let err = site(&text).unwrap_err();
        assert_eq!(err.key.as_deref(), Some(key), "{err}");
        // The line of the edited key: where `from` stood in the example (`to` may occur earlier).
        assert_eq!(err.line, Some(line_of(EXAMPLE, from)), "{err}");
        assert!(err.message.contains(hint), "{err}");
    }
}

#[test]
fn unknown_hardware_profile_lists_the_known_ones() {
    let text = with(
        "hardware_profile = \"pi4-mfrc522-usb-printer\"",
        "hardware_profile = \"pi9\"",
    );
    let err = site(&text).unwrap_err();
    assert_eq!(err.key.as_deref(), Some("kiosk.hardware_profile"));
    assert!(err.message.contains("simulated"), "{err}");
}

#[test]
fn a_device_a_directory_or_a_huge_file_is_refused_not_read_forever() {
    // `/dev/zero` would fill memory with an unbounded read; a FIFO would block it.
    let dir = tempfile::tempdir().unwrap();
    let huge = dir.path().join("huge.toml");
    std::fs::write(&huge, vec![b'#'; MAX_CONFIG_BYTES as usize + 1]).unwrap();
    for (profile, says) in [
        ("/dev/zero", "not a regular file"),
        ("/tmp/", "not a regular file"),
        (huge.to_str().unwrap(), "larger than"),
    ] {
        let text = with(
            "hardware_profile = \"pi4-mfrc522-usb-printer\"",
            &format!("hardware_profile = \"{profile}\""),
        );
        let err = site(&text).unwrap_err();
        assert_eq!(err.key.as_deref(), Some("kiosk.hardware_profile"), "{err}");
        assert!(err.message.contains(says), "{profile}: {err}");
        assert!(err.line.is_some(), "{err}");
    }
    let err = Config::load(Path::new("/dev/zero")).unwrap_err();
    assert!(err.message.contains("not a regular file"), "{err}");
    let err = Config::load(&huge).unwrap_err();
    assert!(err.message.contains("larger than"), "{err}");
}

#[test]
fn profile_errors_name_the_profile_file_and_line() {
    let dir = tempfile::tempdir().unwrap();
    let profile = include_str!("../../../hw-config/simulated.toml")
        .replace("poll_interval_ms =", "poll_interval =");
    std::fs::write(dir.path().join("bad.toml"), &profile).unwrap();
    let text = with(
        "hardware_profile = \"pi4-mfrc522-usb-printer\"",
        "hardware_profile = \"./bad.toml\"",
    );
    let path = dir.path().join("site.toml");
    std::fs::write(&path, &text).unwrap();
    let err = Config::load(&path).unwrap_err();
    assert!(err.file.ends_with("bad.toml"), "{err}");
    assert!(err.message.contains("poll_interval"), "{err}");
    assert!(err.line.is_some(), "{err}");
}

#[test]
fn mfrc522_gain_must_be_one_the_chip_has() {
    let profile = include_str!("../../../hw-config/pi4-mfrc522-usb-printer.toml")
        .replace("antenna_gain_db = 48", "antenna_gain_db = 40");
    let err = parse_profile(Path::new("p.toml"), &profile).unwrap_err();
    assert_eq!(err.key.as_deref(), Some("card_reader.antenna_gain_db"));
    assert!(err.message.contains("18, 23, 33, 38, 43 or 48"), "{err}");
}

#[test]
fn mfrc522_irq_line_without_its_chip_is_an_error_at_the_key() {
    let profile: String = include_str!("../../../hw-config/pi4-mfrc522-usb-printer.toml")
        .lines()
        .filter(|l| !l.starts_with("irq_chip"))
        .map(|l| format!("{l}\n"))
        .collect();
    let err = parse_profile(Path::new("p.toml"), &profile).unwrap_err();
    assert_eq!(err.key.as_deref(), Some("card_reader.irq_line"));
    assert_eq!(err.line, Some(line_of(&profile, "irq_line")), "{err}");
    assert!(err.message.contains("irq_chip"), "{err}");
}

#[test]
fn mfrc522_irq_line_must_be_a_number() {
    let profile = include_str!("../../../hw-config/pi4-mfrc522-usb-printer.toml")
        .replace("irq_line = 24", "irq_line = \"GPIO24\"");
    let err = parse_profile(Path::new("p.toml"), &profile).unwrap_err();
    // A type error inside the tagged `[card_reader]` table is located at the table: serde does
    // not say which field of an internally tagged enum failed.
    assert_eq!(err.line, Some(line_of(&profile, "[card_reader]")), "{err}");
    assert!(err.message.contains("GPIO24"), "{err}");
}

#[test]
fn mfrc522_transceive_names_a_path_the_driver_has() {
    let profile = include_str!("../../../hw-config/pi4-mfrc522-usb-printer.toml")
        .replace("transceive = \"lean\"", "transceive = \"fast\"");
    let err = parse_profile(Path::new("p.toml"), &profile).unwrap_err();
    assert_eq!(err.line, Some(line_of(&profile, "[card_reader]")), "{err}");
    assert!(
        err.message.contains("lean") && err.message.contains("crate"),
        "{err}"
    );
}

#[test]
fn mfrc522_irq_line_with_the_crate_path_is_refused() {
    let profile = include_str!("../../../hw-config/pi4-mfrc522-usb-printer.toml")
        .replace("transceive = \"lean\"", "transceive = \"crate\"");
    let err = parse_profile(Path::new("p.toml"), &profile).unwrap_err();
    assert_eq!(err.key.as_deref(), Some("card_reader.irq_line"));
    assert!(err.message.contains("lean"), "{err}");
}

#[test]
fn idle_poll_defaults_and_is_read_from_both_polling_kinds() {
    for text in [
        include_str!("../../../hw-config/pi4-mfrc522-usb-printer.toml"),
        include_str!("../../../hw-config/simulated.toml"),
    ] {
        let profile = parse_profile(Path::new("p.toml"), text).unwrap();
        match profile.card_reader {
            CardReaderSettings::Mfrc522 { idle_poll_ms, .. }
            | CardReaderSettings::Simulated { idle_poll_ms, .. } => {
                assert_eq!(idle_poll_ms, Some(100), "the shipped profiles say it");
            }
            other => panic!("{other:?}"),
        }
        let without: String = text
            .lines()
            .filter(|l| !l.starts_with("idle_poll_ms"))
            .map(|l| format!("{l}\n"))
            .collect();
        let profile = parse_profile(Path::new("p.toml"), &without).unwrap();
        match profile.card_reader {
            CardReaderSettings::Mfrc522 { idle_poll_ms, .. }
            | CardReaderSettings::Simulated { idle_poll_ms, .. } => {
                assert_eq!(idle_poll_ms, None, "optional: the driver's default applies");
            }
            other => panic!("{other:?}"),
        }
    }
}

#[test]
fn idle_poll_faster_than_the_poll_interval_is_an_error_at_the_key() {
    for text in [
        include_str!("../../../hw-config/pi4-mfrc522-usb-printer.toml"),
        include_str!("../../../hw-config/simulated.toml"),
    ] {
        let profile = text.replace("idle_poll_ms = 100", "idle_poll_ms = 10");
        let err = parse_profile(Path::new("p.toml"), &profile).unwrap_err();
        assert_eq!(
            err.key.as_deref(),
            Some("card_reader.idle_poll_ms"),
            "{err}"
        );
        assert_eq!(err.line, Some(line_of(&profile, "idle_poll_ms")), "{err}");
        assert!(err.message.contains("poll_interval_ms 20"), "{err}");
        assert!(err.to_string().starts_with("p.toml:"), "{err}");
    }
}

#[test]
fn idle_poll_too_slow_to_see_a_brief_tap_is_an_error_at_the_key() {
    let profile = include_str!("../../../hw-config/pi4-mfrc522-usb-printer.toml")
        .replace("idle_poll_ms = 100", "idle_poll_ms = 1000");
    let err = parse_profile(Path::new("p.toml"), &profile).unwrap_err();
    assert_eq!(
        err.key.as_deref(),
        Some("card_reader.idle_poll_ms"),
        "{err}"
    );
    assert_eq!(err.line, Some(line_of(&profile, "idle_poll_ms")), "{err}");
    assert!(err.message.contains("20 to 250"), "{err}");
}

#[test]
fn idle_poll_must_be_a_number() {
    let profile = include_str!("../../../hw-config/simulated.toml")
        .replace("idle_poll_ms = 100", "idle_poll_ms = \"50ms\"");
    let err = parse_profile(Path::new("p.toml"), &profile).unwrap_err();
    // Located at the tagged table, as every type error inside `[card_reader]`.
    assert_eq!(err.line, Some(line_of(&profile, "[card_reader]")), "{err}");
    assert!(err.message.contains("50ms"), "{err}");
}

#[test]
fn a_zero_poll_interval_is_an_error_at_the_key() {
    let profile = include_str!("../../../hw-config/simulated.toml")
        .replace("poll_interval_ms = 20", "poll_interval_ms = 0");
    let err = parse_profile(Path::new("p.toml"), &profile).unwrap_err();
    assert_eq!(
        err.key.as_deref(),
        Some("card_reader.poll_interval_ms"),
        "{err}"
    );
    assert_eq!(
        err.line,
        Some(line_of(&profile, "poll_interval_ms")),
        "{err}"
    );
}

#[test]
fn syntax_error_is_located() {
    let text = with("[ui]", "[ui");
    let err = site(&text).unwrap_err();
    assert_eq!(err.line, Some(line_of(&text, "[ui")), "{err}");
}

#[test]
fn unreadable_file_says_so() {
    let err = Config::load(Path::new("/nonexistent/site.toml")).unwrap_err();
    assert!(err.message.contains("cannot read"), "{err}");
}

#[test]
fn hh_mm_parses_only_valid_times() {
    assert_eq!(parse_hh_mm("09:30"), Some((9, 30)));
    assert_eq!(parse_hh_mm("24:00"), None);
    assert_eq!(parse_hh_mm("9:30"), None);
}

#[test]
fn keypad_and_speech_sections_are_validated_at_their_keys() {
    let pi4 = include_str!("../../../hw-config/pi4-mfrc522-usb-printer.toml");
    let profile = parse_profile(Path::new("p.toml"), pi4).unwrap();
    assert!(matches!(
        profile.keypad,
        KeypadSettings::Evdev { hold_ms: 2000, .. }
    ));
    let cases = [
        (
            "hold_ms = 2000",
            "hold_ms = 300",
            "keypad.hold_ms",
            "1000 to 5000",
        ),
        (
            "device = \"/dev/input/by-id/usb-kiosk-keypad-event-kbd\"",
            "device = \"/dev/ttyUSB0\"",
            "keypad.device",
            "/dev/input/",
        ),
        (
            "rate_wpm = 160",
            "rate_wpm = 900",
            "speech.rate_wpm",
            "80 to 450",
        ),
        ("volume = 100", "volume = 300", "speech.volume", "0 to 200"),
        (
            "es = \"es\", en = \"en-gb\"",
            "es = \"es; rm\", en = \"en-gb\"",
            "speech.voices.es",
            "espeak-ng --voices",
        ),
        (
            "locales = [\"es\", \"en\"]",
            "locales = []",
            "speech.calls.locales",
            "kind = \"none\"",
        ),
        (
            "plughw:CARD=vc4hdmi0,DEV=0",
            "plughw:CARD=Headphones,DEV=0",
            "speech.calls.device",
            "its own device",
        ),
    ];
    for (from, to, key, says) in cases {
        assert!(pi4.contains(from), "profile lacks {from}");
        let text = pi4.replacen(from, to, 1);
        let err = parse_profile(Path::new("p.toml"), &text).unwrap_err();
        assert_eq!(err.key.as_deref(), Some(key), "{to}: {err}");
        assert!(err.message.contains(says), "{to}: {err}");
        assert!(err.line.is_some(), "{to}: {err}");
    }
    let typo = pi4.replacen("hold_ms = 2000", "hold_time = 2000", 1);
    let err = parse_profile(Path::new("p.toml"), &typo).unwrap_err();
    assert!(err.to_string().contains("hold_time"), "{err}");
    // An internally tagged section reports an unknown key at its table.
    assert_eq!(err.line, Some(line_of(&typo, "[keypad]")), "{err}");
}

#[test]
fn time_warning_and_accessible_factor_are_checked() {
    let err = site(&with("time_warning_s = 20", "time_warning_s = 5")).unwrap_err();
    assert_eq!(err.key.as_deref(), Some("ui.time_warning_s"), "{err}");
    assert!(err.message.contains("WCAG 2.2.1"), "{err}");
    let err = site(&with(
        "accessible_time_factor = 3",
        "accessible_time_factor = 0",
    ))
    .unwrap_err();
    assert_eq!(
        err.key.as_deref(),
        Some("ui.accessible_time_factor"),
        "{err}"
    );
}

#[test]
fn step_in_devices_load_and_a_bad_key_id_or_name_points_at_its_line() {
    let good = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=";
    let device = |id: &str, name: &str, key: &str| {
        format!("\n[[stepin.devices]]\nid = \"{id}\"\nname = \"{name}\"\nkey = \"{key}\"\n")
    };
    let text = format!(
        "{EXAMPLE}{}{}",
        device("atm-1", "Cajero", good),
        device("pay-2", "Pagos", good)
    );
    let config = site(&text).unwrap();
    let devices = &config.site.stepin.devices;
    assert_eq!(devices.len(), 2);
    assert_eq!(devices[1].key_bytes().unwrap()[31], 31);
    assert!(
        !format!("{:?}", devices[0]).contains(good),
        "Debug never shows a key"
    );
    let cases = [
        (
            device("atm-1", "Cajero", "c2hvcnQ="),
            "stepin.devices[0].key",
            "5 bytes, expected 32",
        ),
        (
            device("atm-1", "Cajero", "not base64!"),
            "stepin.devices[0].key",
            "not base64",
        ),
        (
            device("atm 1", "Cajero", good),
            "stepin.devices[0].id",
            "not a device id",
        ),
        (
            device("atm-1", " ", good),
            "stepin.devices[0].name",
            "name as staff know it",
        ),
    ];
    for (block, key, hint) in cases {
        assert_block_points_at(&block, key, hint);
    }
    let twice = format!(
        "{EXAMPLE}{}{}",
        device("atm-1", "Cajero", good),
        device("atm-1", "Otro", good)
    );
    let err = site(&twice).unwrap_err();
    assert_eq!(err.key.as_deref(), Some("stepin.devices[1].id"), "{err}");
    assert!(err.message.contains("used twice"), "{err}");
}

#[test]
fn staff_members_load_and_a_shared_pin_a_bad_id_or_an_unknown_key_points_at_its_line() {
    let pin = |p: &str| crate::ui::pin_digest(p);
    let member = |id: &str, digest: &str| {
        format!("\n[[ui.staff]]\nid = \"{id}\"\nname = \"Staff {id}\"\npin_sha256 = \"{digest}\"\n")
    };
    let text = format!(
        "{EXAMPLE}{}{}",
        member("ana", &pin("555555")),
        member("luis", &pin("666666"))
    );
    let config = site(&text).unwrap();
    let ids: Vec<&str> = config.site.ui.staff.iter().map(|m| m.id.as_str()).collect();
    assert_eq!(ids, ["ana", "luis"]);
    let cases = [
        (
            format!(
                "{}{}",
                member("ana", &pin("555555")),
                member("luis", &pin("555555"))
            ),
            "ui.staff[1].pin_sha256",
            "already another member's",
        ),
        (
            member("Ana García", &pin("555555")),
            "ui.staff[0].id",
            "the id has",
        ),
        (
            member("ana", "1234"),
            "ui.staff[0].pin_sha256",
            "64 hex digits",
        ),
    ];
    for (block, key, hint) in cases {
        assert_block_points_at(&block, key, hint);
    }
    let typo = format!("{EXAMPLE}\n[[ui.staff]]\nid = \"ana\"\nname = \"Ana\"\npin = \"555555\"\n");
    let err = site(&typo).unwrap_err();
    assert!(err.to_string().contains("pin"), "{err}");
    assert!(
        !err.to_string().contains("555555"),
        "a PIN typed in the wrong key is never echoed: {err}"
    );
}

/// The example with `block` appended is refused at `key`, on the line of that key's last
/// occurrence (the example only has such blocks commented out), saying `hint`.
fn assert_block_points_at(block: &str, key: &str, hint: &str) {
    let text = format!("{EXAMPLE}{block}");
    let err = site(&text).unwrap_err();
    assert_eq!(err.key.as_deref(), Some(key), "{err}");
    let field = key.rsplit('.').next().unwrap();
    let lines: Vec<&str> = text.lines().collect();
    let line = lines
        .iter()
        .rposition(|l| l.starts_with(&format!("{field} = ")))
        .unwrap()
        + 1;
    assert_eq!(err.line, Some(line), "{err}");
    assert!(err.message.contains(hint), "{err}");
}
