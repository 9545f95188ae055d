//! The running kiosk: devices, the executor (journey and queue), UI server and sync worker wired together.
//!
//! ```text
//!  card thread ─┐                         ┌─> journal (events, queue rows, caches) ─> outbox ─> sync worker ─> CRM
//!  scanner ─────┼─> executor task ────────┼─> printer thread (ESC/POS)
//!  printer ─────┘   (journey + queue)     └─> screen / board (watch) ─> UI server (SSE) ─> browser
//!  UI touches, staff commands ─┘                                      CRM feed ─> caches ─> executor
//! ```
//!
//! [`start`] is what `kiosk run` and `kiosk demo` call; the configuration decides real or
//! simulated devices (only `hw-config/simulated.toml` chooses simulators).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use kiosk_drivers::card::{self, mfrc522sim::SimHandle};
use kiosk_drivers::printer::{ThermalPrinter, VirtualPrinterHandle};
use kiosk_drivers::scanner::{self, CodeKey, CodeKeys, ScannerOptions, ScannerSim};
use kiosk_protocol::events::{Event, KioskStarted};
use kiosk_sync::{SyncStatusReceiver, SyncWorker, SystemSyncClock};
use tokio::net::TcpListener;
use tokio::sync::{Notify, mpsc, watch};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use crate::config::Config;
use crate::credentials::Credentials;
use crate::devices::{self, DeviceHealthMap};
use crate::executor::{Executor, Identity as ExecutorIdentity, StoreState};
use crate::paths::DataDir;
use crate::setup::{self, StoreTime};
use crate::store::{Member, StoreLink, StoreMsg};
use crate::ui::{AppState, UiChannels, UiSettings};
use kiosk_core::journey::ScreenView;
use kiosk_core::queue::{QueueBoard, ServiceDay};
use kiosk_journal::clock::Clock;
use kiosk_journal::crypto::DeviceKey;
use kiosk_journal::db::KioskDb;
use kiosk_journal::{Identity as JournalIdentity, Journal, Options as JournalOptions};
use kiosk_store::StoreQueue;

/// Setting that is "0" while a kiosk runs and "1" after a clean stop.
const CLEAN_SHUTDOWN: &str = "runtime.clean_shutdown";
/// Label of the key that signs turn tickets' QR codes (derived from the tenant key).
pub const TURN_KEY_LABEL: &str = "kiosk turn ticket qr v1";
/// Label of the key that verifies coupons' QR codes (derived from the tenant key).
pub const COUPON_KEY_LABEL: &str = "kiosk coupon qr v1";

/// What [`start`] needs.
pub struct RunOptions {
    /// The site config and hardware profile.
    pub config: Config,
    /// Enrollment credentials.
    pub credentials: Credentials,
    /// The endpoint to sync with, if not the one enrolled with (the demo's network switch).
    pub endpoint_url: Option<String>,
    /// Listener of the kiosk screen (and, without a staff listener, the counter and lobby pages);
    /// `None` binds `ui.listen`.
    pub ui_listener: Option<TcpListener>,
    /// Listener of the staff pages on the LAN; `None` binds `ui.staff_listen` when set.
    pub staff_listener: Option<TcpListener>,
    /// Listener for the store's other kiosks; `None` binds `store.listen` when set.
    pub store_listener: Option<TcpListener>,
    /// Write every printed ticket as a PNG here (simulated printer; the demo).
    pub ticket_previews: Option<PathBuf>,
    /// The clock.
    pub clock: Arc<dyn Clock>,
    /// Safe updates' paths and pace (`None`: the installed kiosk's, `/etc/kiosk/updates.toml`).
    pub updates: Option<crate::updater::Settings>,
}

/// Handles on the simulated devices (all `None` on real hardware).
#[derive(Clone, Default)]
pub struct Simulators {
    /// The MFRC522 simulator's field: place and remove virtual cards.
    pub card: Option<SimHandle>,
    /// The virtual printer: faults, paper.
    pub printer: Option<VirtualPrinterHandle>,
    /// The scanner simulator: writes lines into the scanner's pty.
    pub scanner: Option<ScannerSim>,
    /// The presence sensor's line and the status LED.
    pub gpio: Option<kiosk_drivers::gpio::GpioSim>,
    /// The keypad simulator: writes key events into the keypad's event FIFO.
    pub keypad: Option<kiosk_drivers::keypad::KeypadSim>,
    /// Where simulated speech is written (`customer/` and `calls/`, each with its WAV files and
    /// `spoken.log`).
    pub speech_dir: Option<PathBuf>,
}

