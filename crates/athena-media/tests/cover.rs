//! `cover_webp` on the real corpus covers and on the 30000×30000 image bomb.

mod common;

use std::path::Path;
use std::time::{Duration, Instant};

use athena_media::{cover_webp, MediaLimits};

fn decode_webp(bytes: &[u8]) -> image::DynamicImage {
    assert_eq!(&bytes[..4], b"RIFF");
    assert_eq!(&bytes[8..12], b"WEBP");
    image::load_from_memory_with_format(bytes, image::ImageFormat::WebP).expect("valid WebP")
}

#[test]
fn corpus_covers_become_400_wide_webp() {
    let covers = common::corpus_covers();
    // 3 zh books + the epub/ books that declare an image cover.
    assert!(covers.len() >= 9, "found only {} covers", covers.len());
    for (path, bytes) in covers {
        let original = image::load_from_memory(&bytes).expect("corpus cover decodes");
        let webp = cover_webp(&bytes, &MediaLimits::default()).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        let out = decode_webp(&webp);
        let expected_w = original.width().min(400);
        assert_eq!(out.width(), expected_w, "{}", path.display());
        let expected_h =
            (u64::from(original.height()) * u64::from(expected_w) + u64::from(original.width()) / 2) / u64::from(original.width());
        assert_eq!(u64::from(out.height()), expected_h.min(1200), "{}", path.display());
        // Lossy quality 80 on a ≤400×1200 picture is small; a lossless or unscaled output is not.
        assert!(webp.len() < 200_000, "{}: {} bytes", path.display(), webp.len());
    }
}

#[test]
fn a_large_real_cover_is_scaled_to_exactly_400() {
    let (name, bytes) = common::epub_cover(&common::corpus().join("epub/accessible_epub_3.epub")).expect("cover");
    let original = image::load_from_memory(&bytes).unwrap();
    assert!(original.width() > 400, "{name} should be a large cover");
    let out = decode_webp(&cover_webp(&bytes, &MediaLimits::default()).unwrap());
    assert_eq!(out.width(), 400);
}

#[test]
fn chinese_corpus_covers_convert() {
    for book in ["lunyu", "guwenguanzhi", "tangshi300"] {
        let path = common::corpus().join(format!("zh/{book}.epub"));
        let (_, bytes) = common::epub_cover(Path::new(&path)).expect("cover");
        let out = decode_webp(&cover_webp(&bytes, &MediaLimits::default()).unwrap());
        assert!(out.width() > 0 && out.width() <= 400);
    }
}

#[test]
fn image_bomb_is_refused_fast_before_decoding() {
    let (_, bytes) = common::epub_cover(&common::corpus().join("bad/image-bomb-cover.epub")).expect("bomb cover entry");
    let started = Instant::now();
    let err = cover_webp(&bytes, &MediaLimits::default()).unwrap_err();
    let elapsed = started.elapsed();
    assert_eq!(err.reason_code(), "image_too_large");
    assert!(err.to_string().contains("30000x30000"), "{err}");
    // Decoding 900 MP would take seconds and gigabytes; a header read takes microseconds.
    assert!(elapsed < Duration::from_millis(200), "took {elapsed:?}");
}

#[test]
fn pixel_limit_is_configurable() {
    let (_, bytes) = common::epub_cover(&common::corpus().join("zh/lunyu.epub")).unwrap();
    let limits = MediaLimits { max_pixels: 1000, ..MediaLimits::default() };
    assert_eq!(cover_webp(&bytes, &limits).unwrap_err().reason_code(), "image_too_large");
}

#[test]
fn oversized_input_is_refused() {
    let limits = MediaLimits { max_input_bytes: 10, ..MediaLimits::default() };
    let err = cover_webp(&[0u8; 11], &limits).unwrap_err();
    assert_eq!(err.reason_code(), "input_too_large");
}

#[test]
fn garbage_and_truncated_images_are_typed_errors() {
    let err = cover_webp(b"this is not an image at all", &MediaLimits::default()).unwrap_err();
    assert_eq!(err.reason_code(), "image_unsupported_format");

    let random = std::fs::read(common::corpus().join("bad/random-bytes.epub")).unwrap();
    let err = cover_webp(&random, &MediaLimits::default()).unwrap_err();
    assert_eq!(err.reason_code(), "image_unsupported_format");

    let (_, bytes) = common::epub_cover(&common::corpus().join("zh/lunyu.epub")).unwrap();
    let truncated = &bytes[..bytes.len() / 2];
    let err = cover_webp(truncated, &MediaLimits::default()).unwrap_err();
    assert_eq!(err.reason_code(), "image_decode_failed", "{err}");
}

#[test]
fn every_supported_input_format_is_accepted() {
    let (_, bytes) = common::epub_cover(&common::corpus().join("zh/lunyu.epub")).unwrap();
    let original = image::load_from_memory(&bytes).unwrap();
    for format in
        [image::ImageFormat::Png, image::ImageFormat::Jpeg, image::ImageFormat::Gif, image::ImageFormat::Bmp, image::ImageFormat::WebP]
    {
        let mut encoded = std::io::Cursor::new(Vec::new());
        image::DynamicImage::ImageRgb8(original.to_rgb8()).write_to(&mut encoded, format).unwrap();
        let out = decode_webp(&cover_webp(encoded.get_ref(), &MediaLimits::default()).unwrap());
        assert_eq!(out.width(), original.width().min(400), "{format:?}");
    }
}

#[test]
fn alpha_is_kept_and_tall_images_are_cropped() {
    let img = image::RgbaImage::from_pixel(800, 4000, image::Rgba([10, 200, 30, 128]));
    let mut png = std::io::Cursor::new(Vec::new());
    img.write_to(&mut png, image::ImageFormat::Png).unwrap();
    let out = decode_webp(&cover_webp(png.get_ref(), &MediaLimits::default()).unwrap());
    assert_eq!((out.width(), out.height()), (400, 1200));
    assert!(out.color().has_alpha());
}
