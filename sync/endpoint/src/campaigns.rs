//! Campaign definitions from files (`crm-endpoint campaigns import FILE`) and the checks every
//! campaign passes before kiosks see it, whether it came from a file or the admin API.
//!
//! File formats: TOML with one `[[campaigns]]` table per campaign (dates as strings,
//! `starts_on = "2026-03-01"`), or JSON (an array of campaigns, or `{"campaigns": [...]}`). Fields
//! are those of [`kiosk_protocol::wire::Campaign`].

use std::path::Path;

use kiosk_protocol::ident::{self, BadIdent};
use kiosk_protocol::wire::Campaign;
use serde::Deserialize;

/// What is wrong with a campaign file or definition.
#[derive(Debug, thiserror::Error)]
pub enum CampaignError {
    /// The file could not be read.
    #[error("cannot read campaign file {path}")]
    Read {
        /// The file.
        path: String,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// TOML that does not describe campaigns.
    #[error("campaign file {path} is not valid campaign TOML")]
    Toml {
        /// The file.
        path: String,
        /// Why.
        #[source]
        source: toml::de::Error,
    },
    /// JSON that does not describe campaigns.
    #[error("campaign file {path} is not valid campaign JSON")]
    Json {
        /// The file.
        path: String,
        /// Why.
        #[source]
        source: serde_json::Error,
    },
    /// A definition that breaks a rule.
    #[error("campaign {id:?}: {problem}")]
    Invalid {
        /// The campaign id.
        id: String,
        /// What to fix.
        problem: String,
    },
}

#[derive(Deserialize)]
#[serde(untagged)]
enum JsonFile {
    List(Vec<Campaign>),
    Wrapped { campaigns: Vec<Campaign> },
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct TomlFile {
    campaigns: Vec<Campaign>,
}

/// Reads and checks the campaigns of a TOML (`.toml`) or JSON (anything else) file.
pub fn load(path: &Path) -> Result<Vec<Campaign>, CampaignError> {
    let shown = path.display().to_string();
    let text = std::fs::read_to_string(path).map_err(|source| CampaignError::Read {
        path: shown.clone(),
        source,
    })?;
    let campaigns = if path
        .extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("toml"))
    {
        toml::from_str::<TomlFile>(&text)
            .map_err(|source| CampaignError::Toml {
                path: shown,
                source,
            })?
            .campaigns
    } else {
        match serde_json::from_str::<JsonFile>(&text).map_err(|source| CampaignError::Json {
            path: shown,
            source,
        })? {
            JsonFile::List(l) | JsonFile::Wrapped { campaigns: l } => l,
        }
    };
    for c in &campaigns {
        check(c)?;
    }
    Ok(campaigns)
}

/// The rules of a campaign: an id, a name and texts that are not blank, dates in order, unique
/// variant names, some weight.
pub fn check(c: &Campaign) -> Result<(), CampaignError> {
    let invalid = |problem: &str| CampaignError::Invalid {
        id: c.id.clone(),
        problem: problem.to_owned(),
    };
    let ident = |field: &str, value: &str, check: fn(&str) -> Result<(), BadIdent>| {
        check(value).map_err(|e| CampaignError::Invalid {
            id: c.id.chars().take(64).collect(),
            problem: format!("{field}: {e}"),
        })
    };
    ident("id", &c.id, ident::check)?;
    for (i, v) in c.variants.iter().enumerate() {
        ident(&format!("variants[{i}].name"), &v.name, ident::check)?;
    }
    for (i, s) in c.stores.iter().enumerate() {
        ident(&format!("stores[{i}]"), s, ident::check)?;
    }
    for (i, r) in c.regions.iter().enumerate() {
        crate::db::places::check_region(r).map_err(|e| CampaignError::Invalid {
            id: c.id.chars().take(64).collect(),
            problem: format!("regions[{i}]: {e}"),
        })?;
    }
    for (i, s) in c.target_segments.iter().enumerate() {
        ident(&format!("target_segments[{i}]"), s, ident::check)?;
    }
    for (i, s) in c.services.iter().enumerate() {
        ident(&format!("services[{i}]"), s, ident::check_service)?;
    }
    if c.name.trim().is_empty() {
        return Err(invalid("name: it is blank"));
    }
    for (field, text) in [
        ("screen_text", &c.screen_text),
        ("ticket_line", &c.ticket_line),
    ] {
        for (lang, t) in [("es", &text.es), ("en", &text.en)] {
            if t.trim().is_empty() {
                return Err(invalid(&format!("{field}.{lang}: it is blank")));
            }
        }
    }
    if c.ends_on < c.starts_on {
        return Err(invalid("ends_on is before starts_on"));
    }
    let mut names: Vec<&str> = c.variants.iter().map(|v| v.name.as_str()).collect();
    names.sort_unstable();
    if names.windows(2).any(|w| w[0] == w[1]) {
        return Err(invalid("variant names must be unique"));
    }
    if !c.variants.is_empty() && c.variants.iter().all(|v| v.weight == 0) {
        return Err(invalid("at least one variant needs a weight above 0"));
    }
    check_content(c)
}

/// Signage content: ids unique, durations 3 to 60 s, pictures that decode to what they say.
fn check_content(c: &Campaign) -> Result<(), CampaignError> {
    use base64::Engine as _;
    use kiosk_protocol::wire::{MAX_CONTENT_IMAGE_BYTES, MAX_CONTENT_ITEMS};
    let invalid = |problem: String| CampaignError::Invalid {
        id: c.id.clone(),
        problem,
    };
    if c.content.len() > MAX_CONTENT_ITEMS {
        return Err(invalid(format!(
            "content: {} items, at most {MAX_CONTENT_ITEMS}",
            c.content.len()
        )));
    }
    let mut ids = std::collections::HashSet::new();
    for (i, item) in c.content.iter().enumerate() {
        ident::check(&item.id).map_err(|e| invalid(format!("content[{i}].id: {e}")))?;
        if !ids.insert(item.id.as_str()) {
            return Err(invalid(format!(
                "content[{i}].id: used twice in this campaign"
            )));
        }
        if !(3..=60).contains(&item.duration_s) {
            return Err(invalid(format!(
                "content[{i}].duration_s: {} s, expected 3 to 60",
                item.duration_s
            )));
        }
        if let Some(image) = &item.image {
            let bytes = base64::engine::general_purpose::STANDARD
                .decode(&image.data)
                .map_err(|_| invalid(format!("content[{i}].image.data: not base64")))?;
            if bytes.len() > MAX_CONTENT_IMAGE_BYTES {
                return Err(invalid(format!(
                    "content[{i}].image.data: {} bytes, at most {MAX_CONTENT_IMAGE_BYTES}",
                    bytes.len()
                )));
            }
            if !image.mime.matches(&bytes) {
                return Err(invalid(format!(
                    "content[{i}].image.data: not a {} picture",
                    image.mime.as_str()
                )));
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const TOML: &str = r#"
[[campaigns]]
id = "spring-coffee"
name = "Spring coffee"
target_segments = ["vip", "regular"]
services = ["A"]
stores = ["demo"]
starts_on = "2026-03-01"
ends_on = "2026-05-31"
screen_text = { es = "Café gratis", en = "Free coffee" }
ticket_line = { es = "Pida su café", en = "Ask for your coffee" }
coupon = { code = "CAFE", text = { es = "1 café", en = "1 coffee" } }
variants = [ { name = "a", weight = 1 }, { name = "b", weight = 1, screen_text = { es = "¡Café!", en = "Coffee!" } } ]
"#;

    #[test]
    fn toml_campaign_files_load_with_variants_and_coupon() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.toml");
        std::fs::write(&path, TOML).unwrap();
        let campaigns = load(&path).unwrap();
        assert_eq!(campaigns.len(), 1);
        assert_eq!(campaigns[0].variants[1].name, "b");
        assert_eq!(campaigns[0].coupon.as_ref().unwrap().code, "CAFE");
        let json = dir.path().join("c.json");
        std::fs::write(&json, serde_json::to_string(&campaigns).unwrap()).unwrap();
        assert_eq!(load(&json).unwrap(), campaigns);
    }

    #[test]
    fn signage_content_is_checked_item_by_item_naming_the_field() {
        use base64::Engine as _;
        use kiosk_protocol::wire::{ContentImage, ContentItem, ImageMime, Localized};
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.toml");
        std::fs::write(&path, TOML).unwrap();
        let mut c = load(&path).unwrap().remove(0);
        let png = b"\x89PNG\r\n\x1a\n rest of a picture";
        let item = |id: &str, duration_s: u32, mime: ImageMime, bytes: &[u8]| ContentItem {
            id: id.into(),
            text: Localized {
                es: "Café".into(),
                en: "Coffee".into(),
            },
            image: Some(ContentImage {
                mime,
                data: base64::engine::general_purpose::STANDARD.encode(bytes),
                alt: Localized::default(),
            }),
            duration_s,
        };
        c.content = vec![item("spring-1", 8, ImageMime::Png, png)];
        check(&c).unwrap();
        for (content, want) in [
            (
                vec![item("spring-1", 2, ImageMime::Png, png)],
                "content[0].duration_s: 2 s",
            ),
            (
                vec![item("Spring 1", 8, ImageMime::Png, png)],
                "content[0].id",
            ),
            (
                vec![
                    item("a", 8, ImageMime::Png, png),
                    item("a", 8, ImageMime::Png, png),
                ],
                "content[1].id: used twice",
            ),
            (
                vec![item("a", 8, ImageMime::Jpeg, png)],
                "content[0].image.data: not a image/jpeg picture",
            ),
            (
                vec![item(
                    "a",
                    8,
                    ImageMime::Png,
                    &[png.as_slice(), &vec![0; 600 * 1024]].concat(),
                )],
                "at most 524288",
            ),
        ] {
            c.content = content;
            let err = check(&c).unwrap_err().to_string();
            assert!(err.contains(want), "{err} (wanted {want})");
        }
    }

    #[test]
    fn campaigns_ending_before_they_start_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.toml");
        std::fs::write(&path, TOML.replace("2026-05-31", "2026-02-01")).unwrap();
        let err = load(&path).unwrap_err();
        assert!(
            err.to_string().contains("ends_on is before starts_on"),
            "{err}"
        );
    }
}
