//! A store's configuration set at the CRM (services, opening time, counters, staff PIN digests,
//! privacy policy) and the rules it is checked with, on both sides: the CRM refuses a config that
//! breaks them before it reaches a feed, and the kiosk's `check-config` (`site.toml`) and its
//! check of a config from the feed call these same functions, so a rule is written once.
//!
//! Data flow: admin API → CRM `store_configs` → feed ([`crate::wire::FeedItem::StoreConfig`]) →
//! kiosk journal → executor (applied between journeys) → `store_config_applied` /
//! `store_config_refused` events → CRM dashboard.
//!
//! Every part is optional: a part the CRM leaves out stays as the kiosk's `site.toml` says.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::wire::Localized;

/// Most services a store offers (one letter each).
pub const MAX_SERVICES: usize = 26;

/// Most staff members with PINs of their own in one store.
pub const MAX_STAFF: usize = 200;

/// A store's configuration as the CRM keeps it: version `n` replaces version `n - 1`.
/// Keys a kiosk does not know are ignored (a newer CRM may add a part; the CRM's admin API
/// refuses unknown keys, so a typo never gets this far).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct StoreConfig {
    /// Version, 1 for the store's first config, one more at every change.
    pub version: u64,
    /// The parts set at the CRM.
    #[serde(flatten)]
    pub parts: StoreConfigParts,
}

/// The parts of a store's configuration; each absent part is the kiosk's own (`site.toml`).
/// At least one part is set.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize, JsonSchema)]
#[schemars(extend("minProperties" = 1))]
pub struct StoreConfigParts {
    /// The services customers queue for, in the order the screen shows them (replaces
    /// `[[queue.services]]`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 26))]
    pub services: Option<Vec<ServiceSpec>>,
    /// Local time the store opens, `HH:MM` (replaces `queue.opening_time`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = r"^([01][0-9]|2[0-3]):[0-5][0-9]$"))]
    pub opening_time: Option<String>,
    /// Counters serving at once, for wait estimates before history exists (replaces
    /// `queue.counters`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 200))]
    pub counters: Option<u32>,
    /// SHA-256 (64 hex digits) of the staff PIN (replaces `ui.staff_pin_sha256`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = r"^[0-9a-fA-F]{64}$"))]
    pub staff_pin_sha256: Option<String>,
    /// The staff members who log in at the counter pages with PINs of their own (replaces
    /// `[[ui.staff]]`): the turns they call and serve carry their id, so the managers' reports
    /// count per staff member.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 200))]
    pub staff: Option<Vec<StaffMember>>,
    /// The privacy policy shown at registration (replaces `[privacy]`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub privacy: Option<PrivacyPolicy>,
}

/// One service.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct ServiceSpec {
    /// One capital letter A-Z that prefixes its turn numbers.
    #[schemars(regex(pattern = r"^[A-Z]$"))]
    pub letter: String,
    /// Its name in each language.
    pub name: Localized,
    /// Priority turns may be taken (e.g. accessibility): they are called first.
    #[serde(default)]
    pub priority: bool,
    /// Expected minutes per customer before real service times are known (1 to 240).
    #[serde(default = "default_expected_minutes")]
    #[schemars(range(min = 1, max = 240))]
    pub expected_minutes: u32,
    /// Extra line printed on this service's tickets.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ticket_note: Option<Localized>,
}

fn default_expected_minutes() -> u32 {
    5
}

/// A staff member with a PIN of their own. The PIN says who logs in, so two members never
/// share one (nor the store-wide `staff_pin_sha256`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct StaffMember {
    /// Stable id recorded on the turns they call and serve (`ana`, `s-0042`); not their name,
    /// so a report keeps counting them after a name change.
    #[schemars(with = "crate::ident::Ident")]
    pub id: String,
    /// Their name as the counter page and the managers' reports show it (1 to 60 characters).
    #[schemars(length(min = 1, max = 60))]
    pub name: String,
    /// SHA-256 (64 hex digits) of their PIN (`kiosk pin-digest` prints it).
    #[schemars(regex(pattern = r"^[0-9a-fA-F]{64}$"))]
    pub pin_sha256: String,
}

/// The privacy policy shown at registration and recorded with each consent.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct PrivacyPolicy {
    /// Its version (recorded with every consent given under it).
    #[schemars(length(min = 1, max = 40))]
    pub version: String,
    /// Its text in each language.
    pub text: Localized,
}

/// A broken rule: the key (as in `site.toml`: `queue.services[1].letter`) and what was expected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{key}: {message}")]
pub struct RuleError {
    /// The key, named as in `site.toml`.
    pub key: String,
    /// What is wrong and what was expected.
    pub message: String,
}

