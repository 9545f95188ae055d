use std::sync::Arc;

use kiosk_protocol::CardToken;
use kiosk_protocol::events::*;
use time::macros::datetime;
use uuid::Uuid;

use super::*;
use crate::clock::ManualClock;
use crate::crypto::DeviceKey;

fn token(n: u8) -> CardToken {
    CardToken::from_bytes([n; 16])
}

fn open_at(path: &Path, key: &DeviceKey) -> Opened {
    let clock = ManualClock::new(datetime!(2026-11-23 09:00 UTC));
    Journal::open(
        path,
        Identity {
            kiosk_id: "kiosk-test".into(),
            boot_id: Uuid::new_v4(),
        },
        Arc::new(clock),
        key.clone(),
        &Options::default(),
    )
    .unwrap()
}

fn fresh() -> (tempfile::TempDir, Journal, DeviceKey) {
    let dir = tempfile::tempdir().unwrap();
    let key = DeviceKey::generate();
    let journal = open_at(&dir.path().join("journal.db"), &key).journal;
    (dir, journal, key)
}

fn started() -> Event {
    Event::KioskStarted(KioskStarted {
        version: "0.1.0".into(),
        git_commit: "abc".into(),
        hardware_profile: "simulated".into(),
        unclean_shutdown: false,
    })
}

fn registered(n: u8) -> Event {
    Event::CustomerRegistered(CustomerRegistered {
        card_token: token(n),
        display_name: "Ana García".into(),
        email: Some("ana@example.com".into()),
        phone: None,
        locale: "es".into(),
    })
}

fn tapped(n: u8) -> Event {
    Event::CardTapped(CardTapped {
        card_token: token(n),
        reader: ReaderKind::Mfrc522,
        known: true,
    })
}

#[test]
fn appends_get_consecutive_sequence_numbers_and_envelopes() {
    let (_dir, mut j, _) = fresh();
    let a = j.append(started()).unwrap();
    let b = j.append(tapped(1)).unwrap();
    assert_eq!((a.seq, b.seq), (1, 2));
    let env = j.envelope(2).unwrap().unwrap();
    assert_eq!(env.id, b.id);
    assert_eq!(env.kiosk_id, "kiosk-test");
    assert_eq!(env.seq, 2);
    assert_eq!(env.event, tapped(1));
    assert_eq!(env.id.get_version_num(), 7);
}

#[test]
fn outbox_lists_unacknowledged_events_in_order_within_limits() {
    let (_dir, mut j, _) = fresh();
    for _ in 0..10 {
        j.append(started()).unwrap();
    }
    let all = j.pending(100, usize::MAX).unwrap();
    assert_eq!(
        all.iter().map(|e| e.seq).collect::<Vec<_>>(),
        (1..=10).collect::<Vec<_>>()
    );
    assert_eq!(j.pending(3, usize::MAX).unwrap().len(), 3);
    let one_size = all[0].body.len();
    assert_eq!(j.pending(100, one_size * 2 + 1).unwrap().len(), 2);
    // Even an event bigger than the byte budget goes out alone rather than blocking the queue.
    assert_eq!(j.pending(100, 1).unwrap().len(), 1);
}

#[test]
fn acknowledged_ranges_leave_the_outbox_and_only_once() {
    let (_dir, mut j, _) = fresh();
    for _ in 0..10 {
        j.append(started()).unwrap();
    }
    assert_eq!(j.acknowledge(&[1, 2, 3, 5, 7, 8]).unwrap(), 6);
    assert_eq!(
        j.acknowledge(&[1, 2, 3]).unwrap(),
        0,
        "already acknowledged"
    );
    let left: Vec<u64> = j
        .pending(100, usize::MAX)
        .unwrap()
        .iter()
        .map(|e| e.seq)
        .collect();
    assert_eq!(left, vec![4, 6, 9, 10]);
    let stats = j.stats().unwrap();
    assert_eq!((stats.events, stats.pending, stats.last_seq), (10, 4, 10));
}