/// Why the kiosk could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// The data directory could not be made.
    #[error("cannot create the data directory {path}")]
    DataDir {
        /// The directory.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The device key could not be read or made.
    #[error(transparent)]
    Key(#[from] kiosk_journal::crypto::CryptoError),
    /// The journal could not be opened.
    #[error(transparent)]
    Journal(#[from] kiosk_journal::JournalError),
    /// The queue could not be restored.
    #[error(transparent)]
    Db(#[from] kiosk_journal::db::DbError),
    /// A listener could not be bound.
    #[error("cannot listen on {addr}: {source}")]
    Listen {
        /// The address.
        addr: SocketAddr,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// A device could not be set up (a configuration problem, not an absent device).
    #[error("cannot set up the {device}: {message}")]
    Device {
        /// Which device.
        device: &'static str,
        /// Why.
        message: String,
    },
    /// The sync worker could not be set up.
    #[error("cannot set up the sync worker: {0}")]
    Sync(String),
    /// The store's settings cannot work.
    #[error("cannot join the store: {0}")]
    Store(String),
}

/// A running kiosk.
pub struct Running {
    /// Where the kiosk screen is served.
    pub ui_addr: SocketAddr,
    /// Where the staff pages are served (the UI address when there is no separate listener).
    pub staff_addr: SocketAddr,
    /// Where the store's other kiosks reach this one, if anywhere.
    pub store_addr: Option<SocketAddr>,
    /// This kiosk's link to the rest of its store.
    pub store: Arc<StoreLink>,
    /// The simulated devices.
    pub sims: Simulators,
    /// The sync worker's state.
    pub sync: SyncStatusReceiver,
    /// Device health.
    pub health: watch::Receiver<DeviceHealthMap>,
    /// The screen as shown.
    pub screen: watch::Receiver<ScreenView>,
    /// The kiosk database: journal and caches.
    pub db: KioskDb,
    /// The signed QR of the last ticket issued.
    pub last_ticket_qr: Arc<Mutex<Option<String>>>,
    /// When the kiosk started.
    pub started: std::time::Instant,
    /// The loops and tasks the systemd watchdog vouches for.
    pub liveness: crate::service::Liveness,
    /// Whether someone is in front of the kiosk, as the card reader's poll pace follows it (the
    /// presence sensor and the screen feed it).
    pub card_pace: card::PresenceSignal,
    shutdown: CancellationToken,
    tasks: Vec<JoinHandle<()>>,
    card_thread: Option<card::ReaderThread>,
    presence_thread: Option<kiosk_drivers::gpio::PresenceThread>,
    printer_jobs: Option<std::sync::mpsc::Sender<devices::PrintJob>>,
    threads: Vec<std::thread::JoinHandle<()>>,
}

impl Running {
    /// A token cancelled when the kiosk stops.
    pub fn shutdown_token(&self) -> CancellationToken {
        self.shutdown.clone()
    }

    /// Stops everything in order (devices, engine, UI, sync) and records a clean shutdown.
    pub async fn stop(mut self) {
        self.shutdown.cancel();
        if let Some(t) = self.card_thread.take() {
            let _ = tokio::task::spawn_blocking(move || t.stop()).await;
        }
        if let Some(t) = self.presence_thread.take() {
            let _ = tokio::task::spawn_blocking(move || drop(t)).await;
        }
        self.tasks.extend(self.liveness.take_tasks());
        for t in self.tasks.drain(..) {
            let _ = tokio::time::timeout(Duration::from_secs(10), t).await;
        }
        self.printer_jobs.take();
        let threads = std::mem::take(&mut self.threads);
        let _ = tokio::task::spawn_blocking(move || {
            for t in threads {
                let _ = t.join();
            }
        })
        .await;
        if let Err(e) = self.db.journal().set_setting(CLEAN_SHUTDOWN, "1") {
            tracing::warn!(error = %e, "cannot record the clean shutdown");
        }
        tracing::info!("kiosk stopped");
    }
}

/// The keys of the kiosk's signed QR codes, derived from the tenant key.
pub fn code_keys(credentials: &Credentials) -> Result<(CodeKey, CodeKeys), StartError> {
    let key = |label| {
        CodeKey::new(credentials.derived_key(label).to_vec()).map_err(|e| StartError::Device {
            device: "scanner",
            message: e.to_string(),
        })
    };
    let turns = key(TURN_KEY_LABEL)?;
    let coupons = key(COUPON_KEY_LABEL)?;
    Ok((
        turns.clone(),
        CodeKeys {
            turns: Some(turns),
            coupons: Some(coupons),
        },
    ))
}

async fn bind(addr: SocketAddr) -> Result<TcpListener, StartError> {
    TcpListener::bind(addr)
        .await
        .map_err(|source| StartError::Listen { addr, source })
}

/// Starts the kiosk. Returns once everything runs; devices that are absent are reported in the
/// health (and recovered when they come back), not fatal.
///
/// The steps, in order: open the journal ([`open_journal`]), record the start and restore the
/// queue, open the devices ([`open_devices`]), spawn the executor that owns the journey and the
/// queue ([`spawn_executor`]), the status LED, the UI server ([`serve_ui`]), the sync worker
/// ([`spawn_sync`]), daily retention and the systemd watchdog.
pub async fn start(mut opts: RunOptions) -> Result<Running, StartError> {
    let started = std::time::Instant::now();
    // The listeners' connection caps fit under the open-file limit; lift it first.
    let open_files = kiosk_serve::raise_open_file_limit();
    tracing::debug!(open_files, "open-file limit");
    let liveness = crate::service::Liveness::new();
    let config = &opts.config;
    let site = &config.site;
    let data = DataDir::new(&site.kiosk.data_dir);
    let boot_id = Uuid::new_v4();
    let (journal, unclean) = open_journal(&opts, &data, boot_id)?;

    // Channels between the parts.
    let (device_tx, device_rx) = mpsc::channel(256);
    let (touch_tx, touch_rx) = mpsc::channel(64);
    let (staff_tx, staff_rx) = mpsc::channel(16);
    let (store_tx, store_rx) = mpsc::channel(64);
    let (keys_tx, _) = tokio::sync::broadcast::channel(64);
    let appended = Arc::new(Notify::new());
    let db = KioskDb::new(journal, appended.clone(), Some(touch_tx.clone()));
    // The last good store configuration from the CRM over site.toml (docs/FLEET.md).
    let site_only = opts.config.clone();
    let (effective, running_version) = crate::executor::remote_config::restore(&db, &site_only);
    opts.config = effective;
    let config = &opts.config;
    let site = &config.site;
    db.append(Event::KioskStarted(KioskStarted {
        version: crate::version::VERSION.to_owned(),
        git_commit: crate::version::GIT_COMMIT.to_owned(),
        hardware_profile: config.hardware.name.clone(),
        unclean_shutdown: unclean,
    }))?;
    if unclean {
        tracing::warn!("the previous run did not stop cleanly (crash, kill or power cut)");
    }

    let time = StoreTime::new(&site.kiosk.timezone, opts.clock.clone());
    let (turn_key, code_keys) = code_keys(&opts.credentials)?;
    let screen_presence = crate::screen::ScreenPresence::new(
        (site.ui.screen_watchdog_s > 0)
            .then(|| Duration::from_secs(u64::from(site.ui.screen_watchdog_s))),
    );
    let screen_watchdog_tx = device_tx.clone();
    let devices = open_devices(
        &opts,
        code_keys,
        &time,
        device_tx,
        keys_tx.clone(),
        &data,
        &liveness,
    )?;

    // Sync settings (the worker starts below; the executor's live profile lookups use them too).
    let endpoint = opts
        .endpoint_url
        .clone()
        .unwrap_or_else(|| opts.credentials.endpoint_url.clone());
    let sync_config = setup::sync_config(config, &opts.credentials, &endpoint)
        .map_err(|e| StartError::Sync(format!("cannot read crm.ca_file: {e}")))?;
    let sync_clock = Arc::new(SystemSyncClock::new(boot_id));
    let crm = kiosk_sync::ProfileLookup::new(&sync_config, sync_clock.clone())
        .map_err(|e| StartError::Sync(e.to_string()))?;

    let store = store_link(&opts, store_tx)?;
    let shutdown = CancellationToken::new();
    let executor = spawn_executor(
        &opts,
        (site_only, running_version),
        &db,
        time,
        turn_key,
        devices.print_tx.clone(),
        crm,
        ExecutorInputs {
            devices: device_rx,
            touches: touch_rx,
            staff: staff_rx,
            store: store_rx,
        },
        store.clone(),
        &liveness,
        &shutdown,
    )?;
    let mut tasks = vec![spawn_screen_presence(
        executor.screen.clone(),
        devices.card_pace.clone(),
        shutdown.clone(),
    )];
    tasks.push(crate::accessibility::spawn_announcer(
        executor.board.clone(),
        executor.screen.clone(),
        devices
            .speech
            .calls
            .clone()
            .map(|s| (s, devices.speech.call_langs.clone())),
        devices.speech.customer.clone(),
        shutdown.clone(),
    ));
    if site.ui.screen_watchdog_s > 0 {
        let restart_file = crate::screen::restart_file_from_env();
        tracing::info!(
            timeout_s = site.ui.screen_watchdog_s,
            restart_file = ?restart_file,
            "screen watchdog on"
        );
        let watchdog = crate::screen::watchdog(
            screen_presence.clone(),
            Duration::from_secs(u64::from(site.ui.screen_watchdog_s)),
            restart_file,
            screen_watchdog_tx,
        );
        let stop = shutdown.clone();
        tasks.push(tokio::spawn(async move {
            tokio::select! {
                () = watchdog => {}
                () = stop.cancelled() => {}
            }
        }));
    } else {
        drop(screen_watchdog_tx);
    }
    if let Some(led) = devices.status_led {
        tasks.push(spawn_status_led(
            led,
            executor.health.clone(),
            shutdown.clone(),
        ));
    }
    let listeners = (opts.ui_listener.take(), opts.staff_listener.take());
    let ui = serve_ui(
        &opts,
        listeners,
        UiChannels {
            inputs: touch_tx,
            screen: executor.screen.clone(),
            board: executor.board,
            staff: staff_tx,
            keys: keys_tx,
            screen_presence: screen_presence.clone(),
            speech: devices.speech.customer.clone().map(|speaker| {
                crate::accessibility::CustomerSpeech {
                    speaker,
                    private_listening: devices.speech.private_listening,
                }
            }),
            picture: executor.picture.clone(),
            signage: Some(Arc::new(crate::signage::Signage::new(
                db.clone(),
                executor.picture.clone(),
                StoreTime::new(&site.kiosk.timezone, opts.clock.clone()),
                crate::signage::seed_for(&opts.credentials.kiosk_id),
            ))),
        },
        &liveness,
        &shutdown,
    )
    .await?;
    tasks.push(spawn_staff_pin(
        ui.state.clone(),
        executor.running_config,
        shutdown.clone(),
    ));
    let store_listener = opts.store_listener.take();
    let store_addr = serve_store(
        (store_listener, opts.config.site.store.listen),
        &store,
        &liveness,
        &shutdown,
        &mut tasks,
    )
    .await?;
    // Safe updates: how the last one ended goes to the CRM as an event; the worker checks for
    // a new release and asks the root helper to install it at a quiet moment.
    let updates = opts
        .updates
        .take()
        .unwrap_or_else(crate::updater::Settings::installed);
    crate::updater::report_outcome(&db, &updates);
    let releases = kiosk_sync::ReleaseClient::new(&sync_config, sync_clock.clone())
        .map_err(|e| StartError::Sync(e.to_string()))?;
    let timezone = site.kiosk.timezone.clone();
    if let Some(task) = crate::updater::spawn(
        updates,
        releases,
        opts.credentials.kiosk_id.clone(),
        executor.screen.clone(),
        move || {
            jiff::tz::TimeZone::get(&timezone)
                .map(|tz| jiff::Timestamp::now().to_zoned(tz).hour())
                .ok()
                .and_then(|h| u8::try_from(h).ok())
                .unwrap_or(0)
        },
        shutdown.clone(),
    ) {
        tasks.push(task);
    }
    let sync = spawn_sync(sync_config, &db, sync_clock, appended, &liveness, &shutdown)?;
    if !site.stepin.devices.is_empty() {
        let stepin = crate::stepin::StepIn::new(&site.stepin.devices);
        tracing::info!(devices = site.stepin.devices.len(), "Step-In API on");
        ui.state.set_stepin(Arc::new(stepin));
    }
    ui.state.set_status(crate::status::StatusSource {
        db: db.clone(),
        health: executor.health.clone(),
        sync: sync.clone(),
        liveness: liveness.clone(),
        data_dir: data.root().to_owned(),
        kiosk_id: opts.credentials.kiosk_id.clone(),
        store_id: opts.credentials.store_id.clone(),
        hardware_profile: config.hardware.name.clone(),
        started,
        started_at: time::OffsetDateTime::now_utc(),
        store: Some(store.clone()),
        screen: Some(screen_presence),
        picture: Some(executor.picture.clone()),
    });
    tasks.push(spawn_retention(
        db.clone(),
        site.journal.retention_days,
        shutdown.clone(),
    ));
    if let Some(period) = crate::service::watchdog_period() {
        tracing::info!(period_s = period.as_secs_f32(), "systemd watchdog enabled");
        tasks.push(liveness.spawn_watchdog(period, shutdown.clone(), crate::service::pet_systemd));
    }

    tracing::info!(
        ui = %ui.ui_addr,
        staff = %ui.staff_addr,
        profile = %config.hardware.name,
        ms = started.elapsed().as_millis() as u64,
        "kiosk ready"
    );
    Ok(Running {
        ui_addr: ui.ui_addr,
        staff_addr: ui.staff_addr,
        store_addr,
        store,
        sims: devices.sims,
        sync,
        health: executor.health,
        screen: executor.screen,
        db,
        last_ticket_qr: executor.last_ticket_qr,
        started,
        liveness,
        card_pace: devices.card_pace,
        shutdown,
        tasks,
        card_thread: devices.card_thread,
        presence_thread: devices.presence_thread,
        printer_jobs: Some(devices.print_tx),
        threads: devices.threads,
    })
}

/// Step 1: the data directory, the device key and the journal (recovered if it was corrupt),
/// marked as running; old acknowledged events pruned. Also says whether the previous run
/// stopped cleanly.
fn open_journal(
    opts: &RunOptions,
    data: &DataDir,
    boot_id: Uuid,
) -> Result<(Journal, bool), StartError> {
    let site = &opts.config.site;
    std::fs::create_dir_all(data.root()).map_err(|source| StartError::DataDir {
        path: data.root().to_owned(),
        source,
    })?;
    let key = DeviceKey::load_or_create(&data.device_key())?;
    let opened = Journal::open(
        &data.journal(),
        JournalIdentity {
            kiosk_id: opts.credentials.kiosk_id.clone(),
            boot_id,
        },
        opts.clock.clone(),
        key,
        &JournalOptions {
            synchronous: site.journal.synchronous,
            disk_budget_bytes: Some(site.journal.disk_budget_mib.saturating_mul(1024 * 1024)),
            ..JournalOptions::default()
        },
    )?;
    let mut journal = opened.journal;
    if let Some(r) = &opened.recovery {
        tracing::error!(
            moved_to = %r.moved_to.display(),
            reason = %r.reason,
            salvaged = r.salvaged_events,
            unreadable = r.unreadable_rows,
            "the journal was corrupt: moved aside and rebuilt from what could be read"
        );
    }
    let unclean = journal.setting(CLEAN_SHUTDOWN)?.as_deref() == Some("0");
    journal.set_setting(CLEAN_SHUTDOWN, "0")?;
    match journal.prune(site.journal.retention_days) {
        Ok(n) if n > 0 => tracing::info!(pruned = n, "old acknowledged events pruned"),
        Ok(_) => {}
        Err(e) => tracing::warn!(error = %e, "cannot prune old events"),
    }
    Ok((journal, unclean))
}

/// The devices, opened: their threads, the simulators' handles and the printer's job queue.
struct Devices {
    sims: Simulators,
    threads: Vec<std::thread::JoinHandle<()>>,
    card_thread: Option<card::ReaderThread>,
    presence_thread: Option<kiosk_drivers::gpio::PresenceThread>,
    card_pace: card::PresenceSignal,
    status_led: Option<Box<dyn kiosk_drivers::gpio::StatusLed>>,
    print_tx: std::sync::mpsc::Sender<devices::PrintJob>,
    speech: kiosk_drivers::speech::Speech,
}

fn device_error(device: &'static str) -> impl Fn(std::io::Error) -> StartError {
    move |e| StartError::Device {
        device,
        message: e.to_string(),
    }
}

/// Step 2: every device of the hardware profile, each on its own thread feeding `device_tx`. A
/// device that is absent or fails its self-check is reported in the health, not fatal: the
/// kiosk serves what it can until a technician comes.
fn open_devices(
    opts: &RunOptions,
    code_keys: CodeKeys,
    time: &StoreTime,
    device_tx: mpsc::Sender<devices::DeviceMsg>,
    keys: tokio::sync::broadcast::Sender<kiosk_drivers::keypad::Key>,
    data: &DataDir,
    liveness: &crate::service::Liveness,
) -> Result<Devices, StartError> {
    let hardware = &opts.config.hardware;
    let mut sims = Simulators::default();
    let mut threads = Vec::new();
    // Speech: a configuration that cannot work (a directory that cannot be made) is logged, and
    // the kiosk runs silent rather than not at all.
    let speech_dir = data.root().join("speech");
    let speech = match kiosk_drivers::speech::open(&hardware.speech, &speech_dir) {
        Ok(speech) => speech,
        Err(e) => {
            tracing::error!(error = %e, "speech unavailable");
            kiosk_drivers::speech::Speech::default()
        }
    };
    if matches!(
        hardware.speech.customer,
        kiosk_drivers::speech::CustomerOutput::Simulated { .. }
    ) || matches!(
        hardware.speech.calls,
        kiosk_drivers::speech::CallsOutput::Simulated { .. }
    ) {
        sims.speech_dir = Some(speech_dir);
    }
    match kiosk_drivers::keypad::open(&hardware.keypad) {
        Ok(Some(handle)) => {
            sims.keypad = handle.simulator();
            threads.push(
                crate::accessibility::spawn_keypad(
                    handle,
                    device_tx.clone(),
                    keys,
                    speech.customer.clone(),
                )
                .map_err(device_error("keypad"))?,
            );
        }
        Ok(None) => {}
        Err(e) => tracing::error!(error = %e, "keypad unavailable"),
    }
    // Fast card polling until a presence sensor says nobody is there (kiosks without one: always).
    let card_pace = card::PresenceSignal::new();
    let card_thread = match card::open(&hardware.card_reader, opts.credentials.tenant_key.clone()) {
        Ok(Some(open)) => {
            sims.card = open.sim;
            let mut reader = open.reader;
            reader.follow_presence(card_pace.clone());
            Some(
                devices::spawn_card_reader(reader, device_tx.clone())
                    .map_err(device_error("card reader"))?,
            )
        }
        Ok(None) => None,
        Err(e) => {
            tracing::error!(error = %e, "card reader unavailable");
            let _ = device_tx.try_send(devices::DeviceMsg::Health(devices::HealthChange {
                device: kiosk_protocol::events::DeviceKind::CardReader,
                health: kiosk_drivers::Health::absent(e.to_string()),
            }));
            None
        }
    };
    let store_time = time.clone();
    let scanner_options = ScannerOptions {
        keys: code_keys,
        today: Arc::new(move || store_time.now().date()),
        ..ScannerOptions::default()
    };
    match scanner::open(&hardware.scanner, scanner_options) {
        Ok(Some(handle)) => {
            sims.scanner = handle.simulator();
            threads.push(
                devices::spawn_scanner(handle, device_tx.clone())
                    .map_err(device_error("scanner"))?,
            );
        }
        Ok(None) => {}
        Err(e) => tracing::error!(error = %e, "scanner unavailable"),
    }
    let printer = match ThermalPrinter::from_settings(&hardware.printer) {
        Ok(p) => {
            sims.printer = p.virtual_printer().cloned();
            Some(p)
        }
        Err(e) => {
            tracing::error!(error = %e, "printer unavailable: tickets are shown on screen");
            None
        }
    };
    let mut status_led = None;
    let presence_thread = match kiosk_drivers::gpio::open(&hardware.gpio) {
        Ok(gpio) => {
            sims.gpio = gpio.sim.clone();
            status_led = gpio.led;
            match gpio.presence {
                Some(opener) => Some(
                    devices::spawn_presence(
                        opener,
                        gpio.debounce,
                        gpio.entry_gap,
                        device_tx.clone(),
                        card_pace.clone(),
                    )
                    .map_err(device_error("presence sensor"))?,
                ),
                None => None,
            }
        }
        Err(e) => {
            tracing::error!(error = %e, "GPIO unavailable: no presence sensor or status LED");
            None
        }
    };
    let (print_tx, print_rx) = std::sync::mpsc::channel();
    threads.push(
        devices::spawn_printer(
            printer,
            print_rx,
            device_tx,
            opts.ticket_previews.clone(),
            // A print job may wait out the printer's own timeouts; a minute and a half of silence
            // means the thread is stuck in a write that will never return.
            liveness.register("printer thread", Duration::from_secs(90)),
        )
        .map_err(device_error("printer"))?,
    );
    Ok(Devices {
        sims,
        threads,
        card_thread,
        presence_thread,
        card_pace,
        status_led,
        print_tx,
        speech,
    })
}

/// Whether `view` is part of a journey: someone is using the kiosk (the attract screen is the
/// only one a kiosk shows alone; every other screen times out back to it).
pub fn journey_on_screen(view: &ScreenView) -> bool {
    !matches!(view.body, kiosk_core::journey::ScreenBody::Attract { .. })
}

/// Tells the card reader's poll pace whether a journey is on the screen: someone is using the
/// kiosk, whatever the presence sensor says (a customer it does not see, a sensor aimed badly).
fn spawn_screen_presence(
    mut screen: watch::Receiver<ScreenView>,
    pace: card::PresenceSignal,
    shutdown: CancellationToken,
) -> JoinHandle<()> {
    tokio::spawn(async move {
        loop {
            pace.set_busy(journey_on_screen(&screen.borrow_and_update()));
            tokio::select! {
                () = shutdown.cancelled() => break,
                changed = screen.changed() => {
                    if changed.is_err() {
                        break;
                    }
                }
            }
        }
    })
}

/// What the executor reads: device messages, screen touches, staff requests, the store link.
struct ExecutorInputs {
    devices: mpsc::Receiver<devices::DeviceMsg>,
    touches: mpsc::Receiver<kiosk_core::journey::Input>,
    staff: mpsc::Receiver<crate::executor::staff::StaffRequest>,
    store: mpsc::Receiver<StoreMsg>,
}

/// The store this kiosk belongs to, from `[store]` (a store of one without it).
fn store_link(
    opts: &RunOptions,
    executor: mpsc::Sender<StoreMsg>,
) -> Result<Arc<StoreLink>, StartError> {
    let section = &opts.config.site.store;
    let members = section
        .kiosks
        .iter()
        .map(|k| Member {
            id: k.id.clone(),
            url: k.url.clone(),
        })
        .collect();
    let key = opts
        .credentials
        .derived_key(&crate::store::store_key_label(&opts.credentials.store_id));
    StoreLink::new(
        &opts.credentials.kiosk_id,
        members,
        &key,
        executor,
        Duration::from_millis(section.sequencer_timeout_ms),
    )
    .map_err(|e| StartError::Store(e.to_string()))
}

/// Step 5b: the store listener (when the store has other kiosks, or a listener was given) and
/// one pull loop per other kiosk.
async fn serve_store(
    (listener, listen): (Option<TcpListener>, Option<SocketAddr>),
    store: &Arc<StoreLink>,
    liveness: &crate::service::Liveness,
    shutdown: &CancellationToken,
    tasks: &mut Vec<JoinHandle<()>>,
) -> Result<Option<SocketAddr>, StartError> {
    let listener = match (listener, listen) {
        (Some(l), _) => Some(l),
        (None, Some(addr)) if store.members.len() > 1 => Some(bind(addr).await?),
        _ => None,
    };
    let mut addr = None;
    if let Some(listener) = listener {
        addr = listener.local_addr().ok();
        let app = crate::store::router(store.clone());
        let stop = shutdown.clone();
        liveness.watch_task(
            "store server",
            tokio::spawn(async move {
                let limits =
                    kiosk_serve::Limits::LAN.fit_open_files(kiosk_serve::open_file_limit());
                let served = kiosk_serve::serve::<std::net::SocketAddr>(
                    listener,
                    None,
                    app,
                    limits,
                    stop.cancelled_owned(),
                )
                .await;
                if let Err(e) = served {
                    tracing::error!(error = %e, "store server stopped");
                }
            }),
        );
    }
    tasks.extend(crate::store::spawn_pulls(store, shutdown));
    if store.members.len() > 1 {
        tracing::info!(
            kiosks = store.members.len(),
            sequencer = %store.sequencer().id,
            this_is_sequencer = store.is_sequencer(),
            listen = ?addr,
            "store of several kiosks"
        );
    }
    Ok(addr)
}

/// What the executor publishes: the screen, the queue board, device health, the last ticket's QR.
struct ExecutorOutputs {
    screen: watch::Receiver<ScreenView>,
    board: watch::Receiver<QueueBoard>,
    health: watch::Receiver<DeviceHealthMap>,
    picture: watch::Receiver<kiosk_core::audience::StorePicture>,
    last_ticket_qr: Arc<Mutex<Option<String>>>,
    running_config: watch::Receiver<crate::executor::remote_config::RunningConfig>,
}

/// Step 3: the queue restored from the journal and the executor task, the only owner of the
/// journey state and the queue.
#[expect(
    clippy::too_many_arguments,
    reason = "one call site, each argument a different part of the kiosk"
)]
fn spawn_executor(
    opts: &RunOptions,
    (site_only, running_version): (crate::config::Config, u64),
    db: &KioskDb,
    time: StoreTime,
    turn_key: CodeKey,
    printer: std::sync::mpsc::Sender<devices::PrintJob>,
    crm: kiosk_sync::ProfileLookup,
    inputs: ExecutorInputs,
    link: Arc<StoreLink>,
    liveness: &crate::service::Liveness,
    shutdown: &CancellationToken,
) -> Result<ExecutorOutputs, StartError> {
    let config = &opts.config;
    let queue_settings = setup::queue_settings(config);
    let today = ServiceDay::at(time.now(), queue_settings.opening_time);
    // Turn rows kept from before the store layer, then every kiosk's ops on top.
    let base = db.load_queue(queue_settings, today)?;
    let ops = db.load_store_ops(today.previous())?;
    let own_seq = db.own_store_seq()?;
    let started_with_history = own_seq > 0 || !ops.is_empty();
    let mut replica = StoreQueue::new(base);
    let accepted = replica.acceptable(&ops);
    if accepted.len() < ops.len() {
        // Ops of a kiosk whose older ops were pruned: start its sequence at the first held.
        let mut firsts = std::collections::BTreeMap::<String, u64>::new();
        for op in &ops {
            let f = firsts.entry(op.origin.clone()).or_insert(op.seq);
            *f = (*f).min(op.seq);
        }
        for (origin, first) in firsts {
            replica.skip_to(&origin, first);
        }
    }
    let accepted = replica.acceptable(&ops);
    replica.merge(accepted.clone());
    link.publish(accepted);
    let seq = own_seq.max(replica.heads().get(&link.me).copied().unwrap_or(0));
    let hlc = kiosk_store::Hlc::new(replica.max_hlc());
    tracing::info!(
        ops = replica.len(),
        turns = replica.queue().turns().len(),
        "store queue restored"
    );
    if link.is_sequencer() {
        let sequencer = Arc::new(crate::store::Sequencer::new(
            db.clone(),
            time.clone(),
            replica.queue().settings().clone(),
            started_with_history || link.members.len() == 1,
        ));
        link.set_sequencer(sequencer);
        crate::executor::note_numbers(&link, &ops);
    }
    let store = StoreState {
        replica,
        hlc,
        seq,
        link,
    };
    let journey = setup::journey_config(config);
    let (screen_tx, screen) = watch::channel(kiosk_core::journey::view(
        &journey,
        &kiosk_core::journey::State::new(journey.default_locale),
    ));
    let (board_tx, board) = watch::channel(QueueBoard::empty(today));
    let (health_tx, health) = watch::channel(DeviceHealthMap::new());
    let (picture_tx, picture) =
        watch::channel(kiosk_core::audience::StorePicture::empty(time.now()));
    let last_ticket_qr = Arc::new(Mutex::new(None));
    let coupon_key = CodeKey::new(opts.credentials.derived_key(COUPON_KEY_LABEL).to_vec())
        .map_err(|e| StartError::Device {
            device: "scanner",
            message: e.to_string(),
        })?;
    let (remote, running_config) = crate::executor::remote_config::RemoteConfig::new(
        site_only,
        config,
        running_version,
        db.store_config_changes(),
    );
    let executor = Executor {
        remote: Some(remote),
        config: journey,
        db: db.clone(),
        store,
        time,
        identity: ExecutorIdentity {
            store_id: opts.credentials.store_id.clone(),
            store_name: config.site.kiosk.store_name.clone(),
            kiosk_id: opts.credentials.kiosk_id.clone(),
            place_name: config
                .site
                .kiosk
                .place_name
                .clone()
                .unwrap_or_else(|| format!("Quiosco {}", opts.credentials.kiosk_id)),
        },
        turn_key,
        ticket_link_base: config.site.crm.ticket_link_base().to_owned(),
        coupon_key,
        printer,
        screen: screen_tx,
        board: board_tx,
        health: health_tx,
        last_ticket_qr: last_ticket_qr.clone(),
        beat: liveness.register("executor", crate::service::MAX_SILENCE),
        crm: Some(Arc::new(crm)),
        audience: crate::executor::audience::Audience::new(
            picture_tx,
            !matches!(
                config.hardware.gpio,
                kiosk_drivers::gpio::settings::GpioSettings::None
                    | kiosk_drivers::gpio::settings::GpioSettings::Cdev { presence: None, .. }
            ),
        ),
    };
    liveness.watch_task(
        "executor",
        tokio::spawn(executor.run(
            inputs.devices,
            inputs.touches,
            inputs.staff,
            inputs.store,
            shutdown.clone(),
        )),
    );
    Ok(ExecutorOutputs {
        screen,
        board,
        health,
        picture,
        last_ticket_qr,
        running_config,
    })
}

/// The staff PINs of the store configuration the executor runs, for the UI's staff login.
fn spawn_staff_pin(
    state: AppState,
    mut running: watch::Receiver<crate::executor::remote_config::RunningConfig>,
    stop: CancellationToken,
) -> JoinHandle<()> {
    tokio::spawn(async move {
        loop {
            let logins = {
                let running = running.borrow_and_update();
                crate::ui::StaffLogins {
                    store_pin_sha256: running
                        .staff_pin_sha256
                        .clone()
                        .map(zeroize::Zeroizing::new),
                    members: running.staff.clone(),
                }
            };
            state.set_staff_logins(logins);
            tokio::select! {
                _ = stop.cancelled() => break,
                changed = running.changed() => if changed.is_err() { break },
            }
        }
    })
}

/// Step 4: the status LED, lit while the kiosk can serve (no device absent).
fn spawn_status_led(
    mut led: Box<dyn kiosk_drivers::gpio::StatusLed>,
    mut health: watch::Receiver<DeviceHealthMap>,
    stop: CancellationToken,
) -> JoinHandle<()> {
    tokio::spawn(async move {
        loop {
            let serving = health
                .borrow_and_update()
                .iter()
                .all(|(_, h)| h.is_usable());
            if let Err(e) = led.set(serving) {
                tracing::warn!(error = %e, "cannot set the status LED");
            }
            tokio::select! {
                _ = stop.cancelled() => break,
                changed = health.changed() => if changed.is_err() { break },
            }
        }
        let _ = led.set(false);
    })
}

/// The UI server, serving.
struct ServedUi {
    ui_addr: SocketAddr,
    staff_addr: SocketAddr,
    state: AppState,
}

/// Step 5: the UI server on the kiosk screen's listener and, when configured, the staff
/// listener on the shop LAN.
async fn serve_ui(
    opts: &RunOptions,
    (ui_listener, staff_listener): (Option<TcpListener>, Option<TcpListener>),
    channels: UiChannels,
    liveness: &crate::service::Liveness,
    shutdown: &CancellationToken,
) -> Result<ServedUi, StartError> {
    let site = &opts.config.site;
    let ui_listener = match ui_listener {
        Some(l) => l,
        None => bind(site.ui.listen).await?,
    };
    let staff_listener = match (staff_listener, site.ui.staff_listen) {
        (Some(l), _) => Some(l),
        (None, Some(addr)) => Some(bind(addr).await?),
        (None, None) => None,
    };
    let ui_addr = ui_listener
        .local_addr()
        .map_err(|source| StartError::Listen {
            addr: site.ui.listen,
            source,
        })?;
    let staff_addr = staff_listener
        .as_ref()
        .and_then(|l| l.local_addr().ok())
        .unwrap_or(ui_addr);
    let state = AppState::new(
        UiSettings {
            staff_pin_sha256: site
                .ui
                .staff_pin_sha256
                .clone()
                .map(zeroize::Zeroizing::new),
            staff: site
                .ui
                .staff
                .iter()
                .map(crate::config::StaffEntry::member)
                .collect(),
            staff_token: None,
            kiosk_loopback_only: true,
            store_name: site.kiosk.store_name.clone(),
            allowed_hosts: site.ui.allowed_hosts.clone(),
        },
        channels,
    );
    for listener in std::iter::once(ui_listener).chain(staff_listener) {
        let state = state.clone();
        let stop = shutdown.clone();
        liveness.watch_task(
            "ui server",
            tokio::spawn(async move {
                if let Err(e) = crate::ui::serve(listener, state, stop.cancelled_owned()).await {
                    tracing::error!(error = %e, "ui server stopped");
                }
            }),
        );
    }
    Ok(ServedUi {
        ui_addr,
        staff_addr,
        state,
    })
}

/// Step 6: the sync worker, draining the outbox to the CRM and applying its feed.
fn spawn_sync(
    sync_config: kiosk_sync::SyncConfig,
    db: &KioskDb,
    sync_clock: Arc<SystemSyncClock>,
    appended: Arc<Notify>,
    liveness: &crate::service::Liveness,
    shutdown: &CancellationToken,
) -> Result<SyncStatusReceiver, StartError> {
    let outbox = Arc::new(db.clone());
    let (sync_task, sync) = SyncWorker::spawn(
        sync_config,
        outbox.clone(),
        outbox,
        sync_clock,
        shutdown.clone(),
        appended,
    )
    .map_err(|e| StartError::Sync(e.to_string()))?;
    liveness.watch_task("sync worker", sync_task);
    Ok(sync)
}

/// Step 7: retention, once a day.
fn spawn_retention(db: KioskDb, retention_days: u32, stop: CancellationToken) -> JoinHandle<()> {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_secs(24 * 3600));
        tick.tick().await;
        loop {
            tokio::select! {
                _ = stop.cancelled() => break,
                _ = tick.tick() => {
                    let db = db.clone();
                    let _ = tokio::task::spawn_blocking(move || {
                        if let Err(e) = db.journal().prune(retention_days) {
                            tracing::warn!(error = %e, "cannot prune old events");
                        }
                    }).await;
                }
            }
        }
    })
}