fn rule(key: impl Into<String>, message: impl Into<String>) -> RuleError {
    RuleError {
        key: key.into(),
        message: message.into(),
    }
}

/// Parses `HH:MM` (24-hour) into (hour, minute).
pub fn parse_hh_mm(s: &str) -> Option<(u8, u8)> {
    let (h, m) = s.split_once(':')?;
    let digits = |t: &str| t.len() == 2 && t.bytes().all(|b| b.is_ascii_digit());
    if !digits(h) || !digits(m) {
        return None;
    }
    let (h, m): (u8, u8) = (h.parse().ok()?, m.parse().ok()?);
    (h < 24 && m < 60).then_some((h, m))
}

/// `queue.opening_time`: `HH:MM`, 24-hour local time.
pub fn check_opening_time(value: &str) -> Result<(), RuleError> {
    match parse_hh_mm(value) {
        Some(_) => Ok(()),
        None => Err(rule(
            "queue.opening_time",
            format!(
                "`{value}` is not a time: expected HH:MM in 24-hour local time, e.g. \"09:00\""
            ),
        )),
    }
}

/// `queue.counters`: 1 to 200.
pub fn check_counters(counters: u32) -> Result<(), RuleError> {
    if (1..=200).contains(&counters) {
        Ok(())
    } else {
        Err(rule(
            "queue.counters",
            format!("{counters}: expected 1 to 200 counters serving at once"),
        ))
    }
}

/// A service as the rules see it (the site config and the CRM's config hold it differently).
#[derive(Debug, Clone, Copy)]
pub struct ServiceFields<'a> {
    /// Its letter.
    pub letter: &'a str,
    /// Its Spanish name.
    pub name_es: &'a str,
    /// Its English name.
    pub name_en: &'a str,
    /// Expected minutes per customer.
    pub expected_minutes: u32,
}

/// `[[queue.services]]`: at least one, at most [`MAX_SERVICES`], each with its own capital
/// letter, a name in each language and 1 to 240 expected minutes.
pub fn check_services<'a>(
    services: impl ExactSizeIterator<Item = ServiceFields<'a>>,
) -> Result<(), RuleError> {
    if services.len() == 0 {
        return Err(rule(
            "queue.services",
            "expected at least one [[queue.services]] entry",
        ));
    }
    if services.len() > MAX_SERVICES {
        return Err(rule(
            "queue.services",
            format!(
                "{} services: a store offers at most {MAX_SERVICES} (one letter each)",
                services.len()
            ),
        ));
    }
    let mut seen = std::collections::HashSet::new();
    for (i, s) in services.enumerate() {
        let key = format!("queue.services[{i}].letter");
        let ok = s.letter.len() == 1 && s.letter.chars().all(|c| c.is_ascii_uppercase());
        if !ok {
            return Err(rule(
                key,
                format!(
                    "`{}` is not a service letter: expected one capital letter A-Z",
                    s.letter
                ),
            ));
        }
        if !seen.insert(s.letter) {
            return Err(rule(
                key,
                format!(
                    "service letter `{}` is used twice: each service needs its own",
                    s.letter
                ),
            ));
        }
        for (lang, name) in [("es", s.name_es), ("en", s.name_en)] {
            if name.trim().is_empty() || name.chars().count() > 60 {
                return Err(rule(
                    format!("queue.services[{i}].name.{lang}"),
                    "expected the service's name as customers read it (1 to 60 characters)",
                ));
            }
        }
        if !(1..=240).contains(&s.expected_minutes) {
            return Err(rule(
                format!("queue.services[{i}].expected_minutes"),
                format!(
                    "{} minutes: expected 1 to 240 per customer",
                    s.expected_minutes
                ),
            ));
        }
    }
    Ok(())
}

/// `ui.staff_pin_sha256`: 64 hex digits.
pub fn check_pin_digest(digest: &str) -> Result<(), RuleError> {
    if digest.len() == 64 && digest.chars().all(|c| c.is_ascii_hexdigit()) {
        Ok(())
    } else {
        Err(rule(
            "ui.staff_pin_sha256",
            "expected 64 hex digits (the SHA-256 of the PIN; `kiosk provision` writes it)",
        ))
    }
}

/// A staff member as the rules see it (the site config and the CRM's config hold it differently).
#[derive(Debug, Clone, Copy)]
pub struct StaffFields<'a> {
    /// Their id.
    pub id: &'a str,
    /// Their name.
    pub name: &'a str,
    /// Their PIN's digest.
    pub pin_sha256: &'a str,
}

