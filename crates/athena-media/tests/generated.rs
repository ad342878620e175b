//! `generated_cover` through its public surface: decode the WebP and look at the pixels.

use athena_media::{generated_cover, FontSource, GeneratedCover};

fn decode(cover: &GeneratedCover) -> image::RgbImage {
    assert_eq!(&cover.webp[..4], b"RIFF");
    assert_eq!(&cover.webp[8..12], b"WEBP");
    image::load_from_memory_with_format(&cover.webp, image::ImageFormat::WebP).expect("valid WebP").to_rgb8()
}

fn distance(a: [u8; 3], b: [u8; 3]) -> u32 {
    (0..3).map(|k| u32::from(a[k].abs_diff(b[k]))).sum()
}

/// Pixels in the title band (y 70..400) that are clearly not background.
fn title_ink(img: &image::RgbImage, background: [u8; 3]) -> usize {
    let mut n = 0;
    for y in 70..400 {
        for x in 0..400 {
            if distance(img.get_pixel(x, y).0, background) > 120 {
                n += 1;
            }
        }
    }
    n
}

#[test]
fn chinese_title_renders_as_400x600_webp_with_text() {
    let cover = generated_cover("论语", Some("孔子"), None).unwrap();
    assert!(cover.text_rendered, "wqy-microhei is installed here; text must render");
    let img = decode(&cover);
    assert_eq!(img.dimensions(), (400, 600));
    // A margin pixel shows the background (lossy encoding moves it by a few levels at most).
    assert!(distance(img.get_pixel(8, 300).0, cover.background) < 12);
    assert!(title_ink(&img, cover.background) > 2000);
}

#[test]
fn english_title_renders_as_400x600_webp_with_text() {
    let cover =
        generated_cover("The Life and Strange Surprizing Adventures of Robinson Crusoe, of York, Mariner", Some("Daniel Defoe"), None)
            .unwrap();
    assert!(cover.text_rendered);
    let img = decode(&cover);
    assert_eq!(img.dimensions(), (400, 600));
    assert!(title_ink(&img, cover.background) > 2000);
    // The author line is drawn below the rule.
    let mut author_ink = 0;
    for y in 440..540 {
        for x in 0..400 {
            if distance(img.get_pixel(x, y).0, cover.background) > 120 {
                author_ink += 1;
            }
        }
    }
    assert!(author_ink > 200, "author ink {author_ink}");
}

#[test]
fn different_titles_get_different_colours_and_same_title_the_same() {
    let a = generated_cover("Moby-Dick", None, None).unwrap();
    let b = generated_cover("Pride and Prejudice", None, None).unwrap();
    let a2 = generated_cover("Moby-Dick", Some("Herman Melville"), None).unwrap();
    assert_ne!(a.background, b.background);
    assert_eq!(a.background, a2.background);
    let (ia, ib) = (decode(&a), decode(&b));
    assert!(distance(ia.get_pixel(8, 300).0, ib.get_pixel(8, 300).0) > 20);
}

#[test]
fn explicit_font_path_is_used_and_a_bad_one_never_fails() {
    let wqy = FontSource::Path("/usr/share/fonts/truetype/wqy/wqy-microhei.ttc".into());
    let cover = generated_cover("唐詩三百首", None, Some(&wqy)).unwrap();
    assert!(cover.text_rendered);

    let missing = FontSource::Path("/nonexistent/font.ttf".into());
    let cover = generated_cover("古文觀止", Some("吳楚材"), Some(&missing)).unwrap();
    assert_eq!(decode(&cover).dimensions(), (400, 600));
}

#[test]
fn hostile_titles_are_bounded() {
    let huge = "字".repeat(1_000_000);
    let started = std::time::Instant::now();
    let cover = generated_cover(&huge, Some(&"x".repeat(100_000)), None).unwrap();
    assert_eq!(decode(&cover).dimensions(), (400, 600));
    assert!(started.elapsed() < std::time::Duration::from_secs(5));
    let empty = generated_cover("   \n\t ", None, None).unwrap();
    assert!(!empty.text_rendered);
    assert_eq!(decode(&empty).dimensions(), (400, 600));
}
