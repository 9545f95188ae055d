//! Card reader figures: SPI traffic from card-in-field to UID for 4-, 7- and 10-byte UIDs beside
//! the least an MFRC522 needs for the same ISO 14443A exchange, and the latency from a card
//! entering the field to the tap arriving in the input stream; each for the unmodified crate's
//! path (`transceive = "crate"`, polled every 50 ms as before) and the lean path (polling
//! ComIrqReg, and waiting on the IRQ line; polled every 25 ms), in one run.
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
            Path::Lean | Path::LeanIrq => 25,
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

fn tap_latency(path: Path) {
    const TAPS: usize = 200;
    let poll_ms = path.poll_ms();
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
            "card in field to tap in the input stream, {}, poll {poll_ms} ms (200 taps, random phase)",
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

fn main() {
    for path in [Path::Crate, Path::Lean, Path::LeanIrq] {
        spi_per_tap(path);
    }
    for path in [Path::Crate, Path::Lean, Path::LeanIrq] {
        tap_latency(path);
    }
}
