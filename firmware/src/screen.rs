//! Whether the customer screen shows the kiosk page, and the watchdog that brings it back.
//!
//! The kiosk page keeps one event stream open (`/api/kiosk/stream`) for as long as a browser
//! shows it; the UI server counts those streams in a [`ScreenPresence`]. A kiosk that passes
//! every check but shows a black screen (the browser crashed, cage lost the display, the unit
//! never started) has no stream open: the [`watchdog`] notices it after `ui.screen_watchdog_s`
//! seconds, reports the screen as absent (a `device_status_changed` event for `screen`, so the
//! CRM's dashboard shows it, and a row in `kiosk status`), and asks systemd to restart the
//! browser by writing a line into the restart file (`/run/kiosk/screen-restart`, watched by
//! `kiosk-screen-restart.path`, which runs `systemctl restart kiosk-browser.service` as root:
//! the firmware itself holds no privilege to do so). While the screen stays dark, the request
//! is repeated with a doubling interval (at most every 16 timeouts). When a browser connects
//! again, the screen is reported ok.
//!
//! A browser that hangs with its connection open is not seen here: the stream's keep-alive
//! (every 15 s) is written to it and a dead peer fails that write, which closes the stream.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use kiosk_drivers::Health;
use kiosk_protocol::events::DeviceKind;
use serde::{Deserialize, Serialize};
use tokio::sync::mpsc;

use crate::devices::{DeviceMsg, HealthChange};

/// The screen's page clients, counted by the UI server.
#[derive(Debug, Clone)]
pub struct ScreenPresence(Arc<PresenceInner>);

#[derive(Debug)]
struct PresenceInner {
    clients: AtomicUsize,
    /// When the count last changed (or the kiosk started).
    since: std::sync::Mutex<Instant>,
    /// Restarts requested since the kiosk started.
    restarts: AtomicU32,
    /// `ui.screen_watchdog_s`, or `None` when the watchdog is off.
    watchdog: Option<Duration>,
}

/// A connected screen client; dropping it (the stream closed) counts it out.
#[derive(Debug)]
pub struct ScreenClient(ScreenPresence);

impl Drop for ScreenClient {
    fn drop(&mut self) {
        let inner = &(self.0).0;
        if inner.clients.fetch_sub(1, Ordering::SeqCst) == 1 {
            *lock(&inner.since) = Instant::now();
            tracing::info!("the kiosk page's event stream closed: no screen client");
        }
    }
}

fn lock<T>(m: &std::sync::Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// What `kiosk status` shows of the screen.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ScreenStatus {
    /// Kiosk pages open now (1 on a kiosk: its own browser).
    pub clients: usize,
    /// Seconds since that number last changed (or the kiosk started).
    pub for_s: u64,
    /// The watchdog's timeout in seconds (`None`: off).
    pub watchdog_s: Option<u64>,
    /// Browser restarts requested since the kiosk started.
    pub restarts_requested: u32,
}

impl ScreenPresence {
    /// A presence with no client yet; `watchdog` is the timeout, `None` when off.
    pub fn new(watchdog: Option<Duration>) -> Self {
        ScreenPresence(Arc::new(PresenceInner {
            clients: AtomicUsize::new(0),
            since: std::sync::Mutex::new(Instant::now()),
            restarts: AtomicU32::new(0),
            watchdog,
        }))
    }

    /// Counts a client in until the returned guard is dropped.
    pub fn connect(&self) -> ScreenClient {
        if self.0.clients.fetch_add(1, Ordering::SeqCst) == 0 {
            *lock(&self.0.since) = Instant::now();
            tracing::info!("a screen client opened the kiosk page");
        }
        ScreenClient(self.clone())
    }

    /// Clients now, and how long that number has not changed.
    pub fn clients(&self) -> (usize, Duration) {
        let since = *lock(&self.0.since);
        (self.0.clients.load(Ordering::SeqCst), since.elapsed())
    }

