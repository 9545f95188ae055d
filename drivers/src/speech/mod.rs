//! The kiosk's own speech: text to speech with espeak-ng, played through ALSA (`aplay`) on the
//! headphone jack for the customer and on a loudspeaker for the lobby's calls, each output with
//! its own queue ([`queue`]: utterances never cut each other off, except that a new screen
//! flushes stale screen speech; calls are never dropped).
//!
//! Data flow: firmware (the page's speech requests, the queue's calls, time-limit warnings) →
//! **[`Speaker::say`]** → queue → worker thread → `espeak-ng --stdout` (WAV) → `aplay -D <dev>`,
//! or, simulated, → a numbered WAV file and a line in `spoken.log` in a directory, played out in
//! real time so the queue behaves as it does with a speaker.
//!
//! No spoken text reaches the process log (it may be a customer's choices): only its length.

pub mod queue;
pub mod settings;
pub mod wav;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

pub use queue::{Class, Sound, SpeechQueue, Utterance};
pub use settings::{CallsOutput, CustomerOutput, Lang, SpeechSettings, Voices};

/// Errors setting speech up.
#[derive(Debug, thiserror::Error)]
pub enum SpeechError {
    /// The simulator's directory could not be made.
    #[error("speech simulator cannot create {path}")]
    Dir {
        /// The directory.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The worker thread could not start.
    #[error("cannot start the speech thread")]
    Thread(#[source] std::io::Error),
}

/// Where one output plays.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Sink {
    /// An ALSA PCM, through `aplay`.
    Alsa(String),
    /// WAV files and `spoken.log` in this directory.
    Files(PathBuf),
}

/// How one output speaks.
#[derive(Debug, Clone)]
pub struct Voice {
    /// espeak-ng program.
    pub espeak_ng: String,
    /// aplay program.
    pub aplay: String,
    /// Voices per language.
    pub voices: Voices,
    /// Words per minute.
    pub rate_wpm: u32,
}

/// Everything speech the hardware profile asks for.
#[derive(Debug, Default)]
pub struct Speech {
    /// The customer's speech, if any.
    pub customer: Option<Speaker>,
    /// Whether the customer's output is private (a headphone jack): names may be said.
    pub private_listening: bool,
    /// The lobby's calls, if spoken.
    pub calls: Option<Speaker>,
    /// The languages each call is said in.
    pub call_langs: Vec<Lang>,
}

/// Starts the outputs a `[speech]` section describes. Simulated outputs write under `sim_dir`
/// (`customer/` and `calls/`).
pub fn open(settings: &SpeechSettings, sim_dir: &Path) -> Result<Speech, SpeechError> {
    let voice = Voice {
        espeak_ng: settings.espeak_ng.clone(),
        aplay: settings.aplay.clone(),
        voices: settings.voices.clone(),
        rate_wpm: settings.rate_wpm,
    };
    let start = |name: &str, sink: Sink| Speaker::start(name, sink, voice.clone(), settings.volume);
    let (customer, private_listening) = match &settings.customer {
        CustomerOutput::Alsa {
            device,
            private_listening,
        } => (
            Some(start("customer", Sink::Alsa(device.clone()))?),
            *private_listening,
        ),
        CustomerOutput::Simulated { private_listening } => (
            Some(start("customer", Sink::Files(sim_dir.join("customer")))?),
            *private_listening,
        ),
        CustomerOutput::None => (None, false),
    };
    let (calls, call_langs) = match &settings.calls {
        CallsOutput::Alsa { device, locales } => (
            Some(start("calls", Sink::Alsa(device.clone()))?),
            locales.clone(),
        ),
        CallsOutput::Simulated { locales } => (
            Some(start("calls", Sink::Files(sim_dir.join("calls")))?),
            locales.clone(),
        ),
        CallsOutput::None => (None, Vec::new()),
    };
    Ok(Speech {
        customer,
        private_listening,
        calls,
        call_langs,
    })
}

struct Shared {
    queue: Mutex<State>,
    wake: Condvar,
    volume: AtomicU32,
}

struct State {
    queue: SpeechQueue,
    stop: bool,
    last_error: Option<String>,
}

/// One audio output and its queue. Clones speak through the same queue; the worker stops when
/// the last clone is dropped.
#[derive(Clone)]
pub struct Speaker {
    shared: Arc<Shared>,
    _worker: Arc<Worker>,
    sink: Sink,
}

struct Worker {
    shared: Arc<Shared>,
    thread: Mutex<Option<JoinHandle<()>>>,
}

impl Drop for Worker {
    fn drop(&mut self) {
        lock(&self.shared.queue).stop = true;
        self.shared.wake.notify_all();
        if let Some(t) = self.thread.lock().unwrap_or_else(|p| p.into_inner()).take() {
            let _ = t.join();
        }
    }
}

fn lock(m: &Mutex<State>) -> MutexGuard<'_, State> {
    // A panic while holding the lock leaves a queue that is still consistent.
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl std::fmt::Debug for Speaker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Speaker")
            .field("sink", &self.sink)
            .finish_non_exhaustive()
    }
}

