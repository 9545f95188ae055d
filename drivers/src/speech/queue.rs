//! The speech queue's rules, pure: what plays next and what a new utterance drops.
//!
//! - Utterances play in the order they were queued and never cut each other off,
//! - except that a new screen flushes stale screen speech: the screen and focus speech still
//!   queued is dropped and the one playing, if it is screen or focus speech, is cut;
//! - a newer focus move drops older focus moves still queued (not the one playing);
//! - calls and cues (the time-limit tone, "accessible mode on") are never dropped.

use std::collections::VecDeque;

use super::settings::Lang;

/// What an utterance is, for the queue's rules.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Class {
    /// A screen's title and text.
    Screen,
    /// The focused control's label.
    Focus,
    /// A lobby call.
    Call,
    /// A cue: the time-limit warning, accessible mode on or off.
    Cue,
}

impl Class {
    fn stale_on_new_screen(self) -> bool {
        matches!(self, Class::Screen | Class::Focus)
    }

    /// Its name in the spoken-text log.
    pub fn name(self) -> &'static str {
        match self {
            Class::Screen => "screen",
            Class::Focus => "focus",
            Class::Call => "call",
            Class::Cue => "cue",
        }
    }
}

/// What to play.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Sound {
    /// Text, said in a language.
    Text {
        /// The words.
        text: String,
        /// Their language.
        lang: Lang,
    },
    /// The time-limit warning's two beeps.
    Tone,
}

/// One queued utterance.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Utterance {
    /// Its number, in queueing order.
    pub id: u64,
    /// What it is.
    pub class: Class,
    /// What to play.
    pub sound: Sound,
}

/// The queue of one audio output.
#[derive(Debug, Default)]
pub struct SpeechQueue {
    items: VecDeque<Utterance>,
    playing: Option<(u64, Class)>,
    cut: Option<u64>,
    next_id: u64,
    dropped: u64,
}

impl SpeechQueue {
    /// Queues `sound`; `new_screen` flushes stale screen speech first. Returns its id.
    pub fn push(&mut self, class: Class, sound: Sound, new_screen: bool) -> u64 {
        let before = self.items.len();
        if new_screen {
            self.items.retain(|u| !u.class.stale_on_new_screen());
            if let Some((id, playing)) = self.playing
                && playing.stale_on_new_screen()
            {
                self.cut = Some(id);
            }
        }
        if class == Class::Focus {
            self.items.retain(|u| u.class != Class::Focus);
        }
        self.dropped += (before - self.items.len()) as u64;
        self.next_id += 1;
        let id = self.next_id;
        self.items.push_back(Utterance { id, class, sound });
        id
    }

    /// The next utterance to play, now marked as playing.
    pub fn start_next(&mut self) -> Option<Utterance> {
        let u = self.items.pop_front()?;
        self.playing = Some((u.id, u.class));
        self.cut = None;
        Some(u)
    }

    /// The utterance playing has ended (or was cut).
    pub fn finished(&mut self) {
        self.playing = None;
        self.cut = None;
    }

    /// Whether the utterance `id`, playing, must stop now.
    pub fn must_cut(&self, id: u64) -> bool {
        self.cut == Some(id)
    }

    /// Whether an utterance is playing.
    pub fn is_playing(&self) -> bool {
        self.playing.is_some()
    }

    /// Utterances waiting.
    pub fn len(&self) -> usize {
        self.items.len()
    }

    /// Whether nothing waits.
    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    /// How many queued utterances the rules dropped so far.
    pub fn dropped(&self) -> u64 {
        self.dropped
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text(s: &str) -> Sound {
        Sound::Text {
            text: s.into(),
            lang: Lang::Es,
        }
    }

    fn order(q: &mut SpeechQueue) -> Vec<String> {
        let mut out = Vec::new();
        while let Some(u) = q.start_next() {
            out.push(match u.sound {
                Sound::Text { text, .. } => text,
                Sound::Tone => "<tone>".into(),
            });
            q.finished();
        }
        out
    }

    #[test]
    fn utterances_play_in_the_order_they_were_queued() {
        let mut q = SpeechQueue::default();
        q.push(Class::Screen, text("uno"), true);
        q.push(Class::Screen, text("dos"), false);
        q.push(Class::Cue, Sound::Tone, false);
        q.push(Class::Focus, text("tres"), false);
        assert_eq!(order(&mut q), ["uno", "dos", "<tone>", "tres"]);
    }

    #[test]
    fn a_new_screen_drops_stale_screen_and_focus_speech_and_cuts_the_one_playing() {
        let mut q = SpeechQueue::default();
        q.push(Class::Screen, text("old title"), true);
        q.push(Class::Focus, text("old focus"), false);
        q.push(Class::Cue, Sound::Tone, false);
        let playing = q.start_next().unwrap();
        assert!(!q.must_cut(playing.id));
        q.push(Class::Screen, text("new title"), true);
        assert!(q.must_cut(playing.id), "stale screen speech stops");
        q.finished();
        assert_eq!(order(&mut q), ["<tone>", "new title"]);
        assert_eq!(q.dropped(), 1);
    }

    #[test]
    fn calls_and_cues_are_never_dropped_or_cut() {
        let mut q = SpeechQueue::default();
        q.push(Class::Call, text("Turno A 1, mostrador 1"), false);
        q.push(Class::Call, text("Turno A 2, mostrador 2"), false);
        let playing = q.start_next().unwrap();
        for i in 0..5 {
            q.push(Class::Screen, text(&format!("screen {i}")), true);
        }
        assert!(!q.must_cut(playing.id), "a call is never cut off");
        q.finished();
        assert_eq!(order(&mut q), ["Turno A 2, mostrador 2", "screen 4"]);
    }

    #[test]
    fn a_newer_focus_move_replaces_older_ones_still_waiting_but_not_the_one_playing() {
        let mut q = SpeechQueue::default();
        q.push(Class::Focus, text("Caja, 1 de 3"), false);
        let playing = q.start_next().unwrap();
        q.push(Class::Focus, text("Atención, 2 de 3"), false);
        q.push(Class::Focus, text("Cancelar, 3 de 3"), false);
        assert!(
            !q.must_cut(playing.id),
            "focus speech does not cut focus speech"
        );
        q.finished();
        assert_eq!(order(&mut q), ["Cancelar, 3 de 3"]);
    }
}