#[test]
fn ranges_are_contiguous_runs() {
    assert_eq!(ranges(&[1, 2, 3, 5, 7, 8]), vec![(1, 3), (5, 5), (7, 8)]);
    assert_eq!(ranges(&[]), vec![]);
}

#[test]
fn dead_lettered_event_leaves_the_outbox_with_its_reason_and_an_alert() {
    let (_dir, mut j, _) = fresh();
    j.append(started()).unwrap();
    j.append(tapped(1)).unwrap();
    let alert = j.dead_letter(1, "schema: unknown field").unwrap();
    assert_eq!(alert.seq, 3);
    let pending: Vec<_> = j.pending(10, usize::MAX).unwrap();
    assert_eq!(
        pending
            .iter()
            .map(|e| e.type_name.as_str())
            .collect::<Vec<_>>(),
        vec!["card_tapped", "event_dead_lettered"]
    );
    let dead = j.dead_letters(10).unwrap();
    assert_eq!(dead.len(), 1);
    assert_eq!(
        (dead[0].seq, dead[0].reason.as_str()),
        (1, "schema: unknown field")
    );
    assert!(matches!(
        j.dead_letter(1, "again"),
        Err(JournalError::NoSuchEvent { seq: 1, .. })
    ));
}

#[test]
fn sequence_numbers_are_never_reused_after_deletions_and_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("journal.db");
    let key = DeviceKey::generate();
    {
        let mut j = open_at(&path, &key).journal;
        for _ in 0..5 {
            j.append(started()).unwrap();
        }
        j.dead_letter(6 - 1, "bad").unwrap(); // seq 5 dead-lettered, alert is 6
        j.acknowledge(&[1, 2, 3, 4, 6]).unwrap();
        j.sql()
            .execute("UPDATE events SET acked_at = 0", [])
            .unwrap();
        assert_eq!(j.prune(30).unwrap(), 5);
    }
    let mut j = open_at(&path, &key).journal;
    assert_eq!(j.append(started()).unwrap().seq, 7);
}

#[test]
fn state_changes_commit_with_their_event_or_not_at_all() {
    let (_dir, mut j, _) = fresh();
    let n = j
        .transaction(|tx| {
            let n = tx.counter_next("turns/2026-11-23/A")?;
            tx.append(started())?;
            Ok::<_, JournalError>(n)
        })
        .unwrap();
    assert_eq!(n, 1);
    let failed: Result<(), JournalError> = j.transaction(|tx| {
        tx.counter_next("turns/2026-11-23/A")?;
        tx.append(started())?;
        Err(JournalError::NoSuchEvent {
            path: PathBuf::new(),
            seq: 0,
        })
    });
    assert!(failed.is_err());
    assert_eq!(
        j.counter("turns/2026-11-23/A").unwrap(),
        1,
        "rolled back with the failed transaction"
    );
    assert_eq!(j.stats().unwrap().events, 1);
    // The sequence did not advance for the rolled-back append.
    assert_eq!(j.append(started()).unwrap().seq, 2);
}

#[test]
fn personal_data_is_sealed_at_rest_and_opened_for_the_outbox() {
    let (dir, mut j, _) = fresh();
    j.append(registered(7)).unwrap();
    drop(j);
    let raw = std::fs::read(dir.path().join("journal.db")).unwrap();
    let wal = std::fs::read(dir.path().join("journal.db-wal")).unwrap_or_default();
    for bytes in [&raw, &wal] {
        let hay = String::from_utf8_lossy(bytes);
        assert!(!hay.contains("Ana García"), "name readable at rest");
        assert!(!hay.contains("ana@example.com"), "email readable at rest");
    }
    let key_dir_key = DeviceKey::generate();
    // With the wrong key the outbox cannot open it: a clear decode error, no garbage sent.
    let wrong = open_at(&dir.path().join("journal.db"), &key_dir_key).journal;
    assert!(matches!(
        wrong.pending(10, usize::MAX),
        Err(JournalError::Decode { seq: 1, .. })
    ));
}

