//! What a scanned line means: a product barcode (EAN-13, EAN-8, UPC-A, check digit verified) or one
//! of the kiosk's own signed QR payloads (turn tickets and coupons). The firmware uses the same code
//! to *sign* the payload it prints on a ticket, so printing and scanning cannot drift apart.
//!
//! # Signed payload format (version 1)
//!
//! ```text
//! KT1.<payload>.<tag>     turn ticket
//! KC1.<payload>.<tag>     coupon
//! ```
//!
//! `<payload>` is base64url (no padding) of a compact binary record; `<tag>` is base64url of
//! HMAC-SHA256 over the ASCII text `KT1.<payload>` (prefix included, so a coupon's tag can never
//! pass as a turn's, and a version can never be swapped), truncated to its first 16 bytes.
//! Every character is in base64url or `.`, which any scanner types in any keyboard layout, and a
//! typical turn is about 90 characters: a small QR code (version 5 or 6) on 58 mm paper.
//!
//! Records (all integers big-endian, `str8` = one length byte then that many UTF-8 bytes):
//! - turn: `str8 store_id, str8 kiosk_id, i32 business day (Julian day number), str8 turn label
//!   (e.g. A-042), 16 bytes turn id (UUID)`;
//! - coupon: `str8 campaign_id, str8 coupon_code, i32 expiry day (Julian day number, last valid
//!   day), u8 0|1, then 16 bytes card token if 1`.
//!
//! Verification checks the tag in constant time before the record is parsed, so nothing an
//! attacker sends reaches the record parser unless it was signed with the key.
//!
//! # Links
//!
//! A turn ticket's QR carries its payload inside a link a phone camera opens
//! (`https://crm.example.com/t/KT1.<payload>.<tag>`: the customer's live turn page). Scanned
//! text that is such a link is read as the payload it carries ([`payload_in`]): from the first
//! kiosk prefix that follows a non-alphanumeric character, so a scanner typing `:` or `/` in
//! another keyboard layout still yields the payload, whose characters every layout types alike.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::{Hmac, Mac};
use sha2::Sha256;
use time::Date;
use uuid::Uuid;
use zeroize::Zeroizing;

/// Prefix of a version 1 turn ticket payload.
pub const TURN_PREFIX: &str = "KT1.";
/// Prefix of a version 1 coupon payload.
pub const COUPON_PREFIX: &str = "KC1.";
/// Bytes of HMAC-SHA256 kept in a payload's tag.
pub const TAG_LEN: usize = 16;
/// Shortest key accepted for signing and verifying (128 bits).
pub const MIN_KEY_LEN: usize = 16;

type HmacSha256 = Hmac<Sha256>;

/// Which of the kiosk's own payloads.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PayloadKind {
    /// A turn ticket (`KT`).
    Turn,
    /// A coupon (`KC`).
    Coupon,
}

impl std::fmt::Display for PayloadKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            PayloadKind::Turn => "turn ticket",
            PayloadKind::Coupon => "coupon",
        })
    }
}

