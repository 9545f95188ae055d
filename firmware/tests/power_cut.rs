//! Power-cut simulation of the journal's writes: what survives when the power goes at any point,
//! for `synchronous = FULL` (what the kiosk runs) and `NORMAL` (the comparison).
//!
//! `kill -9` keeps the kernel's page cache, so the kill campaigns prove crash safety only. Here a
//! SQLite VFS (registered as the default for this test binary through `rusqlite::ffi`, wrapping
//! the real `unix` VFS) records every write, truncate, sync and delete of the journal's files in
//! order. A power cut after operation `k` leaves on "disk", per file, everything up to the last
//! completed sync (or delete) before `k`, and of the writes after it either nothing or a random
//! subset, some torn at a 512-byte sector (what a disk cache writing back in any order does).
//! The surviving images are written to a fresh directory (no `-shm`: shared memory does not
//! survive a power cut) and opened by the real journal.
//!
//! Checked for every cut: the journal opens without recovery, `integrity_check` passes, the
//! events are a prefix `1..=m` of what was appended (nothing after a hole), the turn counter
//! equals the turns journaled (state and event commit together), and with `FULL` every append
//! that had returned `Ok` before the cut is there. With `NORMAL` acknowledged appends are lost
//! (the WAL is synced only at checkpoints): the test requires that it happens in some cuts, which
//! shows the simulation really drops unsynced writes, and prints how many.
//!
//! Knobs: `KIOSK_POWER_CUT_APPENDS` (appends per run, default 400), `KIOSK_POWER_CUT_CUTS` (cut
//! points per mode, default 300), `KIOSK_SOAK_SEED`.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "test code: a failed unwrap is the failure message"
)]

use std::collections::BTreeMap;
use std::ffi::{CStr, c_char, c_int, c_void};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, Once};

use kiosk_journal::clock::SystemClock;
use kiosk_journal::crypto::DeviceKey;
use kiosk_journal::{Identity, Journal, ListFilter, Options, Synchronous};
use kiosk_protocol::events::{Event, TicketIssued, TicketPrinted};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use uuid::Uuid;

/// The recording VFS.
mod vfs {
    use super::*;
    use rusqlite::ffi;

    /// One operation on a file, in the order the journal made them.
    #[derive(Debug, Clone)]
    pub enum Op {
        Write {
            offset: u64,
            data: Vec<u8>,
        },
        Truncate(u64),
        /// `fsync` returned: everything before it is on the disk.
        Sync,
        /// The file was deleted (taken as durable at once).
        Delete,
    }

    /// The operations of the files of one directory: (file name, operation).
    pub type Log = Arc<Mutex<Vec<(String, Op)>>>;

    static TRACKED: Mutex<Vec<(PathBuf, Log)>> = Mutex::new(Vec::new());

    /// Records from now on every operation on files in `dir`.
    pub fn track(dir: &Path) -> Log {
        install();
        let log = Log::default();
        TRACKED.lock().unwrap().push((dir.to_owned(), log.clone()));
        log
    }

    fn log_for(path: &str) -> Option<(String, Log)> {
        let path = Path::new(path);
        let dir = path.parent()?;
        let name = path.file_name()?.to_string_lossy().into_owned();
        TRACKED
            .lock()
            .unwrap()
            .iter()
            .find(|(d, _)| d == dir)
            .map(|(_, log)| (name, log.clone()))
    }

    /// Our file: SQLite allocates `szOsFile` bytes; the real unix file follows this header.
    #[repr(C)]
    struct CutFile {
        base: ffi::sqlite3_file,
        /// `Box<(name, log)>` when the file is tracked, else null.
        tracked: *mut (String, Log),
    }

    const REAL_OFFSET: usize = std::mem::size_of::<CutFile>().next_multiple_of(16);

    /// The wrapped unix file.
    unsafe fn real(f: *mut ffi::sqlite3_file) -> *mut ffi::sqlite3_file {
        // SAFETY: SQLite gave us szOsFile bytes, REAL_OFFSET of them before the real file.
        unsafe { f.cast::<u8>().add(REAL_OFFSET).cast() }
    }