#[test]
fn sealed_event_reads_back_with_the_device_key() {
    let (_dir, mut j, _) = fresh();
    j.append(registered(7)).unwrap();
    let out = j.pending(10, usize::MAX).unwrap();
    assert!(out[0].sealed);
    assert!(out[0].body.contains("Ana García"));
    let listed = j
        .list(ListFilter {
            pending_only: false,
            limit: 10,
        })
        .unwrap();
    // The whole name: a three-letter fragment turns up in random base64 ciphertext about once in
    // a thousand runs.
    assert!(
        !listed[0].body.contains("Ana García"),
        "listing keeps personal data sealed"
    );
}

#[test]
fn erasure_removes_the_customers_personal_events_and_profile() {
    let (dir, mut j, _) = fresh();
    j.append(registered(7)).unwrap();
    j.append(tapped(7)).unwrap();
    j.append(registered(8)).unwrap();
    j.sql()
        .execute(
            "INSERT INTO profiles (card_token, body, updated_at) VALUES (?1, 'sealed', 't')",
            [token(7).as_str()],
        )
        .unwrap();
    j.erase_customer(&token(7)).unwrap();
    let types: Vec<String> = j
        .pending(10, usize::MAX)
        .unwrap()
        .into_iter()
        .map(|e| e.type_name)
        .collect();
    assert_eq!(
        types,
        vec!["card_tapped", "customer_registered", "customer_erased"]
    );
    let erased = j.envelope(4).unwrap().unwrap();
    assert!(matches!(
        erased.event,
        Event::CustomerErased(CustomerErased {
            redacted_events: 1,
            ..
        })
    ));
    let profiles: i64 = j
        .sql()
        .query_row("SELECT count(*) FROM profiles", [], |r| r.get(0))
        .unwrap();
    assert_eq!(profiles, 0);
    // Physical: deleted rows are zeroed (secure_delete) and the WAL, which held them, is cut.
    let secure: i64 = j
        .sql()
        .query_row("PRAGMA secure_delete", [], |r| r.get(0))
        .unwrap();
    assert_eq!(secure, 1);
    let wal = std::fs::metadata(dir.path().join("journal.db-wal")).map_or(0, |m| m.len());
    assert_eq!(wal, 0, "the WAL still holds {wal} bytes after the erasure");
}

#[test]
fn personal_event_types_match_the_catalog() {
    for e in [registered(1), tapped(1), started()] {
        assert_eq!(
            e.carries_personal_data(),
            PERSONAL_EVENT_TYPES.contains(&e.type_name())
        );
    }
}

#[test]
fn retention_prunes_only_old_acknowledged_events() {
    let (_dir, mut j, _) = fresh();
    for _ in 0..4 {
        j.append(started()).unwrap();
    }
    j.acknowledge(&[1, 2, 3]).unwrap();
    j.sql()
        .execute(
            "UPDATE events SET acked_at = acked_at - 40 * 86400 WHERE seq <= 2",
            [],
        )
        .unwrap();
    assert_eq!(j.prune(30).unwrap(), 2);
    let left: Vec<u64> = j
        .list(ListFilter {
            pending_only: false,
            limit: 10,
        })
        .unwrap()
        .iter()
        .map(|e| e.seq)
        .collect();
    assert_eq!(left, vec![4, 3]);
}

#[test]
fn full_disk_fails_appends_clearly_and_damages_nothing() {
    let (_dir, mut j, _) = fresh();
    for _ in 0..20 {
        j.append(started()).unwrap();
    }
    let pages: i64 = j
        .sql()
        .query_row("PRAGMA page_count", [], |r| r.get(0))
        .unwrap();
    j.sql()
        .query_row(&format!("PRAGMA max_page_count = {pages}"), [], |_| Ok(()))
        .unwrap();
    let big = Event::TicketPrintFailed(TicketPrintFailed {
        turn_id: Uuid::nil(),
        reason: "x".repeat(64 * 1024),
        shown_on_screen: true,
    });
    let err = j.append(big.clone()).unwrap_err();
    assert!(matches!(err, JournalError::DiskFull { .. }), "{err:?}");
    assert!(err.to_string().contains("disk is full"), "{err}");
    assert!(j.integrity_check().unwrap().is_empty());
    assert_eq!(j.stats().unwrap().events, 20);
    // Space comes back: appends resume with the next number, none skipped.
    j.sql()
        .query_row("PRAGMA max_page_count = 1000000", [], |_| Ok(()))
        .unwrap();
    assert_eq!(j.append(big).unwrap().seq, 21);
}