    /// The status row.
    pub fn status(&self) -> ScreenStatus {
        let (clients, for_) = self.clients();
        ScreenStatus {
            clients,
            for_s: for_.as_secs(),
            watchdog_s: self.0.watchdog.map(|d| d.as_secs()),
            restarts_requested: self.0.restarts.load(Ordering::SeqCst),
        }
    }
}

/// Where the watchdog asks for a browser restart: `$RUNTIME_DIRECTORY/screen-restart` under
/// systemd (`RuntimeDirectory=kiosk` in kiosk.service), nowhere otherwise.
pub fn restart_file_from_env() -> Option<PathBuf> {
    let dirs = std::env::var_os("RUNTIME_DIRECTORY")?;
    // systemd separates several runtime directories with ':'; the first is the kiosk's own.
    let first = dirs.to_str()?.split(':').next()?.to_owned();
    (!first.is_empty()).then(|| PathBuf::from(first).join("screen-restart"))
}

/// The longest wait between two restart requests, in timeouts.
const MAX_BACKOFF_FACTOR: u32 = 16;

/// Watches `presence` until `tx` closes (the kiosk stops): see the module documentation.
pub async fn watchdog(
    presence: ScreenPresence,
    timeout: Duration,
    restart_file: Option<PathBuf>,
    tx: mpsc::Sender<DeviceMsg>,
) {
    let tick = (timeout / 6).clamp(Duration::from_millis(200), Duration::from_secs(5));
    watch(presence, timeout, tick, restart_file, tx).await;
}

async fn watch(
    presence: ScreenPresence,
    timeout: Duration,
    tick: Duration,
    restart_file: Option<PathBuf>,
    tx: mpsc::Sender<DeviceMsg>,
) {
    let mut interval = tokio::time::interval(tick);
    interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    // `None` until the first report: a kiosk whose screen comes up in time reports nothing.
    let mut reported_ok: Option<bool> = None;
    let mut next_request = timeout;
    let mut factor = 1;
    loop {
        interval.tick().await;
        let (clients, unchanged) = presence.clients();
        let health = if clients > 0 {
            next_request = timeout;
            factor = 1;
            if reported_ok == Some(false) {
                tracing::info!("the kiosk page is on the screen again");
                Some(Health::ok())
            } else {
                None
            }
        } else if unchanged >= next_request {
            let restarts = presence.0.restarts.fetch_add(1, Ordering::SeqCst) + 1;
            let reason = format!(
                "no browser has shown the kiosk page for {} s",
                unchanged.as_secs()
            );
            let requested = match &restart_file {
                Some(path) => match request_restart(path, &reason) {
                    Ok(()) => format!("browser restart {restarts} requested"),
                    Err(e) => {
                        tracing::error!(error = %e, file = %path.display(), "cannot ask systemd to restart the kiosk browser");
                        format!("cannot request a browser restart: {e}")
                    }
                },
                None => "no restart hook (not started by systemd)".to_owned(),
            };
            tracing::warn!(%reason, %requested, "screen watchdog");
            factor = (factor * 2).min(MAX_BACKOFF_FACTOR);
            next_request = unchanged + timeout * factor;
            reported_ok = Some(false);
            Some(Health::absent(format!("{reason}; {requested}")))
        } else {
            None
        };
        if let Some(health) = health {
            reported_ok = Some(health.state == kiosk_drivers::DeviceHealth::Ok);
            let msg = DeviceMsg::Health(HealthChange {
                device: DeviceKind::Screen,
                health,
            });
            if tx.send(msg).await.is_err() {
                return;
            }
        }
        if tx.is_closed() {
            return;
        }
    }
}

