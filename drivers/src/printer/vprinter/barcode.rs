//! Bar patterns for the 1D symbologies `GS k` prints: EAN-13, EAN-8, UPC-A, ITF and CODE128.
//! Each encoder returns module widths alternating bar, space, bar, ... starting with a bar, or a
//! reason the data cannot be encoded (a real printer prints nothing then).

/// EAN/UPC left-hand odd (L) patterns, as 7 modules, 1 = bar.
const EAN_L: [u8; 10] = [0x0D, 0x19, 0x13, 0x3D, 0x23, 0x31, 0x2F, 0x3B, 0x37, 0x0B];
/// Parity of the six left digits of an EAN-13 for each first digit (bit 5 = first, 1 = even/G).
const EAN_PARITY: [u8; 10] = [0x00, 0x0B, 0x0D, 0x0E, 0x13, 0x19, 0x1C, 0x15, 0x16, 0x1A];

/// The EAN check digit of `digits` (all but the check digit).
pub fn ean_check(digits: &[u8]) -> u8 {
    let sum: u32 = digits
        .iter()
        .rev()
        .enumerate()
        .map(|(i, &d)| {
            if i % 2 == 0 {
                3 * u32::from(d)
            } else {
                u32::from(d)
            }
        })
        .sum();
    // The result is in 0..=9.
    ((10 - sum % 10) % 10) as u8
}

fn digits_of(data: &[u8]) -> Option<Vec<u8>> {
    data.iter()
        .map(|&b| b.is_ascii_digit().then(|| b - b'0'))
        .collect()
}

/// Turns a string of module bits into run widths starting with a bar.
fn runs(bits: &[bool]) -> Vec<u8> {
    let mut out = Vec::new();
    let mut current = true;
    let mut n = 0u8;
    for &b in bits {
        if b == current {
            n += 1;
        } else {
            out.push(n);
            current = b;
            n = 1;
        }
    }
    out.push(n);
    out
}

fn push_pattern(bits: &mut Vec<bool>, pattern: u8, invert: bool, reverse: bool) {
    let mut seven: Vec<bool> = (0..7).rev().map(|i| (pattern >> i) & 1 == 1).collect();
    if reverse {
        seven.reverse();
    }
    bits.extend(seven.into_iter().map(|b| b != invert));
}

/// EAN-13 from 12 or 13 digits; returns the widths and the 13 digits (check digit recomputed).
pub fn ean13(data: &[u8]) -> Result<(Vec<u8>, String), String> {
    let d = digits_of(data).ok_or("EAN-13 data must be digits")?;
    if d.len() != 12 && d.len() != 13 {
        return Err(format!("EAN-13 needs 12 or 13 digits, got {}", d.len()));
    }
    let mut d = d[..12].to_vec();
    d.push(ean_check(&d));
    let mut bits = vec![true, false, true];
    let parity = EAN_PARITY[usize::from(d[0])];
    for (i, &digit) in d[1..7].iter().enumerate() {
        let even = (parity >> (5 - i)) & 1 == 1;
        // G pattern = R pattern reversed; R = L inverted.
        push_pattern(&mut bits, EAN_L[usize::from(digit)], even, even);
    }
    bits.extend([false, true, false, true, false]);
    for &digit in &d[7..13] {
        push_pattern(&mut bits, EAN_L[usize::from(digit)], true, false);
    }
    bits.extend([true, false, true]);
    Ok((
        runs(&bits),
        d.iter().map(|v| char::from(b'0' + v)).collect(),
    ))
}

/// UPC-A from 11 or 12 digits (an EAN-13 with a leading 0).
pub fn upca(data: &[u8]) -> Result<(Vec<u8>, String), String> {
    if data.len() != 11 && data.len() != 12 {
        return Err(format!("UPC-A needs 11 or 12 digits, got {}", data.len()));
    }
    let mut padded = vec![b'0'];
    padded.extend_from_slice(&data[..11]);
    let (widths, text) = ean13(&padded)?;
    Ok((widths, text[1..].to_owned()))
}

