//! Durability proof: an append that returned `Ok` survives `kill -9` of the process.
//!
//! The test re-runs its own binary as a child that appends turns in a loop (each a counter bump
//! and a `ticket_issued` event in one transaction) and prints every acknowledged append. The
//! parent kills it with SIGKILL at random moments, many times, then checks the journal: every
//! acknowledged sequence number is present, none is duplicated, the counter matches the events
//! exactly (same-transaction state), and `PRAGMA integrity_check` passes.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "test code: a failed unwrap is the failure message"
)]

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use kiosk_journal::clock::SystemClock;
use kiosk_journal::crypto::DeviceKey;
use kiosk_journal::{Identity, Journal, JournalError, ListFilter, Options};
use kiosk_protocol::events::{Event, TicketIssued};
use rand::Rng;
use uuid::Uuid;

const CHILD_ENV: &str = "KIOSK_KILL9_CHILD_DB";
const COUNTER: &str = "turns/2026-11-23/A";

fn open(path: &Path) -> Journal {
    let key = DeviceKey::load_or_create(&path.with_extension("key")).unwrap();
    Journal::open(
        path,
        Identity {
            kiosk_id: "kiosk-kill9".into(),
            boot_id: Uuid::new_v4(),
        },
        Arc::new(SystemClock),
        key,
        &Options::default(),
    )
    .unwrap()
    .journal
}

/// The child: appends until killed. Does nothing when run as a normal test.
#[test]
fn kill9_child_appender() {
    let Ok(path) = std::env::var(CHILD_ENV) else {
        return;
    };
    let mut journal = open(Path::new(&path));
    let stdout = std::io::stdout();
    loop {
        let (seq, number) = journal
            .transaction(|tx| {
                let number = tx.counter_next(COUNTER)?;
                let appended = tx.append(Event::TicketIssued(TicketIssued {
                    turn_id: Uuid::new_v4(),
                    turn: format!("A-{number:03}"),
                    service: "A".into(),
                    number: number as u32,
                    business_day: "2026-11-23".into(),
                    priority: false,
                    position: 1,
                    estimated_wait_s: 0,
                    card_token: None,
                    locale: "es".into(),
                    campaign_id: None,
                    out_of_sequence: false,
                }))?;
                Ok::<_, JournalError>((appended.seq, number))
            })
            .unwrap();
        let mut out = stdout.lock();
        writeln!(out, "acked {seq} {number}").unwrap();
        out.flush().unwrap();
    }
}

#[test]
fn appends_that_returned_ok_survive_kill_9_at_random_moments() {
    if std::env::var(CHILD_ENV).is_ok() {
        return;
    }
    let rounds: usize = std::env::var("KIOSK_KILL9_ROUNDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(40);
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("journal.db");
    let exe = std::env::current_exe().unwrap();
    let mut rng = rand::thread_rng();
    let mut acked: BTreeMap<u64, i64> = BTreeMap::new();
    let mut kills_mid_run = 0;

    for _ in 0..rounds {
        let mut child = Command::new(&exe)
            .args([
                "--exact",
                "kill9_child_appender",
                "--nocapture",
                "--test-threads=1",
            ])
            .env(CHILD_ENV, &path)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let reader = std::thread::spawn(move || {
            let mut lines = Vec::new();
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if let Some(rest) = line.strip_prefix("acked ") {
                    let mut parts = rest.split(' ');
                    let seq: u64 = parts.next().unwrap().parse().unwrap();
                    let number: i64 = parts.next().unwrap().parse().unwrap();
                    lines.push((seq, number));
                }
            }
            lines
        });
        // The kill lands at a random moment: during start-up, open, recovery, or mid-append.
        std::thread::sleep(Duration::from_millis(rng.gen_range(5..150)));
        let still_running = child.try_wait().unwrap().is_none();
        child.kill().unwrap();
        child.wait().unwrap();
        kills_mid_run += usize::from(still_running);
        for (seq, number) in reader.join().unwrap() {
            assert!(
                acked.insert(seq, number).is_none(),
                "seq {seq} acknowledged twice"
            );
        }
    }

    assert_eq!(
        kills_mid_run, rounds,
        "the child must be killed while running, never exit by itself"
    );
    assert!(
        acked.len() > rounds,
        "the children acknowledged only {} appends",
        acked.len()
    );

    let journal = open(&path);
    assert!(
        journal.integrity_check().unwrap().is_empty(),
        "integrity_check failed"
    );
    let stored = journal
        .list(ListFilter {
            pending_only: false,
            limit: usize::MAX >> 1,
        })
        .unwrap();
    let mut by_seq: BTreeMap<u64, i64> = BTreeMap::new();
    let mut ids = std::collections::HashSet::new();
    for e in &stored {
        assert!(ids.insert(e.id), "event id {} stored twice", e.id);
        let env = journal.envelope(e.seq).unwrap().unwrap();
        let Event::TicketIssued(t) = env.event else {
            panic!("unexpected event {}", e.type_name)
        };
        assert!(by_seq.insert(e.seq, i64::from(t.number)).is_none());
    }
    for (seq, number) in &acked {
        assert_eq!(
            by_seq.get(seq),
            Some(number),
            "acknowledged seq {seq} (turn {number}) lost"
        );
    }
    // Same-transaction state: the counter equals the number of turns, numbers 1..=n, none twice.
    let numbers: Vec<i64> = by_seq.values().copied().collect();
    let mut sorted = numbers.clone();
    sorted.sort_unstable();
    assert_eq!(
        sorted,
        (1..=numbers.len() as i64).collect::<Vec<_>>(),
        "turn numbers skipped or repeated"
    );
    assert_eq!(journal.counter(COUNTER).unwrap(), numbers.len() as i64);
    eprintln!(
        "kill -9 campaign: {rounds} kills, {} acknowledged appends, {} events stored, all present",
        acked.len(),
        stored.len()
    );
}
