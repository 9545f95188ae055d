//! Card reader figures: SPI traffic from card-in-field to UID for 4-, 7- and 10-byte UIDs beside
//! the least an MFRC522 needs for the same ISO 14443A exchange, and the latency from a card
//! entering the field to the tap arriving in the input stream; each for the unmodified crate's
//! path (`transceive = "crate"`, polled every 50 ms as before) and the lean path (polling
//! ComIrqReg, and waiting on the IRQ line; polled every 20 ms), in one run.
//!
//! Minimum counted: the frames ISO 14443A needs for one tap (REQA; per cascade level ANTICOLLISION
//! and SELECT; then HLTA), each done with the fewest MFRC522 transactions: FIFO burst write,
//! CommandReg = Transceive, BitFramingReg StartSend, one ComIrqReg read, FIFOLevelReg read, FIFO
//! burst read (6 transfers, 10 + tx + rx bytes), hardware CRC (TxCRCEn/RxCRCEn) instead of the
//! CalcCRC coprocessor, and no FIFO read for HLTA (4 transfers, 11 bytes). So 10 + 12 L transfers
//! and 24 + 35 L bytes for L cascade levels. An empty-field poll needs at least one REQA without
//! an answer: FIFO write, CommandReg, StartSend and one ComIrqReg read (4 transfers).
//!
//! The simulator charges each SPI transaction 10 µs of overhead plus 8 µs per byte at 1 MHz, and
//! air frames their 106 kbit/s time; the latency run sleeps that modelled time for real.
//!
//! Also for the lean path with the IRQ line at the idle pace (`idle_poll_ms`, 50 ms: what a
//! kiosk whose presence sensor sees nobody polls at): tap latency, and the `card-reader`
//! thread's CPU and wake-ups on an empty field beside the crate path at the same 50 ms, from
//! the thread's schedstat nanoseconds and voluntary context switches over rounds of
//! `BENCH_CARD_IDLE_S` seconds (default 10; the simulated bus costs no real time here, so this
//! is the thread's own cost). `BENCH_QUICK=1` takes shorter windows.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "test code: a failed unwrap is the failure message"
)]

use std::sync::mpsc;
use std::time::{Duration, Instant};

use kiosk_drivers::card::mfrc522sim::{Mfrc522Sim, SimOptions, VirtualCard};
use kiosk_drivers::card::rc522::{Mfrc522Config, Mfrc522Reader, NoResetPin, Transceive};
use kiosk_drivers::card::{CardEvent, ReaderKind, TenantKey};

fn bench_line(
    figure: &str,
    unit: &str,
    median: f64,
    p99: Option<f64>,
    reference: Option<(&str, f64)>,
) {
    let p99 = p99.map_or("null".to_owned(), |v| format!("{v:.3}"));
    let (reference, ref_median, ratio) = match reference {
        Some((name, value)) => (
            format!("\"{name}\""),
            format!("{value:.3}"),
            format!("{:.3}", median / value),
        ),
        None => ("null".to_owned(), "null".to_owned(), "null".to_owned()),
    };
    println!(
        "BENCH {{\"figure\":\"{figure}\",\"unit\":\"{unit}\",\"median\":{median:.3},\"p99\":{p99},\"reference\":{reference},\"ref_median\":{ref_median},\"ratio\":{ratio}}}"
    );
}

fn key() -> TenantKey {
    // A fixed benchmark key; never a real tenant's.
    let Ok(key) = TenantKey::from_slice(b"bench-tenant-key-0123456789abcde") else {
        unreachable!("the key has 33 bytes")
    };
    key
}

fn config(poll_ms: u64) -> Mfrc522Config {
    Mfrc522Config {
        label: "bench mfrc522".into(),
        antenna_gain_db: 48,
        poll_interval: Duration::from_millis(poll_ms),
        idle_poll_interval: Duration::from_millis(poll_ms),
        removal_polls: 3,
    }
}

struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        // xorshift64*: enough to spread card placements over the poll period.
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
}

/// The register paths compared.
#[derive(Debug, Clone, Copy)]
enum Path {
    Crate,
    Lean,
    LeanIrq,
}

impl Path {
    fn name(self) -> &'static str {
        match self {
            Path::Crate => "crate path",
            Path::Lean => "lean path, polled status",
            Path::LeanIrq => "lean path, irq line",
        }
    }

    fn poll_ms(self) -> u64 {
        match self {
            Path::Crate => 50,
            Path::Lean | Path::LeanIrq => 20,
        }
    }
}

fn reader(
    sim: Mfrc522Sim,
    path: Path,
    poll_ms: u64,
) -> Mfrc522Reader<Mfrc522Sim, NoResetPin, kiosk_drivers::card::mfrc522sim::SimDelay> {
    let delay = sim.delay();
    let irq = sim.irq_line();
    let Ok(mut reader) = Mfrc522Reader::new(
        sim,
        None::<NoResetPin>,
        delay,
        config(poll_ms),
        ReaderKind::Simulated,
        key(),
    ) else {
        unreachable!("48 dB is a valid gain")
    };
    match path {
        Path::Crate => reader.set_transceive(Transceive::Crate),
        Path::Lean => reader.set_transceive(Transceive::Lean),
        Path::LeanIrq => {
            reader.set_transceive(Transceive::Lean);
            reader.set_irq(Box::new(irq));
        }
    }
    reader
}