/// `[[ui.staff]]`: at most [`MAX_STAFF`], each with an id of their own, a name and a PIN digest
/// that no other member (nor the store-wide `store_pin_sha256`) has: the PIN says who logs in.
pub fn check_staff<'a>(
    staff: impl ExactSizeIterator<Item = StaffFields<'a>>,
    store_pin_sha256: Option<&str>,
) -> Result<(), RuleError> {
    if staff.len() > MAX_STAFF {
        return Err(rule(
            "ui.staff",
            format!(
                "{} staff members: a store lists at most {MAX_STAFF}",
                staff.len()
            ),
        ));
    }
    let mut ids = std::collections::HashSet::new();
    let mut pins = std::collections::HashSet::new();
    if let Some(p) = store_pin_sha256 {
        pins.insert(p.to_ascii_lowercase());
    }
    for (i, m) in staff.enumerate() {
        if let Err(e) = crate::ident::check(m.id) {
            return Err(rule(format!("ui.staff[{i}].id"), format!("the id {e}")));
        }
        if !ids.insert(m.id) {
            return Err(rule(
                format!("ui.staff[{i}].id"),
                format!(
                    "staff id `{}` is used twice: each member needs their own",
                    m.id
                ),
            ));
        }
        if m.name.trim().is_empty() || m.name.chars().count() > 60 {
            return Err(rule(
                format!("ui.staff[{i}].name"),
                "expected the member's name as the counter page shows it (1 to 60 characters)",
            ));
        }
        if check_pin_digest(m.pin_sha256).is_err() {
            return Err(rule(
                format!("ui.staff[{i}].pin_sha256"),
                "expected 64 hex digits (the SHA-256 of the member's PIN; `kiosk pin-digest` prints it)",
            ));
        }
        if !pins.insert(m.pin_sha256.to_ascii_lowercase()) {
            return Err(rule(
                format!("ui.staff[{i}].pin_sha256"),
                "this PIN is already another member's (or the store-wide staff PIN): the PIN says who logs in, so each member needs their own",
            ));
        }
    }
    Ok(())
}

impl StaffMember {
    /// The fields the rules check.
    pub fn fields(&self) -> StaffFields<'_> {
        StaffFields {
            id: &self.id,
            name: &self.name,
            pin_sha256: &self.pin_sha256,
        }
    }
}

/// `[privacy]`: a version and the text in each language.
pub fn check_privacy(version: &str, text: &Localized) -> Result<(), RuleError> {
    if version.trim().is_empty() || version.chars().count() > 40 {
        return Err(rule(
            "privacy.policy_version",
            "expected the policy's version (1 to 40 characters), recorded with each consent",
        ));
    }
    for (lang, t) in [("es", &text.es), ("en", &text.en)] {
        if t.trim().is_empty() {
            return Err(rule(
                format!("privacy.policy_text.{lang}"),
                "expected the policy text customers read before they consent",
            ));
        }
    }
    Ok(())
}

impl ServiceSpec {
    /// The fields the rules check.
    pub fn fields(&self) -> ServiceFields<'_> {
        ServiceFields {
            letter: &self.letter,
            name_es: &self.name.es,
            name_en: &self.name.en,
            expected_minutes: self.expected_minutes,
        }
    }
}

impl StoreConfigParts {
    /// Checks every part present with the rules `kiosk check-config` applies to `site.toml`.
    pub fn check(&self) -> Result<(), RuleError> {
        if let Some(services) = &self.services {
            check_services(services.iter().map(ServiceSpec::fields))?;
        }
        if let Some(t) = &self.opening_time {
            check_opening_time(t)?;
        }
        if let Some(c) = self.counters {
            check_counters(c)?;
        }
        if let Some(d) = &self.staff_pin_sha256 {
            check_pin_digest(d)?;
        }
        if let Some(staff) = &self.staff {
            check_staff(
                staff.iter().map(StaffMember::fields),
                self.staff_pin_sha256.as_deref(),
            )?;
        }
        if let Some(p) = &self.privacy {
            check_privacy(&p.version, &p.text)?;
        }
        Ok(())
    }

    /// Whether no part is set (the kiosk's `site.toml` in full).
    pub fn is_empty(&self) -> bool {
        *self == StoreConfigParts::default()
    }
}

