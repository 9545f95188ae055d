//! The store configuration set at the CRM, laid over the site config: which parts it replaces
//! and the check a kiosk makes before running one, which is `kiosk check-config`'s own
//! ([`SiteConfig::validate`] on the merged config; the shared rules live in
//! `kiosk_protocol::store_config`, which the CRM checks with too).
//!
//! Precedence, part by part: a part the CRM sets (services, opening time, counters, staff PIN
//! digest, privacy policy) replaces the same part of `site.toml`; a part it leaves out, and every
//! other key (kiosk id, store, CRM URL, listeners, hardware, the store's kiosks), stay as
//! `site.toml` says: they must work before enrollment, when no CRM config can have arrived.

use std::path::PathBuf;

use kiosk_protocol::store_config::{
    RuleError, ServiceFields, StaffFields, StoreConfig, StoreConfigParts, check_counters,
    check_opening_time, check_pin_digest, check_privacy, check_services, check_staff,
};
use kiosk_protocol::wire::Localized;

use super::{Config, ConfigError, Names, PrivacySection, ServiceConfig, SiteConfig, StaffEntry};

/// Where a merged config came from, as errors name it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StoreConfigSource {
    /// The CRM's version.
    pub version: u64,
}

impl StoreConfigSource {
    /// What errors name instead of a file.
    pub fn label(self) -> PathBuf {
        PathBuf::from(format!("store config v{} from the CRM", self.version))
    }
}

/// A store configuration from the CRM that the kiosk will not run.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct RemoteConfigError(pub ConfigError);

impl RemoteConfigError {
    /// The reason as the refusal event and `kiosk status` say it: the key and what was
    /// expected, without the source label (the version travels beside it).
    pub fn reason(&self) -> String {
        match &self.0.key {
            Some(key) => format!("key `{key}`: {}", self.0.message),
            None => self.0.message.clone(),
        }
    }
}

fn names(l: &Localized) -> Names {
    Names {
        es: l.es.clone(),
        en: l.en.clone(),
    }
}

impl SiteConfig {
    /// The rules shared with the CRM, over this config's parts.
    pub(super) fn check_store_parts(&self) -> Result<(), RuleError> {
        check_opening_time(&self.queue.opening_time)?;
        check_counters(self.queue.counters)?;
        check_services(self.queue.services.iter().map(|s| ServiceFields {
            letter: &s.letter,
            name_es: &s.name.es,
            name_en: &s.name.en,
            expected_minutes: s.expected_minutes,
        }))?;
        if let Some(d) = &self.ui.staff_pin_sha256 {
            check_pin_digest(d)?;
        }
        check_staff(
            self.ui.staff.iter().map(|m| StaffFields {
                id: &m.id,
                name: &m.name,
                pin_sha256: &m.pin_sha256,
            }),
            self.ui.staff_pin_sha256.as_deref(),
        )?;
        check_privacy(
            &self.privacy.policy_version,
            &Localized {
                es: self.privacy.policy_text.es.clone(),
                en: self.privacy.policy_text.en.clone(),
            },
        )
    }

    /// This config with the CRM's parts over it (see the module docs for the precedence).
    pub fn with_store_parts(&self, parts: &StoreConfigParts) -> SiteConfig {
        let mut site = self.clone();
        if let Some(services) = &parts.services {
            site.queue.services = services
                .iter()
                .map(|s| ServiceConfig {
                    letter: s.letter.clone(),
                    name: names(&s.name),
                    priority: s.priority,
                    expected_minutes: s.expected_minutes,
                    ticket_note: s.ticket_note.as_ref().map(names),
                })
                .collect();
        }
        if let Some(t) = &parts.opening_time {
            site.queue.opening_time = t.clone();
        }
        if let Some(c) = parts.counters {
            site.queue.counters = c;
        }
        if let Some(d) = &parts.staff_pin_sha256 {
            site.ui.staff_pin_sha256 = Some(d.clone());
        }
        if let Some(staff) = &parts.staff {
            site.ui.staff = staff
                .iter()
                .map(|m| StaffEntry {
                    id: m.id.clone(),
                    name: m.name.clone(),
                    pin_sha256: m.pin_sha256.clone(),
                })
                .collect();
        }
        if let Some(p) = &parts.privacy {
            site.privacy = PrivacySection {
                policy_version: p.version.clone(),
                policy_text: names(&p.text),
            };
        }
        site
    }
}

impl Config {
    /// The config this kiosk runs with `remote` over its `site.toml`, checked as `kiosk
    /// check-config` checks a file; an error names the CRM's version and the key.
    pub fn with_store_config(&self, remote: &StoreConfig) -> Result<Config, RemoteConfigError> {
        let site = self.site.with_store_parts(&remote.parts);
        let label = StoreConfigSource {
            version: remote.version,
        }
        .label();
        site.validate(&label, "").map_err(RemoteConfigError)?;
        Ok(Config {
            site,
            ..self.clone()
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use kiosk_protocol::store_config::ServiceSpec;

    fn site() -> Config {
        let text = include_str!("../../config/site.example.toml");
        Config::from_text(std::path::Path::new("site.toml"), text).unwrap()
    }

    fn service(letter: &str, es: &str) -> ServiceSpec {
        ServiceSpec {
            letter: letter.into(),
            name: Localized {
                es: es.into(),
                en: es.into(),
            },
            priority: false,
            expected_minutes: 3,
            ticket_note: None,
        }
    }

    #[test]
    fn the_crm_replaces_only_the_parts_it_sets() {
        let base = site();
        let remote = StoreConfig {
            version: 2,
            parts: StoreConfigParts {
                services: Some(vec![service("D", "Devoluciones")]),
                counters: Some(4),
                ..StoreConfigParts::default()
            },
        };
        let merged = base.with_store_config(&remote).unwrap();
        assert_eq!(merged.site.queue.services.len(), 1);
        assert_eq!(merged.site.queue.services[0].letter, "D");
        assert_eq!(merged.site.queue.counters, 4);
        assert_eq!(merged.site.queue.opening_time, base.site.queue.opening_time);
        assert_eq!(merged.site.crm.url, base.site.crm.url);
        assert_eq!(
            merged.site.privacy.policy_version,
            base.site.privacy.policy_version
        );
    }

    #[test]
    fn a_config_check_config_would_refuse_is_refused_with_the_key_and_the_version() {
        let remote = StoreConfig {
            version: 3,
            parts: StoreConfigParts {
                services: Some(vec![service("A", "Caja"), service("A", "Otra")]),
                ..StoreConfigParts::default()
            },
        };
        let e = site().with_store_config(&remote).unwrap_err();
        assert_eq!(e.0.key.as_deref(), Some("queue.services[1].letter"));
        assert!(
            e.to_string().starts_with("store config v3 from the CRM"),
            "{e}"
        );
        assert!(e.reason().contains("used twice"), "{}", e.reason());
    }
}