    unsafe fn methods(f: *mut ffi::sqlite3_file) -> &'static ffi::sqlite3_io_methods {
        // SAFETY: only called on files whose real open succeeded (pMethods set by unix).
        unsafe { &*(*real(f)).pMethods }
    }

    unsafe fn record(f: *mut ffi::sqlite3_file, op: Op) {
        // SAFETY: `f` is one of our files; `tracked` is null or a live box.
        let tracked = unsafe { (*f.cast::<CutFile>()).tracked };
        if let Some((name, log)) = unsafe { tracked.as_ref() } {
            log.lock().unwrap().push((name.clone(), op));
        }
    }

    unsafe extern "C" fn x_close(f: *mut ffi::sqlite3_file) -> c_int {
        // SAFETY: forwarding to the real file, then freeing what x_open allocated.
        unsafe {
            let rc = methods(f).xClose.unwrap()(real(f));
            let cf = f.cast::<CutFile>();
            if !(*cf).tracked.is_null() {
                drop(Box::from_raw((*cf).tracked));
                (*cf).tracked = std::ptr::null_mut();
            }
            rc
        }
    }

    unsafe extern "C" fn x_read(
        f: *mut ffi::sqlite3_file,
        buf: *mut c_void,
        n: c_int,
        off: ffi::sqlite3_int64,
    ) -> c_int {
        // SAFETY: forwarding.
        unsafe { methods(f).xRead.unwrap()(real(f), buf, n, off) }
    }

    unsafe extern "C" fn x_write(
        f: *mut ffi::sqlite3_file,
        buf: *const c_void,
        n: c_int,
        off: ffi::sqlite3_int64,
    ) -> c_int {
        // SAFETY: forwarding; `buf` holds `n` bytes for the duration of the call.
        unsafe {
            let rc = methods(f).xWrite.unwrap()(real(f), buf, n, off);
            if rc == ffi::SQLITE_OK {
                let data = std::slice::from_raw_parts(buf.cast::<u8>(), n as usize).to_vec();
                record(
                    f,
                    Op::Write {
                        offset: off as u64,
                        data,
                    },
                );
            }
            rc
        }
    }

    unsafe extern "C" fn x_truncate(f: *mut ffi::sqlite3_file, size: ffi::sqlite3_int64) -> c_int {
        // SAFETY: forwarding.
        unsafe {
            let rc = methods(f).xTruncate.unwrap()(real(f), size);
            if rc == ffi::SQLITE_OK {
                record(f, Op::Truncate(size as u64));
            }
            rc
        }
    }

    unsafe extern "C" fn x_sync(f: *mut ffi::sqlite3_file, flags: c_int) -> c_int {
        // SAFETY: forwarding.
        unsafe {
            let rc = methods(f).xSync.unwrap()(real(f), flags);
            if rc == ffi::SQLITE_OK {
                record(f, Op::Sync);
            }
            rc
        }
    }

    unsafe extern "C" fn x_file_size(
        f: *mut ffi::sqlite3_file,
        size: *mut ffi::sqlite3_int64,
    ) -> c_int {
        // SAFETY: forwarding.
        unsafe { methods(f).xFileSize.unwrap()(real(f), size) }
    }

    unsafe extern "C" fn x_lock(f: *mut ffi::sqlite3_file, level: c_int) -> c_int {
        // SAFETY: forwarding.
        unsafe { methods(f).xLock.unwrap()(real(f), level) }
    }

    unsafe extern "C" fn x_unlock(f: *mut ffi::sqlite3_file, level: c_int) -> c_int {
        // SAFETY: forwarding.
        unsafe { methods(f).xUnlock.unwrap()(real(f), level) }
    }

    unsafe extern "C" fn x_check_reserved_lock(
        f: *mut ffi::sqlite3_file,
        out: *mut c_int,
    ) -> c_int {
        // SAFETY: forwarding.
        unsafe { methods(f).xCheckReservedLock.unwrap()(real(f), out) }
    }

    unsafe extern "C" fn x_file_control(
        f: *mut ffi::sqlite3_file,
        op: c_int,
        arg: *mut c_void,
    ) -> c_int {
        // SAFETY: forwarding.
        unsafe { methods(f).xFileControl.unwrap()(real(f), op, arg) }
    }

    unsafe extern "C" fn x_sector_size(f: *mut ffi::sqlite3_file) -> c_int {
        // SAFETY: forwarding.
        unsafe { methods(f).xSectorSize.unwrap()(real(f)) }
    }

    unsafe extern "C" fn x_device_characteristics(f: *mut ffi::sqlite3_file) -> c_int {
        // SAFETY: forwarding.
        unsafe { methods(f).xDeviceCharacteristics.unwrap()(real(f)) }
    }

    unsafe extern "C" fn x_shm_map(
        f: *mut ffi::sqlite3_file,
        page: c_int,
        size: c_int,
        extend: c_int,
        out: *mut *mut c_void,
    ) -> c_int {
        // SAFETY: forwarding.
        unsafe { methods(f).xShmMap.unwrap()(real(f), page, size, extend, out) }
    }

    unsafe extern "C" fn x_shm_lock(
        f: *mut ffi::sqlite3_file,
        offset: c_int,
        n: c_int,
        flags: c_int,
    ) -> c_int {
        // SAFETY: forwarding.
        unsafe { methods(f).xShmLock.unwrap()(real(f), offset, n, flags) }
    }

    unsafe extern "C" fn x_shm_barrier(f: *mut ffi::sqlite3_file) {
        // SAFETY: forwarding.
        unsafe { methods(f).xShmBarrier.unwrap()(real(f)) }
    }

    unsafe extern "C" fn x_shm_unmap(f: *mut ffi::sqlite3_file, delete: c_int) -> c_int {
        // SAFETY: forwarding.
        unsafe { methods(f).xShmUnmap.unwrap()(real(f), delete) }
    }

    /// Version 2: shared memory (WAL) but no memory-mapped I/O, so every write goes through
    /// `x_write`.
    static METHODS: ffi::sqlite3_io_methods = ffi::sqlite3_io_methods {
        iVersion: 2,
        xClose: Some(x_close),
        xRead: Some(x_read),
        xWrite: Some(x_write),
        xTruncate: Some(x_truncate),
        xSync: Some(x_sync),
        xFileSize: Some(x_file_size),
        xLock: Some(x_lock),
        xUnlock: Some(x_unlock),
        xCheckReservedLock: Some(x_check_reserved_lock),
        xFileControl: Some(x_file_control),
        xSectorSize: Some(x_sector_size),
        xDeviceCharacteristics: Some(x_device_characteristics),
        xShmMap: Some(x_shm_map),
        xShmLock: Some(x_shm_lock),
        xShmBarrier: Some(x_shm_barrier),
        xShmUnmap: Some(x_shm_unmap),
        xFetch: None,
        xUnfetch: None,
    };

    unsafe extern "C" fn x_open(
        vfs: *mut ffi::sqlite3_vfs,
        name: ffi::sqlite3_filename,
        f: *mut ffi::sqlite3_file,
        flags: c_int,
        out_flags: *mut c_int,
    ) -> c_int {
        // SAFETY: `f` has szOsFile bytes; pAppData is the unix VFS (set in install).
        unsafe {
            let cf = f.cast::<CutFile>();
            (*cf).base.pMethods = std::ptr::null();
            (*cf).tracked = std::ptr::null_mut();
            let unix = (*vfs).pAppData.cast::<ffi::sqlite3_vfs>();
            let rc = (*unix).xOpen.unwrap()(unix, name, real(f), flags, out_flags);
            if rc != ffi::SQLITE_OK || (*real(f)).pMethods.is_null() {
                return rc;
            }
            if !name.is_null()
                && let Some(t) = log_for(&CStr::from_ptr(name).to_string_lossy())
            {
                (*cf).tracked = Box::into_raw(Box::new(t));
            }
            (*cf).base.pMethods = &METHODS;
            rc
        }
    }

    unsafe extern "C" fn x_delete(
        vfs: *mut ffi::sqlite3_vfs,
        name: *const c_char,
        sync_dir: c_int,
    ) -> c_int {
        // SAFETY: forwarding to the unix VFS.
        unsafe {
            let unix = (*vfs).pAppData.cast::<ffi::sqlite3_vfs>();
            let rc = (*unix).xDelete.unwrap()(unix, name, sync_dir);
            if rc == ffi::SQLITE_OK
                && let Some((file, log)) = log_for(&CStr::from_ptr(name).to_string_lossy())
            {
                log.lock().unwrap().push((file, Op::Delete));
            }
            rc
        }
    }

    fn install() {
        static ONCE: Once = Once::new();
        ONCE.call_once(|| {
            // SAFETY: the unix VFS lives for the whole process; ours is leaked (SQLite keeps the
            // pointer). Copying the unix VFS keeps its other methods, which do not use pAppData.
            unsafe {
                let unix = ffi::sqlite3_vfs_find(c"unix".as_ptr());
                assert!(!unix.is_null(), "no unix VFS");
                let mut ours = *unix;
                ours.pNext = std::ptr::null_mut();
                ours.zName = c"powercut".as_ptr();
                ours.pAppData = unix.cast();
                ours.szOsFile = (REAL_OFFSET + (*unix).szOsFile as usize) as c_int;
                ours.xOpen = Some(x_open);
                ours.xDelete = Some(x_delete);
                let ours = Box::into_raw(Box::new(ours));
                assert_eq!(ffi::sqlite3_vfs_register(ours, 1), ffi::SQLITE_OK);
            }
        });
    }
}

