//! Virtual ISO/IEC 14443-3 type A cards (PICCs) for the MFRC522 simulator: the card state machine
//! (IDLE, READY, ACTIVE, HALT and their `*` variants reached through WUPA), answers to REQA/WUPA,
//! bit-oriented anticollision and SELECT for every cascade level, HLTA, and a minimal MIFARE
//! Classic authentication and block read.

/// Bits on the air, least significant bit of each byte first (the ISO 14443A order).
pub(crate) type Bits = Vec<bool>;

/// Converts bytes to air bits; `last_bits` valid bits in the last byte (0 means all 8).
pub(crate) fn to_bits(bytes: &[u8], last_bits: u8) -> Bits {
    let mut bits = Vec::with_capacity(bytes.len() * 8);
    for (i, byte) in bytes.iter().enumerate() {
        let n = if i + 1 == bytes.len() && last_bits != 0 {
            last_bits
        } else {
            8
        };
        bits.extend((0..n).map(|b| byte & (1 << b) != 0));
    }
    bits
}

/// Packs air bits into bytes; the last byte may be partial.
pub(crate) fn to_bytes(bits: &[bool]) -> Vec<u8> {
    bits.chunks(8)
        .map(|chunk| {
            chunk
                .iter()
                .enumerate()
                .fold(0u8, |acc, (i, &b)| acc | (u8::from(b) << i))
        })
        .collect()
}

/// CRC_A of ISO/IEC 14443-3 (CRC-16/CCITT reflected, preset 0x6363), low byte first.
pub fn crc_a(data: &[u8]) -> [u8; 2] {
    crc16(data, 0x6363).to_le_bytes()
}

/// CRC-16 as the MFRC522 coprocessor computes it (reflected polynomial 0x8408) from `preset`.
pub(crate) fn crc16(data: &[u8], preset: u16) -> u16 {
    let mut crc = preset;
    for &byte in data {
        let mut b = byte ^ (crc as u8);
        b ^= b << 4;
        crc = (crc >> 8) ^ (u16::from(b) << 8) ^ (u16::from(b) << 3) ^ (u16::from(b) >> 4);
    }
    crc
}

const REQA: u8 = 0x26;
const WUPA: u8 = 0x52;
const HLTA: u8 = 0x50;
const CASCADE_TAG: u8 = 0x88;
const SEL: [u8; 3] = [0x93, 0x95, 0x97];
const MF_AUTH_A: u8 = 0x60;
const MF_AUTH_B: u8 = 0x61;
const MF_READ: u8 = 0x30;

/// A virtual card: what it answers and with which UID.
#[derive(Clone, PartialEq, Eq)]
pub struct VirtualCard {
    uid: Vec<u8>,
    atqa: [u8; 2],
    sak: u8,
    key: [u8; 6],
}

impl std::fmt::Debug for VirtualCard {
    // The UID stays out of logs even for simulated cards: tests print what production would.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "VirtualCard({}-byte uid, sak {:#04x})",
            self.uid.len(),
            self.sak
        )
    }
}

/// A UID length that ISO/IEC 14443-3 does not define (only 4, 7 and 10 bytes exist).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("a type A card uid has 4, 7 or 10 bytes, not {0}")]
pub struct BadUidLength(pub usize);

impl VirtualCard {
    /// A MIFARE Classic 1K-like card (SAK 0x08) for a 4-byte UID, or an Ultralight-like card
    /// (SAK 0x00) for a 7- or 10-byte UID; ATQA encodes the UID size as the standard says.
    pub fn new(uid: &[u8]) -> Result<Self, BadUidLength> {
        let (atqa0, sak) = match uid.len() {
            4 => (0x04, 0x08),
            7 => (0x44, 0x00),
            10 => (0x84, 0x00),
            n => return Err(BadUidLength(n)),
        };
        Ok(VirtualCard {
            uid: uid.to_vec(),
            atqa: [atqa0, 0x00],
            sak,
            key: [0xFF; 6],
        })
    }

    /// Overrides the ATQA (two bytes, LSB first on the air).
    pub fn with_atqa(mut self, atqa: [u8; 2]) -> Self {
        self.atqa = atqa;
        self
    }

    /// Overrides the final SAK.
    pub fn with_sak(mut self, sak: u8) -> Self {
        self.sak = sak;
        self
    }

