//! Image type and dimensions from the file header alone. Nothing is decoded, so a 30000×30000
//! "pixel bomb" costs no more than its first bytes.

/// Type and size of an image, as declared in its header.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ImageInfo {
    pub media_type: &'static str,
    pub width: u32,
    pub height: u32,
}

/// Reads PNG, JPEG, GIF or WebP dimensions from `bytes`; `None` for anything else or a header
/// too damaged to trust.
pub fn image_info(bytes: &[u8]) -> Option<ImageInfo> {
    let info = if bytes.starts_with(b"\x89PNG\r\n\x1a\n") {
        png(bytes)
    } else if bytes.starts_with(&[0xFF, 0xD8]) {
        jpeg(bytes)
    } else if bytes.starts_with(b"GIF87a") || bytes.starts_with(b"GIF89a") {
        gif(bytes)
    } else if bytes.len() >= 12 && &bytes[0..4] == b"RIFF" && &bytes[8..12] == b"WEBP" {
        webp(bytes)
    } else {
        None
    }?;
    (info.width > 0 && info.height > 0).then_some(info)
}

fn be16(b: &[u8], at: usize) -> Option<u32> {
    let s = b.get(at..at + 2)?;
    Some(u32::from(u16::from_be_bytes([s[0], s[1]])))
}

fn le16(b: &[u8], at: usize) -> Option<u32> {
    let s = b.get(at..at + 2)?;
    Some(u32::from(u16::from_le_bytes([s[0], s[1]])))
}

fn le24(b: &[u8], at: usize) -> Option<u32> {
    let s = b.get(at..at + 3)?;
    Some(u32::from(s[0]) | u32::from(s[1]) << 8 | u32::from(s[2]) << 16)
}

fn png(b: &[u8]) -> Option<ImageInfo> {
    if b.get(12..16)? != b"IHDR" {
        return None;
    }
    Some(ImageInfo { media_type: "image/png", width: crate::sniff::be_u32(b, 16)?, height: crate::sniff::be_u32(b, 20)? })
}

fn jpeg(b: &[u8]) -> Option<ImageInfo> {
    let mut i = 2;
    // Walk marker segments until a start-of-frame; bounded by the buffer, each step advances.
    while i + 4 <= b.len() {
        if b[i] != 0xFF {
            return None;
        }
        let marker = b[i + 1];
        if marker == 0xFF {
            i += 1; // fill byte
            continue;
        }
        if marker == 0xD8 || marker == 0x01 || (0xD0..=0xD7).contains(&marker) {
            i += 2; // markers without a length
            continue;
        }
        let len = be16(b, i + 2)? as usize;
        if len < 2 {
            return None;
        }
        let is_sof = (0xC0..=0xCF).contains(&marker) && !matches!(marker, 0xC4 | 0xC8 | 0xCC);
        if is_sof {
            return Some(ImageInfo { media_type: "image/jpeg", height: be16(b, i + 5)?, width: be16(b, i + 7)? });
        }
        if marker == 0xD9 || marker == 0xDA {
            return None; // end of image or scan data before any frame header
        }
        i += 2 + len;
    }
    None
}

fn gif(b: &[u8]) -> Option<ImageInfo> {
    Some(ImageInfo { media_type: "image/gif", width: le16(b, 6)?, height: le16(b, 8)? })
}

fn webp(b: &[u8]) -> Option<ImageInfo> {
    let (width, height) = match b.get(12..16)? {
        b"VP8 " => {
            // Lossy: after the 3-byte frame tag and the 9D 01 2A start code.
            if b.get(23..26)? != [0x9D, 0x01, 0x2A] {
                return None;
            }
            (le16(b, 26)? & 0x3FFF, le16(b, 28)? & 0x3FFF)
        }
        b"VP8L" => {
            if *b.get(20)? != 0x2F {
                return None;
            }
            let bits = u32::from_le_bytes(b.get(21..25)?.try_into().ok()?);
            ((bits & 0x3FFF) + 1, ((bits >> 14) & 0x3FFF) + 1)
        }
        b"VP8X" => (le24(b, 24)? + 1, le24(b, 27)? + 1),
        _ => return None,
    };
    Some(ImageInfo { media_type: "image/webp", width, height })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn png_header() {
        let mut b = b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR".to_vec();
        b.extend_from_slice(&30000u32.to_be_bytes());
        b.extend_from_slice(&20u32.to_be_bytes());
        let i = image_info(&b).unwrap();
        assert_eq!((i.media_type, i.width, i.height), ("image/png", 30000, 20));
    }

    #[test]
    fn jpeg_header() {
        // SOI, APP0 (len 4), SOF0 with height 300, width 200.
        let b = [0xFF, 0xD8, 0xFF, 0xE0, 0x00, 0x04, 0x00, 0x00, 0xFF, 0xC0, 0x00, 0x11, 0x08, 0x01, 0x2C, 0x00, 0xC8, 0x03];
        let i = image_info(&b).unwrap();
        assert_eq!((i.media_type, i.width, i.height), ("image/jpeg", 200, 300));
        assert!(image_info(&b[..12]).is_none());
    }

    #[test]
    fn gif_and_webp_headers() {
        let g = b"GIF89a\x10\x00\x20\x00";
        assert_eq!(image_info(g).unwrap().width, 16);
        let mut w = b"RIFF\0\0\0\0WEBPVP8X\x0a\0\0\0\0\0\0\0".to_vec();
        w.extend_from_slice(&[99, 0, 0, 49, 0, 0]);
        let i = image_info(&w).unwrap();
        assert_eq!((i.width, i.height), (100, 50));
        assert!(image_info(b"not an image").is_none());
    }
}
