//! systemd integration: readiness, status line, stopping and the watchdog (`sd_notify(3)`).
//!
//! `kiosk.service` is `Type=notify` with `WatchdogSec=30`. The firmware says `READY=1` once the
//! devices, the journal, the UI and the sync worker run, and then pets the watchdog only while
//! its loops are alive: each long-running loop owns a [`Beat`] it touches at least every few
//! seconds, and the [`Liveness`] check also fails when a task that must never end has ended. A
//! wedged loop (a blocking call that never returns, a dead task) stops the petting, and systemd
//! kills and restarts the process; the journal makes that restart lose nothing.
//!
//! Outside systemd (no `NOTIFY_SOCKET`, no `WATCHDOG_USEC`) every call here is a no-op.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use sd_notify::NotifyState;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

/// How often loops beat (their idle wake-up).
pub const BEAT_EVERY: Duration = Duration::from_secs(5);
/// A loop silent for longer than this is considered wedged.
pub const MAX_SILENCE: Duration = Duration::from_secs(20);

/// Tells systemd the kiosk is ready, with a status line (`systemctl status kiosk`).
pub fn notify_ready(status: &str) {
    send(&[NotifyState::Ready, NotifyState::Status(status)]);
}

/// Tells systemd the kiosk is stopping (so a slow clean stop is not taken for a hang).
pub fn notify_stopping() {
    send(&[NotifyState::Stopping, NotifyState::Status("stopping")]);
}

fn send(state: &[NotifyState]) {
    if let Err(e) = sd_notify::notify(state) {
        tracing::warn!(error = %e, "cannot notify systemd");
    }
}

/// The watchdog period systemd asked for (`WATCHDOG_USEC`, for this process), if any.
pub fn watchdog_period() -> Option<Duration> {
    sd_notify::watchdog_enabled()
}

/// A loop's heartbeat: the time of its last beat on the kiosk's monotonic clock.
#[derive(Clone)]
pub struct Beat {
    last_ms: Arc<AtomicU64>,
    origin: Instant,
}

impl Beat {
    /// Records that the loop is alive now.
    pub fn beat(&self) {
        let ms = self.origin.elapsed().as_millis() as u64;
        self.last_ms.store(ms, Ordering::Relaxed);
    }
}

struct Watched {
    name: &'static str,
    last_ms: Arc<AtomicU64>,
    max_silence: Duration,
}

/// The loops and tasks the watchdog vouches for.
#[derive(Clone)]
pub struct Liveness {
    origin: Instant,
    loops: Arc<Mutex<Vec<Watched>>>,
    tasks: Arc<Mutex<Vec<NamedTask>>>,
}

type NamedTask = (&'static str, JoinHandle<()>);

impl Default for Liveness {
    fn default() -> Self {
        Self::new()
    }
}

impl Liveness {
    /// Nothing watched yet.
    pub fn new() -> Self {
        Liveness {
            origin: Instant::now(),
            loops: Arc::default(),
            tasks: Arc::default(),
        }
    }

    /// Registers a loop that must beat at least every `max_silence`; it counts as having beaten
    /// now.
    pub fn register(&self, name: &'static str, max_silence: Duration) -> Beat {
        let beat = Beat {
            last_ms: Arc::new(AtomicU64::new(0)),
            origin: self.origin,
        };
        beat.beat();
        self.loops
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(Watched {
                name,
                last_ms: beat.last_ms.clone(),
                max_silence,
            });
        beat
    }

    /// Watches a task that must run until shutdown (the UI server, the sync worker).
    pub fn watch_task(&self, name: &'static str, task: JoinHandle<()>) {
        self.tasks
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push((name, task));
    }

    /// Hands back the watched tasks (to await them at shutdown).
    pub fn take_tasks(&self) -> Vec<JoinHandle<()>> {
        std::mem::take(&mut *self.tasks.lock().unwrap_or_else(|p| p.into_inner()))
            .into_iter()
            .map(|(_, t)| t)
            .collect()
    }

    /// `Ok` while every loop beat recently and every watched task runs; else what is wrong.
    pub fn check(&self) -> Result<(), String> {
        let now_ms = self.origin.elapsed().as_millis() as u64;
        let mut wrong = Vec::new();
        for w in self.loops.lock().unwrap_or_else(|p| p.into_inner()).iter() {
            let silent =
                Duration::from_millis(now_ms.saturating_sub(w.last_ms.load(Ordering::Relaxed)));
            if silent > w.max_silence {
                wrong.push(format!("{} silent for {} s", w.name, silent.as_secs()));
            }
        }
        for (name, task) in self.tasks.lock().unwrap_or_else(|p| p.into_inner()).iter() {
            if task.is_finished() {
                wrong.push(format!("{name} has stopped"));
            }
        }
        if wrong.is_empty() {
            Ok(())
        } else {
            Err(wrong.join(", "))
        }
    }

    /// Pets systemd's watchdog every `period / 3` while [`Liveness::check`] passes, until
    /// `shutdown`. When the check fails it logs why (once per episode) and stops petting, so
    /// systemd restarts the kiosk after `period`; `pet` is what petting does (tests).
    pub fn spawn_watchdog(
        &self,
        period: Duration,
        shutdown: CancellationToken,
        pet: impl Fn() + Send + 'static,
    ) -> JoinHandle<()> {
        let me = self.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(period / 3);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            let mut failing = false;
            loop {
                tokio::select! {
                    _ = shutdown.cancelled() => break,
                    _ = tick.tick() => {}
                }
                match me.check() {
                    Ok(()) => {
                        if failing {
                            tracing::warn!("kiosk loops healthy again; petting the watchdog");
                            failing = false;
                        }
                        pet();
                    }
                    Err(why) => {
                        if !failing {
                            tracing::error!(
                                problem = %why,
                                "not petting the watchdog: systemd will restart the kiosk"
                            );
                            failing = true;
                        }
                    }
                }
            }
        })
    }
}

