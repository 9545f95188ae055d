//! The fuzz targets (`kiosk_e2e::fuzz`, fuzzed by `cargo fuzz` in `scripts/soak`) run over their
//! seeds and over every input a campaign ever found (`tests/fuzz/regressions/<target>/`): what was
//! fixed stays fixed. With `KIOSK_FUZZ_SEEDS_DIR` set, the seeds are also written there, one
//! folder per target, as the corpus a campaign starts from.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "test code: a failed unwrap is the failure message"
)]

use std::path::{Path, PathBuf};

use kiosk_e2e::fuzz::{TARGETS, seeds};

fn target(name: &str) -> fn(&[u8]) {
    TARGETS
        .iter()
        .find(|(n, _)| *n == name)
        .unwrap_or_else(|| panic!("no fuzz target {name}"))
        .1
}

fn regressions_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/regressions")
}

#[test]
fn every_target_runs_its_seeds() {
    let seeds = seeds();
    for (name, _) in TARGETS {
        assert!(
            seeds.iter().any(|(t, _)| t == name),
            "target {name} has no seed"
        );
    }
    for (name, bytes) in &seeds {
        target(name)(bytes);
    }
    if let Some(dir) = std::env::var_os("KIOSK_FUZZ_SEEDS_DIR") {
        for (i, (name, bytes)) in seeds.iter().enumerate() {
            let folder = Path::new(&dir).join(name);
            std::fs::create_dir_all(&folder).unwrap();
            std::fs::write(folder.join(format!("seed-{i:02}")), bytes).unwrap();
        }
    }
}

#[test]
fn the_seeds_are_what_the_targets_check_not_their_error_paths() {
    use kiosk_drivers::scanner::code::{self, Code, CodeKey, CodeKeys};
    // The signed seeds verify (a corpus of payloads that never verify would leave the
    // no-second-spelling check unexercised).
    let key = CodeKey::new(kiosk_e2e::fuzz::FUZZ_KEY.to_vec()).unwrap();
    let keys = CodeKeys {
        turns: Some(key.clone()),
        coupons: Some(key),
    };
    let decoded: Vec<Code> = seeds()
        .iter()
        .filter(|(t, _)| *t == "qr_payload")
        .map(|(_, b)| {
            code::decode(
                std::str::from_utf8(b).unwrap(),
                &keys,
                kiosk_e2e::fuzz::fuzz_today(),
            )
            .unwrap()
        })
        .collect();
    assert!(decoded.iter().any(|c| matches!(c, Code::Turn(_))));
    assert!(decoded.iter().any(|c| matches!(c, Code::Coupon(_))));
    // The batch seeds decode and their events are accepted.
    for (_, b) in seeds().iter().filter(|(t, _)| *t == "endpoint_batch") {
        let (encoding, body) = match b[0] {
            0 => (None, b[1..].to_vec()),
            1 => (Some("gzip"), b[1..].to_vec()),
            _ => continue,
        };
        let batch = crm_endpoint::api::decode_batch(encoding, &body).unwrap();
        let validator = crm_endpoint::ingest::Validator::new().unwrap();
        let clock = batch.kiosk_clock;
        let sent_ms = crm_endpoint::ingest::unix_ms(clock.wall_time);
        let skew = crm_endpoint::ingest::read_clock(&Default::default(), &clock, sent_ms)
            .skew_or_zero(sent_ms);
        for raw in &batch.events {
            validator
                .check(raw, "k-fuzz", &clock, skew)
                .map_err(|r| r.reason)
                .unwrap();
        }
    }
}

#[test]
fn every_input_a_campaign_found_is_replayed() {
    let mut replayed = 0;
    for (name, run) in TARGETS {
        let folder = regressions_dir().join(name);
        let Ok(entries) = std::fs::read_dir(&folder) else {
            continue;
        };
        for entry in entries {
            let path = entry.unwrap().path();
            let bytes = std::fs::read(&path).unwrap();
            println!("{name}: {}", path.display());
            run(&bytes);
            replayed += 1;
        }
    }
    println!("{replayed} regression inputs replayed");
}
