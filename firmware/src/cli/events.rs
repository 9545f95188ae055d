//! `kiosk events`: the journal as a technician needs to see it, newest first.

use std::io::Write;
use std::path::Path;

use anyhow::Context;

use crate::paths::DataDir;
use kiosk_journal::crypto::DeviceKey;
use kiosk_journal::{Journal, ListFilter};

/// What to print.
#[derive(Debug, Clone, Copy)]
pub struct Options {
    /// Only unacknowledged events.
    pub pending: bool,
    /// JSON lines instead of a table.
    pub json: bool,
    /// How many.
    pub limit: usize,
    /// Dead letters instead of events.
    pub dead_letters: bool,
}

/// Prints the journal in `data_dir`.
pub fn print(data_dir: &Path, options: Options) -> anyhow::Result<()> {
    let dir = DataDir::new(data_dir);
    let key = DeviceKey::load_or_create(&dir.device_key())
        .with_context(|| format!("reading the device key in {}", data_dir.display()))?;
    let journal_path = dir.journal();
    if !journal_path.exists() {
        anyhow::bail!(
            "no journal at {}: is the data directory right?",
            journal_path.display()
        );
    }
    let journal = Journal::open_read_only(&journal_path, key)?;
    let mut out = std::io::stdout().lock();
    if options.dead_letters {
        for d in journal.dead_letters(options.limit)? {
            if options.json {
                let line = serde_json::json!({
                    "seq": d.seq, "id": d.id, "type": d.type_name, "reason": d.reason, "dead_at": d.dead_at,
                });
                writeln!(out, "{line}")?;
            } else {
                writeln!(out, "{:>8}  {:<22} {}", d.seq, d.type_name, d.reason)?;
            }
        }
        return Ok(());
    }
    let events = journal.list(ListFilter {
        pending_only: options.pending,
        limit: options.limit,
    })?;
    if options.json {
        for e in &events {
            if e.sealed {
                // Personal data stays sealed on a technician's terminal too.
                let line = serde_json::json!({
                    "id": e.id, "seq": e.seq, "type": e.type_name, "wall_time": e.wall_time,
                    "payload": "<sealed: personal data>",
                });
                writeln!(out, "{line}")?;
            } else {
                writeln!(out, "{}", e.body)?;
            }
        }
        return Ok(());
    }
    let stats = journal.stats()?;
    writeln!(
        out,
        "{} events, {} pending, {} dead letters, last seq {}, {} KiB on disk",
        stats.events,
        stats.pending,
        stats.dead_letters,
        stats.last_seq,
        stats.file_bytes / 1024
    )?;
    writeln!(
        out,
        "{:>8}  {:<25} {:<22} {:<6} summary",
        "seq", "wall time", "type", "synced"
    )?;
    for e in &events {
        let summary = if e.sealed {
            "<sealed: personal data>".to_owned()
        } else {
            summary(&e.body)
        };
        let synced = if e.acked_at.is_some() { "yes" } else { "no" };
        writeln!(
            out,
            "{:>8}  {:<25} {:<22} {:<6} {summary}",
            e.seq, e.wall_time, e.type_name, synced
        )?;
    }
    Ok(())
}

/// The payload in one short line.
fn summary(body: &str) -> String {
    let payload = serde_json::from_str::<serde_json::Value>(body)
        .ok()
        .and_then(|v| v.get("payload").cloned())
        .map(|p| p.to_string())
        .unwrap_or_default();
    let mut s: String = payload.chars().take(100).collect();
    if payload.chars().count() > 100 {
        s.push('…');
    }
    s
}
