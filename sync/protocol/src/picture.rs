//! Whether a [`ContentImage`] is a real picture of the type it says, before anyone shows it: the
//! CRM refuses a campaign whose picture is not (naming the field), and a kiosk skips one.
//!
//! Checked without a decoder, from the file's own structure: PNG chunks walked to `IEND`, each
//! with its CRC-32; JPEG segments walked to the frame header (its size) and a scan that ends
//! with the end-of-image marker; WebP's RIFF length against the bytes and the size in its
//! `VP8 `, `VP8L` or `VP8X` chunk. A truncated upload, a renamed file or a picture wider than a
//! 4K display is refused; a picture that passes may still hold a damaged scan (the browser then
//! shows its alternative text).

use base64::Engine as _;

use crate::wire::{ContentImage, ImageMime, MAX_CONTENT_IMAGE_BYTES};

/// Largest picture side, in pixels: a 4K display's width.
pub const MAX_PICTURE_SIDE: u32 = 3_840;

/// A picture that passed [`check`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckedPicture {
    /// Its bytes, decoded from base64.
    pub bytes: Vec<u8>,
    /// Width, pixels.
    pub width: u32,
    /// Height, pixels.
    pub height: u32,
}

/// Why a picture was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PictureError {
    /// The data is not standard, padded base64.
    #[error("the picture is not base64 (standard alphabet, padded)")]
    Base64,
    /// Larger than [`MAX_CONTENT_IMAGE_BYTES`].
    #[error("the picture is {0} bytes, at most {MAX_CONTENT_IMAGE_BYTES}")]
    TooManyBytes(usize),
    /// Not a picture of its stated type.
    #[error("not a {mime} picture: {reason}")]
    NotThatType {
        /// The type it says it is.
        mime: &'static str,
        /// What is wrong, in words.
        reason: &'static str,
    },
    /// Wider or taller than [`MAX_PICTURE_SIDE`].
    #[error("the picture is {width}x{height} pixels, at most {MAX_PICTURE_SIDE} a side")]
    TooLarge {
        /// Width.
        width: u32,
        /// Height.
        height: u32,
    },
}

/// Decodes `image` and checks that it is a whole picture of its `mime`, at most
/// [`MAX_CONTENT_IMAGE_BYTES`] and [`MAX_PICTURE_SIDE`] pixels a side.
pub fn check(image: &ContentImage) -> Result<CheckedPicture, PictureError> {
    // The base64 text is at most 4/3 of the limit: refuse larger text before decoding it.
    if image.data.len() > MAX_CONTENT_IMAGE_BYTES.div_ceil(3) * 4 {
        return Err(PictureError::TooManyBytes(image.data.len() / 4 * 3));
    }
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(image.data.as_bytes())
        .map_err(|_| PictureError::Base64)?;
    if bytes.len() > MAX_CONTENT_IMAGE_BYTES {
        return Err(PictureError::TooManyBytes(bytes.len()));
    }
    let not = |reason: &'static str| PictureError::NotThatType {
        mime: image.mime.as_str(),
        reason,
    };
    if !image.mime.matches(&bytes) {
        return Err(not("its first bytes are not that format's signature"));
    }
    let (width, height) = match image.mime {
        ImageMime::Png => png_size(&bytes),
        ImageMime::Jpeg => jpeg_size(&bytes),
        ImageMime::Webp => webp_size(&bytes),
    }
    .map_err(not)?;
    if width == 0 || height == 0 {
        return Err(not("it says it has no pixels"));
    }
    if width > MAX_PICTURE_SIDE || height > MAX_PICTURE_SIDE {
        return Err(PictureError::TooLarge { width, height });
    }
    Ok(CheckedPicture {
        bytes,
        width,
        height,
    })
}

fn be32(b: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_be_bytes(b.get(at..at + 4)?.try_into().ok()?))
}

fn le32(b: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_le_bytes(b.get(at..at + 4)?.try_into().ok()?))
}

/// CRC-32 (ISO-HDLC, PNG's), bit by bit: pictures are checked once per save.
fn crc32(parts: &[&[u8]]) -> u32 {
    let mut crc = 0xffff_ffffu32;
    for part in parts {
        for &byte in *part {
            crc ^= u32::from(byte);
            for _ in 0..8 {
                crc = if crc & 1 == 1 {
                    (crc >> 1) ^ 0xedb8_8320
                } else {
                    crc >> 1
                };
            }
        }
    }
    !crc
}

