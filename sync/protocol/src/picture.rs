//! Whether a [`ContentImage`] is a real picture of the type it says, before anyone shows it: the
//! CRM refuses a campaign whose picture is not (naming the field), and a kiosk skips one.
//!
//! Decoded whole with the `image` crate's own decoders (png, zune-jpeg, image-webp), under
//! limits: at most [`MAX_PICTURE_SIDE`] pixels a side (read from the header before any pixel is
//! decoded) and [`MAX_DECODE_BYTES`] of memory; a JPEG must also end with its end-of-image
//! marker (its decoder pads a truncated scan). A truncated upload, a damaged file, a renamed
//! file or a picture wider than a 4K display is refused, saying why.

use std::io::Cursor;

use base64::Engine as _;

use crate::wire::{ContentImage, ImageMime, MAX_CONTENT_IMAGE_BYTES};

/// Largest picture side, in pixels: a 4K display's width.
pub const MAX_PICTURE_SIDE: u32 = 3_840;

/// Most memory a picture's decoding may take: a 3840x3840 RGBA picture is 56 MiB.
pub const MAX_DECODE_BYTES: u64 = 64 * 1024 * 1024;

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
        /// What is wrong, in words (the decoder's).
        reason: String,
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
    let not = |reason: String| PictureError::NotThatType {
        mime: image.mime.as_str(),
        reason,
    };
    if !image.mime.matches(&bytes) {
        return Err(not(
            "its first bytes are not that format's signature".to_owned()
        ));
    }
    let format = match image.mime {
        ImageMime::Png => ::image::ImageFormat::Png,
        ImageMime::Jpeg => ::image::ImageFormat::Jpeg,
        ImageMime::Webp => ::image::ImageFormat::WebP,
    };
    let reader = || {
        let mut r = ::image::ImageReader::with_format(Cursor::new(&bytes), format);
        let mut limits = ::image::Limits::default();
        limits.max_alloc = Some(MAX_DECODE_BYTES);
        r.limits(limits);
        r
    };
    let (width, height) = reader().into_dimensions().map_err(|e| not(e.to_string()))?;
    if width == 0 || height == 0 {
        return Err(not("it says it has no pixels".to_owned()));
    }
    if width > MAX_PICTURE_SIDE || height > MAX_PICTURE_SIDE {
        return Err(PictureError::TooLarge { width, height });
    }
    reader().decode().map_err(|e| not(e.to_string()))?;
    // The JPEG decoder fills a picture cut short with grey, as browsers show one: its end marker
    // says the file is whole.
    if image.mime == ImageMime::Jpeg && !bytes.ends_with(&[0xff, 0xd9]) {
        return Err(not(
            "it does not end with the end-of-image marker (truncated)".to_owned(),
        ));
    }
    Ok(CheckedPicture {
        bytes,
        width,
        height,
    })
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
        let err = |mime, bytes: &[u8]| check(&image(mime, bytes)).unwrap_err();
        assert_eq!(
            err(ImageMime::Jpeg, PNG).to_string(),
            "not a image/jpeg picture: its first bytes are not that format's signature"
        );
        for (mime, bytes) in [
            (ImageMime::Png, PNG),
            (ImageMime::Jpeg, JPEG),
            (ImageMime::Webp, WEBP),
            (ImageMime::Webp, WEBP_LOSSLESS),
        ] {
            let cut = &bytes[..bytes.len() * 2 / 3];
            assert!(
                matches!(err(mime, cut), PictureError::NotThatType { .. }),
                "{mime:?}: a truncated picture is refused"
            );
        }
        // A flipped byte in the PNG's pixel data: its checksum no longer matches.
        let mut damaged = PNG.to_vec();
        let last_data = damaged.len() - 20;
        damaged[last_data] ^= 0x55;
        assert!(matches!(
            err(ImageMime::Png, &damaged),
            PictureError::NotThatType { .. }
        ));
        let huge = [PNG, &vec![0; MAX_CONTENT_IMAGE_BYTES]].concat();
        assert!(
            err(ImageMime::Png, &huge)
                .to_string()
                .contains("at most 524288")
        );
        let not_base64 = ContentImage {
            data: "not base64!".into(),
            ..image(ImageMime::Png, PNG)
        };
        assert_eq!(check(&not_base64).unwrap_err(), PictureError::Base64);
        // A 5000-pixel-wide PNG (a few hundred bytes: one black row): refused from its header.
        let mut wide = Vec::new();
        ::image::GrayImage::new(5000, 1)
            .write_to(&mut Cursor::new(&mut wide), ::image::ImageFormat::Png)
            .unwrap();
        assert_eq!(
            err(ImageMime::Png, &wide),
            PictureError::TooLarge {
                width: 5000,
                height: 1
            }
        );
    }
}
