//! Character code pages: how text becomes the single bytes a thermal printer prints.
//!
//! Tickets are printed in **PC858** (IBM code page 858: PC850 with the euro sign at 0xD5), selected
//! with `ESC t 19` (Epson's number for PC858, followed by most ESC/POS clones). PC858 holds every
//! Spanish letter and sign (ñ Ñ á é í ó ú ü Ü ¿ ¡ º ª) and €. The `escpos` crate can select the page
//! but its own PC858 table is wrong (it lacks `¿` at 0xA8, puts `®` there and repeats `Ô` where `Ò`
//! belongs), and characters missing from a table go out as UTF-8 bytes, which a printer shows as
//! two wrong glyphs. So we encode text ourselves with [`encode_pc858`] and hand the crate raw bytes.
//!
//! The virtual printer decodes with [`decode`] for the pages other tools commonly select.

/// `ESC t n` value for PC437 (USA, standard Europe): the power-on default.
pub const PAGE_PC437: u8 = 0;
/// `ESC t n` value for PC850 (Multilingual).
pub const PAGE_PC850: u8 = 2;
/// `ESC t n` value for WPC1252 (Windows Latin-1).
pub const PAGE_WPC1252: u8 = 16;
/// `ESC t n` value for PC858 (Multilingual with euro): what our tickets use.
pub const PAGE_PC858: u8 = 19;
/// `ESC t n` value for ISO 8859-15 (Latin-9).
pub const PAGE_ISO8859_15: u8 = 40;

/// Upper half (0x80..=0xFF) of PC850.
const PC850_HIGH: [char; 128] = [
    'Ç', 'ü', 'é', 'â', 'ä', 'à', 'å', 'ç', 'ê', 'ë', 'è', 'ï', 'î', 'ì', 'Ä', 'Å', //
    'É', 'æ', 'Æ', 'ô', 'ö', 'ò', 'û', 'ù', 'ÿ', 'Ö', 'Ü', 'ø', '£', 'Ø', '×', 'ƒ', //
    'á', 'í', 'ó', 'ú', 'ñ', 'Ñ', 'ª', 'º', '¿', '®', '¬', '½', '¼', '¡', '«', '»', //
    '░', '▒', '▓', '│', '┤', 'Á', 'Â', 'À', '©', '╣', '║', '╗', '╝', '¢', '¥', '┐', //
    '└', '┴', '┬', '├', '─', '┼', 'ã', 'Ã', '╚', '╔', '╩', '╦', '╠', '═', '╬', '¤', //
    'ð', 'Ð', 'Ê', 'Ë', 'È', 'ı', 'Í', 'Î', 'Ï', '┘', '┌', '█', '▄', '¦', 'Ì', '▀', //
    'Ó', 'ß', 'Ô', 'Ò', 'õ', 'Õ', 'µ', 'þ', 'Þ', 'Ú', 'Û', 'Ù', 'ý', 'Ý', '¯', '´', //
    '\u{AD}', '±', '‗', '¾', '¶', '§', '÷', '¸', '°', '¨', '·', '¹', '³', '²', '■', '\u{A0}',
];

/// Upper half (0x80..=0xFF) of PC437.
const PC437_HIGH: [char; 128] = [
    'Ç', 'ü', 'é', 'â', 'ä', 'à', 'å', 'ç', 'ê', 'ë', 'è', 'ï', 'î', 'ì', 'Ä', 'Å', //
    'É', 'æ', 'Æ', 'ô', 'ö', 'ò', 'û', 'ù', 'ÿ', 'Ö', 'Ü', '¢', '£', '¥', '₧', 'ƒ', //
    'á', 'í', 'ó', 'ú', 'ñ', 'Ñ', 'ª', 'º', '¿', '⌐', '¬', '½', '¼', '¡', '«', '»', //
    '░', '▒', '▓', '│', '┤', '╡', '╢', '╖', '╕', '╣', '║', '╗', '╝', '╜', '╛', '┐', //
    '└', '┴', '┬', '├', '─', '┼', '╞', '╟', '╚', '╔', '╩', '╦', '╠', '═', '╬', '╧', //
    '╨', '╤', '╥', '╙', '╘', '╒', '╓', '╫', '╪', '┘', '┌', '█', '▄', '▌', '▐', '▀', //
    'α', 'ß', 'Γ', 'π', 'Σ', 'σ', 'µ', 'τ', 'Φ', 'Θ', 'Ω', 'δ', '∞', 'φ', 'ε', '∩', //
    '≡', '±', '≥', '≤', '⌠', '⌡', '÷', '≈', '°', '∙', '·', '√', 'ⁿ', '²', '■', '\u{A0}',
];