    /// The UID (for tests that check what the driver read).
    pub fn uid(&self) -> &[u8] {
        &self.uid
    }

    fn cascade_levels(&self) -> usize {
        match self.uid.len() {
            4 => 1,
            7 => 2,
            _ => 3,
        }
    }

    /// UID CLn + BCC (5 bytes) of cascade level `level` (0-based).
    fn level_bytes(&self, level: usize) -> [u8; 5] {
        let levels = self.cascade_levels();
        let part: [u8; 4] = if level + 1 == levels {
            let start = self.uid.len() - 4;
            [
                self.uid[start],
                self.uid[start + 1],
                self.uid[start + 2],
                self.uid[start + 3],
            ]
        } else {
            let start = level * 3;
            [
                CASCADE_TAG,
                self.uid[start],
                self.uid[start + 1],
                self.uid[start + 2],
            ]
        };
        let bcc = part.iter().fold(0, |a, b| a ^ b);
        [part[0], part[1], part[2], part[3], bcc]
    }
}

/// ISO/IEC 14443-3 PICC states; `woken` marks the `*` states reached from HALT through WUPA.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum PiccState {
    Idle,
    Ready { level: usize, woken: bool },
    Active { woken: bool, authenticated: bool },
    Halt,
}

/// A card in the field: its data and its protocol state.
#[derive(Debug, Clone)]
pub(crate) struct Picc {
    pub(crate) card: VirtualCard,
    pub(crate) state: PiccState,
}

/// What a card sends back: air bits, and whether they end with a CRC_A (for RxCRCEn).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Answer {
    pub(crate) bits: Bits,
    pub(crate) has_crc: bool,
}

impl Picc {
    /// A card that just entered the field (powered up in IDLE).
    pub(crate) fn new(card: VirtualCard) -> Self {
        Picc {
            card,
            state: PiccState::Idle,
        }
    }

    fn fall_back(&mut self) {
        // Any unexpected frame sends a card back to IDLE, or to HALT if it was woken from HALT.
        self.state = match self.state {
            PiccState::Ready { woken: true, .. } | PiccState::Active { woken: true, .. } => {
                PiccState::Halt
            }
            PiccState::Halt => PiccState::Halt,
            _ => PiccState::Idle,
        };
    }

    /// Handles one frame from the reader; `None` means the card stays silent.
    pub(crate) fn receive(&mut self, frame: &[bool]) -> Option<Answer> {
        let bytes = to_bytes(frame);
        let nbits = frame.len();
        // Short frames (7 bits): REQA and WUPA.
        if nbits == 7 {
            let woken_ok = match (bytes[0], self.state) {
                (REQA, PiccState::Idle) => Some(false),
                (WUPA, PiccState::Idle) => Some(false),
                (WUPA, PiccState::Halt) => Some(true),
                _ => None,
            };
            return match woken_ok {
                Some(woken) => {
                    self.state = PiccState::Ready { level: 0, woken };
                    Some(Answer {
                        bits: to_bits(&self.card.atqa, 0),
                        has_crc: false,
                    })
                }
                None => {
                    self.fall_back();
                    None
                }
            };
        }
        match self.state {
            PiccState::Idle | PiccState::Halt => None,
            PiccState::Ready { level, woken } => self.ready(level, woken, frame, &bytes),
            PiccState::Active {
                woken,
                authenticated,
            } => self.active(woken, authenticated, nbits, &bytes),
        }
    }