/// Writes the reason into the restart file (the path unit fires on its existence).
fn request_restart(path: &std::path::Path, reason: &str) -> std::io::Result<()> {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, format!("{reason}\n"))?;
    std::fs::rename(&tmp, path)
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn next_health(rx: &mut mpsc::Receiver<DeviceMsg>) -> Health {
        match rx.recv().await {
            Some(DeviceMsg::Health(h)) => {
                assert_eq!(h.device, DeviceKind::Screen);
                h.health
            }
            other => panic!("expected a screen health change, got {other:?}"),
        }
    }

    /// The watchdog checks every 10 ms here; the tests move the presence's clock instead of
    /// waiting for minutes.
    fn spawn(
        presence: &ScreenPresence,
        timeout_s: u64,
        file: Option<PathBuf>,
    ) -> (tokio::task::JoinHandle<()>, mpsc::Receiver<DeviceMsg>) {
        let (tx, rx) = mpsc::channel(8);
        let task = tokio::spawn(watch(
            presence.clone(),
            Duration::from_secs(timeout_s),
            Duration::from_millis(10),
            file,
            tx,
        ));
        (task, rx)
    }

    #[tokio::test]
    async fn a_dark_screen_is_reported_and_restarted_with_backoff_and_recovers() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("screen-restart");
        let presence = ScreenPresence::new(Some(Duration::from_secs(60)));
        let (task, mut rx) = spawn(&presence, 60, Some(file.clone()));
        let age = |secs: u64| {
            *lock(&presence.0.since) = Instant::now() - Duration::from_secs(secs);
        };
        age(61);
        let h = next_health(&mut rx).await;
        assert_eq!(h.state, kiosk_drivers::DeviceHealth::Absent);
        let reason = h.reason.unwrap();
        assert!(
            reason.contains("no browser has shown the kiosk page"),
            "{reason}"
        );
        assert!(reason.contains("browser restart 1 requested"), "{reason}");
        let line = std::fs::read_to_string(&file).unwrap();
        assert!(
            line.starts_with("no browser has shown the kiosk page for 6"),
            "{line}"
        );
        assert_eq!(presence.status().restarts_requested, 1);

        // The next request waits two timeouts more (backoff), not one.
        std::fs::remove_file(&file).unwrap();
        age(61 + 90);
        tokio::time::sleep(Duration::from_millis(100)).await;
        assert!(!file.exists(), "a second request came before the backoff");
        age(61 + 121);
        let h = next_health(&mut rx).await;
        assert!(h.reason.unwrap().contains("restart 2"));
        assert!(file.exists());

        // A browser connects: the screen is ok again, once.
        let client = presence.connect();
        let h = next_health(&mut rx).await;
        assert_eq!(h, Health::ok());
        assert_eq!(presence.status().clients, 1);
        tokio::time::sleep(Duration::from_millis(100)).await;
        assert!(rx.try_recv().is_err(), "ok is reported once");
        drop(client);
        assert_eq!(presence.status().clients, 0);
        drop(rx);
        age(61);
        tokio::time::timeout(Duration::from_secs(10), task)
            .await
            .expect("the watchdog stops when the kiosk does")
            .unwrap();
    }

    #[tokio::test]
    async fn a_screen_that_comes_up_in_time_reports_nothing() {
        let presence = ScreenPresence::new(Some(Duration::from_secs(60)));
        let (_task, mut rx) = spawn(&presence, 60, None);
        let _client = presence.connect();
        *lock(&presence.0.since) = Instant::now() - Duration::from_secs(3600);
        tokio::time::sleep(Duration::from_millis(100)).await;
        assert!(rx.try_recv().is_err());
    }

    #[tokio::test]
    async fn without_a_restart_hook_the_report_says_so() {
        let presence = ScreenPresence::new(Some(Duration::from_secs(30)));
        let (_task, mut rx) = spawn(&presence, 30, None);
        *lock(&presence.0.since) = Instant::now() - Duration::from_secs(31);
        let h = next_health(&mut rx).await;
        assert!(h.reason.unwrap().contains("no restart hook"));
    }
}
