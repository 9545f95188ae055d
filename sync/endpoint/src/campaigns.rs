//! Campaign definitions from files (`crm-endpoint campaigns import FILE`) and the checks every
//! campaign passes before kiosks see it, whether it came from a file or the admin API.
//!
//! File formats: TOML with one `[[campaigns]]` table per campaign (dates as strings,
//! `starts_on = "2026-03-01"`), or JSON (an array of campaigns, or `{"campaigns": [...]}`). Fields
//! are those of [`kiosk_protocol::wire::Campaign`].

use std::path::Path;

use kiosk_protocol::ident::{self, BadIdent};
use kiosk_protocol::wire::{
    Campaign, ContentImage, Coupon, MAX_COUPON_VALID_DAYS, MAX_COUPONS_PER_CUSTOMER,
};
use serde::Deserialize;

/// Largest campaign body the admin API and the console take: its pictures (at most 512 KiB
/// each, a third more in base64: the campaign's, its variants', its signage content's) with
/// room to spare; axum's default of 2 MiB would refuse a campaign of three pictures.
pub const MAX_CAMPAIGN_BODY_BYTES: usize = 24 * 1024 * 1024;

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
/// variant names, some weight, a coupon whose code and rules a kiosk can use, and pictures that
/// are what they say with their text alternative in both languages.
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
    let picture = |field: String, image: &ContentImage| {
        check_picture(&field, image, true).map_err(|problem| CampaignError::Invalid {
            id: c.id.clone(),
            problem,
        })
    };
    if let Some(image) = &c.image {
        picture("image".to_owned(), image)?;
    }
    for (i, v) in c.variants.iter().enumerate() {
        if let Some(image) = &v.image {
            picture(format!("variants[{i}].image"), image)?;
        }
    }
    if let Some(coupon) = &c.coupon {
        check_coupon(coupon).map_err(|problem| CampaignError::Invalid {
            id: c.id.clone(),
            problem,
        })?;
    }
    check_content(c)
}

/// A coupon's code prefix (what staff type: letters, digits, inner hyphens, at most 16), its
/// text in both languages and its rules ([`Coupon::valid_days`], [`Coupon::max_per_customer`]).
fn check_coupon(coupon: &Coupon) -> Result<(), String> {
    let code = &coupon.code;
    let shaped = (1..=16).contains(&code.len())
        && code.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
        && !code.starts_with('-')
        && !code.ends_with('-');
    if !shaped {
        return Err(format!(
            "coupon.code: {code:?} is not 1 to 16 letters, digits or inner hyphens"
        ));
    }
    for (lang, t) in [("es", &coupon.text.es), ("en", &coupon.text.en)] {
        if t.trim().is_empty() {
            return Err(format!("coupon.text.{lang}: it is blank"));
        }
    }
    if let Some(days) = coupon.valid_days
        && days > MAX_COUPON_VALID_DAYS
    {
        return Err(format!(
            "coupon.valid_days: {days} days, at most {MAX_COUPON_VALID_DAYS}"
        ));
    }
    match coupon.max_per_customer {
        Some(n) if !(1..=MAX_COUPONS_PER_CUSTOMER).contains(&n) => Err(format!(
            "coupon.max_per_customer: {n}, expected 1 to {MAX_COUPONS_PER_CUSTOMER} (no coupon: leave the coupon out)"
        )),
        _ => Ok(()),
    }
}

/// A picture: real bytes of its type within the limits ([`kiosk_protocol::picture::check`]);
/// with `alt_required`, its text alternative in both languages.
fn check_picture(field: &str, image: &ContentImage, alt_required: bool) -> Result<(), String> {
    kiosk_protocol::picture::check(image).map_err(|e| format!("{field}.data: {e}"))?;
    if alt_required {
        for (lang, t) in [("es", &image.alt.es), ("en", &image.alt.en)] {
            if t.trim().is_empty() {
                return Err(format!(
                    "{field}.alt.{lang}: it is blank (say what the picture shows, for screen readers)"
                ));
            }
        }
    }
    Ok(())
}

