//! Languages the kiosk speaks and texts given in each of them (service names, campaign lines,
//! consent policies). Shared by the journey engine, the turn queue and the screens.

use serde::{Deserialize, Serialize};

/// A language the kiosk offers on screen and on tickets.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Locale {
    /// Spanish (the default).
    #[default]
    Es,
    /// English.
    En,
}

impl Locale {
    /// The language tag used in events and on the wire (`es`, `en`).
    pub fn tag(self) -> &'static str {
        match self {
            Locale::Es => "es",
            Locale::En => "en",
        }
    }

    /// Parses a language tag (`es`, `en`, `es-ES`, `en_GB`, case-insensitive); `None` for others.
    pub fn from_tag(tag: &str) -> Option<Locale> {
        let primary = tag
            .split(['-', '_'])
            .next()
            .unwrap_or("")
            .to_ascii_lowercase();
        match primary.as_str() {
            "es" => Some(Locale::Es),
            "en" => Some(Locale::En),
            _ => None,
        }
    }
}

/// One text in every language the kiosk offers.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Localized {
    /// Spanish text.
    pub es: String,
    /// English text.
    pub en: String,
}

impl Localized {
    /// A text given in both languages.
    pub fn new(es: impl Into<String>, en: impl Into<String>) -> Self {
        Localized {
            es: es.into(),
            en: en.into(),
        }
    }

    /// The text in `locale`, falling back to the other language when that one is empty.
    pub fn get(&self, locale: Locale) -> &str {
        let (first, other) = match locale {
            Locale::Es => (&self.es, &self.en),
            Locale::En => (&self.en, &self.es),
        };
        if first.is_empty() { other } else { first }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn language_tags_with_regions_map_to_the_kiosk_languages() {
        assert_eq!(Locale::from_tag("es-ES"), Some(Locale::Es));
        assert_eq!(Locale::from_tag("EN_gb"), Some(Locale::En));
        assert_eq!(Locale::from_tag("pt"), None);
    }

    #[test]
    fn a_missing_translation_falls_back_to_the_other_language() {
        let t = Localized::new("Caja", "");
        assert_eq!(t.get(Locale::En), "Caja");
        assert_eq!(t.get(Locale::Es), "Caja");
    }
}