/// Why scanned text was not accepted, or why a payload could not be signed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CodeError {
    /// Nothing was scanned.
    #[error("scanned code is empty")]
    Empty,
    /// Not a product barcode and not one of the kiosk's payloads.
    #[error(
        "scanned code ({len} characters) is neither a product barcode nor a kiosk ticket or coupon"
    )]
    Unrecognized {
        /// Length of the text in characters.
        len: usize,
    },
    /// A product barcode whose check digit does not match its digits.
    #[error("{symbology} barcode has check digit {found}, expected {expected}; rescan it")]
    BadCheckDigit {
        /// `EAN-13`, `EAN-8` or `UPC-A`.
        symbology: &'static str,
        /// Check digit computed from the other digits.
        expected: u8,
        /// Check digit scanned.
        found: u8,
    },
    /// A kiosk payload of a version this firmware does not know.
    #[error("{kind} payload has unsupported version {version:?}; update the kiosk firmware")]
    UnsupportedVersion {
        /// Which payload.
        kind: PayloadKind,
        /// The version text found (e.g. `2`).
        version: String,
    },
    /// A kiosk payload cut short (damaged print, partial scan).
    #[error("{kind} payload is truncated; rescan it")]
    Truncated {
        /// Which payload.
        kind: PayloadKind,
    },
    /// A kiosk payload that is not well formed.
    #[error("{kind} payload is malformed: {what}")]
    Malformed {
        /// Which payload.
        kind: PayloadKind,
        /// What is wrong.
        what: &'static str,
    },
    /// The tag does not match: forged, altered, or signed with another store's key.
    #[error("{kind} signature does not match; it is forged, altered or from another store")]
    BadSignature {
        /// Which payload.
        kind: PayloadKind,
    },
    /// A coupon past its last valid day, or a turn ticket from an earlier business day.
    #[error("{kind} expired on {expired_on}")]
    Expired {
        /// Which payload.
        kind: PayloadKind,
        /// Last valid day.
        expired_on: Date,
    },
    /// A turn ticket for a later business day than the kiosk's (its clock may be wrong).
    #[error("{kind} is for {valid_on}, a later day than today; check the kiosk clock")]
    NotYetValid {
        /// Which payload.
        kind: PayloadKind,
        /// The day it is for.
        valid_on: Date,
    },
    /// No key is configured to verify this kind of payload.
    #[error("no key configured to verify a {kind}; provision the kiosk")]
    NoKey {
        /// Which payload.
        kind: PayloadKind,
    },
    /// A key shorter than [`MIN_KEY_LEN`].
    #[error("signing key has {len} bytes, at least {MIN_KEY_LEN} are needed")]
    KeyTooShort {
        /// Length given.
        len: usize,
    },
    /// A text field too long for its one-byte length (when signing).
    #[error("{field} has {len} bytes, at most 255 fit in a signed payload")]
    FieldTooLong {
        /// Field name.
        field: &'static str,
        /// Its length in bytes.
        len: usize,
    },
}

/// A secret key for signing and verifying payloads (per store for turns; the firmware decides).
/// Zeroised on drop; its `Debug` never shows the bytes.
#[derive(Clone)]
pub struct CodeKey(Zeroizing<Vec<u8>>);

impl CodeKey {
    /// Wraps key bytes; at least [`MIN_KEY_LEN`] bytes.
    pub fn new(bytes: impl Into<Vec<u8>>) -> Result<Self, CodeError> {
        let bytes = Zeroizing::new(bytes.into());
        if bytes.len() < MIN_KEY_LEN {
            return Err(CodeError::KeyTooShort { len: bytes.len() });
        }
        Ok(CodeKey(bytes))
    }

    fn mac(&self) -> HmacSha256 {
        // HMAC accepts keys of any length, so this cannot fail.
        #[expect(clippy::expect_used, reason = "HMAC accepts keys of any length")]
        <HmacSha256 as Mac>::new_from_slice(&self.0).expect("hmac takes keys of any length")
    }
}

impl std::fmt::Debug for CodeKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("CodeKey(<redacted>)")
    }
}

/// The keys a scanner verifies payloads with. The same key may serve both kinds: the prefix is
/// part of what is signed.
#[derive(Debug, Clone, Default)]
pub struct CodeKeys {
    /// Key of this store's turn tickets.
    pub turns: Option<CodeKey>,
    /// Key of coupons.
    pub coupons: Option<CodeKey>,
}

/// A turn ticket, as printed in its QR code.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TurnTicket {
    /// Store that issued it.
    pub store_id: String,
    /// Kiosk that issued it.
    pub kiosk_id: String,
    /// Business day the turn belongs to (store time).
    pub business_day: Date,
    /// The turn as printed, e.g. `A-042`.
    pub turn: String,
    /// Unique id of the turn.
    pub turn_id: Uuid,
}

/// A coupon, as printed in its QR code.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Coupon {
    /// Campaign it belongs to.
    pub campaign_id: String,
    /// The coupon's code.
    pub coupon_code: String,
    /// Last day it is valid (store time).
    pub expires_on: Date,
    /// Card token (16 bytes; 32 lowercase hex characters on the wire) of the customer it was
    /// issued to, if personal.
    pub card_token: Option<[u8; 16]>,
}