/// Signage content: ids unique, durations 3 to 60 s, pictures that decode to what they say.
fn check_content(c: &Campaign) -> Result<(), CampaignError> {
    use kiosk_protocol::wire::MAX_CONTENT_ITEMS;
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
            check_picture(&format!("content[{i}].image"), image, false).map_err(invalid)?;
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
        let png = DEMO_PNG;
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
                    &[png, &vec![0; 600 * 1024]].concat(),
                )],
                "at most 524288",
            ),
        ] {
            c.content = content;
            let err = check(&c).unwrap_err().to_string();
            assert!(err.contains(want), "{err} (wanted {want})");
        }
    }

    const DEMO_PNG: &[u8] = include_bytes!("demo-coffee.png");

    fn picture(mime: kiosk_protocol::wire::ImageMime, bytes: &[u8]) -> ContentImage {
        use base64::Engine as _;
        ContentImage {
            mime,
            data: base64::engine::general_purpose::STANDARD.encode(bytes),
            alt: kiosk_protocol::wire::Localized {
                es: "Una taza de café".into(),
                en: "A cup of coffee".into(),
            },
        }
    }

    /// The campaign's picture and a variant's: real bytes of their type, within the size, with
    /// their text alternative in both languages; each refusal names the field.
    #[test]
    fn campaign_and_variant_pictures_are_checked_naming_the_field() {
        use kiosk_protocol::wire::ImageMime;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.toml");
        std::fs::write(&path, TOML).unwrap();
        let good = load(&path).unwrap().remove(0);
        let mut c = good.clone();
        c.image = Some(picture(ImageMime::Png, DEMO_PNG));
        c.variants[1].image = Some(picture(ImageMime::Png, DEMO_PNG));
        check(&c).unwrap();
        let err = |c: &Campaign| check(c).unwrap_err().to_string();
        let mut renamed = c.clone();
        renamed.image = Some(picture(ImageMime::Jpeg, DEMO_PNG));
        assert!(
            err(&renamed).contains("image.data: not a image/jpeg picture"),
            "{}",
            err(&renamed)
        );
        let mut cut = c.clone();
        cut.variants[1].image = Some(picture(ImageMime::Png, &DEMO_PNG[..300]));
        assert!(
            err(&cut).contains("variants[1].image.data: not a image/png picture"),
            "{}",
            err(&cut)
        );
        let mut huge = c.clone();
        huge.image = Some(picture(
            ImageMime::Png,
            &[DEMO_PNG, &vec![0; 600 * 1024]].concat(),
        ));
        assert!(
            err(&huge).contains("image.data: the picture is"),
            "{}",
            err(&huge)
        );
        assert!(err(&huge).contains("at most 524288"), "{}", err(&huge));
        let mut no_alt = c.clone();
        no_alt.image.as_mut().unwrap().alt.en = " ".into();
        assert!(
            err(&no_alt).contains("image.alt.en: it is blank"),
            "{}",
            err(&no_alt)
        );
    }

    /// The coupon's code is what staff can type, its text is in both languages, and its rules
    /// are within their bounds.
    #[test]
    fn coupon_codes_texts_and_rules_are_checked() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.toml");
        std::fs::write(&path, TOML).unwrap();
        let c = load(&path).unwrap().remove(0);
        let with = |f: &dyn Fn(&mut Coupon)| {
            let mut c = c.clone();
            f(c.coupon.as_mut().unwrap());
            check(&c).map_err(|e| e.to_string())
        };
        with(&|cp| {
            cp.code = "SPRING-26".into();
            cp.valid_days = Some(0);
            cp.max_per_customer = Some(1);
        })
        .unwrap();
        with(&|cp| {
            cp.valid_days = Some(MAX_COUPON_VALID_DAYS);
            cp.max_per_customer = Some(MAX_COUPONS_PER_CUSTOMER);
        })
        .unwrap();
        for (change, want) in [
            (
                &(|cp: &mut Coupon| cp.code = "café".into()) as &dyn Fn(&mut Coupon),
                "coupon.code: \"café\" is not 1 to 16",
            ),
            (&|cp| cp.code = "-CAFE".into(), "coupon.code"),
            (&|cp| cp.code = String::new(), "coupon.code"),
            (&|cp| cp.code = "A".repeat(17), "coupon.code"),
            (
                &|cp| cp.text.en = "  ".into(),
                "coupon.text.en: it is blank",
            ),
            (
                &|cp| cp.valid_days = Some(400),
                "coupon.valid_days: 400 days, at most 366",
            ),
            (
                &|cp| cp.max_per_customer = Some(0),
                "coupon.max_per_customer: 0, expected 1 to 100",
            ),
            (
                &|cp| cp.max_per_customer = Some(101),
                "coupon.max_per_customer: 101",
            ),
        ] {
            let e = with(change).unwrap_err();
            assert!(e.contains(want), "{e} (wanted {want})");
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