/// EAN-8 from 7 or 8 digits.
pub fn ean8(data: &[u8]) -> Result<(Vec<u8>, String), String> {
    let d = digits_of(data).ok_or("EAN-8 data must be digits")?;
    if d.len() != 7 && d.len() != 8 {
        return Err(format!("EAN-8 needs 7 or 8 digits, got {}", d.len()));
    }
    let mut d = d[..7].to_vec();
    d.push(ean_check(&d));
    let mut bits = vec![true, false, true];
    for &digit in &d[..4] {
        push_pattern(&mut bits, EAN_L[usize::from(digit)], false, false);
    }
    bits.extend([false, true, false, true, false]);
    for &digit in &d[4..] {
        push_pattern(&mut bits, EAN_L[usize::from(digit)], true, false);
    }
    bits.extend([true, false, true]);
    Ok((
        runs(&bits),
        d.iter().map(|v| char::from(b'0' + v)).collect(),
    ))
}

/// Interleaved 2 of 5 (an even number of digits), wide = 3 modules.
pub fn itf(data: &[u8]) -> Result<(Vec<u8>, String), String> {
    const WIDE: [u8; 10] = [
        0b00110, 0b10001, 0b01001, 0b11000, 0b00101, 0b10100, 0b01100, 0b00011, 0b10010, 0b01010,
    ];
    let d = digits_of(data).ok_or("ITF data must be digits")?;
    if d.is_empty() || d.len() % 2 != 0 {
        return Err("ITF needs an even number of digits".to_owned());
    }
    let mut w = vec![1, 1, 1, 1];
    for pair in d.chunks(2) {
        for i in (0..5).rev() {
            for &digit in pair {
                w.push(if (WIDE[usize::from(digit)] >> i) & 1 == 1 {
                    3
                } else {
                    1
                });
            }
        }
    }
    w.extend([3, 1, 1]);
    Ok((w, String::from_utf8_lossy(data).into_owned()))
}

/// CODE128 symbol patterns (values 0..=105) as six run widths; the stop symbol is separate.
const CODE128: [&[u8; 6]; 106] = [
    b"212222", b"222122", b"222221", b"121223", b"121322", b"131222", b"122213", b"122312",
    b"132212", b"221213", b"221312", b"231212", b"112232", b"122132", b"122231", b"113222",
    b"123122", b"123221", b"223211", b"221132", b"221231", b"213212", b"223112", b"312131",
    b"311222", b"321122", b"321221", b"312212", b"322112", b"322211", b"212123", b"212321",
    b"232121", b"111323", b"131123", b"131321", b"112313", b"132113", b"132311", b"211313",
    b"231113", b"231311", b"112133", b"112331", b"132131", b"113123", b"113321", b"133121",
    b"313121", b"211331", b"231131", b"213113", b"213311", b"213131", b"311123", b"311321",
    b"331121", b"312113", b"312311", b"332111", b"314111", b"221411", b"431111", b"111224",
    b"111422", b"121124", b"121421", b"141122", b"141221", b"112214", b"112412", b"122114",
    b"122411", b"142112", b"142211", b"241211", b"221114", b"413111", b"241112", b"134111",
    b"111242", b"121142", b"121241", b"114212", b"124112", b"124211", b"411212", b"421112",
    b"421211", b"212141", b"214121", b"412121", b"111143", b"111341", b"131141", b"114113",
    b"114311", b"411113", b"411311", b"113141", b"114131", b"311141", b"411131", b"211412",
    b"211214", b"211232",
];
const CODE128_STOP: &[u8; 7] = b"2331112";