/// What a scanned line is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Code {
    /// EAN-13 (13 digits, check digit verified).
    Ean13(String),
    /// EAN-8 (8 digits, check digit verified).
    Ean8(String),
    /// UPC-A (12 digits, check digit verified).
    UpcA(String),
    /// A turn ticket whose signature verified and whose day is today.
    Turn(TurnTicket),
    /// A coupon whose signature verified and which has not expired.
    Coupon(Coupon),
}

/// Decodes and validates scanned text: product barcodes by check digit, kiosk payloads by
/// signature and date (`today` is the store's business day, passed in by the caller).
pub fn decode(text: &str, keys: &CodeKeys, today: Date) -> Result<Code, CodeError> {
    if text.is_empty() {
        return Err(CodeError::Empty);
    }
    let text = payload_in(text);
    if let Some(kind) = kiosk_payload_kind(text) {
        return match kind {
            PayloadKind::Turn => {
                let key = keys.turns.as_ref().ok_or(CodeError::NoKey { kind })?;
                let turn = verify_turn(text, key)?;
                check_day(kind, turn.business_day, turn.business_day, today)?;
                Ok(Code::Turn(turn))
            }
            PayloadKind::Coupon => {
                let key = keys.coupons.as_ref().ok_or(CodeError::NoKey { kind })?;
                let coupon = verify_coupon(text, key)?;
                check_day(kind, Date::MIN, coupon.expires_on, today)?;
                Ok(Code::Coupon(coupon))
            }
        };
    }
    decode_product(text)
}

fn check_day(kind: PayloadKind, first: Date, last: Date, today: Date) -> Result<(), CodeError> {
    if today > last {
        Err(CodeError::Expired {
            kind,
            expired_on: last,
        })
    } else if today < first {
        Err(CodeError::NotYetValid {
            kind,
            valid_on: first,
        })
    } else {
        Ok(())
    }
}

/// Validates an EAN-13, EAN-8 or UPC-A barcode by length and check digit.
pub fn decode_product(text: &str) -> Result<Code, CodeError> {
    let unrecognized = CodeError::Unrecognized {
        len: text.chars().count(),
    };
    if !text.bytes().all(|b| b.is_ascii_digit()) {
        return Err(unrecognized);
    }
    let (symbology, wrap): (&'static str, fn(String) -> Code) = match text.len() {
        13 => ("EAN-13", Code::Ean13),
        12 => ("UPC-A", Code::UpcA),
        8 => ("EAN-8", Code::Ean8),
        _ => return Err(unrecognized),
    };
    let digits: Vec<u8> = text.bytes().map(|b| b - b'0').collect();
    let (data, check) = digits.split_at(digits.len() - 1);
    let expected = gs1_check_digit(data);
    if check[0] != expected {
        return Err(CodeError::BadCheckDigit {
            symbology,
            expected,
            found: check[0],
        });
    }
    Ok(wrap(text.to_owned()))
}

/// GS1 mod-10 check digit of `data` (digits 0..=9): weights 3, 1, 3, ... from the rightmost digit.
pub fn gs1_check_digit(data: &[u8]) -> u8 {
    let sum: u32 = data
        .iter()
        .rev()
        .enumerate()
        .map(|(i, &d)| u32::from(d) * if i % 2 == 0 { 3 } else { 1 })
        .sum();
    ((10 - sum % 10) % 10) as u8
}

/// Which kiosk payload `text` claims to be, by its `KT`/`KC` + digits + `.` head.
/// The kiosk payload scanned text carries: the text itself, or, for a link (text starting
/// with `http`, any case), the part from the first kiosk prefix (`KT1.`, `KC1.`, ...) that follows
/// a non-alphanumeric character. Text that is neither is returned as it is.
pub fn payload_in(text: &str) -> &str {
    if !text
        .get(..4)
        .is_some_and(|h| h.eq_ignore_ascii_case("http"))
    {
        return text;
    }
    text.char_indices()
        .skip(1)
        .filter(|&(i, _)| {
            text[..i]
                .chars()
                .next_back()
                .is_some_and(|c| !c.is_ascii_alphanumeric())
        })
        .map(|(i, _)| &text[i..])
        .find(|rest| kiosk_payload_kind(rest).is_some())
        .unwrap_or(text)
}

