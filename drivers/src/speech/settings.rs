//! The `[speech]` section of a hardware profile: the kiosk's own text-to-speech (espeak-ng),
//! where the customer's speech goes (the headphone jack, for private listening) and where the
//! lobby's calls go (a loudspeaker, e.g. through HDMI).

use serde::Deserialize;

/// A language the kiosk speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Lang {
    /// Spanish.
    Es,
    /// English.
    En,
}

impl Lang {
    /// The BCP 47 tag.
    pub fn tag(self) -> &'static str {
        match self {
            Lang::Es => "es",
            Lang::En => "en",
        }
    }
}

/// espeak-ng voices per language (`espeak-ng --voices` lists them).
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Voices {
    /// Spanish voice (`es`: Castilian; `es-419`: Latin American).
    #[serde(default = "default_voice_es")]
    pub es: String,
    /// English voice (`en-gb`, `en-us`).
    #[serde(default = "default_voice_en")]
    pub en: String,
}

impl Default for Voices {
    fn default() -> Self {
        Voices {
            es: default_voice_es(),
            en: default_voice_en(),
        }
    }
}

impl Voices {
    /// The voice for `lang`.
    pub fn get(&self, lang: Lang) -> &str {
        match lang {
            Lang::Es => &self.es,
            Lang::En => &self.en,
        }
    }
}

/// Where the customer's speech (accessible mode, time-limit warnings) is played.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum CustomerOutput {
    /// An ALSA device: the Pi's headphone jack (`plughw:CARD=Headphones,DEV=0`) for private
    /// listening, or HDMI (`plughw:CARD=vc4hdmi0,DEV=0`).
    Alsa {
        /// ALSA PCM name, as `aplay -L` lists it.
        device: String,
        /// The device is a headphone jack only the customer hears: only then may speech say
        /// the customer's name.
        #[serde(default)]
        private_listening: bool,
    },
    /// The speech simulator: runs the real espeak-ng and writes each utterance as a WAV file
    /// with a log of the text spoken, in real time.
    Simulated {
        /// As for `alsa`.
        #[serde(default)]
        private_listening: bool,
    },
    /// No customer speech.
    None,
}

/// Where the lobby's calls ("Turno A 12, mostrador 3") are played.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum CallsOutput {
    /// An ALSA device with a loudspeaker in the waiting area.
    Alsa {
        /// ALSA PCM name.
        device: String,
        /// Each call is said in these languages, in this order.
        #[serde(default = "default_call_langs")]
        locales: Vec<Lang>,
    },
    /// The speech simulator (see [`CustomerOutput::Simulated`]).
    Simulated {
        /// Each call is said in these languages, in this order.
        #[serde(default = "default_call_langs")]
        locales: Vec<Lang>,
    },
    /// No spoken calls (in a store of several kiosks, only one should speak them).
    None,
}

/// `[speech]`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SpeechSettings {
    /// The espeak-ng program.
    #[serde(default = "default_espeak")]
    pub espeak_ng: String,
    /// The ALSA player (`aplay`, from alsa-utils).
    #[serde(default = "default_aplay")]
    pub aplay: String,
    /// Voices per language.
    #[serde(default)]
    pub voices: Voices,
    /// Speaking rate in words per minute (espeak-ng `-s`).
    #[serde(default = "default_rate")]
    pub rate_wpm: u32,
    /// Loudness at start, 0 to 200 (espeak-ng `-a`; the keypad's volume keys move it).
    #[serde(default = "default_volume")]
    pub volume: u32,
    /// The customer's speech.
    pub customer: CustomerOutput,
    /// The lobby's calls.
    #[serde(default = "default_calls")]
    pub calls: CallsOutput,
}

impl Default for SpeechSettings {
    fn default() -> Self {
        SpeechSettings {
            espeak_ng: default_espeak(),
            aplay: default_aplay(),
            voices: Voices::default(),
            rate_wpm: default_rate(),
            volume: default_volume(),
            customer: CustomerOutput::None,
            calls: CallsOutput::None,
        }
    }
}

/// Rates espeak-ng takes and people follow (its own range is 80 to 450).
pub const RATE_WPM_RANGE: std::ops::RangeInclusive<u32> = 80..=450;
/// espeak-ng's amplitude range.
pub const VOLUME_RANGE: std::ops::RangeInclusive<u32> = 0..=200;

fn default_voice_es() -> String {
    "es".into()
}
fn default_voice_en() -> String {
    "en-gb".into()
}
fn default_espeak() -> String {
    "espeak-ng".into()
}
fn default_aplay() -> String {
    "aplay".into()
}
fn default_rate() -> u32 {
    160
}
fn default_volume() -> u32 {
    100
}
fn default_call_langs() -> Vec<Lang> {
    vec![Lang::Es, Lang::En]
}
fn default_calls() -> CallsOutput {
    CallsOutput::None
}