#[test]
fn corrupt_database_is_moved_aside_salvaged_and_recorded() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("journal.db");
    let key = DeviceKey::generate();
    {
        let mut j = open_at(&path, &key).journal;
        for i in 0..300u32 {
            j.transaction(|tx| {
                tx.counter_next("turns/day/A")?;
                tx.append(Event::TicketIssued(TicketIssued {
                    turn_id: Uuid::new_v4(),
                    turn: format!("A-{i:03}"),
                    service: "A".into(),
                    number: i + 1,
                    business_day: "2026-11-23".into(),
                    priority: false,
                    position: 1,
                    estimated_wait_s: 60,
                    card_token: None,
                    locale: "es".into(),
                    campaign_id: None,
                    out_of_sequence: false,
                }))
            })
            .unwrap();
        }
        j.acknowledge(&(1..=100).collect::<Vec<_>>()).unwrap();
        j.sql()
            .execute_batch("PRAGMA wal_checkpoint(TRUNCATE)")
            .unwrap();
    }
    // Scribble over the table page holding turn A-150 (an SD card going bad).
    let mut bytes = std::fs::read(&path).unwrap();
    let page = 4096;
    let needle = b"\"turn\":\"A-150\"";
    let at = bytes
        .windows(needle.len())
        .position(|w| w == needle)
        .expect("turn A-150 on disk");
    let victim = at / page;
    for b in &mut bytes[victim * page..victim * page + page] {
        *b = 0xA5;
    }
    std::fs::write(&path, &bytes).unwrap();

    let opened = open_at(&path, &key);
    let recovery = opened.recovery.expect("recovery reported");
    let j = opened.journal;
    assert!(recovery.moved_to.exists(), "the damaged file is kept");
    assert!(recovery.salvaged_events > 200, "{recovery:?}");
    assert!(
        recovery.salvaged_events < 300,
        "one page was lost: {recovery:?}"
    );
    assert!(j.integrity_check().unwrap().is_empty());
    let last = j
        .list(ListFilter {
            pending_only: true,
            limit: 1,
        })
        .unwrap();
    assert_eq!(last[0].type_name, "journal_recovered");
    assert!(last[0].seq > 300, "new numbers continue after the old ones");
    // Acknowledged state survived for the salvaged rows that had it.
    let acked = j.stats().unwrap().events - j.stats().unwrap().pending;
    assert!(acked > 50, "{acked}");
}

#[test]
fn file_that_is_not_a_database_is_moved_aside_and_the_kiosk_starts_fresh() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("journal.db");
    std::fs::write(
        &path,
        b"this is not sqlite, it is a text file that got here somehow",
    )
    .unwrap();
    // The kiosk's own files are 0600 (a file open to others is refused before anything else).
    std::fs::set_permissions(
        &path,
        <std::fs::Permissions as std::os::unix::fs::PermissionsExt>::from_mode(0o600),
    )
    .unwrap();
    let key = DeviceKey::generate();
    let opened = open_at(&path, &key);
    let recovery = opened.recovery.unwrap();
    assert_eq!(recovery.salvaged_events, 0);
    assert!(
        std::fs::read(&recovery.moved_to)
            .unwrap()
            .starts_with(b"this is not sqlite")
    );
    let mut j = opened.journal;
    let next = j.append(started()).unwrap();
    assert_eq!(
        next.seq,
        SEQ_GAP_AFTER_RECOVERY + 2,
        "unknown old sequence: jump past it"
    );
}

