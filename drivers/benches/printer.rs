//! Printer figure: the time to lay out and encode a full turn ticket (store, big turn number,
//! service, position, wait, issue time, native QR, campaign line, EAN-13 coupon, footer, cut) on
//! an 80 mm profile, beside python-escpos 3.1 building the same ticket into its `Dummy` printer.
//!
//! The reference runs in a throwaway venv under the target directory (`python3 -m venv`, then
//! `pip install python-escpos==3.1`); when Python or PyPI is unavailable the figure is printed
//! with a null reference and the reason on stderr. Ratio = our median / python-escpos median.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "test code: a failed unwrap is the failure message"
)]

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use kiosk_drivers::printer::{Language, PaperWidth, QrMode, sample_ticket, standard_profile};

const ITERATIONS: usize = 2000;
const REF_ITERATIONS: usize = 300;

/// The python-escpos timing script: the same ticket as `sample_ticket(Language::Es)`.
const REFERENCE_PY: &str = r#"import contextlib, io, json, sys, time
from escpos.printer import Dummy

def ticket():
    p = Dummy(profile="TM-T88V")
    p.hw("INIT")
    p.charcode("CP858")
    p.set(align="center", bold=True, double_height=True, double_width=True)
    p.textln("Tienda Centro · Peñíscola")
    p.set(align="left", bold=False, normal_textsize=True)
    p.textln("-" * 48)
    p.set(align="center")
    p.textln("Su turno")
    p.set(align="center", bold=True, custom_size=True, width=4, height=4)
    p.textln("A-042")
    p.set(align="center", bold=True, normal_textsize=True)
    p.textln("Atención al cliente")
    p.ln()
    p.set(align="left", bold=False)
    for label, value in [("Posición en la cola", "5"), ("Espera estimada", "7 min"), ("Emitido", "22/11/2026 10:31")]:
        p.textln(label + " " * (48 - len(label) - len(value)) + value)
    p.ln()
    p.set(align="center")
    p.qr("KT1.turn.A-042.2026-11-22.store-centro.9f2c1e7a5b.sig=Zm9vYmFyYmF6cXV4", ec=0, size=8, native=True)
    p.textln("Escanee el código para seguir su turno")
    p.textln("-" * 48)
    p.set(align="center", bold=True)
    p.block_text("¡2x1 en café hoy! ¿Lo probó? Sólo 1,50 € en cafetería", columns=48)
    p.ln()
    p.set(align="left", bold=False)
    p.textln("-" * 48)
    p.set(align="center", underline=1)
    p.textln("Cupón: CAFE2X1")
    p.set(underline=0)
    p.barcode("4006381333931", "EAN13", height=102, width=3, pos="BELOW", font="A")
    p.textln("-" * 48)
    p.block_text("Gracias por su visita. Conserve este tique hasta ser atendido; le llamaremos por su número en pantalla.", columns=48)
    p.ln()
    p.ln(3)
    p.cut(mode="PART")
    return p.output

iterations = int(sys.argv[1]) if len(sys.argv) > 1 else 300
times = []
# python-escpos prints "Using hardware barcode renderer" on every barcode: keep stdout for JSON.
with contextlib.redirect_stdout(io.StringIO()):
    for _ in range(20):
        ticket()
    for _ in range(iterations):
        t0 = time.perf_counter_ns()
        out = ticket()
        times.append((time.perf_counter_ns() - t0) / 1000.0)
times.sort()
print(json.dumps({"median_us": times[len(times) // 2], "p99_us": times[min(len(times) - 1, (len(times) * 99) // 100)], "bytes": len(out)}))
"#;

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

fn percentile(sorted: &[f64], p: usize) -> f64 {
    sorted[(sorted.len() * p / 100).min(sorted.len() - 1)]
}

fn venv_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("printer-bench-venv")
}

fn run(cmd: &mut Command) -> Result<String, String> {
    let out = cmd
        .output()
        .map_err(|e| format!("cannot run {cmd:?}: {e}"))?;
    if !out.status.success() {
        let err = String::from_utf8_lossy(&out.stderr);
        return Err(format!(
            "{cmd:?} failed: {}",
            err.lines().last().unwrap_or("")
        ));
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// Median and p99 in microseconds of python-escpos building the ticket.
fn reference(venv: &Path) -> Result<(f64, f64), String> {
    let python = venv.join("bin/python");
    if !python.exists() {
        run(Command::new("python3").args(["-m", "venv"]).arg(venv))?;
    }
    if run(Command::new(&python).args(["-c", "import escpos.printer"])).is_err() {
        run(Command::new(&python).args(["-m", "pip", "install", "-q", "python-escpos==3.1"]))?;
    }
    let script = venv.join("printer_reference.py");
    std::fs::write(&script, REFERENCE_PY)
        .map_err(|e| format!("cannot write {}: {e}", script.display()))?;
    let out = run(Command::new(&python)
        .arg(&script)
        .arg(REF_ITERATIONS.to_string()))?;
    let line = out
        .lines()
        .rev()
        .find(|l| l.starts_with('{'))
        .ok_or("no JSON line from the reference script")?;
    let v: serde_json::Value =
        serde_json::from_str(line).map_err(|e| format!("bad reference output {line:?}: {e}"))?;
    match (v["median_us"].as_f64(), v["p99_us"].as_f64()) {
        (Some(m), Some(p)) => Ok((m, p)),
        _ => Err(format!("bad reference output {line:?}")),
    }
}

fn main() {
    let profile = standard_profile(PaperWidth::Mm80, QrMode::Native);
    let ticket = sample_ticket(Language::Es);
    // Warm up, and check the ticket encodes at all.
    let mut bytes = 0;
    for _ in 0..50 {
        match ticket.encode(&profile) {
            Ok(b) => bytes = b.len(),
            Err(e) => {
                eprintln!("printer bench: the sample ticket does not encode: {e}");
                std::process::exit(1);
            }
        }
    }
    let mut times = Vec::with_capacity(ITERATIONS);
    for _ in 0..ITERATIONS {
        let t0 = Instant::now();
        let out = ticket.encode(&profile);
        times.push(t0.elapsed().as_secs_f64() * 1e6);
        std::hint::black_box(out.ok());
    }
    times.sort_by(f64::total_cmp);
    let (median, p99) = (percentile(&times, 50), percentile(&times, 99));
    eprintln!("printer bench: ticket is {bytes} bytes of ESC/POS");
    match reference(&venv_dir()) {
        Ok((ref_median, ref_p99)) => {
            eprintln!(
                "printer bench: python-escpos median {ref_median:.1} us, p99 {ref_p99:.1} us"
            );
            bench_line(
                "ticket layout+encode (80 mm, native QR, EAN-13)",
                "us",
                median,
                Some(p99),
                Some(("python-escpos 3.1 Dummy", ref_median)),
            );
        }
        Err(why) => {
            eprintln!("printer bench: no python-escpos reference: {why}");
            bench_line(
                "ticket layout+encode (80 mm, native QR, EAN-13)",
                "us",
                median,
                Some(p99),
                None,
            );
        }
    }
}