/// A PNG's size from `IHDR`, once every chunk up to `IEND` is whole and its CRC matches.
fn png_size(b: &[u8]) -> Result<(u32, u32), &'static str> {
    const CUT: &str = "the file ends inside a chunk (truncated)";
    let mut at = 8;
    let mut size = None;
    let mut data = false;
    loop {
        let len = be32(b, at).ok_or(CUT)? as usize;
        let kind = b.get(at + 4..at + 8).ok_or(CUT)?;
        let body = b.get(at + 8..at + 8 + len).ok_or(CUT)?;
        let crc = be32(b, at + 8 + len).ok_or(CUT)?;
        if crc32(&[kind, body]) != crc {
            return Err("a chunk's checksum does not match (damaged)");
        }
        match (kind, size) {
            (b"IHDR", None) if len == 13 => {
                size = Some((be32(body, 0).ok_or(CUT)?, be32(body, 4).ok_or(CUT)?));
            }
            (_, None) => return Err("its first chunk is not a header"),
            (b"IDAT", Some(_)) => data = true,
            (b"IEND", Some(s)) if data => return Ok(s),
            (b"IEND", Some(_)) => return Err("it has no image data"),
            _ => {}
        }
        at += 12 + len;
    }
}

/// A JPEG's size from its frame header, once its segments are whole and a scan follows that
/// ends with the end-of-image marker.
fn jpeg_size(b: &[u8]) -> Result<(u32, u32), &'static str> {
    const CUT: &str = "the file ends inside a segment (truncated)";
    let mut at = 2;
    let mut size = None;
    loop {
        // Markers may be preceded by fill bytes (0xff).
        if b.get(at) != Some(&0xff) {
            return Err("a segment does not start with a marker (damaged)");
        }
        while b.get(at) == Some(&0xff) {
            at += 1;
        }
        let marker = *b.get(at).ok_or(CUT)?;
        at += 1;
        match marker {
            0x01 | 0xd0..=0xd7 => continue,
            0xd8 | 0xd9 => return Err("it ends before its picture data"),
            _ => {}
        }
        let len = usize::from(u16::from_be_bytes([
            *b.get(at).ok_or(CUT)?,
            *b.get(at + 1).ok_or(CUT)?,
        ]));
        let body = b.get(at + 2..at + len).ok_or(CUT)?;
        if len < 2 {
            return Err("a segment has an impossible length (damaged)");
        }
        // Start of frame (baseline, progressive, lossless...; not DHT, JPG, DAC).
        if matches!(marker, 0xc0..=0xcf) && !matches!(marker, 0xc4 | 0xc8 | 0xcc) {
            let h = u16::from_be_bytes([*body.get(1).ok_or(CUT)?, *body.get(2).ok_or(CUT)?]);
            let w = u16::from_be_bytes([*body.get(3).ok_or(CUT)?, *body.get(4).ok_or(CUT)?]);
            size = Some((u32::from(w), u32::from(h)));
        }
        at += len;
        if marker == 0xda {
            let size = size.ok_or("its picture data comes before its frame header")?;
            // The scan runs to the end-of-image marker; a few padding bytes may follow it.
            let tail = &b[at..];
            let end = tail.windows(2).rposition(|w| w == [0xff, 0xd9]);
            return match end {
                Some(i) if tail.len() - i - 2 <= 16 => Ok(size),
                _ => Err("it has no end-of-image marker (truncated)"),
            };
        }
    }
}