#[test]
fn database_from_a_newer_firmware_is_refused_not_recovered() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("journal.db");
    let key = DeviceKey::generate();
    drop(open_at(&path, &key));
    rusqlite::Connection::open(&path)
        .unwrap()
        .execute_batch("PRAGMA user_version = 42")
        .unwrap();
    let clock = ManualClock::new(datetime!(2026-11-23 09:00 UTC));
    let err = Journal::open(
        &path,
        Identity {
            kiosk_id: "k".into(),
            boot_id: Uuid::new_v4(),
        },
        Arc::new(clock),
        key,
        &Options::default(),
    )
    .unwrap_err();
    assert!(matches!(
        err,
        JournalError::Migration {
            source: MigrationError::NewerSchema { found: 42, .. },
            ..
        }
    ));
    assert!(path.exists(), "the file is left alone");
}

use recovery::SEQ_GAP_AFTER_RECOVERY;

fn with_budget(path: &Path, key: &DeviceKey, bytes: u64) -> Journal {
    Journal::open(
        path,
        Identity {
            kiosk_id: "kiosk-test".into(),
            boot_id: Uuid::new_v4(),
        },
        Arc::new(ManualClock::new(datetime!(2026-11-23 09:00 UTC))),
        key.clone(),
        &Options {
            synchronous: Synchronous::Normal,
            disk_budget_bytes: Some(bytes),
            ..Options::default()
        },
    )
    .unwrap()
    .journal
}

fn consent(n: u8) -> Event {
    Event::ConsentGiven(ConsentChange {
        card_token: token(n),
        purpose: ConsentPurpose::MarketingEmail,
        policy_version: "2026-01".into(),
        policy_sha256: "0".repeat(64),
    })
}

fn storage_events(j: &Journal) -> Vec<Envelope> {
    let seqs: Vec<u64> = j
        .list(ListFilter {
            pending_only: false,
            limit: usize::MAX >> 1,
        })
        .unwrap()
        .into_iter()
        .filter(|e| e.type_name == "device_status_changed")
        .map(|e| e.seq)
        .collect();
    seqs.into_iter()
        .rev()
        .map(|s| j.envelope(s).unwrap().unwrap())
        .collect()
}

const BUDGET: u64 = 1024 * 1024;

/// Appends taps until the journal refuses one; returns how many went in.
fn tap_until_refused(j: &mut Journal) -> usize {
    for i in 0..100_000 {
        match j.append(tapped((i % 250) as u8)) {
            Ok(_) => {}
            Err(JournalError::OverBudget { type_name, .. }) => {
                assert_eq!(type_name, "card_tapped");
                return i;
            }
            Err(e) => panic!("{e}"),
        }
    }
    panic!("a 1 MiB budget never refused a tap");
}

#[test]
fn no_event_type_is_both_low_value_and_protected_and_queue_events_are_never_low_value() {
    let kept = [
        registered(1),
        consent(1),
        Event::ConsentWithdrawn(ConsentChange {
            card_token: token(1),
            purpose: ConsentPurpose::MarketingEmail,
            policy_version: "2026-01".into(),
            policy_sha256: "0".repeat(64),
        }),
        Event::TicketPrintFailed(TicketPrintFailed {
            turn_id: Uuid::nil(),
            reason: "paper out".into(),
            shown_on_screen: true,
        }),
        started(),
    ];
    for e in &kept {
        assert!(!is_low_value(e), "{} must be kept", e.type_name());
    }
    assert!(is_low_value(&tapped(1)));
    assert!(registered(1).is_protected() && consent(1).is_protected());
}

#[test]
fn past_the_soft_limit_low_value_events_are_refused_counted_and_reported_once() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("journal.db");
    let key = DeviceKey::generate();
    let mut j = with_budget(&path, &key, BUDGET);
    let accepted = tap_until_refused(&mut j);
    assert!(accepted > 100, "{accepted} taps fit in 3/4 MiB");
    // More taps: refused, counted; registrations, consents and other events still go in.
    for i in 0..50u8 {
        assert!(matches!(
            j.append(tapped(i)),
            Err(JournalError::OverBudget { .. })
        ));
        j.append(registered(i)).unwrap();
        j.append(consent(i)).unwrap();
    }
    let stats = j.stats().unwrap();
    assert_eq!(stats.dropped_over_budget, 51);
    assert!(stats.dropping_low_value);
    assert_eq!(j.counter("budget_dropped:card_tapped").unwrap(), 51);
    let storage = storage_events(&j);
    assert_eq!(storage.len(), 1, "one degraded event, not one per refusal");
    let Event::DeviceStatusChanged(s) = &storage[0].event else {
        unreachable!()
    };
    assert_eq!(
        (s.device, s.status),
        (DeviceKind::Storage, DeviceHealth::Degraded)
    );
    assert!(s.reason.as_deref().unwrap().contains("card_tapped"));

    // A restart remembers the state (no second degraded event).
    drop(j);
    let mut j = with_budget(&path, &key, BUDGET);
    assert!(matches!(
        j.append(tapped(1)),
        Err(JournalError::OverBudget { .. })
    ));
    assert_eq!(storage_events(&j).len(), 1);
    assert!(j.integrity_check().unwrap().is_empty());
}