use vfs::Op;

fn env_or<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

const COUNTER: &str = "turn:2026-11-23:A";

/// An append that returned: its sequence number, whether it was a turn, and how many operations
/// had been logged when it returned `Ok`.
#[derive(Debug, Clone, Copy)]
struct Acked {
    seq: u64,
    turn: bool,
    ops_at_return: usize,
}

fn open(path: &Path, key: &DeviceKey, synchronous: Synchronous) -> kiosk_journal::Opened {
    Journal::open(
        path,
        Identity {
            kiosk_id: "kiosk-power-cut".into(),
            boot_id: Uuid::new_v4(),
        },
        Arc::new(SystemClock),
        key.clone(),
        &Options {
            synchronous,
            // The production minimum: the WAL is checkpointed every 256 pages, so runs cross
            // several checkpoints and WAL restarts.
            disk_budget_bytes: Some(16 * 1024 * 1024),
            ..Options::default()
        },
    )
    .unwrap()
}

/// Appends turns (counter + `ticket_issued` in one transaction) and prints, logging the
/// operation count at each return.
fn run(
    dir: &Path,
    key: &DeviceKey,
    synchronous: Synchronous,
    appends: usize,
) -> (vfs::Log, usize, Vec<Acked>) {
    let log = vfs::track(dir);
    let mut journal = open(&dir.join("journal.db"), key, synchronous).journal;
    let opened_at = log.lock().unwrap().len();
    let mut acked = Vec::with_capacity(appends);
    for i in 0..appends {
        let turn = i % 3 != 2;
        let seq = if turn {
            journal
                .transaction(|tx| {
                    let number = tx.counter_next(COUNTER)?;
                    tx.append(Event::TicketIssued(TicketIssued {
                        turn_id: Uuid::now_v7(),
                        turn: format!("A-{number:03}"),
                        service: "A".into(),
                        number: number as u32,
                        business_day: "2026-11-23".into(),
                        priority: false,
                        position: 0,
                        estimated_wait_s: 120,
                        card_token: None,
                        locale: "es".into(),
                        campaign_id: None,
                        out_of_sequence: false,
                    }))
                    .map(|a| a.seq)
                })
                .unwrap()
        } else {
            journal
                .append(Event::TicketPrinted(TicketPrinted {
                    turn_id: Uuid::now_v7(),
                    bytes: 1800,
                    reprint: false,
                }))
                .unwrap()
                .seq
        };
        acked.push(Acked {
            seq,
            turn,
            ops_at_return: log.lock().unwrap().len(),
        });
    }
    // Closing (the last checkpoint, deleting the WAL) comes after every cut point.
    drop(journal);
    (log, opened_at, acked)
}