/// A WebP's size from its first chunk, once the RIFF length matches the bytes and every chunk
/// is whole.
fn webp_size(b: &[u8]) -> Result<(u32, u32), &'static str> {
    const CUT: &str = "the file is shorter than its header says (truncated)";
    let riff = le32(b, 4).ok_or(CUT)? as usize;
    if riff + 8 > b.len() {
        return Err(CUT);
    }
    if riff + 8 < b.len() {
        return Err("the file is longer than its header says");
    }
    let mut at = 12;
    let mut size = None;
    while at < b.len() {
        let kind = b.get(at..at + 4).ok_or(CUT)?;
        let len = le32(b, at + 4).ok_or(CUT)? as usize;
        let body = b.get(at + 8..at + 8 + len).ok_or(CUT)?;
        if at == 12 {
            size = Some(match kind {
                b"VP8 " => {
                    if body.get(3..6) != Some(&[0x9d, 0x01, 0x2a]) {
                        return Err("its frame has no start code (damaged)");
                    }
                    let w =
                        u16::from_le_bytes([*body.get(6).ok_or(CUT)?, *body.get(7).ok_or(CUT)?]);
                    let h =
                        u16::from_le_bytes([*body.get(8).ok_or(CUT)?, *body.get(9).ok_or(CUT)?]);
                    (u32::from(w & 0x3fff), u32::from(h & 0x3fff))
                }
                b"VP8L" => {
                    if body.first() != Some(&0x2f) {
                        return Err("its lossless frame has no signature (damaged)");
                    }
                    let bits = le32(body, 1).ok_or(CUT)?;
                    ((bits & 0x3fff) + 1, ((bits >> 14) & 0x3fff) + 1)
                }
                b"VP8X" => {
                    let three = |i: usize| -> Option<u32> {
                        let s = body.get(i..i + 3)?;
                        Some(u32::from_le_bytes([s[0], s[1], s[2], 0]) + 1)
                    };
                    (three(4).ok_or(CUT)?, three(7).ok_or(CUT)?)
                }
                _ => return Err("its first chunk is not a VP8, VP8L or VP8X frame"),
            });
        }
        // Chunks are padded to an even length.
        at += 8 + len + len % 2;
    }
    size.ok_or(CUT)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::Localized;

    const PNG: &[u8] = include_bytes!("testdata/pic.png");
    const JPEG: &[u8] = include_bytes!("testdata/pic.jpg");
    const WEBP: &[u8] = include_bytes!("testdata/pic.webp");
    const WEBP_LOSSLESS: &[u8] = include_bytes!("testdata/pic_lossless.webp");

    fn image(mime: ImageMime, bytes: &[u8]) -> ContentImage {
        ContentImage {
            mime,
            data: base64::engine::general_purpose::STANDARD.encode(bytes),
            alt: Localized::default(),
        }
    }

    #[test]
    fn real_pictures_of_each_type_pass_with_their_size() {
        for (mime, bytes) in [
            (ImageMime::Png, PNG),
            (ImageMime::Jpeg, JPEG),
            (ImageMime::Webp, WEBP),
            (ImageMime::Webp, WEBP_LOSSLESS),
        ] {
            let p = check(&image(mime, bytes)).unwrap_or_else(|e| panic!("{mime:?}: {e}"));
            assert_eq!((p.width, p.height), (64, 48), "{mime:?}");
            assert_eq!(p.bytes, bytes);
        }
    }

    #[test]
    fn renamed_truncated_damaged_or_huge_pictures_are_refused_saying_why() {
        let err = |mime, bytes: &[u8]| check(&image(mime, bytes)).unwrap_err().to_string();
        assert_eq!(
            err(ImageMime::Jpeg, PNG),
            "not a image/jpeg picture: its first bytes are not that format's signature"
        );
        for (mime, bytes) in [
            (ImageMime::Png, PNG),
            (ImageMime::Jpeg, JPEG),
            (ImageMime::Webp, WEBP),
        ] {
            let cut = &bytes[..bytes.len() * 2 / 3];
            let e = err(mime, cut);
            assert!(e.contains("truncated"), "{mime:?}: {e}");
        }
        let mut damaged = PNG.to_vec();
        let last_data = damaged.len() - 20;
        damaged[last_data] ^= 0x55;
        assert!(err(ImageMime::Png, &damaged).contains("checksum"));
        let huge = [PNG, &vec![0; MAX_CONTENT_IMAGE_BYTES]].concat();
        assert!(err(ImageMime::Png, &huge).contains("at most 524288"));
        let not_base64 = ContentImage {
            data: "not base64!".into(),
            ..image(ImageMime::Png, PNG)
        };
        assert_eq!(check(&not_base64).unwrap_err(), PictureError::Base64);
        // A 5000-pixel-wide PNG header (the checksum made to match).
        let mut wide = PNG.to_vec();
        wide[16..20].copy_from_slice(&5000u32.to_be_bytes());
        let crc = crc32(&[&wide[12..16], &wide[16..29]]);
        wide[29..33].copy_from_slice(&crc.to_be_bytes());
        assert_eq!(
            check(&image(ImageMime::Png, &wide)).unwrap_err(),
            PictureError::TooLarge {
                width: 5000,
                height: 48
            }
        );
    }

    #[test]
    fn the_checksum_is_pngs_crc32() {
        // The standard check value of CRC-32/ISO-HDLC.
        assert_eq!(crc32(&[b"1234", b"56789"]), 0xcbf4_3926);
    }
}