/// CODE128 as ESC/POS sends it: the data starts with `{A`, `{B` or `{C` (code set), `{` escapes
/// follow the Epson convention (`{A/{B/{C` switch set, `{{` is a literal `{`, `{1` is FNC1).
/// Returns widths and the human-readable text.
pub fn code128(data: &[u8]) -> Result<(Vec<u8>, String), String> {
    let mut values: Vec<u8> = Vec::new();
    let mut text = String::new();
    let mut set = 0u8;
    let mut i = 0;
    while i < data.len() {
        let b = data[i];
        if b == b'{' {
            let next = *data.get(i + 1).ok_or("CODE128 data ends after '{'")?;
            i += 2;
            let switch = match next {
                b'A' => Some(b'A'),
                b'B' => Some(b'B'),
                b'C' => Some(b'C'),
                _ => None,
            };
            if let Some(s) = switch {
                values.push(match (set, s) {
                    (0, b'A') => 103,
                    (0, b'B') => 104,
                    (0, _) => 105,
                    (_, b'A') => 101,
                    (_, b'B') => 100,
                    _ => 99,
                });
                set = s;
                continue;
            }
            if set == 0 {
                return Err("CODE128 data must start with {A, {B or {C".to_owned());
            }
            match next {
                b'{' => push_char(set, b'{', &mut values, &mut text)?,
                b'1' => values.push(102),
                b'S' => values.push(98),
                b'2' => values.push(97),
                b'3' => values.push(96),
                b'4' => values.push(if set == b'A' { 101 } else { 100 }),
                _ => return Err(format!("unknown CODE128 escape {{{}", char::from(next))),
            }
            continue;
        }
        if set == 0 {
            return Err("CODE128 data must start with {A, {B or {C".to_owned());
        }
        if set == b'C' {
            // Code set C: each data byte is a value 0..=99 (Epson sends binary pairs).
            if b > 99 {
                return Err(format!("CODE128 set C value {b} is over 99"));
            }
            values.push(b);
            text.push_str(&format!("{b:02}"));
        } else {
            push_char(set, b, &mut values, &mut text)?;
        }
        i += 1;
    }
    if values.len() < 2 {
        return Err("CODE128 has no data".to_owned());
    }
    let check = values.iter().enumerate().fold(0u32, |acc, (pos, &v)| {
        acc + u32::from(v) * (pos.max(1) as u32)
    }) % 103;
    // check < 103.
    values.push(check as u8);
    let mut widths = Vec::with_capacity(values.len() * 6 + 7);
    for v in values {
        widths.extend(CODE128[usize::from(v)].iter().map(|c| c - b'0'));
    }
    widths.extend(CODE128_STOP.iter().map(|c| c - b'0'));
    Ok((widths, text))
}

fn push_char(set: u8, b: u8, values: &mut Vec<u8>, text: &mut String) -> Result<(), String> {
    let v = match set {
        b'A' if b < 0x20 => b + 64,
        b'A' if b < 0x60 => b - 0x20,
        b'B' if (0x20..0x80).contains(&b) => b - 0x20,
        _ => {
            return Err(format!(
                "byte {b:#04x} is not in CODE128 set {}",
                char::from(set)
            ));
        }
    };
    values.push(v);
    if b >= 0x20 {
        text.push(char::from(b));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_code128_symbol_is_eleven_modules_wide() {
        for p in CODE128 {
            assert_eq!(p.iter().map(|c| u32::from(c - b'0')).sum::<u32>(), 11);
        }
    }

    #[test]
    fn ean13_is_95_modules_and_recomputes_the_check_digit() {
        let (w, text) = ean13(b"400638133393").unwrap();
        assert_eq!(w.iter().map(|&v| u32::from(v)).sum::<u32>(), 95);
        assert_eq!(text, "4006381333931");
    }

    #[test]
    fn ean8_is_67_modules() {
        let (w, text) = ean8(b"9638507").unwrap();
        assert_eq!(w.iter().map(|&v| u32::from(v)).sum::<u32>(), 67);
        assert_eq!(text, "96385074");
    }

    #[test]
    fn code128_needs_a_code_set() {
        assert!(code128(b"ABC").is_err());
        assert_eq!(code128(b"{BKiosk-1").unwrap().1, "Kiosk-1");
    }
}