#[test]
fn a_refusal_inside_a_transaction_keeps_the_rest_of_it() {
    let dir = tempfile::tempdir().unwrap();
    let mut j = with_budget(
        &dir.path().join("journal.db"),
        &DeviceKey::generate(),
        BUDGET,
    );
    tap_until_refused(&mut j);
    let before = j.stats().unwrap().events;
    let issued = j
        .transaction(|tx| {
            tx.counter_next("turn:2026-11-23:A")?;
            assert!(matches!(
                tx.append(tapped(9)),
                Err(JournalError::OverBudget { .. })
            ));
            tx.append(registered(9))
        })
        .unwrap();
    assert_eq!(j.stats().unwrap().events, before + 1);
    assert!(j.envelope(issued.seq).unwrap().is_some());
    assert_eq!(j.counter("turn:2026-11-23:A").unwrap(), 1);
    assert_eq!(j.stats().unwrap().dropped_over_budget, 2);
}

#[test]
fn acknowledged_events_are_pruned_oldest_first_before_anything_is_refused_and_refusals_stop_after_the_drain()
 {
    let dir = tempfile::tempdir().unwrap();
    let mut j = with_budget(
        &dir.path().join("journal.db"),
        &DeviceKey::generate(),
        BUDGET,
    );
    let accepted = tap_until_refused(&mut j);
    // The CRM comes back and acknowledges everything: pruning makes room, refusals stop, the
    // storage is reported healthy again.
    let all: Vec<u64> = (1..=j.stats().unwrap().last_seq).collect();
    j.acknowledge(&all).unwrap();
    assert!(!j.stats().unwrap().dropping_low_value);
    // The storage is reported healthy again (the "degraded" report was acknowledged with the
    // rest, so the prune may have taken it: how far it goes depends on the schema's size).
    let storage = storage_events(&j);
    let Some(Event::DeviceStatusChanged(s)) = storage.last().map(|e| &e.event) else {
        unreachable!()
    };
    assert_eq!(s.status, DeviceHealth::Ok);
    // Online from now on (each event acknowledged as it is sent): taps go on for good, oldest
    // acknowledged events make room, nothing is refused.
    for i in 0..accepted * 3 {
        let a = j.append(tapped((i % 250) as u8)).unwrap();
        j.acknowledge(&[a.seq]).unwrap();
    }
    let stats = j.stats().unwrap();
    assert_eq!(stats.dropped_over_budget, 1);
    assert!(stats.events < accepted as u64 * 2, "{stats:?}");
    let oldest = j
        .sql()
        .query_row("SELECT min(seq) FROM events", [], |r| r.get::<_, i64>(0))
        .unwrap();
    assert!(oldest as usize > accepted, "the oldest went first");
    assert!(j.integrity_check().unwrap().is_empty());
}