/// The files as a power cut after `cut` operations leaves them: each file's operations up to
/// its last sync or delete, then (when `rng` is given) a random subset of the later writes,
/// some torn at a sector.
fn survivors(
    ops: &[(String, Op)],
    cut: usize,
    rng: Option<&mut StdRng>,
) -> BTreeMap<String, Vec<u8>> {
    let mut by_file: BTreeMap<&str, Vec<&Op>> = BTreeMap::new();
    for (name, op) in &ops[..cut] {
        by_file.entry(name).or_default().push(op);
    }
    let mut rng = rng;
    let mut out = BTreeMap::new();
    for (name, ops) in by_file {
        let barrier = ops
            .iter()
            .rposition(|op| matches!(op, Op::Sync | Op::Delete))
            .map_or(0, |i| i + 1);
        let mut image: Option<Vec<u8>> = None;
        let apply = |image: &mut Option<Vec<u8>>, op: &Op, keep: Option<usize>| match op {
            Op::Write { offset, data } => {
                let img = image.get_or_insert_with(Vec::new);
                let data = &data[..keep.unwrap_or(data.len()).min(data.len())];
                let end = *offset as usize + data.len();
                if img.len() < end {
                    img.resize(end, 0);
                }
                img[*offset as usize..end].copy_from_slice(data);
            }
            Op::Truncate(size) => image.get_or_insert_with(Vec::new).resize(*size as usize, 0),
            Op::Delete => *image = None,
            Op::Sync => {}
        };
        for op in &ops[..barrier] {
            apply(&mut image, op, None);
        }
        if let Some(rng) = rng.as_deref_mut() {
            for op in &ops[barrier..] {
                match rng.gen_range(0..4) {
                    0 | 1 => {}
                    2 => apply(&mut image, op, None),
                    _ => {
                        let sectors = match op {
                            Op::Write { data, .. } => data.len().div_ceil(512),
                            _ => 1,
                        };
                        apply(&mut image, op, Some(512 * rng.gen_range(0..sectors.max(1))));
                    }
                }
            }
        }
        if let Some(image) = image {
            out.insert(name.to_owned(), image);
        }
    }
    out
}