/// The first key of `input` that `parsed` (the same JSON read into a type and written back)
/// does not have: a key the type does not know, which serde skipped silently. The CRM refuses
/// such input so that a typo (`expected_minute`) is an error, not a default.
pub fn unknown_key(input: &serde_json::Value, parsed: &serde_json::Value) -> Option<String> {
    use serde_json::Value;
    match (input, parsed) {
        (Value::Object(a), Value::Object(b)) => a.iter().find_map(|(k, v)| match b.get(k) {
            None if v.is_null() => None,
            None => Some(k.clone()),
            Some(w) => unknown_key(v, w).map(|rest| {
                if rest.starts_with('[') {
                    format!("{k}{rest}")
                } else {
                    format!("{k}.{rest}")
                }
            }),
        }),
        (Value::Array(a), Value::Array(b)) => a
            .iter()
            .zip(b)
            .enumerate()
            .find_map(|(i, (v, w))| unknown_key(v, w).map(|rest| format!("[{i}].{rest}"))),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn service(letter: &str) -> ServiceSpec {
        ServiceSpec {
            letter: letter.into(),
            name: Localized {
                es: "Caja".into(),
                en: "Till".into(),
            },
            priority: false,
            expected_minutes: 4,
            ticket_note: None,
        }
    }

    #[test]
    fn a_config_breaking_a_rule_names_the_site_toml_key_and_what_was_expected() {
        let mut parts = StoreConfigParts {
            services: Some(vec![service("A"), service("a")]),
            ..StoreConfigParts::default()
        };
        let e = parts.check().unwrap_err();
        assert_eq!(e.key, "queue.services[1].letter");
        assert!(e.message.contains("one capital letter"), "{e}");
        parts.services = Some(vec![service("A"), service("A")]);
        assert!(parts.check().unwrap_err().message.contains("used twice"));
        parts.services = Some(vec![]);
        assert_eq!(parts.check().unwrap_err().key, "queue.services");
        parts.services = Some(vec![service("B")]);
        parts.opening_time = Some("9:00".into());
        assert_eq!(parts.check().unwrap_err().key, "queue.opening_time");
        parts.opening_time = Some("09:00".into());
        parts.counters = Some(0);
        assert_eq!(parts.check().unwrap_err().key, "queue.counters");
        parts.counters = Some(3);
        parts.staff_pin_sha256 = Some("1234".into());
        assert_eq!(parts.check().unwrap_err().key, "ui.staff_pin_sha256");
        parts.staff_pin_sha256 = Some("ab".repeat(32));
        let member = |id: &str, pin: &str| StaffMember {
            id: id.into(),
            name: format!("Staff {id}"),
            pin_sha256: pin.repeat(32),
        };
        parts.staff = Some(vec![member("ana", "01"), member("Luis", "02")]);
        let e = parts.check().unwrap_err();
        assert_eq!(e.key, "ui.staff[1].id");
        parts.staff = Some(vec![member("ana", "01"), member("ana", "02")]);
        assert!(parts.check().unwrap_err().message.contains("used twice"));
        parts.staff = Some(vec![member("ana", "01"), member("luis", "01")]);
        let e = parts.check().unwrap_err();
        assert_eq!(e.key, "ui.staff[1].pin_sha256");
        assert!(e.message.contains("already another member's"), "{e}");
        parts.staff = Some(vec![member("ana", "AB")]);
        assert!(
            parts.check().unwrap_err().message.contains("store-wide"),
            "the store-wide PIN (ab…) and a member's (AB…) are the same PIN"
        );
        parts.staff = Some(vec![member("ana", "0")]);
        assert_eq!(parts.check().unwrap_err().key, "ui.staff[0].pin_sha256");
        parts.staff = Some(vec![StaffMember {
            name: " ".into(),
            ..member("ana", "01")
        }]);
        assert_eq!(parts.check().unwrap_err().key, "ui.staff[0].name");
        parts.staff = Some(vec![member("ana", "01"), member("luis", "02")]);
        assert_eq!(parts.check(), Ok(()));
        parts.privacy = Some(PrivacyPolicy {
            version: "v2".into(),
            text: Localized {
                es: "texto".into(),
                en: " ".into(),
            },
        });
        assert_eq!(parts.check().unwrap_err().key, "privacy.policy_text.en");
        parts.privacy = None;
        assert_eq!(parts.check(), Ok(()));
    }

    #[test]
    fn parts_left_out_are_absent_on_the_wire_and_a_newer_crms_keys_are_ignored() {
        let config = StoreConfig {
            version: 3,
            parts: StoreConfigParts {
                counters: Some(2),
                ..StoreConfigParts::default()
            },
        };
        let v = serde_json::to_value(&config).unwrap();
        assert_eq!(v, serde_json::json!({ "version": 3, "counters": 2 }));
        assert_eq!(serde_json::from_value::<StoreConfig>(v).unwrap(), config);
        let newer = serde_json::json!({ "version": 3, "counters": 2, "greeting": "hola" });
        assert_eq!(
            serde_json::from_value::<StoreConfig>(newer).unwrap(),
            config
        );
        assert_eq!(
            unknown_key(
                &serde_json::json!({ "counters": 2, "services": [{ "letter": "A", "nmae": {} }] }),
                &serde_json::to_value(StoreConfigParts {
                    counters: Some(2),
                    services: Some(vec![service("A")]),
                    ..StoreConfigParts::default()
                })
                .unwrap()
            ),
            Some("services[0].nmae".to_owned())
        );
    }
}