fn spi_per_tap(path: Path) {
    let tag = path.name();
    for (len, levels) in [(4usize, 1u64), (7, 2), (10, 3)] {
        let sim = Mfrc522Sim::new(SimOptions::default());
        let handle = sim.handle();
        let mut reader = reader(sim, path, path.poll_ms());
        reader.poll_once(); // init on an empty field
        handle.reset_spi_stats();
        reader.poll_once();
        let empty = handle.spi_stats();
        let uid: Vec<u8> = (0..len as u8).map(|i| 0x10 + i * 7).collect();
        let Ok(card) = VirtualCard::new(&uid) else {
            unreachable!("4, 7 and 10 are uid lengths")
        };
        handle.place(card);
        handle.reset_spi_stats();
        let t0 = handle.now();
        let events = reader.poll_once();
        let tap = handle.spi_stats();
        let bus_time = handle.now() - t0;
        assert!(
            events.iter().any(|e| matches!(e, CardEvent::Tap(_))),
            "no tap for a {len}-byte uid"
        );
        handle.reset_spi_stats();
        reader.poll_once();
        let held = handle.spi_stats();
        let min_transfers = 10 + 12 * levels;
        let min_bytes = 24 + 35 * levels;
        let name = format!("card in field to uid, {len}-byte uid, {tag}");
        bench_line(
            &format!("{name}: spi transfers"),
            "transfers",
            tap.transfers as f64,
            None,
            Some(("iso 14443a minimum on mfrc522", min_transfers as f64)),
        );
        bench_line(
            &format!("{name}: spi bytes"),
            "bytes",
            tap.bytes as f64,
            None,
            Some(("iso 14443a minimum on mfrc522", min_bytes as f64)),
        );
        bench_line(
            &format!("{name}: modelled bus+air time at 1 MHz"),
            "ms",
            bus_time.as_secs_f64() * 1e3,
            None,
            None,
        );
        bench_line(
            &format!(
                "poll with a held {len}-byte card (reqa timeout, wupa, select, hlta), {tag}: spi transfers"
            ),
            "transfers",
            held.transfers as f64,
            None,
            None,
        );
        if len == 4 {
            bench_line(
                &format!("poll of an empty field, {tag}: spi transfers"),
                "transfers",
                empty.transfers as f64,
                None,
                Some(("one reqa without answer on mfrc522", 4.0)),
            );
            bench_line(
                &format!(
                    "empty field, {tag}, poll {} ms: spi transfers per second",
                    path.poll_ms()
                ),
                "transfers/s",
                empty.transfers as f64 * 1000.0 / path.poll_ms() as f64,
                None,
                None,
            );
        }
    }
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    let idx = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[idx.min(sorted.len() - 1)]
}

fn tap_latency(path: Path, poll_ms: u64, pace: &str) {
    const TAPS: usize = 200;
    let sim = Mfrc522Sim::new(SimOptions::default());
    let handle = sim.handle();
    handle.set_realtime(true);
    let reader = reader(sim, path, poll_ms);
    let (tx, rx) = mpsc::channel();
    let Ok(thread) = kiosk_drivers::card::spawn(Box::new(reader), move |e| {
        tx.send((Instant::now(), e)).is_ok()
    }) else {
        panic!("cannot spawn the reader thread")
    };
    // Wait for the first health report: the reader is initialised and polling.
    let _ = rx.recv_timeout(Duration::from_secs(10));
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15 ^ u64::from(std::process::id()));
    let mut latencies = Vec::with_capacity(TAPS);
    for i in 0..TAPS {
        // Place at a random phase of the poll period.
        std::thread::sleep(Duration::from_micros(rng.next() % (poll_ms * 1000)));
        let uid = (i as u32 + 1).to_be_bytes();
        let Ok(card) = VirtualCard::new(&uid) else {
            unreachable!("4-byte uid")
        };
        let placed = Instant::now();
        let id = handle.place(card);
        loop {
            match rx.recv_timeout(Duration::from_secs(5)) {
                Ok((at, CardEvent::Tap(_))) => {
                    latencies.push(at.duration_since(placed).as_secs_f64() * 1e3);
                    break;
                }
                Ok((_, CardEvent::Health(h))) => eprintln!("card bench: reader health {h}"),
                Err(e) => panic!("no tap within 5 s: {e}"),
            }
        }
        handle.remove(id);
    }
    thread.stop();
    latencies.sort_by(f64::total_cmp);
    bench_line(
        &format!(
            "card in field to tap in the input stream, {}, poll {poll_ms} ms{pace} (200 taps, random phase)",
            path.name()
        ),
        "ms",
        percentile(&latencies, 0.5),
        Some(percentile(&latencies, 0.99)),
        Some((
            "half the poll interval (ideal median)",
            poll_ms as f64 / 2.0,
        )),
    );
}