impl Speaker {
    /// Starts an output named `name` (for the thread and the log) playing to `sink`.
    pub fn start(
        name: &str,
        sink: Sink,
        voice: Voice,
        volume: u32,
    ) -> Result<Speaker, SpeechError> {
        if let Sink::Files(dir) = &sink {
            std::fs::create_dir_all(dir).map_err(|source| SpeechError::Dir {
                path: dir.clone(),
                source,
            })?;
        }
        let shared = Arc::new(Shared {
            queue: Mutex::new(State {
                queue: SpeechQueue::default(),
                stop: false,
                last_error: None,
            }),
            wake: Condvar::new(),
            volume: AtomicU32::new(volume.min(200)),
        });
        let thread = {
            let shared = shared.clone();
            let sink = sink.clone();
            let name = name.to_owned();
            std::thread::Builder::new()
                .name(format!("speech-{name}"))
                .spawn(move || work(&name, &shared, &sink, &voice))
                .map_err(SpeechError::Thread)?
        };
        Ok(Speaker {
            _worker: Arc::new(Worker {
                shared: shared.clone(),
                thread: Mutex::new(Some(thread)),
            }),
            shared,
            sink,
        })
    }

    /// Queues `text` in `lang`; `new_screen` flushes stale screen speech first. Empty text is
    /// ignored.
    pub fn say(&self, class: Class, text: &str, lang: Lang, new_screen: bool) {
        let text = text.split_whitespace().collect::<Vec<_>>().join(" ");
        if text.is_empty() {
            return;
        }
        self.push(class, Sound::Text { text, lang }, new_screen);
    }

    /// Queues the time-limit warning's beeps.
    pub fn tone(&self) {
        self.push(Class::Cue, Sound::Tone, false);
    }

    fn push(&self, class: Class, sound: Sound, new_screen: bool) {
        lock(&self.shared.queue)
            .queue
            .push(class, sound, new_screen);
        self.shared.wake.notify_all();
    }

    /// Moves the loudness by `delta` (espeak-ng amplitude, kept within 0 to 200); returns it.
    pub fn adjust_volume(&self, delta: i32) -> u32 {
        let now = self.shared.volume.load(Ordering::Relaxed);
        let next = now.saturating_add_signed(delta).min(200);
        self.shared.volume.store(next, Ordering::Relaxed);
        next
    }

    /// Where this output plays.
    pub fn sink(&self) -> &Sink {
        &self.sink
    }

    /// The last failure to speak (espeak-ng or aplay missing or failing), if any.
    pub fn last_error(&self) -> Option<String> {
        lock(&self.shared.queue).last_error.clone()
    }

    /// Waits until nothing is queued or playing, up to `timeout`; whether it got there.
    pub fn wait_idle(&self, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        let mut st = lock(&self.shared.queue);
        loop {
            if st.queue.is_empty() && !st.queue.is_playing() {
                return true;
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return false;
            }
            st = self
                .shared
                .wake
                .wait_timeout(st, left.min(Duration::from_millis(50)))
                .map(|(g, _)| g)
                .unwrap_or_else(|p| p.into_inner().0);
        }
    }
}

