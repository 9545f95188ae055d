//! Just enough of RIFF/WAVE for the speech driver: the duration and loudness of what espeak-ng
//! wrote (16-bit PCM), and the warning tone, made here rather than shipped as a file.

/// A WAV file's PCM format and samples.
#[derive(Debug, Clone, PartialEq)]
pub struct Pcm {
    /// Samples per second.
    pub rate: u32,
    /// Channels.
    pub channels: u16,
    /// The samples (16-bit, interleaved).
    pub samples: Vec<i16>,
}

impl Pcm {
    /// Duration in seconds.
    pub fn seconds(&self) -> f64 {
        let frames = self.samples.len() / usize::from(self.channels.max(1));
        frames as f64 / f64::from(self.rate.max(1))
    }

    /// Root mean square of the samples, 0 to 1 (silence is 0).
    pub fn rms(&self) -> f64 {
        if self.samples.is_empty() {
            return 0.0;
        }
        let sum: f64 = self
            .samples
            .iter()
            .map(|s| (f64::from(*s) / 32768.0).powi(2))
            .sum();
        (sum / self.samples.len() as f64).sqrt()
    }
}

/// Reads a 16-bit PCM WAV. espeak-ng's `--stdout` writes its data size as 0x7ffff000 (it does
/// not know it when it starts), so the data chunk runs to the end of the bytes whatever it says.
pub fn parse(bytes: &[u8]) -> Option<Pcm> {
    if bytes.len() < 12 || &bytes[0..4] != b"RIFF" || &bytes[8..12] != b"WAVE" {
        return None;
    }
    let u16_at = |i: usize| Some(u16::from_le_bytes(bytes.get(i..i + 2)?.try_into().ok()?));
    let u32_at = |i: usize| Some(u32::from_le_bytes(bytes.get(i..i + 4)?.try_into().ok()?));
    let mut at = 12;
    let (mut rate, mut channels, mut bits) = (0, 0, 0);
    while at + 8 <= bytes.len() {
        let id = &bytes[at..at + 4];
        let len = u32_at(at + 4)? as usize;
        let body = at + 8;
        if id == b"fmt " {
            channels = u16_at(body + 2)?;
            rate = u32_at(body + 4)?;
            bits = u16_at(body + 14)?;
        } else if id == b"data" {
            if bits != 16 || rate == 0 {
                return None;
            }
            let end = body.saturating_add(len).min(bytes.len());
            let samples = bytes[body..end]
                .chunks_exact(2)
                .map(|c| i16::from_le_bytes([c[0], c[1]]))
                .collect();
            return Some(Pcm {
                rate,
                channels,
                samples,
            });
        }
        at = body.saturating_add(len + (len & 1));
    }
    None
}

/// Writes the true sizes into the RIFF and data headers of a WAV whose writer did not know them
/// (espeak-ng's `--stdout` says 0x7ffff000), so that every reader (sox, players) sees its real
/// length. The data chunk must be the last chunk, as espeak-ng writes it.
pub fn fix_sizes(bytes: &mut [u8]) {
    if bytes.len() < 12 || &bytes[0..4] != b"RIFF" {
        return;
    }
    let Some(data) = bytes.windows(4).position(|w| w == b"data") else {
        return;
    };
    let total = bytes.len();
    let Some(body) = data.checked_add(8).filter(|b| *b <= total) else {
        return;
    };
    let riff = u32::try_from(total - 8).unwrap_or(u32::MAX);
    let size = u32::try_from(total - body).unwrap_or(u32::MAX);
    bytes[4..8].copy_from_slice(&riff.to_le_bytes());
    bytes[data + 4..data + 8].copy_from_slice(&size.to_le_bytes());
}

/// A 16-bit mono WAV of `samples` at `rate`.
pub fn encode(rate: u32, samples: &[i16]) -> Vec<u8> {
    let data_len = u32::try_from(samples.len() * 2).unwrap_or(u32::MAX);
    let mut out = Vec::with_capacity(44 + samples.len() * 2);
    out.extend_from_slice(b"RIFF");
    out.extend_from_slice(&(36 + data_len).to_le_bytes());
    out.extend_from_slice(b"WAVEfmt ");
    out.extend_from_slice(&16u32.to_le_bytes());
    out.extend_from_slice(&1u16.to_le_bytes()); // PCM
    out.extend_from_slice(&1u16.to_le_bytes()); // mono
    out.extend_from_slice(&rate.to_le_bytes());
    out.extend_from_slice(&(rate * 2).to_le_bytes());
    out.extend_from_slice(&2u16.to_le_bytes());
    out.extend_from_slice(&16u16.to_le_bytes());
    out.extend_from_slice(b"data");
    out.extend_from_slice(&data_len.to_le_bytes());
    for s in samples {
        out.extend_from_slice(&s.to_le_bytes());
    }
    out
}

/// The time-limit warning: two short 880 Hz beeps, soft edges so they do not click.
pub fn warning_tone() -> Vec<u8> {
    const RATE: u32 = 22_050;
    let beep = |ms: u32| -> Vec<i16> {
        let n = RATE * ms / 1000;
        let ramp = (RATE / 200).max(1); // 5 ms
        (0..n)
            .map(|i| {
                let t = f64::from(i) / f64::from(RATE);
                let edge = f64::from(i.min(n - i).min(ramp)) / f64::from(ramp);
                let v = (t * 880.0 * std::f64::consts::TAU).sin() * 0.4 * edge;
                (v * f64::from(i16::MAX)) as i16
            })
            .collect()
    };
    let gap = vec![0i16; (RATE / 10) as usize];
    let mut samples = beep(150);
    samples.extend_from_slice(&gap);
    samples.extend(beep(150));
    encode(RATE, &samples)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_warning_tone_is_two_audible_beeps_under_half_a_second() {
        let pcm = parse(&warning_tone()).expect("a wav");
        assert!((0.35..0.5).contains(&pcm.seconds()), "{}", pcm.seconds());
        assert!(pcm.rms() > 0.1, "{}", pcm.rms());
    }

    #[test]
    fn fixed_sizes_match_the_bytes() {
        let mut wav = encode(8_000, &[1000; 800]);
        wav[4..8].copy_from_slice(&0x7fff_f024u32.to_le_bytes());
        wav[40..44].copy_from_slice(&0x7fff_f000u32.to_le_bytes());
        fix_sizes(&mut wav);
        assert_eq!(wav, encode(8_000, &[1000; 800]));
    }

    #[test]
    fn a_data_size_larger_than_the_file_reads_to_the_end() {
        let mut wav = encode(8_000, &[1000; 800]);
        wav[40..44].copy_from_slice(&0x7fff_f000u32.to_le_bytes());
        assert_eq!(parse(&wav).unwrap().samples.len(), 800);
    }
}
