//! From the site configuration to what the engine, the queue and the sync worker need, and the
//! store's local time.

use std::sync::Arc;
use std::time::Duration;

use kiosk_protocol::events::ConsentPurpose;
use time::{OffsetDateTime, UtcOffset};

use crate::config::{Config, Locale as ConfigLocale, Names, parse_hh_mm};
use kiosk_core::journey::{
    ConsentPolicy, JourneyConfig, Locale, Localized, SurveyReason, Timeouts,
};
use kiosk_core::queue::{QueueSettings, ServiceDef};
use kiosk_journal::clock::Clock;

/// The store's wall clock: the kiosk clock read in the store's time zone (DST included).
#[derive(Clone)]
pub struct StoreTime {
    tz: jiff::tz::TimeZone,
    clock: Arc<dyn Clock>,
}

impl std::fmt::Debug for StoreTime {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StoreTime")
            .field("tz", &self.tz.iana_name())
            .finish()
    }
}

impl StoreTime {
    /// The store time of `timezone` (an IANA name the config already validated; unknown names
    /// fall back to UTC with a warning).
    pub fn new(timezone: &str, clock: Arc<dyn Clock>) -> Self {
        let tz = jiff::tz::TimeZone::get(timezone).unwrap_or_else(|e| {
            tracing::warn!(timezone, error = %e, "unknown time zone; using UTC");
            jiff::tz::TimeZone::UTC
        });
        StoreTime { tz, clock }
    }

    /// Now, in the store's local time.
    pub fn now(&self) -> OffsetDateTime {
        self.local(self.clock.wall())
    }

    /// `t` in the store's local time.
    pub fn local(&self, t: OffsetDateTime) -> OffsetDateTime {
        let offset = jiff::Timestamp::from_second(t.unix_timestamp())
            .map(|ts| self.tz.to_offset(ts).seconds())
            .unwrap_or(0);
        let offset = UtcOffset::from_whole_seconds(offset).unwrap_or(UtcOffset::UTC);
        t.to_offset(offset)
    }

    /// The monotonic clock, in ms.
    pub fn mono_ms(&self) -> u64 {
        self.clock.mono_ms()
    }
}

/// The journey's locale for a config locale.
pub fn locale(l: ConfigLocale) -> Locale {
    match l {
        ConfigLocale::Es => Locale::Es,
        ConfigLocale::En => Locale::En,
    }
}

fn localized(n: &Names) -> Localized {
    Localized::new(n.es.clone(), n.en.clone())
}

/// The queue's settings from the site config.
pub fn queue_settings(config: &Config) -> QueueSettings {
    let q = &config.site.queue;
    let services = q
        .services
        .iter()
        .map(|s| ServiceDef {
            letter: s.letter.clone(),
            name: localized(&s.name),
            priority_allowed: s.priority,
            expected_s: s.expected_minutes.saturating_mul(60),
        })
        .collect();
    // The config validated the time; midnight is the harmless fallback.
    let (h, m) = parse_hh_mm(&q.opening_time).unwrap_or((0, 0));
    let opening = time::Time::from_hms(h, m, 0).unwrap_or(time::Time::MIDNIGHT);
    let mut settings = QueueSettings::new(services, opening);
    settings.counters = q.counters.max(1);
    settings
}

/// The journey's settings from the site config: services, the consents asked at registration
/// (each its own unticked box, with the policy text and version), survey reasons and timeouts.
pub fn journey_config(config: &Config) -> JourneyConfig {
    let privacy = &config.site.privacy;
    let policy = localized(&privacy.policy_text);
    let consent = |purpose, es: &str, en: &str| ConsentPolicy {
        purpose,
        version: privacy.policy_version.clone(),
        title: Localized::new(es, en),
        text: policy.clone(),
    };
    let reason = |id: &str, es: &str, en: &str| SurveyReason {
        id: id.to_owned(),
        label: Localized::new(es, en),
    };
    let idle_ms = u64::from(config.site.ui.idle_timeout_s) * 1000;
    JourneyConfig {
        services: queue_settings(config).services,
        consents: vec![
            consent(
                ConsentPurpose::Profile,
                "Guardar mi perfil para saludarme y mostrarme ofertas",
                "Keep my profile to greet me and show me offers",
            ),
            consent(
                ConsentPurpose::MarketingEmail,
                "Recibir ofertas por correo electrónico",
                "Receive offers by email",
            ),
            consent(
                ConsentPurpose::MarketingSms,
                "Recibir ofertas por SMS",
                "Receive offers by SMS",
            ),
            consent(
                ConsentPurpose::TurnSms,
                "Avisarme por SMS cuando se acerque mi turno",
                "Text me when my turn is near",
            ),
        ],
        role: config.site.kiosk.role,
        ticket_notes: config
            .site
            .queue
            .services
            .iter()
            .filter_map(|s| Some((s.letter.clone(), localized(s.ticket_note.as_ref()?))))
            .collect(),
        survey_reasons: vec![
            reason("wait", "La espera", "The wait"),
            reason("staff", "La atención", "The staff"),
            reason("kiosk", "Este quiosco", "This kiosk"),
            reason("other", "Otra cosa", "Something else"),
        ],
        timeouts: Timeouts {
            idle_ms,
            warning_ms: u64::from(config.site.ui.time_warning_s) * 1000,
            accessible_factor: config.site.ui.accessible_time_factor,
            ..Timeouts::default()
        },
        default_locale: locale(config.site.kiosk.locale),
    }
}

/// The sync worker's settings from the site config and the enrollment.
pub fn sync_config(
    config: &Config,
    credentials: &crate::credentials::Credentials,
    endpoint_url: &str,
) -> Result<kiosk_sync::SyncConfig, std::io::Error> {
    let crm = &config.site.crm;
    let mut sync = kiosk_sync::SyncConfig::new(
        endpoint_url,
        credentials.kiosk_id.clone(),
        credentials.device_secret.clone(),
    );
    sync.backoff_base = Duration::from_millis(crm.backoff_base_ms);
    sync.backoff_cap = Duration::from_millis(crm.backoff_cap_ms);
    sync.connect_timeout = Duration::from_millis(crm.connect_timeout_ms);
    sync.request_timeout = Duration::from_millis(crm.request_timeout_ms);
    sync.feed_interval = Duration::from_secs(crm.feed_interval_s);
    if let Some(ca) = &crm.ca_file {
        sync.tls.root_ca_pem = Some(std::fs::read_to_string(ca)?);
    }
    Ok(sync)
}