/// The worker: takes the next utterance, renders it with espeak-ng and plays it, stopping
/// early when the queue says it is cut.
fn work(name: &str, shared: &Shared, sink: &Sink, voice: &Voice) {
    let mut n: u64 = 0;
    // The simulator keeps the newest WAV files only: a demo left running does not fill the disk.
    let mut written = std::collections::VecDeque::new();
    loop {
        let utterance = {
            let mut st = lock(&shared.queue);
            loop {
                if st.stop {
                    return;
                }
                if let Some(u) = st.queue.start_next() {
                    break u;
                }
                st = shared.wake.wait(st).unwrap_or_else(|p| p.into_inner());
            }
        };
        n += 1;
        let volume = shared.volume.load(Ordering::Relaxed);
        let outcome = render(voice, &utterance.sound, volume)
            .and_then(|wav| play(shared, sink, voice, n, &utterance, &wav));
        if let Sink::Files(dir) = sink {
            written.push_back(dir.join(wav_name(n, &utterance)));
            while written.len() > KEEP_WAVS {
                if let Some(old) = written.pop_front() {
                    let _ = std::fs::remove_file(old);
                }
            }
        }
        let mut st = lock(&shared.queue);
        match outcome {
            Ok(()) => st.last_error = None,
            Err(e) => {
                tracing::warn!(target: "kiosk_drivers::speech", output = name, error = %e, "cannot speak");
                st.last_error = Some(e);
            }
        }
        st.queue.finished();
        drop(st);
        shared.wake.notify_all();
    }
}

