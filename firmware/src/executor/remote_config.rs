//! Store configurations from the CRM, run by the executor: each one the feed brings is checked
//! with `kiosk check-config`'s rules over this kiosk's `site.toml` as soon as it arrives (a bad
//! one is refused at once, reported, and the last good one kept) and applied at the next safe
//! point: the attract screen, with no customer's journey under way and nothing held about one
//! (`State::holds_personal_data`). A journey that started under version n finishes under it.
//!
//! Data flow: feed → journal (`received`) → **here**: check → wait for the attract screen →
//! queue settings, journey settings, the sequencer's and the staff PINs → journal (`good` and
//! `store_config_applied` in one transaction) → outbox → CRM dashboard.

use kiosk_protocol::store_config::StoreConfig;
use tokio::sync::watch;

use crate::config::Config;
use crate::setup;

/// What the executor runs, for the parts of the kiosk outside it (the UI's staff PIN).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunningConfig {
    /// The CRM's version applied (0: `site.toml` alone).
    pub version: u64,
    /// The store-wide staff PIN's digest in force.
    pub staff_pin_sha256: Option<String>,
    /// The staff members with PINs of their own in force.
    pub staff: Vec<kiosk_protocol::store_config::StaffMember>,
}

impl RunningConfig {
    /// What `config` runs with.
    fn of(version: u64, config: &Config) -> Self {
        RunningConfig {
            version,
            staff_pin_sha256: config.site.ui.staff_pin_sha256.clone(),
            staff: config
                .site
                .ui
                .staff
                .iter()
                .map(crate::config::StaffEntry::member)
                .collect(),
        }
    }
}

/// The executor's side of remote configuration.
pub struct RemoteConfig {
    /// The site config as `site.toml` says it, before any CRM part (every new version is laid
    /// over this, never over the previous version).
    pub site: Config,
    /// The version running now (0: none).
    pub running: u64,
    /// Checked and waiting for a safe point.
    pending: Option<(StoreConfig, Config)>,
    /// Where the feed signals a newer version.
    pub changes: watch::Receiver<u64>,
    /// What runs, published after every change.
    pub published: watch::Sender<RunningConfig>,
}

impl RemoteConfig {
    /// The executor's remote configuration: `site` is `site.toml`'s config, `running` the
    /// version the kiosk starts with (see [`restore`]).
    pub fn new(
        site: Config,
        running: &Config,
        running_version: u64,
        changes: watch::Receiver<u64>,
    ) -> (Self, watch::Receiver<RunningConfig>) {
        let (published, rx) = watch::channel(RunningConfig::of(running_version, running));
        (
            RemoteConfig {
                site,
                running: running_version,
                pending: None,
                changes,
                published,
            },
            rx,
        )
    }
}

/// The config a kiosk starts with: `site.toml` with the last good CRM configuration from the
/// journal over it (checked again: `site.toml` may have changed since), and its version.
pub fn restore(db: &kiosk_journal::db::KioskDb, site: &Config) -> (Config, u64) {
    let good = match db.good_store_config() {
        Ok(g) => g,
        Err(e) => {
            tracing::error!(error = %e, "cannot read the store configuration kept in the journal; running site.toml alone");
            None
        }
    };
    let Some(good) = good else {
        return (site.clone(), 0);
    };
    match site.with_store_config(&good) {
        Ok(config) => {
            tracing::info!(
                version = good.version,
                "running the store configuration from the CRM kept in the journal"
            );
            (config, good.version)
        }
        Err(e) => {
            tracing::warn!(error = %e, "the store configuration kept in the journal no longer fits site.toml; running site.toml alone until the CRM sends another");
            (site.clone(), 0)
        }
    }
}

impl super::Run {
    /// A newer configuration may have arrived: check it now, apply it now or at the next safe
    /// point.
    pub(super) fn store_config_arrived(&mut self) {
        let Some(remote) = self.e.remote.as_mut() else {
            return;
        };
        let received = match self.e.db.pending_store_config() {
            Ok(Some(c)) => c,
            Ok(None) => return,
            Err(e) => {
                tracing::error!(error = %e, "cannot read the store configuration the feed brought");
                return;
            }
        };
        if remote
            .pending
            .as_ref()
            .is_some_and(|(p, _)| p.version >= received.version)
        {
            return;
        }
        match remote.site.with_store_config(&received) {
            Ok(config) => {
                tracing::info!(
                    version = received.version,
                    "store configuration from the CRM checked; applied at the next attract screen"
                );
                remote.pending = Some((received, config));
            }
            Err(e) => {
                let reason = e.reason();
                tracing::warn!(version = received.version, running = remote.running, %reason, "store configuration from the CRM refused; keeping the one running");
                if let Err(e) = self.e.db.store_config_refused(received.version, &reason) {
                    tracing::error!(error = %e, "cannot journal the refusal of a store configuration");
                }
            }
        }
        self.apply_store_config_if_safe();
    }

    /// Applies the checked configuration if no customer's journey is under way.
    pub(super) fn apply_store_config_if_safe(&mut self) {
        let safe = !self.state.holds_personal_data() && self.answers.is_empty();
        let Some(remote) = self.e.remote.as_mut() else {
            return;
        };
        if !safe {
            return;
        }
        let Some((received, config)) = remote.pending.take() else {
            return;
        };
        let settings = setup::queue_settings(&config);
        let services: Vec<String> = settings.services.iter().map(|s| s.letter.clone()).collect();
        // Journaled first (invariant 1): a crash after this runs the new version at restart.
        if let Err(e) = self.e.db.store_config_applied(&received, services.clone()) {
            tracing::error!(error = %e, version = received.version, "cannot keep the store configuration; not applied");
            return;
        }
        remote.running = received.version;
        remote
            .published
            .send_replace(RunningConfig::of(received.version, &config));
        if let Some(sequencer) = self.e.store.link.numbers() {
            sequencer.set_settings(settings.clone());
        }
        self.e.store.replica.set_settings(settings);
        let mut journey = setup::journey_config(&config);
        // The role and the locale are site.toml's; only the CRM's parts change.
        journey.role = self.e.config.role;
        self.e.config = journey;
        tracing::info!(version = received.version, services = ?services, "store configuration from the CRM applied");
        self.publish_screen();
        self.publish_board();
    }
}