/// What petting systemd's watchdog does.
pub fn pet_systemd() {
    send(&[NotifyState::Watchdog]);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_silent_loop_fails_the_check_and_a_beat_heals_it() {
        let live = Liveness::new();
        let beat = live.register("engine", Duration::from_millis(30));
        assert_eq!(live.check(), Ok(()));
        std::thread::sleep(Duration::from_millis(60));
        let err = live.check().unwrap_err();
        assert!(err.starts_with("engine silent for"), "{err}");
        beat.beat();
        assert_eq!(live.check(), Ok(()));
    }

    #[tokio::test]
    async fn a_finished_task_fails_the_check() {
        let live = Liveness::new();
        let stop = CancellationToken::new();
        let s = stop.clone();
        live.watch_task(
            "ui server",
            tokio::spawn(async move { s.cancelled().await }),
        );
        assert_eq!(live.check(), Ok(()));
        stop.cancel();
        for t in live.take_tasks() {
            t.await.unwrap();
        }
        let live2 = Liveness::new();
        live2.watch_task("sync worker", tokio::spawn(async {}));
        tokio::time::sleep(Duration::from_millis(20)).await;
        assert_eq!(live2.check(), Err("sync worker has stopped".to_owned()));
    }

    async fn wait_until(what: &str, cond: impl Fn() -> bool) {
        let deadline = Instant::now() + Duration::from_secs(20);
        while !cond() {
            assert!(Instant::now() < deadline, "timed out waiting until {what}");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    #[tokio::test]
    async fn the_watchdog_is_petted_only_while_the_loops_are_alive() {
        let live = Liveness::new();
        let beat = live.register("engine", Duration::from_secs(1_000_000));
        let pets = Arc::new(AtomicU64::new(0));
        let p = pets.clone();
        let stop = CancellationToken::new();
        let dog = live.spawn_watchdog(Duration::from_millis(150), stop.clone(), move || {
            p.fetch_add(1, Ordering::Relaxed);
        });
        wait_until("petted three times", || pets.load(Ordering::Relaxed) >= 3).await;
        // Wedge the loop: it may not stay silent at all, and its last beat is in the past.
        live.loops.lock().unwrap()[0].max_silence = Duration::ZERO;
        std::thread::sleep(Duration::from_millis(5));
        let wedged = pets.load(Ordering::Relaxed);
        // Twenty petting intervals pass without a pet.
        tokio::time::sleep(Duration::from_secs(1)).await;
        assert_eq!(pets.load(Ordering::Relaxed), wedged, "petted while wedged");
        live.loops.lock().unwrap()[0].max_silence = Duration::from_secs(1_000_000);
        beat.beat();
        wait_until("petted again", || pets.load(Ordering::Relaxed) > wedged).await;
        stop.cancel();
        dog.await.unwrap();
    }
}