/// The WAV of one utterance: espeak-ng for text (text on stdin, never on the command line where
/// `ps` shows it), the built-in beeps for the tone.
fn render(voice: &Voice, sound: &Sound, volume: u32) -> Result<Vec<u8>, String> {
    let (text, lang) = match sound {
        Sound::Tone => return Ok(wav::warning_tone()),
        Sound::Text { text, lang } => (text, *lang),
    };
    let mut child = Command::new(&voice.espeak_ng)
        .args(["-v", voice.voices.get(lang)])
        .args(["-s", &voice.rate_wpm.to_string()])
        .args(["-a", &volume.to_string()])
        .args(["-b", "1", "--stdout"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| {
            format!(
                "cannot run {} ({e}): install the Debian package espeak-ng",
                voice.espeak_ng
            )
        })?;
    if let Some(mut stdin) = child.stdin.take() {
        stdin
            .write_all(text.as_bytes())
            .map_err(|e| format!("cannot hand the text to espeak-ng: {e}"))?;
    }
    let out = child
        .wait_with_output()
        .map_err(|e| format!("espeak-ng failed: {e}"))?;
    if !out.status.success() || out.stdout.len() < 44 {
        return Err(format!(
            "espeak-ng with voice {} exited with {}: {}",
            voice.voices.get(lang),
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    let mut wav = out.stdout;
    wav::fix_sizes(&mut wav);
    Ok(wav)
}

/// Says `text` in `lang` with `voice` into memory and measures it: the seconds of speech, or
/// what is wrong (espeak-ng missing, the voice unknown). For `kiosk selftest`.
pub fn try_voice(voice: &Voice, text: &str, lang: Lang) -> Result<f64, String> {
    let wav = render(
        voice,
        &Sound::Text {
            text: text.to_owned(),
            lang,
        },
        100,
    )?;
    let pcm = wav::parse(&wav).ok_or("espeak-ng wrote no 16-bit WAV")?;
    if pcm.rms() < 0.001 {
        return Err(format!("voice {} produced silence", voice.voices.get(lang)));
    }
    Ok(pcm.seconds())
}

/// Whether ALSA lists the PCM `device` (`aplay -L`), or what is wrong.
pub fn alsa_has(aplay: &str, device: &str) -> Result<(), String> {
    let out = Command::new(aplay)
        .arg("-L")
        .output()
        .map_err(|e| format!("cannot run {aplay} ({e}): install the Debian package alsa-utils"))?;
    let listed = String::from_utf8_lossy(&out.stdout);
    if listed.lines().any(|l| l.trim() == device) {
        Ok(())
    } else {
        Err(format!("ALSA has no device {device}"))
    }
}

fn cut(shared: &Shared, id: u64) -> bool {
    let st = lock(&shared.queue);
    st.stop || st.queue.must_cut(id)
}

/// How often a playing utterance checks whether it is cut.
const CUT_CHECK: Duration = Duration::from_millis(20);

fn play(
    shared: &Shared,
    sink: &Sink,
    voice: &Voice,
    n: u64,
    u: &Utterance,
    wav: &[u8],
) -> Result<(), String> {
    match sink {
        Sink::Alsa(device) => {
            let mut child = Command::new(&voice.aplay)
                .args(["-q", "-D", device, "-"])
                .stdin(Stdio::piped())
                .stdout(Stdio::null())
                .stderr(Stdio::piped())
                .spawn()
                .map_err(|e| {
                    format!(
                        "cannot run {} ({e}): install the Debian package alsa-utils",
                        voice.aplay
                    )
                })?;
            // aplay reads as it plays: write from a helper thread so a cut is seen at once.
            let stdin = child.stdin.take();
            let bytes = wav.to_vec();
            let feeder = std::thread::spawn(move || {
                if let Some(mut s) = stdin {
                    let _ = s.write_all(&bytes);
                }
            });
            let status = wait_or_cut(shared, u.id, &mut child);
            let _ = feeder.join();
            match status {
                Some(s) if !s.success() => {
                    let mut err = String::new();
                    if let Some(mut e) = child.stderr.take() {
                        let _ = std::io::Read::read_to_string(&mut e, &mut err);
                    }
                    Err(format!(
                        "aplay on ALSA device {device} exited with {s}: {}; check the device with `aplay -L`",
                        err.trim()
                    ))
                }
                _ => Ok(()),
            }
        }
        Sink::Files(dir) => {
            let file = dir.join(wav_name(n, u));
            std::fs::write(&file, wav)
                .map_err(|e| format!("cannot write {}: {e}", file.display()))?;
            let (lang, text) = match &u.sound {
                Sound::Text { text, lang } => (lang.tag(), text.as_str()),
                Sound::Tone => ("-", "<tone>"),
            };
            log_line(dir, &format!("{n:04}\t{}\t{lang}\t{text}", u.class.name()))?;
            // Played out in real time, so the queue behaves as with a speaker.
            let secs = wav::parse(wav).map_or(0.0, |p| p.seconds());
            let end = Instant::now() + Duration::from_secs_f64(secs);
            while Instant::now() < end {
                if cut(shared, u.id) {
                    return log_line(dir, &format!("{n:04}\tcut"));
                }
                std::thread::sleep(CUT_CHECK.min(end.saturating_duration_since(Instant::now())));
            }
            Ok(())
        }
    }
}

/// How many WAV files a simulated output keeps (its `spoken.log` keeps every line).
const KEEP_WAVS: usize = 500;

fn wav_name(n: u64, u: &Utterance) -> String {
    format!("{n:04}-{}.wav", u.class.name())
}

fn log_line(dir: &Path, line: &str) -> Result<(), String> {
    let path = dir.join("spoken.log");
    std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&path)
        .and_then(|mut f| writeln!(f, "{line}"))
        .map_err(|e| format!("cannot write {}: {e}", path.display()))
}

/// Waits for `child` to finish, killing it if the utterance is cut; its exit status if it
/// ended by itself.
fn wait_or_cut(shared: &Shared, id: u64, child: &mut Child) -> Option<std::process::ExitStatus> {
    loop {
        match child.try_wait() {
            Ok(Some(status)) => return Some(status),
            Ok(None) => {}
            Err(_) => return None,
        }
        if cut(shared, id) {
            let _ = child.kill();
            let _ = child.wait();
            return None;
        }
        std::thread::sleep(CUT_CHECK);
    }
}