#[test]
fn a_backlog_acknowledged_batch_by_batch_ends_the_refusals() {
    // The sync worker acknowledges batch by batch. Pruning one batch can bring the journal just
    // under the soft limit but above where refusals stop: the next acknowledgements must go on
    // pruning, or the kiosk would refuse taps with nothing left to send. Which batch size lands
    // there depends on page boundaries, so several are tried (100 and 128 did, before).
    for batch in [50, 100, 128, 200] {
        let dir = tempfile::tempdir().unwrap();
        let mut j = with_budget(
            &dir.path().join("journal.db"),
            &DeviceKey::generate(),
            BUDGET,
        );
        // A checkpoint after every commit (as SQLite's own does, at times): what the journal
        // occupies is then its pages, and pruning is the only thing that brings it down.
        let checkpoint = |j: &Journal| {
            j.sql()
                .query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()))
                .unwrap()
        };
        for i in 0.. {
            match j.append(tapped((i % 250) as u8)) {
                Ok(_) => checkpoint(&j),
                Err(JournalError::OverBudget { .. }) => break,
                Err(e) => panic!("{e}"),
            }
        }
        let all: Vec<u64> = (1..=j.stats().unwrap().last_seq).collect();
        for chunk in all.chunks(batch) {
            checkpoint(&j);
            j.acknowledge(chunk).unwrap();
        }
        let stats = j.stats().unwrap();
        assert!(!stats.dropping_low_value, "batches of {batch}: {stats:?}");
        assert_eq!(stats.pending, 1, "only the recovery event is unsent");
        let storage = storage_events(&j);
        assert_eq!(storage.len(), 2);
        let Event::DeviceStatusChanged(s) = &storage[1].event else {
            unreachable!()
        };
        assert_eq!(s.status, DeviceHealth::Ok);
        j.append(tapped(1)).unwrap();
        assert!(j.integrity_check().unwrap().is_empty());
    }
}

#[test]
fn past_the_budget_itself_the_events_the_kiosk_never_drops_are_still_journaled() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("journal.db");
    let mut j = with_budget(&path, &DeviceKey::generate(), BUDGET);
    tap_until_refused(&mut j);
    let mut n = 0u32;
    while j.stats().unwrap().file_bytes < BUDGET * 3 / 2 {
        n += 1;
        j.append(registered((n % 250) as u8)).unwrap();
        j.append(consent((n % 250) as u8)).unwrap();
        j.transaction(|tx| {
            let number = tx.counter_next("turn:2026-11-23:A")?;
            tx.append(Event::TicketIssued(TicketIssued {
                turn_id: Uuid::now_v7(),
                turn: format!("A-{number:03}"),
                service: "A".into(),
                number: number as u32,
                business_day: "2026-11-23".into(),
                priority: false,
                position: 0,
                estimated_wait_s: 60,
                card_token: None,
                locale: "es".into(),
                campaign_id: None,
                out_of_sequence: false,
            }))
        })
        .unwrap();
    }
    assert_eq!(j.counter("turn:2026-11-23:A").unwrap(), i64::from(n));
    assert!(matches!(
        j.append(tapped(1)),
        Err(JournalError::OverBudget { .. })
    ));
    assert!(j.integrity_check().unwrap().is_empty());
}

#[test]
fn the_oldest_event_waiting_after_a_batch_is_the_first_unacknowledged_one_past_it() {
    let (_dir, mut j, _) = fresh();
    for _ in 0..5 {
        j.append(started()).unwrap();
    }
    let wall = |j: &Journal, seq: i64| -> String {
        j.conn
            .query_row("SELECT wall_time FROM events WHERE seq = ?1", [seq], |r| {
                r.get(0)
            })
            .unwrap()
    };
    // A batch of 1-2 in flight: once it is in, event 3 is the oldest waiting.
    assert_eq!(j.oldest_after(2).unwrap(), Some(wall(&j, 3)));
    // 3 acknowledged already (another batch): 4 is.
    j.acknowledge(&[3]).unwrap();
    assert_eq!(j.oldest_after(2).unwrap(), Some(wall(&j, 4)));
    // Nothing after the last one.
    assert_eq!(j.oldest_after(5).unwrap(), None);
}

