//! Never-panic and no-forgery properties of the QR payload verifier (`scanner::code`): any text a
//! scanner can send decodes to `Ok` or a `CodeError`, a signed ticket verifies, and a ticket
//! changed anywhere (one character replaced, inserted or removed, truncated) never verifies as a
//! different ticket. `PROPTEST_CASES` scales it (scripts/soak runs it with many more cases).

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "test code: a failed unwrap is the failure message"
)]

use kiosk_drivers::scanner::code::{self, Code, CodeKey, CodeKeys, TurnTicket};
use proptest::prelude::*;
use time::{Date, Month};
use uuid::Uuid;

fn keys() -> (CodeKey, CodeKeys) {
    let key = CodeKey::new(vec![7u8; 32]).unwrap();
    let keys = CodeKeys {
        turns: Some(key.clone()),
        coupons: Some(key.clone()),
    };
    (key, keys)
}

fn today() -> Date {
    Date::from_calendar_date(2026, Month::November, 23).unwrap()
}

fn ticket() -> impl Strategy<Value = TurnTicket> {
    (
        "[a-z0-9-]{1,12}",
        "[a-z0-9-]{1,16}",
        "[A-Z]-[0-9]{3}",
        any::<u128>(),
    )
        .prop_map(|(store_id, kiosk_id, turn, id)| TurnTicket {
            store_id,
            kiosk_id,
            business_day: today(),
            turn,
            turn_id: Uuid::from_u128(id),
        })
}

/// One edit of a string: replace, insert or remove a character, or truncate.
fn mutate(s: &str, kind: u8, at: usize, c: char) -> String {
    let mut chars: Vec<char> = s.chars().collect();
    let at = at % (chars.len() + 1);
    match kind % 4 {
        0 if at < chars.len() => chars[at] = c,
        1 => chars.insert(at, c),
        2 if at < chars.len() => {
            chars.remove(at);
        }
        _ => chars.truncate(at),
    }
    chars.into_iter().collect()
}

proptest! {
    #[test]
    fn any_scanned_text_decodes_to_a_code_or_an_error_never_a_panic(text in any::<String>()) {
        let (_, keys) = keys();
        let _ = code::decode(&text, &keys, today());
        let _ = code::decode_product(&text);
    }

    #[test]
    fn printable_noise_with_a_kiosk_prefix_never_verifies(body in "[ -~]{0,200}", prefix in prop::sample::select(vec!["KT1.", "KC1.", "KT1", ""])) {
        let (_, keys) = keys();
        let text = format!("{prefix}{body}");
        if let Ok(Code::Turn(_) | Code::Coupon(_)) = code::decode(&text, &keys, today()) {
            prop_assert!(false, "unsigned text verified: {text:?}");
        }
    }

    #[test]
    fn a_signed_ticket_verifies_and_any_edit_of_it_is_refused_or_reads_the_same_ticket(
        t in ticket(), kind in any::<u8>(), at in any::<usize>(), c in any::<char>()
    ) {
        let (key, keys) = keys();
        let signed = code::sign_turn(&t, &key).unwrap();
        prop_assert_eq!(code::decode(&signed, &keys, today()).unwrap(), Code::Turn(t.clone()));
        let edited = mutate(&signed, kind, at, c);
        if edited != signed {
            match code::decode(&edited, &keys, today()) {
                Ok(Code::Turn(other)) => prop_assert_eq!(other, t, "edited payload {:?}", edited),
                Ok(Code::Coupon(c)) => prop_assert!(false, "a ticket edit verified as coupon {c:?}"),
                _ => {}
            }
        }
    }

    #[test]
    fn a_ticket_signed_with_another_key_is_refused(t in ticket(), other in prop::collection::vec(any::<u8>(), 32)) {
        let (_, keys) = keys();
        let foreign = CodeKey::new(other.clone()).unwrap();
        let signed = code::sign_turn(&t, &foreign).unwrap();
        let verified = code::decode(&signed, &keys, today());
        if other != vec![7u8; 32] {
            prop_assert!(verified.is_err(), "foreign ticket verified");
        }
    }
}
