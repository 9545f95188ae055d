//! What the firmware's bench binaries share: the `BENCH {json}` line that scripts/bench collects,
//! percentiles, and a few knobs read from the environment.

#![allow(dead_code)] // each bench binary uses its own subset

use std::time::Duration;

/// One figure for scripts/bench. `ratio` is `median / ref_median` (a cost ratio for times, a
/// throughput ratio for rates: the target text says which way is good).
pub struct Figure<'a> {
    pub figure: &'a str,
    pub unit: &'a str,
    pub median: f64,
    pub p99: Option<f64>,
    pub reference: Option<(&'a str, f64)>,
    /// What the issue asks of this figure, in words (`"ratio <= 1.3"`, `"p99 < 100 ms"`).
    pub target: Option<&'a str>,
    /// Whether the target is met (`None`: no target, or not decidable here).
    pub met: Option<bool>,
}

impl Figure<'_> {
    pub fn print(&self) {
        let r = |v: f64| (v * 1000.0).round() / 1000.0;
        let (reference, ref_median, ratio) = match self.reference {
            Some((name, value)) if value != 0.0 => (
                serde_json::json!(name),
                serde_json::json!(r(value)),
                serde_json::json!(r(self.median / value)),
            ),
            Some((name, value)) => (
                serde_json::json!(name),
                serde_json::json!(r(value)),
                serde_json::Value::Null,
            ),
            None => Default::default(),
        };
        let line = serde_json::json!({
            "figure": self.figure,
            "unit": self.unit,
            "median": r(self.median),
            "p99": self.p99.map(r),
            "reference": reference,
            "ref_median": ref_median,
            "ratio": ratio,
            "target": self.target,
            "met": self.met,
        });
        println!("BENCH {line}");
    }
}

/// A plain figure without reference or target.
pub fn plain(figure: &str, unit: &str, median: f64, p99: Option<f64>) {
    Figure {
        figure,
        unit,
        median,
        p99,
        reference: None,
        target: None,
        met: None,
    }
    .print();
}

/// Sorts and returns (p50, p99) by nearest rank; (0, 0) for no samples.
pub fn p50_p99(samples: &mut [f64]) -> (f64, f64) {
    if samples.is_empty() {
        return (0.0, 0.0);
    }
    samples.sort_by(f64::total_cmp);
    (percentile(samples, 50.0), percentile(samples, 99.0))
}

/// Nearest-rank percentile of sorted samples.
pub fn percentile(sorted: &[f64], p: f64) -> f64 {
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

pub fn median(samples: &[f64]) -> f64 {
    let mut v = samples.to_vec();
    p50_p99(&mut v).0
}

pub fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

pub fn us(d: Duration) -> f64 {
    d.as_secs_f64() * 1e6
}

/// `BENCH_QUICK=1` (scripts/bench --quick): fewer samples and the smaller sizes only.
pub fn quick() -> bool {
    std::env::var("BENCH_QUICK").is_ok_and(|v| v == "1")
}

pub fn env_or(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// A small deterministic generator (xorshift64*), enough to pick rows and phases.
pub struct Rng(pub u64);

impl Rng {
    pub fn next_u64(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n.max(1)
    }
}