/// What one cut left.
#[derive(Debug, Default)]
struct Outcome {
    /// Appends that had returned `Ok` before the cut and are gone.
    lost_acked: usize,
    /// Appends that had not returned yet but are there (their sync had completed).
    kept_in_flight: usize,
}

fn check_cut(
    scratch: &Path,
    key: &DeviceKey,
    synchronous: Synchronous,
    files: &BTreeMap<String, Vec<u8>>,
    acked: &[Acked],
    cut: usize,
    what: &str,
) -> Outcome {
    let dir = tempfile::tempdir_in(scratch).unwrap();
    for (name, bytes) in files {
        // The files as the kiosk keeps them: its own only (0600), or the journal refuses them.
        use std::os::unix::fs::OpenOptionsExt as _;
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(dir.path().join(name))
            .unwrap();
        std::io::Write::write_all(&mut f, bytes).unwrap();
    }
    let path = dir.path().join("journal.db");
    let opened = open(&path, key, synchronous);
    assert!(
        opened.recovery.is_none(),
        "{what}: the journal found itself corrupt: {:?}",
        opened.recovery
    );
    let journal = opened.journal;
    assert!(
        journal.integrity_check().unwrap().is_empty(),
        "{what}: integrity"
    );
    let events = journal
        .list(ListFilter {
            pending_only: false,
            limit: usize::MAX >> 1,
        })
        .unwrap();
    let mut seqs: Vec<u64> = events.iter().map(|e| e.seq).collect();
    seqs.sort_unstable();
    let m = seqs.len() as u64;
    assert_eq!(
        seqs,
        (1..=m).collect::<Vec<_>>(),
        "{what}: the survivors are not a prefix"
    );
    assert!(
        m as usize <= acked.len(),
        "{what}: more events than appended"
    );
    let turns = acked[..m as usize].iter().filter(|a| a.turn).count() as i64;
    assert_eq!(
        journal.counter(COUNTER).unwrap(),
        turns,
        "{what}: the turn counter and the turns journaled disagree"
    );
    let returned = acked.iter().filter(|a| a.ops_at_return <= cut);
    let lost_acked = returned.filter(|a| a.seq > m).count();
    let kept_in_flight = acked[..m as usize]
        .iter()
        .filter(|a| a.ops_at_return > cut)
        .count();
    Outcome {
        lost_acked,
        kept_in_flight,
    }
}

