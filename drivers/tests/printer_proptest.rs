//! The virtual printer never panics, whatever bytes arrive and however they are split.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "test code: a failed unwrap is the failure message"
)]

use kiosk_drivers::printer::vprinter::VirtualPrinter;
use proptest::prelude::*;

/// Command prefixes that reach the interpreter's length-taking and drawing paths.
const PREFIXES: &[&[u8]] = &[
    b"\x1b@",
    b"\x1b!",
    b"\x1b*\x21",
    b"\x1b*\x00",
    b"\x1b&\x03",
    b"\x1bD",
    b"\x1d!",
    b"\x1dv0",
    b"\x1dv0\x03",
    b"\x1d(k",
    b"\x1d(k\x03\x001C",
    b"\x1d(k\x04\x001P0",
    b"\x1d(k\x03\x001Q0",
    b"\x1dk\x02",
    b"\x1dkI",
    b"\x1dk\x49\x05{C",
    b"\x1dV",
    b"\x1dVA",
    b"\x1d8L",
    b"\x10\x04",
    b"\x10\x14",
    b"\x1c(",
    b"\x1bt",
    b"\x1ba\x01",
    b"\x1dw",
    b"\x1dh",
    b"\x1dH\x03",
    b"\n",
    b"\x1bd\xff",
    b"\x1bJ\xff",
];

fn stream() -> impl Strategy<Value = Vec<u8>> {
    let piece = prop_oneof![
        proptest::collection::vec(any::<u8>(), 0..64),
        (
            proptest::sample::select(PREFIXES),
            proptest::collection::vec(any::<u8>(), 0..48)
        )
            .prop_map(|(p, rest)| [p, rest.as_slice()].concat()),
    ];
    proptest::collection::vec(piece, 0..24).prop_map(|v| v.concat())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn the_interpreter_never_panics_on_arbitrary_bytes(bytes in stream(), split in 1usize..97, narrow in any::<bool>()) {
        let mut p = VirtualPrinter::with_width(if narrow { 384 } else { 576 });
        for chunk in bytes.chunks(split) {
            p.feed(chunk);
        }
        p.finish();
        let img = p.image();
        prop_assert_eq!(img.width(), p.width());
    }

    #[test]
    fn splitting_a_stream_does_not_change_what_is_printed(bytes in stream(), split in 1usize..64) {
        let mut whole = VirtualPrinter::with_width(384);
        whole.feed(&bytes);
        whole.finish();
        let mut parts = VirtualPrinter::with_width(384);
        for chunk in bytes.chunks(split) {
            parts.feed(chunk);
        }
        parts.finish();
        prop_assert_eq!(whole.record(), parts.record());
        prop_assert_eq!(whole.image(), parts.image());
    }
}
