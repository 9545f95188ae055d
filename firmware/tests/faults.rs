//! The journal under a hostile machine: a file-size limit hit mid-append (what a full disk does
//! to a write), a read-only data directory, and a wall clock jumping back and forward. Each must
//! fail with a clear error or carry on, and damage nothing already committed.
//!
//! The disk-full case runs in a child process (this test binary re-run) with `RLIMIT_FSIZE` set,
//! so writes past the limit fail with EFBIG instead of filling the real disk; SIGXFSZ is ignored
//! so the write returns the error instead of killing the process.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "test code: a failed unwrap is the failure message"
)]

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};

use kiosk_journal::clock::{Clock, SystemClock};
use kiosk_journal::crypto::DeviceKey;
use kiosk_journal::{Identity, Journal, ListFilter, Options};
use kiosk_protocol::events::{Event, SurveyAnswered};
use time::OffsetDateTime;
use uuid::Uuid;

const CHILD_ENV: &str = "KIOSK_FAULTS_CHILD_DB";

fn open_with(path: &Path, clock: Arc<dyn Clock>) -> Result<Journal, kiosk_journal::JournalError> {
    let key = DeviceKey::load_or_create(&path.with_extension("key")).unwrap();
    Journal::open(
        path,
        Identity {
            kiosk_id: "kiosk-faults".into(),
            boot_id: Uuid::new_v4(),
        },
        clock,
        key,
        &Options::default(),
    )
    .map(|o| o.journal)
}

fn event(i: u64) -> Event {
    // A survey with a long free-text-free payload: a few hundred bytes per event.
    Event::SurveyAnswered(SurveyAnswered {
        turn_id: Some(Uuid::from_u128(u128::from(i))),
        score: (i % 11) as u8,
        reason: Some(format!("reason-{i}-{}", "x".repeat(200))),
        card_token: None,
    })
}

/// The child: appends until the file-size limit makes an append fail; prints each ack and then
/// the error.
#[test]
fn faults_child_appends_until_the_disk_is_full() {
    let Ok(path) = std::env::var(CHILD_ENV) else {
        return;
    };
    let path = Path::new(&path);
    let mut journal = open_with(path, Arc::new(SystemClock)).unwrap();
    let size = std::fs::metadata(path).unwrap().len();
    // SAFETY: plain libc calls on this process; ignoring SIGXFSZ turns the signal into EFBIG.
    unsafe {
        libc::signal(libc::SIGXFSZ, libc::SIG_IGN);
        let limit = libc::rlimit {
            rlim_cur: size + 256 * 1024,
            rlim_max: libc::RLIM_INFINITY,
        };
        assert_eq!(libc::setrlimit(libc::RLIMIT_FSIZE, &limit), 0);
    }
    for i in 0.. {
        match journal.append(event(i)) {
            Ok(a) => println!("acked {}", a.seq),
            Err(e) => {
                println!("error {}", chain(&e));
                return;
            }
        }
    }
}

#[test]
fn an_append_on_a_full_disk_fails_with_a_clear_error_and_loses_nothing_committed() {
    if std::env::var(CHILD_ENV).is_ok() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("journal.db");
    drop(open_with(&path, Arc::new(SystemClock)).unwrap());
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "faults_child_appends_until_the_disk_is_full",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(CHILD_ENV, &path)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut acked = Vec::new();
    let mut error = None;
    for line in BufReader::new(child.stdout.take().unwrap()).lines() {
        let line = line.unwrap();
        if let Some(seq) = line.strip_prefix("acked ") {
            acked.push(seq.parse::<u64>().unwrap());
        } else if let Some(e) = line.strip_prefix("error ") {
            error = Some(e.to_owned());
        }
    }
    assert!(child.wait().unwrap().success());
    let error = error.expect("the child hit the limit");
    assert!(
        acked.len() > 10,
        "only {} appends before the limit",
        acked.len()
    );
    // A real ENOSPC is SQLITE_FULL and reads "the disk is full; free space on the data
    // partition"; a file-size limit (EFBIG: RLIMIT_FSIZE, FAT's 4 GiB) comes out of SQLite as
    // SQLITE_IOERR_WRITE, which the journal tells apart by the OS error SQLite saw.
    assert!(
        error.contains("journal.db")
            && error.contains("cannot grow")
            && error.contains("EFBIG")
            && error.contains("ulimit -f"),
        "an error naming the journal, the file-size limit and the fix: {error}"
    );

    // Without the limit: intact, every acknowledged append there, appends work again.
    let mut journal = open_with(&path, Arc::new(SystemClock)).unwrap();
    assert!(journal.integrity_check().unwrap().is_empty());
    let stored: Vec<u64> = journal
        .list(ListFilter {
            pending_only: false,
            limit: usize::MAX >> 1,
        })
        .unwrap()
        .iter()
        .map(|e| e.seq)
        .collect();
    for seq in &acked {
        assert!(stored.contains(seq), "acknowledged seq {seq} lost");
    }
    let next = journal.append(event(u64::MAX)).unwrap();
    assert!(next.seq > *acked.last().unwrap());
}