/// CPU nanoseconds and voluntary context switches (wake-ups) of this process's thread `name`.
fn thread_cpu(name: &str) -> (u64, u64) {
    let Ok(tasks) = std::fs::read_dir("/proc/self/task") else {
        return (0, 0);
    };
    for task in tasks.flatten() {
        let comm = std::fs::read_to_string(task.path().join("comm")).unwrap_or_default();
        if comm.trim() != name {
            continue;
        }
        let ns = std::fs::read_to_string(task.path().join("schedstat"))
            .ok()
            .and_then(|s| s.split_whitespace().next()?.parse().ok())
            .unwrap_or(0);
        let switches = std::fs::read_to_string(task.path().join("status"))
            .ok()
            .and_then(|s| {
                s.lines()
                    .find_map(|l| l.strip_prefix("voluntary_ctxt_switches:"))?
                    .trim()
                    .parse()
                    .ok()
            })
            .unwrap_or(0);
        return (ns, switches);
    }
    (0, 0)
}

/// The reader thread on an empty field for `window`: (% of a core, wake-ups per second, SPI
/// transfers per second).
fn idle_round(path: Path, poll_ms: u64, window: Duration) -> (f64, f64, f64) {
    let sim = Mfrc522Sim::new(SimOptions::default());
    let handle = sim.handle();
    let reader = reader(sim, path, poll_ms);
    let Ok(thread) = kiosk_drivers::card::spawn(Box::new(reader), |_| true) else {
        panic!("cannot spawn the reader thread")
    };
    std::thread::sleep(Duration::from_millis(300)); // initialised and polling
    let (ns0, sw0) = thread_cpu("card-reader");
    let x0 = handle.spi_stats().transfers;
    let t0 = Instant::now();
    std::thread::sleep(window);
    let (ns1, sw1) = thread_cpu("card-reader");
    let x1 = handle.spi_stats().transfers;
    let secs = t0.elapsed().as_secs_f64();
    thread.stop();
    (
        (ns1 - ns0) as f64 / 1e9 / secs * 100.0,
        (sw1 - sw0) as f64 / secs,
        (x1 - x0) as f64 / secs,
    )
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

/// The idle reader thread's cost, crate path at 50 ms against the lean path at its fast (20 ms)
/// and idle (100 ms) paces, in alternating rounds so that the machine's background load falls
/// on all three alike.
fn idle_cpu() {
    let quick = std::env::var("BENCH_QUICK").is_ok_and(|v| v == "1");
    let secs = std::env::var("BENCH_CARD_IDLE_S")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(if quick { 3 } else { 10 });
    let rounds = if quick { 1 } else { 3 };
    let window = Duration::from_secs(secs);
    let cases = [
        (Path::Crate, 50, ""),
        (Path::LeanIrq, 20, ", fast pace"),
        (Path::LeanIrq, 100, ", idle pace"),
    ];
    let mut results: Vec<Vec<(f64, f64, f64)>> = vec![Vec::new(); cases.len()];
    for _ in 0..rounds {
        for (i, (path, poll_ms, _)) in cases.iter().enumerate() {
            results[i].push(idle_round(*path, *poll_ms, window));
        }
    }
    let summary = |r: &[(f64, f64, f64)]| {
        (
            median(r.iter().map(|x| x.0).collect()),
            median(r.iter().map(|x| x.1).collect()),
            median(r.iter().map(|x| x.2).collect()),
        )
    };
    let (crate_cpu, crate_wakeups, _) = summary(&results[0]);
    for (i, (path, poll_ms, pace)) in cases.iter().enumerate() {
        let (cpu, wakeups, transfers) = summary(&results[i]);
        let tag = format!("{}, poll {poll_ms} ms{pace}", path.name());
        let reference = |v| (i > 0).then_some(("same, crate path, poll 50 ms", v));
        bench_line(
            &format!(
                "card-reader thread CPU on an empty field, {tag} (median of {rounds} x {secs} s)"
            ),
            "% of a core",
            cpu,
            None,
            reference(crate_cpu),
        );
        bench_line(
            &format!("card-reader thread wake-ups on an empty field, {tag}"),
            "wake-ups/s",
            wakeups,
            None,
            reference(crate_wakeups),
        );
        bench_line(
            &format!(
                "card-reader on an empty field, {tag}: spi transfers per second (measured, with the configuration check every 20 polls)"
            ),
            "transfers/s",
            transfers,
            None,
            None,
        );
        eprintln!(
            "card bench: idle {tag}: rounds (cpu %, wake-ups/s, transfers/s) {:?}",
            results[i]
        );
    }
}

fn main() {
    for path in [Path::Crate, Path::Lean, Path::LeanIrq] {
        spi_per_tap(path);
    }
    for path in [Path::Crate, Path::Lean, Path::LeanIrq] {
        tap_latency(path, path.poll_ms(), "");
    }
    // A customer the presence sensor did not see (or who tapped more than 30 s after it last
    // saw anyone): the reader is at its idle pace.
    tap_latency(Path::LeanIrq, 100, " (idle pace)");
    idle_cpu();
}