#[test]
fn the_backlog_is_read_from_the_pending_index_not_the_whole_journal() {
    let (_dir, mut j, _) = fresh();
    for _ in 0..10 {
        j.append(started()).unwrap();
    }
    j.acknowledge(&[1, 2, 3, 4, 5, 6, 7]).unwrap();
    let b = j.backlog().unwrap();
    assert_eq!(b.events, 3);
    let stats = j.stats().unwrap();
    assert_eq!((stats.events, stats.pending), (10, 3));
    assert_eq!(b.oldest_wall_time, stats.oldest_pending_wall_time);
    assert!(b.oldest_wall_time.is_some());
    // Both of its queries walk only the partial index of unacknowledged events: their cost
    // follows the backlog (bench: 10M acknowledged events, 500 pending).
    for sql in [
        "SELECT count(*) FROM events WHERE acked_at IS NULL",
        "SELECT wall_time FROM outbox ORDER BY seq LIMIT 1",
    ] {
        let plan: Vec<String> = j
            .conn
            .prepare(&format!("EXPLAIN QUERY PLAN {sql}"))
            .unwrap()
            .query_map([], |r| r.get::<_, String>(3))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        assert!(
            plan.iter().any(|p| p.contains("events_pending")),
            "{sql}: {plan:?}"
        );
    }
}

#[test]
fn the_wal_is_reused_in_place_across_checkpoints_not_truncated_and_regrown() {
    // A 1 MiB budget checkpoints every 16 frames; a WAL truncated at each checkpoint would shrink
    // and then grow with every commit (each fsync then also journals the file's new size).
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("journal.db");
    let mut j = with_budget(&path, &DeviceKey::generate(), BUDGET);
    let wal = wal_path(&path);
    let mut sizes = Vec::new();
    for i in 0..300u32 {
        j.append(tapped((i % 250) as u8)).unwrap();
        sizes.push(std::fs::metadata(&wal).unwrap().len());
    }
    let working = sizes[100];
    assert!(
        working > 16 * 4096,
        "the WAL reached its working size: {working}"
    );
    assert!(
        sizes[100..].iter().all(|&s| s >= working),
        "the WAL shrank after a checkpoint: {:?}",
        &sizes[100..]
    );
    assert!(
        sizes.iter().all(|&s| s <= 2 * (32 + 16 * (4096 + 24))),
        "and stays under its limit: max {:?}",
        sizes.iter().max()
    );
}

#[test]
fn the_event_count_follows_appends_deletions_rollbacks_and_other_connections() {
    let (dir, mut j, _) = fresh();
    let counted = |j: &Journal| -> u64 {
        j.sql()
            .query_row("SELECT count(*) FROM events", [], |r| r.get::<_, i64>(0))
            .unwrap() as u64
    };
    let check = |j: &Journal, step: &str| {
        assert_eq!(j.stats().unwrap().events, counted(j), "after {step}");
    };
    check(&j, "opening");
    for n in 0..20 {
        j.append(if n % 2 == 0 { tapped(n) } else { started() })
            .unwrap();
    }
    check(&j, "appends");
    j.transaction(|tx| {
        tx.append(started())?;
        tx.append(started())
    })
    .unwrap();
    check(&j, "a transaction of two");
    let failed: Result<(), JournalError> = j.transaction(|tx| {
        tx.append(started())?;
        tx.sql()
            .execute("DELETE FROM events WHERE seq <= 3", [])
            .map_err(tx.ctx.err("test"))?;
        Err(JournalError::NoSuchEvent {
            path: tx.ctx.path.clone(),
            seq: 0,
        })
    });
    assert!(failed.is_err());
    check(&j, "a rolled-back append and delete");
    j.dead_letter(5, "bad").unwrap();
    check(&j, "dead-lettering");
    j.acknowledge(&[1, 2, 3, 4]).unwrap();
    j.sql()
        .execute("UPDATE events SET acked_at = acked_at - 40 * 86400", [])
        .unwrap();
    assert_eq!(j.prune(30).unwrap(), 4);
    check(&j, "retention");
    j.erase_customer(&token(6)).unwrap();
    check(&j, "an erasure");
    // Another connection deletes (a technician's sqlite3, a restore): the next count sees it.
    rusqlite::Connection::open(dir.path().join("journal.db"))
        .unwrap()
        .execute("DELETE FROM events WHERE seq = 10", [])
        .unwrap();
    check(&j, "another connection's delete");
    j.append(started()).unwrap();
    check(&j, "one more append");
    assert!(
        j.count.get().is_some(),
        "the count is followed, not re-read"
    );
}