#[test]
fn a_read_only_data_directory_is_a_clear_error_at_start_up() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    std::fs::create_dir(&data).unwrap();
    let path = data.join("journal.db");
    // A journal written earlier, then the partition turned read-only (as a failing SD card does).
    drop(open_with(&path, Arc::new(SystemClock)).unwrap());
    // Read-only for its owner and nobody else (a journal open to other users is refused before
    // anything else, as it should be).
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o400)).unwrap();
    std::fs::set_permissions(&data, std::fs::Permissions::from_mode(0o555)).unwrap();
    // Root ignores permission bits: open as an unprivileged user in a child when we are root
    // (the journal then belongs to that user, as the kiosk's belongs to the kiosk user).
    // SAFETY: geteuid has no preconditions.
    let root = unsafe { libc::geteuid() } == 0;
    if root {
        std::os::unix::fs::chown(&path, Some(65534), Some(65534)).unwrap();
    }
    let outcome = if root {
        let exe = std::env::current_exe().unwrap();
        let out = Command::new(exe)
            .args(["--exact", "faults_child_opens_as_nobody", "--nocapture"])
            .env("KIOSK_FAULTS_RO_DB", &path)
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).into_owned()
    } else {
        match open_with(&path, Arc::new(SystemClock)) {
            Ok(_) => "opened".to_owned(),
            Err(e) => format!("error {}", chain(&e)),
        }
    };
    std::fs::set_permissions(&data, std::fs::Permissions::from_mode(0o755)).unwrap();
    assert!(
        outcome.contains("error")
            && outcome.contains("read-only")
            && outcome.contains("journal.db"),
        "a read-only data directory must be named as such: {outcome}"
    );
}

#[test]
fn faults_child_opens_as_nobody() {
    let Ok(path) = std::env::var("KIOSK_FAULTS_RO_DB") else {
        return;
    };
    let path = Path::new(&path);
    // SAFETY: plain libc calls that drop this child's privileges to nobody.
    unsafe {
        assert_eq!(libc::setgid(65534), 0);
        assert_eq!(libc::setuid(65534), 0);
    }
    // The key was made by root: an unprivileged kiosk could not read it either, so use a fresh
    // key in memory; what fails must be the journal.
    let opened = Journal::open(
        path,
        Identity {
            kiosk_id: "kiosk-faults".into(),
            boot_id: Uuid::new_v4(),
        },
        Arc::new(SystemClock),
        DeviceKey::generate(),
        &Options::default(),
    );
    match opened {
        Ok(_) => println!("opened"),
        Err(e) => println!("error {}", chain(&e)),
    }
}

/// An error with its sources, as `kiosk` prints it.
fn chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        out.push_str(": ");
        out.push_str(&s.to_string());
        source = s.source();
    }
    out
}

/// A wall clock the test moves.
struct JumpingClock {
    offset_s: AtomicI64,
}

impl Clock for JumpingClock {
    fn wall(&self) -> OffsetDateTime {
        OffsetDateTime::now_utc() + time::Duration::seconds(self.offset_s.load(Ordering::SeqCst))
    }
    fn mono_ms(&self) -> u64 {
        SystemClock.mono_ms()
    }
}

#[test]
fn a_wall_clock_jumping_back_and_forward_keeps_sequence_and_monotonic_time_in_order() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("journal.db");
    let clock = Arc::new(JumpingClock {
        offset_s: AtomicI64::new(0),
    });
    let mut journal = open_with(&path, clock.clone()).unwrap();
    // NTP steps: back a day, forward a year, back to 1970-ish, then now.
    let jumps = [0, -86_400, 365 * 86_400, -1_700_000_000, 0, -3_600];
    let mut seqs = Vec::new();
    for (i, jump) in jumps.iter().enumerate() {
        clock.offset_s.store(*jump, Ordering::SeqCst);
        for k in 0..5 {
            seqs.push(journal.append(event((i * 10 + k) as u64)).unwrap().seq);
        }
    }
    drop(journal);
    let journal = open_with(&path, clock.clone()).unwrap();
    let mut last_seq = 0;
    let mut last_mono = 0;
    let mut walls = Vec::new();
    for seq in &seqs {
        let env = journal.envelope(*seq).unwrap().expect("stored");
        assert!(env.seq > last_seq, "seq went backwards at {seq}");
        assert!(
            env.mono_ms >= last_mono,
            "mono time went backwards at {seq}"
        );
        last_seq = env.seq;
        last_mono = env.mono_ms;
        walls.push(env.wall_time);
    }
    // The wall times really jumped (the journal keeps what the clock said, no reordering).
    assert!(
        walls.windows(2).any(|w| w[1] < w[0]),
        "the clock never went back"
    );
    let listed: Vec<u64> = journal
        .list(ListFilter {
            pending_only: true,
            limit: usize::MAX >> 1,
        })
        .unwrap()
        .iter()
        .map(|e| e.seq)
        .collect();
    let mut sorted = seqs.clone();
    sorted.sort_unstable();
    let mut listed_sorted = listed.clone();
    listed_sorted.sort_unstable();
    assert_eq!(listed_sorted, sorted, "the outbox holds every event once");
}