fn campaign(synchronous: Synchronous) -> (usize, usize, usize, usize) {
    let appends = env_or("KIOSK_POWER_CUT_APPENDS", 400usize);
    let cuts = env_or("KIOSK_POWER_CUT_CUTS", 300usize);
    let seed = env_or("KIOSK_SOAK_SEED", rand::random::<u64>());
    let mut rng = StdRng::seed_from_u64(seed);
    // tmpfs when there is one: syncs are simulated, the real ones only cost time.
    let scratch = ["/dev/shm", "/tmp"]
        .iter()
        .map(PathBuf::from)
        .find(|p| p.is_dir())
        .unwrap();
    let dir = tempfile::tempdir_in(&scratch).unwrap();
    let key = DeviceKey::generate();
    let (log, opened_at, acked) = run(dir.path(), &key, synchronous, appends);
    let ops = log.lock().unwrap().clone();
    let end = acked.last().unwrap().ops_at_return;
    let syncs = ops[..end]
        .iter()
        .filter(|(_, op)| matches!(op, Op::Sync))
        .count();
    let (mut lost_total, mut cuts_losing, mut in_flight_kept) = (0, 0, 0);
    for i in 0..cuts {
        let cut = rng.gen_range(opened_at..=end);
        let torn = i % 2 == 1;
        let what = format!(
            "{synchronous:?} cut after op {cut} of {end} ({}), seed {seed}",
            if torn {
                "unsynced writes partly kept, some torn"
            } else {
                "unsynced writes dropped"
            }
        );
        let files = survivors(&ops, cut, torn.then_some(&mut rng));
        let outcome = check_cut(&scratch, &key, synchronous, &files, &acked, cut, &what);
        if synchronous == Synchronous::Full {
            assert_eq!(
                outcome.lost_acked, 0,
                "{what}: appends that returned Ok are gone"
            );
        }
        lost_total += outcome.lost_acked;
        cuts_losing += usize::from(outcome.lost_acked > 0);
        in_flight_kept += outcome.kept_in_flight;
    }
    println!(
        "FIGURE power_cut synchronous={synchronous:?} appends={appends} ops={end} syncs={syncs} \
         cuts={cuts} cuts_losing_acknowledged={cuts_losing} acknowledged_appends_lost={lost_total} \
         in_flight_appends_kept={in_flight_kept} seed={seed}"
    );
    (cuts, cuts_losing, lost_total, syncs)
}

#[test]
fn with_synchronous_full_a_power_cut_anywhere_loses_no_acknowledged_append_and_leaves_a_sound_journal()
 {
    let (cuts, losing, _, syncs) = campaign(Synchronous::Full);
    assert_eq!(losing, 0);
    assert!(syncs > cuts.min(100), "FULL syncs at every commit: {syncs}");
}

#[test]
fn with_synchronous_normal_a_power_cut_loses_acknowledged_appends_but_never_consistency() {
    let (_, losing, lost, _) = campaign(Synchronous::Normal);
    // The control: unsynced writes really are dropped by the simulation.
    assert!(
        losing > 0 && lost > 0,
        "NORMAL never lost an acknowledged append: the simulation keeps unsynced writes"
    );
}

#[test]
fn the_simulation_keeps_synced_writes_and_drops_the_rest() {
    let ops = vec![
        (
            "f".to_owned(),
            Op::Write {
                offset: 0,
                data: vec![1; 4],
            },
        ),
        ("f".to_owned(), Op::Sync),
        (
            "f".to_owned(),
            Op::Write {
                offset: 2,
                data: vec![2; 4],
            },
        ),
        (
            "g".to_owned(),
            Op::Write {
                offset: 0,
                data: vec![3; 1],
            },
        ),
        ("g".to_owned(), Op::Sync),
        ("g".to_owned(), Op::Delete),
    ];
    let files = survivors(&ops, ops.len(), None);
    assert_eq!(files.get("f"), Some(&vec![1; 4]));
    assert!(!files.contains_key("g"), "a deleted file stays deleted");
    let files = survivors(&ops, 5, None);
    assert_eq!(files.get("g"), Some(&vec![3]));
}