    fn ready(&mut self, level: usize, woken: bool, frame: &[bool], bytes: &[u8]) -> Option<Answer> {
        if frame.len() < 16 || bytes[0] != SEL[level.min(2)] {
            self.fall_back();
            return None;
        }
        let nvb = bytes[1];
        let level_bytes = self.card.level_bytes(level);
        if nvb == 0x70 {
            // SELECT: SEL, NVB, UID CLn, BCC, CRC_A.
            if frame.len() != 72 || crc_a(&bytes[..7]) != [bytes[7], bytes[8]] {
                self.fall_back();
                return None;
            }
            if bytes[2..7] != level_bytes {
                // Not this card: it stays READY and silent.
                return None;
            }
            let sak = if level + 1 < self.card.cascade_levels() {
                self.state = PiccState::Ready {
                    level: level + 1,
                    woken,
                };
                0x04
            } else {
                self.state = PiccState::Active {
                    woken,
                    authenticated: false,
                };
                self.card.sak
            };
            let crc = crc_a(&[sak]);
            return Some(Answer {
                bits: to_bits(&[sak, crc[0], crc[1]], 0),
                has_crc: true,
            });
        }
        // ANTICOLLISION: the reader sends the UID bits it knows; matching cards send the rest.
        let byte_count = usize::from(nvb >> 4);
        let bit_count = usize::from(nvb & 0x0F);
        let known = (byte_count.saturating_sub(2)) * 8 + bit_count;
        if byte_count < 2 || known >= 40 || frame.len() != 16 + known {
            self.fall_back();
            return None;
        }
        let mine = to_bits(&level_bytes, 0);
        if frame[16..] != mine[..known] {
            return None;
        }
        Some(Answer {
            bits: mine[known..].to_vec(),
            has_crc: false,
        })
    }

    fn active(
        &mut self,
        woken: bool,
        authenticated: bool,
        nbits: usize,
        bytes: &[u8],
    ) -> Option<Answer> {
        let crc_ok = nbits % 8 == 0
            && bytes.len() >= 3
            && crc_a(&bytes[..bytes.len() - 2]) == [bytes[bytes.len() - 2], bytes[bytes.len() - 1]];
        if !crc_ok {
            self.fall_back();
            return None;
        }
        match (bytes[0], bytes.len()) {
            (HLTA, 4) if bytes[1] == 0 => {
                self.state = PiccState::Halt;
                None
            }
            (MF_READ, 4) if authenticated => {
                let mut block = [0u8; 18];
                if bytes[1] == 0 {
                    // Manufacturer block: UID (4-byte cards also carry their BCC).
                    let n = self.card.uid.len().min(10);
                    block[..n].copy_from_slice(&self.card.uid[..n]);
                    if n == 4 {
                        block[4] = self.card.uid.iter().fold(0, |a, b| a ^ b);
                    }
                }
                let crc = crc_a(&block[..16]);
                block[16..].copy_from_slice(&crc);
                Some(Answer {
                    bits: to_bits(&block, 0),
                    has_crc: true,
                })
            }
            _ => {
                let _ = woken;
                self.fall_back();
                None
            }
        }
    }

    /// MIFARE Classic authentication as MFAuthent performs it (Crypto1 itself is not modelled: the
    /// simulator checks the key and UID and then exchanges plain frames).
    pub(crate) fn authenticate(&mut self, command: u8, key: &[u8], uid4: &[u8]) -> bool {
        let PiccState::Active { woken, .. } = self.state else {
            return false;
        };
        let uid_tail = &self.card.uid[self.card.uid.len() - 4..];
        let ok = (command == MF_AUTH_A || command == MF_AUTH_B)
            && key == self.card.key
            && (uid4 == &self.card.uid[..4] || uid4 == uid_tail);
        if ok {
            self.state = PiccState::Active {
                woken,
                authenticated: true,
            };
        } else {
            self.fall_back();
        }
        ok
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crc_a_matches_the_iso_14443_example() {
        // ISO/IEC 14443-3 annex B: CRC_A of 0x00 0x00 is 0xA0 0x1E (transmitted 1E A0... as bytes).
        assert_eq!(crc_a(&[0x00, 0x00]), [0xA0, 0x1E]);
        // HLTA frame as the mfrc522 crate sends it.
        assert_eq!(crc_a(&[0x50, 0x00]), [0x57, 0xCD]);
    }

    #[test]
    fn bits_round_trip_through_bytes() {
        let bits = to_bits(&[0x26], 7);
        assert_eq!(bits.len(), 7);
        assert_eq!(to_bytes(&bits), vec![0x26]);
    }

    #[test]
    fn seven_byte_uid_uses_cascade_tag_and_bcc() {
        let card = VirtualCard::new(&[1, 2, 3, 4, 5, 6, 7]).unwrap();
        assert_eq!(card.level_bytes(0), [0x88, 1, 2, 3, 0x88 ^ 1 ^ 2 ^ 3]);
        assert_eq!(card.level_bytes(1), [4, 5, 6, 7, 4 ^ 5 ^ 6 ^ 7]);
    }
}