fn kiosk_payload_kind(text: &str) -> Option<PayloadKind> {
    let kind = match text.get(..2)? {
        "KT" => PayloadKind::Turn,
        "KC" => PayloadKind::Coupon,
        _ => return None,
    };
    let rest = &text[2..];
    let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
    if digits == 0 || !(rest.len() == digits || rest.as_bytes()[digits] == b'.') {
        return None;
    }
    Some(kind)
}

/// Signs a turn ticket: the text to put in the ticket's QR code.
pub fn sign_turn(turn: &TurnTicket, key: &CodeKey) -> Result<String, CodeError> {
    let mut rec = Vec::with_capacity(64);
    put_str8(&mut rec, "store_id", &turn.store_id)?;
    put_str8(&mut rec, "kiosk_id", &turn.kiosk_id)?;
    rec.extend_from_slice(&turn.business_day.to_julian_day().to_be_bytes());
    put_str8(&mut rec, "turn", &turn.turn)?;
    rec.extend_from_slice(turn.turn_id.as_bytes());
    Ok(seal(TURN_PREFIX, &rec, key))
}

/// Signs a coupon: the text to put in the coupon's QR code.
pub fn sign_coupon(coupon: &Coupon, key: &CodeKey) -> Result<String, CodeError> {
    let mut rec = Vec::with_capacity(64);
    put_str8(&mut rec, "campaign_id", &coupon.campaign_id)?;
    put_str8(&mut rec, "coupon_code", &coupon.coupon_code)?;
    rec.extend_from_slice(&coupon.expires_on.to_julian_day().to_be_bytes());
    match &coupon.card_token {
        Some(token) => {
            rec.push(1);
            rec.extend_from_slice(token);
        }
        None => rec.push(0),
    }
    Ok(seal(COUPON_PREFIX, &rec, key))
}

/// Verifies a turn ticket's signature and parses it (no date check: see [`decode`]).
pub fn verify_turn(text: &str, key: &CodeKey) -> Result<TurnTicket, CodeError> {
    let kind = PayloadKind::Turn;
    let rec = open(kind, TURN_PREFIX, text, key)?;
    let mut r = Reader { kind, buf: &rec };
    let turn = TurnTicket {
        store_id: r.str8()?,
        kiosk_id: r.str8()?,
        business_day: r.day()?,
        turn: r.str8()?,
        turn_id: Uuid::from_bytes(r.array()?),
    };
    r.finish()?;
    Ok(turn)
}

/// Verifies a coupon's signature and parses it (no expiry check: see [`decode`]).
pub fn verify_coupon(text: &str, key: &CodeKey) -> Result<Coupon, CodeError> {
    let kind = PayloadKind::Coupon;
    let rec = open(kind, COUPON_PREFIX, text, key)?;
    let mut r = Reader { kind, buf: &rec };
    let campaign_id = r.str8()?;
    let coupon_code = r.str8()?;
    let expires_on = r.day()?;
    let card_token = match r.byte()? {
        0 => None,
        1 => Some(r.array()?),
        _ => {
            return Err(CodeError::Malformed {
                kind,
                what: "card token flag is neither 0 nor 1",
            });
        }
    };
    r.finish()?;
    Ok(Coupon {
        campaign_id,
        coupon_code,
        expires_on,
        card_token,
    })
}

fn put_str8(out: &mut Vec<u8>, field: &'static str, s: &str) -> Result<(), CodeError> {
    let len = u8::try_from(s.len()).map_err(|_| CodeError::FieldTooLong {
        field,
        len: s.len(),
    })?;
    out.push(len);
    out.extend_from_slice(s.as_bytes());
    Ok(())
}