/// 0x80..=0x9F of Windows-1252 (0xA0..=0xFF are Latin-1); `\u{FFFD}` where the page has a hole.
const WPC1252_C1: [char; 32] = [
    '€', '\u{FFFD}', '‚', 'ƒ', '„', '…', '†', '‡', 'ˆ', '‰', 'Š', '‹', 'Œ', '\u{FFFD}', 'Ž',
    '\u{FFFD}', '\u{FFFD}', '‘', '’', '“', '”', '•', '–', '—', '˜', '™', 'š', '›', 'œ', '\u{FFFD}',
    'ž', 'Ÿ',
];

/// The replacement byte for a character PC858 cannot print.
pub const UNPRINTABLE: u8 = b'?';

/// Encodes `text` in PC858. Characters the page lacks become `?` (see [`pc858_lacks`] to check
/// first); control characters other than none are dropped, so a label cannot smuggle commands.
pub fn encode_pc858(text: &str) -> Vec<u8> {
    let mut out = Vec::with_capacity(text.len());
    for c in text.chars() {
        if let Some(b) = pc858_byte(c) {
            out.push(b);
        } else if !c.is_control() {
            out.push(UNPRINTABLE);
        }
    }
    out
}

/// Characters of `text` that PC858 cannot print (ignoring control characters).
pub fn pc858_lacks(text: &str) -> Vec<char> {
    text.chars()
        .filter(|&c| !c.is_control() && pc858_byte(c).is_none())
        .collect()
}

/// The PC858 byte for `c`, if the page has it.
pub fn pc858_byte(c: char) -> Option<u8> {
    match c {
        ' '..='~' => Some(c as u8),
        '€' => Some(0xD5),
        'ı' => None, // PC858 gave 0xD5 (dotless i in PC850) to the euro
        _ => PC850_HIGH
            .iter()
            .position(|&h| h == c)
            .and_then(|i| u8::try_from(0x80 + i).ok()),
    }
}

/// Whether the virtual printer knows code page `page` (an `ESC t n` value).
pub fn is_known(page: u8) -> bool {
    matches!(
        page,
        PAGE_PC437 | PAGE_PC850 | PAGE_WPC1252 | PAGE_PC858 | PAGE_ISO8859_15
    )
}

/// Decodes one printable byte (0x20..=0xFF) in code page `page`; unknown pages decode as PC437,
/// which is what a printer does with a page it lacks.
pub fn decode(page: u8, byte: u8) -> char {
    if byte < 0x80 {
        return char::from(byte);
    }
    let high = usize::from(byte - 0x80);
    match page {
        PAGE_PC850 => PC850_HIGH[high],
        PAGE_PC858 if byte == 0xD5 => '€',
        PAGE_PC858 => PC850_HIGH[high],
        PAGE_WPC1252 if byte < 0xA0 => WPC1252_C1[high],
        PAGE_WPC1252 => char::from(byte),
        PAGE_ISO8859_15 => match byte {
            0xA4 => '€',
            0xA6 => 'Š',
            0xA8 => 'š',
            0xB4 => 'Ž',
            0xB8 => 'ž',
            0xBC => 'Œ',
            0xBD => 'œ',
            0xBE => 'Ÿ',
            _ => char::from(byte),
        },
        _ => PC437_HIGH[high],
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spanish_letters_and_signs_round_trip_through_pc858() {
        let text = "¿Año? ¡Sí! ñÑ áéíóú ÁÉÍÓÚ üÜ 5€ 1º 2ª";
        assert!(pc858_lacks(text).is_empty());
        let bytes = encode_pc858(text);
        assert_eq!(bytes.len(), text.chars().count());
        let back: String = bytes.iter().map(|&b| decode(PAGE_PC858, b)).collect();
        assert_eq!(back, text);
    }

    #[test]
    fn inverted_question_mark_is_0xa8_and_euro_is_0xd5() {
        assert_eq!(encode_pc858("¿€"), vec![0xA8, 0xD5]);
    }

    #[test]
    fn characters_outside_the_page_become_question_marks() {
        assert_eq!(encode_pc858("a→b"), b"a?b".to_vec());
        assert_eq!(pc858_lacks("a→b"), vec!['→']);
    }

    #[test]
    fn control_characters_are_dropped_so_labels_cannot_inject_commands() {
        assert_eq!(encode_pc858("a\x1b@b\n"), b"a@b".to_vec());
    }

    #[test]
    fn windows_1252_and_latin9_decode_the_euro() {
        assert_eq!(decode(PAGE_WPC1252, 0x80), '€');
        assert_eq!(decode(PAGE_ISO8859_15, 0xA4), '€');
        assert_eq!(decode(PAGE_WPC1252, 0xF1), 'ñ');
        assert_eq!(decode(PAGE_PC437, 0xA4), 'ñ');
    }
}