fn seal(prefix: &str, record: &[u8], key: &CodeKey) -> String {
    let mut text = String::with_capacity(prefix.len() + record.len() * 4 / 3 + 24);
    text.push_str(prefix);
    URL_SAFE_NO_PAD.encode_string(record, &mut text);
    let mut mac = key.mac();
    mac.update(text.as_bytes());
    let tag = mac.finalize().into_bytes();
    text.push('.');
    URL_SAFE_NO_PAD.encode_string(&tag[..TAG_LEN], &mut text);
    text
}

/// Checks prefix and tag, then returns the record bytes.
fn open(kind: PayloadKind, prefix: &str, text: &str, key: &CodeKey) -> Result<Vec<u8>, CodeError> {
    let Some(rest) = text.strip_prefix(prefix) else {
        let version = text
            .get(2..)
            .unwrap_or_default()
            .split('.')
            .next()
            .unwrap_or_default()
            .to_owned();
        return Err(CodeError::UnsupportedVersion { kind, version });
    };
    let Some((payload, tag)) = rest.split_once('.') else {
        return Err(CodeError::Truncated { kind });
    };
    if tag.contains('.') {
        return Err(CodeError::Malformed {
            kind,
            what: "more than three dot-separated parts",
        });
    }
    // A tag of TAG_LEN bytes is 22 base64url characters; fewer means the scan was cut short
    // (checked before decoding: a cut tag may not even be valid base64url).
    if tag.len() < TAG_LEN.div_ceil(3) * 4 - 2 {
        return Err(CodeError::Truncated { kind });
    }
    let tag = URL_SAFE_NO_PAD
        .decode(tag)
        .map_err(|_| CodeError::Malformed {
            kind,
            what: "signature is not base64url",
        })?;
    if tag.len() < TAG_LEN {
        return Err(CodeError::Truncated { kind });
    }
    if tag.len() > TAG_LEN {
        return Err(CodeError::Malformed {
            kind,
            what: "signature is too long",
        });
    }
    let mut mac = key.mac();
    mac.update(&text.as_bytes()[..prefix.len() + payload.len()]);
    // Constant time: comparing tags byte by byte with early exit would leak how much matched.
    mac.verify_truncated_left(&tag)
        .map_err(|_| CodeError::BadSignature { kind })?;
    URL_SAFE_NO_PAD
        .decode(payload)
        .map_err(|_| CodeError::Malformed {
            kind,
            what: "payload is not base64url",
        })
}

struct Reader<'a> {
    kind: PayloadKind,
    buf: &'a [u8],
}

impl Reader<'_> {
    fn take(&mut self, n: usize) -> Result<&[u8], CodeError> {
        if self.buf.len() < n {
            return Err(CodeError::Truncated { kind: self.kind });
        }
        let (head, tail) = self.buf.split_at(n);
        self.buf = tail;
        Ok(head)
    }

    fn byte(&mut self) -> Result<u8, CodeError> {
        Ok(self.take(1)?[0])
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N], CodeError> {
        let mut out = [0u8; N];
        out.copy_from_slice(self.take(N)?);
        Ok(out)
    }

    fn str8(&mut self) -> Result<String, CodeError> {
        let len = usize::from(self.byte()?);
        let kind = self.kind;
        String::from_utf8(self.take(len)?.to_vec()).map_err(|_| CodeError::Malformed {
            kind,
            what: "text field is not utf-8",
        })
    }

    fn day(&mut self) -> Result<Date, CodeError> {
        let jd = i32::from_be_bytes(self.array()?);
        Date::from_julian_day(jd).map_err(|_| CodeError::Malformed {
            kind: self.kind,
            what: "day is out of range",
        })
    }

    fn finish(self) -> Result<(), CodeError> {
        if self.buf.is_empty() {
            Ok(())
        } else {
            Err(CodeError::Malformed {
                kind: self.kind,
                what: "trailing bytes after the record",
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use time::macros::date;

    fn key(b: u8) -> CodeKey {
        CodeKey::new(vec![b; 32]).unwrap()
    }

    fn keys() -> CodeKeys {
        CodeKeys {
            turns: Some(key(1)),
            coupons: Some(key(2)),
        }
    }

    fn turn() -> TurnTicket {
        TurnTicket {
            store_id: "store-0042".into(),
            kiosk_id: "kiosk-01".into(),
            business_day: date!(2025 - 03 - 14),
            turn: "A-042".into(),
            turn_id: Uuid::from_u128(0x0195_9a2b_3c4d_7e5f_8a9b_0c1d_2e3f_4a5b),
        }
    }

    fn coupon() -> Coupon {
        Coupon {
            campaign_id: "spring-25".into(),
            coupon_code: "SPR-7K2Q".into(),
            expires_on: date!(2025 - 03 - 31),
            card_token: Some([0xab; 16]),
        }
    }

    #[test]
    fn valid_product_barcodes_are_accepted() {
        assert_eq!(
            decode_product("4006381333931"),
            Ok(Code::Ean13("4006381333931".into()))
        );
        assert_eq!(
            decode_product("73513537"),
            Ok(Code::Ean8("73513537".into()))
        );
        assert_eq!(
            decode_product("036000291452"),
            Ok(Code::UpcA("036000291452".into()))
        );
        assert_eq!(decode_product("8410000000009").map(|_| ()), Ok(()));
    }

    #[test]
    fn product_barcodes_with_a_wrong_check_digit_are_rejected() {
        assert_eq!(
            decode_product("4006381333932"),
            Err(CodeError::BadCheckDigit {
                symbology: "EAN-13",
                expected: 1,
                found: 2
            })
        );
        assert_eq!(
            decode_product("73513538"),
            Err(CodeError::BadCheckDigit {
                symbology: "EAN-8",
                expected: 7,
                found: 8
            })
        );
        assert_eq!(
            decode_product("036000291450"),
            Err(CodeError::BadCheckDigit {
                symbology: "UPC-A",
                expected: 2,
                found: 0
            })
        );
    }

    #[test]
    fn digits_of_other_lengths_and_free_text_are_unrecognized() {
        assert_eq!(
            decode_product("12345"),
            Err(CodeError::Unrecognized { len: 5 })
        );
        assert_eq!(
            decode_product("hola señor"),
            Err(CodeError::Unrecognized { len: 10 })
        );
        assert_eq!(
            decode("", &keys(), date!(2025 - 03 - 14)),
            Err(CodeError::Empty)
        );
    }

    #[test]
    fn a_signed_turn_decodes_on_its_business_day() {
        let text = sign_turn(&turn(), keys().turns.as_ref().unwrap()).unwrap();
        assert!(text.starts_with("KT1."));
        assert!(text.len() < 100, "{} characters", text.len());
        assert_eq!(
            decode(&text, &keys(), date!(2025 - 03 - 14)),
            Ok(Code::Turn(turn()))
        );
    }

    #[test]
    fn a_turn_inside_its_link_decodes_even_with_a_scanner_in_another_layout() {
        let text = sign_turn(&turn(), keys().turns.as_ref().unwrap()).unwrap();
        let day = date!(2025 - 03 - 14);
        for link in [
            format!("https://crm.example.com/t/{text}"),
            format!("HTTPS://CRM.EXAMPLE.COM/t/{text}"),
            // A US-layout scanner typing into a Spanish host: `:` and `/` come out otherwise.
            format!("https\u{d1}--crm.example.com-t-{text}"),
            format!("http://127.0.0.1:8081/store/t/{text}"),
        ] {
            assert_eq!(payload_in(&link), text, "{link}");
            assert_eq!(
                decode(&link, &keys(), day),
                Ok(Code::Turn(turn())),
                "{link}"
            );
        }
        // Not links, or links without a payload: left as they are.
        assert_eq!(payload_in(&text), text);
        assert_eq!(payload_in("https://example.com/"), "https://example.com/");
        assert_eq!(payload_in("htt"), "htt");
        assert!(matches!(
            decode("https://example.com/t/nothing", &keys(), day),
            Err(CodeError::Unrecognized { .. })
        ));
        // A prefix glued to letters is not a payload's start.
        let glued = format!("https://x.example/aKT1.{}", &text[4..]);
        assert_eq!(payload_in(&glued), glued);
        // A forged payload inside a link fails on its signature, as it does alone.
        let forged = format!(
            "https://crm.example.com/t/{}",
            text.replacen("KT1.", "KT1.A", 1)
        );
        assert!(decode(&forged, &keys(), day).is_err());
    }

    #[test]
    fn a_turn_from_another_day_is_rejected() {
        let text = sign_turn(&turn(), keys().turns.as_ref().unwrap()).unwrap();
        assert_eq!(
            decode(&text, &keys(), date!(2025 - 03 - 15)),
            Err(CodeError::Expired {
                kind: PayloadKind::Turn,
                expired_on: date!(2025 - 03 - 14)
            })
        );
        assert_eq!(
            decode(&text, &keys(), date!(2025 - 03 - 13)),
            Err(CodeError::NotYetValid {
                kind: PayloadKind::Turn,
                valid_on: date!(2025 - 03 - 14)
            })
        );
    }

    #[test]
    fn a_coupon_is_valid_until_its_last_day_inclusive() {
        let text = sign_coupon(&coupon(), keys().coupons.as_ref().unwrap()).unwrap();
        assert_eq!(
            decode(&text, &keys(), date!(2025 - 03 - 31)),
            Ok(Code::Coupon(coupon()))
        );
        assert_eq!(
            decode(&text, &keys(), date!(2025 - 04 - 01)),
            Err(CodeError::Expired {
                kind: PayloadKind::Coupon,
                expired_on: date!(2025 - 03 - 31)
            })
        );
        let anonymous = Coupon {
            card_token: None,
            ..coupon()
        };
        let text = sign_coupon(&anonymous, keys().coupons.as_ref().unwrap()).unwrap();
        assert_eq!(
            decode(&text, &keys(), date!(2025 - 03 - 01)),
            Ok(Code::Coupon(anonymous))
        );
    }

    #[test]
    fn a_turn_signed_by_another_store_is_rejected_as_forged() {
        let text = sign_turn(&turn(), &key(9)).unwrap();
        assert_eq!(
            decode(&text, &keys(), date!(2025 - 03 - 14)),
            Err(CodeError::BadSignature {
                kind: PayloadKind::Turn
            })
        );
    }

    #[test]
    fn a_coupon_tag_cannot_be_reused_as_a_turn() {
        let same = CodeKeys {
            turns: Some(key(1)),
            coupons: Some(key(1)),
        };
        let text = sign_coupon(&coupon(), &key(1)).unwrap();
        let swapped = text.replacen("KC1.", "KT1.", 1);
        assert_eq!(
            decode(&swapped, &same, date!(2025 - 03 - 14)),
            Err(CodeError::BadSignature {
                kind: PayloadKind::Turn
            })
        );
    }

    #[test]
    fn a_forged_payload_with_a_made_up_tag_is_rejected() {
        let good = sign_turn(&turn(), &key(1)).unwrap();
        let forged_turn = TurnTicket {
            turn: "A-001".into(),
            ..turn()
        };
        let forged = sign_turn(&forged_turn, &key(7)).unwrap();
        let (forged_body, _) = forged.rsplit_once('.').unwrap();
        let (_, good_tag) = good.rsplit_once('.').unwrap();
        let spliced = format!("{forged_body}.{good_tag}");
        assert_eq!(
            verify_turn(&spliced, &key(1)),
            Err(CodeError::BadSignature {
                kind: PayloadKind::Turn
            })
        );
    }

    #[test]
    fn truncated_and_wrong_version_payloads_are_rejected_with_their_reason() {
        let text = sign_turn(&turn(), &key(1)).unwrap();
        let (body, _) = text.rsplit_once('.').unwrap();
        assert_eq!(
            verify_turn(body, &key(1)),
            Err(CodeError::Truncated {
                kind: PayloadKind::Turn
            })
        );
        assert_eq!(
            verify_turn(&text[..text.len() - 4], &key(1)),
            Err(CodeError::Truncated {
                kind: PayloadKind::Turn
            })
        );
        let v2 = text.replacen("KT1.", "KT2.", 1);
        assert_eq!(
            decode(&v2, &keys(), date!(2025 - 03 - 14)),
            Err(CodeError::UnsupportedVersion {
                kind: PayloadKind::Turn,
                version: "2".into()
            })
        );
    }

    #[test]
    fn a_payload_needs_a_configured_key() {
        let text = sign_turn(&turn(), &key(1)).unwrap();
        assert_eq!(
            decode(&text, &CodeKeys::default(), date!(2025 - 03 - 14)),
            Err(CodeError::NoKey {
                kind: PayloadKind::Turn
            })
        );
    }

    #[test]
    fn short_keys_and_long_fields_are_refused_when_signing() {
        assert_eq!(
            CodeKey::new(vec![0; 8]).err(),
            Some(CodeError::KeyTooShort { len: 8 })
        );
        let long = TurnTicket {
            store_id: "x".repeat(256),
            ..turn()
        };
        assert_eq!(
            sign_turn(&long, &key(1)),
            Err(CodeError::FieldTooLong {
                field: "store_id",
                len: 256
            })
        );
        assert_eq!(format!("{:?}", key(1)), "CodeKey(<redacted>)");
    }

    fn arb_turn() -> impl Strategy<Value = TurnTicket> {
        (
            ".{0,40}",
            "[a-z0-9-]{0,20}",
            -100_000i32..100_000,
            "[A-Z]-[0-9]{3}",
            any::<u128>(),
        )
            .prop_map(|(store_id, kiosk_id, days, turn, id)| TurnTicket {
                store_id,
                kiosk_id,
                business_day: date!(2025 - 01 - 01) + time::Duration::days(days.into()),
                turn,
                turn_id: Uuid::from_u128(id),
            })
    }

    proptest! {
        #[test]
        fn any_turn_survives_sign_then_verify(t in arb_turn()) {
            let text = sign_turn(&t, &key(3)).unwrap();
            prop_assert_eq!(verify_turn(&text, &key(3)), Ok(t));
        }

        #[test]
        fn any_coupon_survives_sign_then_verify(
            campaign in ".{0,30}", code in "[A-Z0-9-]{1,16}", days in -1000i32..1000,
            token in proptest::option::of(any::<[u8; 16]>()),
        ) {
            let c = Coupon {
                campaign_id: campaign,
                coupon_code: code,
                expires_on: date!(2025 - 01 - 01) + time::Duration::days(days.into()),
                card_token: token,
            };
            let text = sign_coupon(&c, &key(4)).unwrap();
            prop_assert_eq!(verify_coupon(&text, &key(4)), Ok(c));
        }

        #[test]
        fn any_single_byte_change_fails_verification(t in arb_turn(), pos in any::<prop::sample::Index>(), b in any::<u8>()) {
            let text = sign_turn(&t, &key(5)).unwrap();
            let mut bytes = text.clone().into_bytes();
            let i = pos.index(bytes.len());
            prop_assume!(bytes[i] != b);
            bytes[i] = b;
            // A change may make the text invalid UTF-8; a scanner would reject it before this.
            if let Ok(changed) = String::from_utf8(bytes) {
                prop_assert!(verify_turn(&changed, &key(5)).is_err());
                let ks = CodeKeys { turns: Some(key(5)), coupons: Some(key(5)) };
                prop_assert!(decode(&changed, &ks, t.business_day).is_err());
            }
        }

        #[test]
        fn decoding_arbitrary_text_never_panics(s in ".{0,200}") {
            let _ = decode(&s, &keys(), date!(2025 - 03 - 14));
        }

        #[test]
        fn decoding_text_shaped_like_a_payload_never_panics(body in "[A-Za-z0-9_-]{0,120}", tag in "[A-Za-z0-9_.-]{0,30}") {
            let _ = decode(&format!("KT1.{body}.{tag}"), &keys(), date!(2025 - 03 - 14));
            let _ = decode(&format!("KC1.{body}.{tag}"), &keys(), date!(2025 - 03 - 14));
        }
    }
}
