//! Covers drawn for books that have none: a colour derived from the title, a simple frame,
//! and the title and author set in the best available system font.

use ab_glyph::{point, Font, FontVec, PxScale, ScaleFont};

use crate::font::{self, FontSource};
use crate::{encode, MediaError};

/// Size of every generated cover.
pub const GENERATED_WIDTH: u32 = 400;
pub const GENERATED_HEIGHT: u32 = 600;

/// Text longer than this is cut before layout; it would end in an ellipsis anyway.
const MAX_TITLE_CHARS: usize = 300;
const MAX_AUTHOR_CHARS: usize = 120;

/// Where the title goes: x from `MARGIN` to `W - MARGIN`, y in `TITLE_TOP..TITLE_BOTTOM`.
const MARGIN: f32 = 40.0;
const TITLE_TOP: f32 = 70.0;
const TITLE_BOTTOM: f32 = 400.0;
const RULE_Y: u32 = 420;
const AUTHOR_TOP: f32 = 440.0;
const AUTHOR_BOTTOM: f32 = 540.0;

/// The result of [`generated_cover`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GeneratedCover {
    /// 400×600 lossy WebP (quality 80).
    pub webp: Vec<u8>,
    /// False when no usable font was found (or the title had no drawable characters): the cover
    /// then carries only its colour and geometric design. Worth a log line, never a failure.
    pub text_rendered: bool,
    /// The background colour chosen from the title (sRGB).
    pub background: [u8; 3],
}

/// Draws a 400×600 cover for a book without one. The background colour is a deterministic
/// function of the title. Titles are wrapped by word (Latin) or by character (CJK), centred,
/// and shrunk until they fit in at most six lines; what still does not fit ends in an ellipsis.
///
/// `font` of `None` searches [`crate::SYSTEM_FONT_PATHS`]. Missing fonts are not an error.
pub fn generated_cover(title: &str, author: Option<&str>, font: Option<&FontSource>) -> Result<GeneratedCover, MediaError> {
    let rendered = render(title, author, font);
    let webp = encode::webp_lossy(&rendered.canvas.pixels, GENERATED_WIDTH, GENERATED_HEIGHT, false)?;
    Ok(GeneratedCover { webp, text_rendered: rendered.text_rendered, background: rendered.background })
}

pub(crate) struct Rendered {
    pub(crate) canvas: Canvas,
    pub(crate) text_rendered: bool,
    pub(crate) background: [u8; 3],
}

pub(crate) fn render(title: &str, author: Option<&str>, source: Option<&FontSource>) -> Rendered {
    let title: String = clean(title, MAX_TITLE_CHARS);
    let author: String = author.map(|a| clean(a, MAX_AUTHOR_CHARS)).unwrap_or_default();
    let font = font::choose(source, &format!("{title} {author}"));
    render_with(&title, &author, font.as_deref())
}

fn render_with(title: &str, author: &str, font: Option<&FontVec>) -> Rendered {
    let hash = fnv1a(title.as_bytes());
    let background = background_colour(hash);
    let ink = [250, 247, 238];
    let accent = mix(background, ink, 0.4);

    let mut canvas = Canvas::new(GENERATED_WIDTH, GENERATED_HEIGHT, background);
    canvas.frame(16, 2, accent);
    canvas.fill_rect(170, RULE_Y, 60, 3, accent);

    let mut text_rendered = false;
    if let Some(font) = font {
        let title = drop_missing_glyphs(font, title);
        let author = drop_missing_glyphs(font, author);
        let title_block = TextBlock { top: TITLE_TOP, bottom: TITLE_BOTTOM, max_lines: 6, sizes: (18..=80).rev().step_by(2) };
        text_rendered = title_block.draw(&mut canvas, font, &title, ink) > 0;
        let author_block = TextBlock { top: AUTHOR_TOP, bottom: AUTHOR_BOTTOM, max_lines: 2, sizes: (16..=28).rev().step_by(2) };
        author_block.draw(&mut canvas, font, &author, accent_text(ink, background));
    }
    if !text_rendered {
        // No text: make the cover still look intentional — a ring and a disc in the title area.
        canvas.disc(200.0, 240.0, 110.0, accent);
        canvas.disc(200.0, 240.0, 96.0, background);
        canvas.disc(200.0, 240.0, 52.0, accent);
    }
    Rendered { canvas, text_rendered, background }
}

/// Collapses runs of whitespace (titles from metadata often contain newlines) and bounds length.
fn clean(text: &str, max_chars: usize) -> String {
    let mut out = String::new();
    for word in text.split_whitespace() {
        if !out.is_empty() {
            out.push(' ');
        }
        out.push_str(word);
    }
    out.chars().take(max_chars).collect()
}

/// Characters the font cannot draw would print as boxes ("tofu"); leave them out instead.
fn drop_missing_glyphs(font: &FontVec, text: &str) -> String {
    text.chars().filter(|&c| c == ' ' || font.glyph_id(c).0 != 0).collect()
}

fn accent_text(ink: [u8; 3], background: [u8; 3]) -> [u8; 3] {
    mix(background, ink, 0.82)
}

/// 64-bit FNV-1a: tiny, and unlike `DefaultHasher` guaranteed stable across Rust releases,
/// so a book keeps its colour after an upgrade.
fn fnv1a(bytes: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for &b in bytes {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h
}

/// Any hue, moderate saturation, dark enough that cream text always reads well.
fn background_colour(hash: u64) -> [u8; 3] {
    let hue = (hash % 360) as f32;
    let saturation = 0.35 + ((hash >> 16) % 21) as f32 / 100.0;
    let lightness = 0.26 + ((hash >> 32) % 13) as f32 / 100.0;
    hsl_to_rgb(hue, saturation, lightness)
}

fn hsl_to_rgb(h: f32, s: f32, l: f32) -> [u8; 3] {
    let c = (1.0 - (2.0 * l - 1.0).abs()) * s;
    let hp = h / 60.0;
    let x = c * (1.0 - (hp % 2.0 - 1.0).abs());
    let (r, g, b) = match hp as u32 {
        0 => (c, x, 0.0),
        1 => (x, c, 0.0),
        2 => (0.0, c, x),
        3 => (0.0, x, c),
        4 => (x, 0.0, c),
        _ => (c, 0.0, x),
    };
    let m = l - c / 2.0;
    let to8 = |v: f32| ((v + m) * 255.0).round().clamp(0.0, 255.0) as u8;
    [to8(r), to8(g), to8(b)]
}

fn mix(a: [u8; 3], b: [u8; 3], t: f32) -> [u8; 3] {
    let f = |x: u8, y: u8| (f32::from(x) + (f32::from(y) - f32::from(x)) * t).round() as u8;
    [f(a[0], b[0]), f(a[1], b[1]), f(a[2], b[2])]
}

/// A packed RGB8 image.
pub(crate) struct Canvas {
    pub(crate) width: u32,
    pub(crate) height: u32,
    pub(crate) pixels: Vec<u8>,
}

impl Canvas {
    fn new(width: u32, height: u32, colour: [u8; 3]) -> Self {
        let pixels = colour.iter().copied().cycle().take(width as usize * height as usize * 3).collect();
        Canvas { width, height, pixels }
    }

    #[cfg(test)]
    pub(crate) fn get(&self, x: u32, y: u32) -> [u8; 3] {
        let i = (y as usize * self.width as usize + x as usize) * 3;
        [self.pixels[i], self.pixels[i + 1], self.pixels[i + 2]]
    }

    /// Blends `colour` over the pixel with opacity `alpha` (0..=1); outside the canvas is ignored.
    fn blend(&mut self, x: i64, y: i64, colour: [u8; 3], alpha: f32) {
        if x < 0 || y < 0 || x >= i64::from(self.width) || y >= i64::from(self.height) {
            return;
        }
        let i = (y as usize * self.width as usize + x as usize) * 3;
        let a = alpha.clamp(0.0, 1.0);
        for (k, &c) in colour.iter().enumerate() {
            let old = f32::from(self.pixels[i + k]);
            self.pixels[i + k] = (old + (f32::from(c) - old) * a).round() as u8;
        }
    }

    fn fill_rect(&mut self, x: u32, y: u32, w: u32, h: u32, colour: [u8; 3]) {
        for yy in y..y.saturating_add(h) {
            for xx in x..x.saturating_add(w) {
                self.blend(i64::from(xx), i64::from(yy), colour, 1.0);
            }
        }
    }

    /// A rectangle outline `inset` pixels from the edges, `thickness` wide.
    fn frame(&mut self, inset: u32, thickness: u32, colour: [u8; 3]) {
        let (w, h) = (self.width, self.height);
        let inner_w = w - 2 * inset;
        let inner_h = h - 2 * inset;
        self.fill_rect(inset, inset, inner_w, thickness, colour);
        self.fill_rect(inset, h - inset - thickness, inner_w, thickness, colour);
        self.fill_rect(inset, inset, thickness, inner_h, colour);
        self.fill_rect(w - inset - thickness, inset, thickness, inner_h, colour);
    }

    /// A filled, anti-aliased disc.
    fn disc(&mut self, cx: f32, cy: f32, r: f32, colour: [u8; 3]) {
        let y0 = (cy - r - 1.0).floor() as i64;
        let y1 = (cy + r + 1.0).ceil() as i64;
        let x0 = (cx - r - 1.0).floor() as i64;
        let x1 = (cx + r + 1.0).ceil() as i64;
        for y in y0..=y1 {
            for x in x0..=x1 {
                let dx = x as f32 + 0.5 - cx;
                let dy = y as f32 + 0.5 - cy;
                let d = (dx * dx + dy * dy).sqrt();
                let cover = (r - d + 0.5).clamp(0.0, 1.0);
                if cover > 0.0 {
                    self.blend(x, y, colour, cover);
                }
            }
        }
    }
}

/// A vertical band of the cover into which text is wrapped, centred and shrunk to fit.
struct TextBlock<I> {
    top: f32,
    bottom: f32,
    max_lines: usize,
    /// Font sizes in pixels to try, largest first.
    sizes: I,
}

impl<I: Iterator<Item = u32>> TextBlock<I> {
    /// Draws `text` and returns how many glyphs were drawn.
    fn draw(self, canvas: &mut Canvas, font: &FontVec, text: &str, colour: [u8; 3]) -> usize {
        if text.trim().is_empty() {
            return 0;
        }
        let max_width = canvas.width as f32 - 2.0 * MARGIN;
        let height = self.bottom - self.top;
        let mut chosen = None;
        for size in self.sizes {
            let scaled = font.as_scaled(PxScale::from(size as f32));
            let line_height = line_height(&scaled);
            let (lines, broke_word) = wrap(&scaled, text, max_width);
            let fits_lines = (height / line_height).floor().max(1.0) as usize;
            let allowed = self.max_lines.min(fits_lines);
            // Splitting a word mid-way is a last resort: prefer a smaller size that avoids it.
            let fits = lines.len() <= allowed && !broke_word;
            chosen = Some((size, lines, allowed));
            if fits {
                break;
            }
        }
        let Some((size, mut lines, allowed)) = chosen else {
            return 0;
        };
        let scaled = font.as_scaled(PxScale::from(size as f32));
        if lines.len() > allowed {
            lines.truncate(allowed);
            if let Some(last) = lines.last_mut() {
                *last = with_ellipsis(&scaled, last, max_width);
            }
        }
        let line_height = line_height(&scaled);
        let block_height = line_height * lines.len() as f32;
        let mut baseline = self.top + (height - block_height) / 2.0 + scaled.ascent();
        let mut drawn = 0;
        for line in &lines {
            let width = measure(&scaled, line);
            let x = (canvas.width as f32 - width) / 2.0;
            drawn += draw_line(canvas, &scaled, line, x, baseline, colour);
            baseline += line_height;
        }
        drawn
    }
}

fn line_height<F: Font>(scaled: &ab_glyph::PxScaleFont<&F>) -> f32 {
    (scaled.ascent() - scaled.descent() + scaled.line_gap()).max(scaled.height()) * 1.08
}

/// Width of `text` in pixels, with kerning.
fn measure<F: Font>(scaled: &ab_glyph::PxScaleFont<&F>, text: &str) -> f32 {
    let mut width = 0.0;
    let mut prev = None;
    for c in text.chars() {
        let id = scaled.glyph_id(c);
        if let Some(p) = prev {
            width += scaled.kern(p, id);
        }
        width += scaled.h_advance(id);
        prev = Some(id);
    }
    width
}

fn draw_line<F: Font>(
    canvas: &mut Canvas,
    scaled: &ab_glyph::PxScaleFont<&F>,
    line: &str,
    x: f32,
    baseline: f32,
    colour: [u8; 3],
) -> usize {
    let mut caret = x;
    let mut prev = None;
    let mut drawn = 0;
    for c in line.chars() {
        let id = scaled.glyph_id(c);
        if let Some(p) = prev {
            caret += scaled.kern(p, id);
        }
        let glyph = id.with_scale_and_position(scaled.scale(), point(caret, baseline));
        caret += scaled.h_advance(id);
        prev = Some(id);
        if let Some(outlined) = scaled.font().outline_glyph(glyph) {
            let bounds = outlined.px_bounds();
            outlined.draw(|gx, gy, cover| {
                canvas.blend(bounds.min.x as i64 + i64::from(gx), bounds.min.y as i64 + i64::from(gy), colour, cover);
            });
            drawn += 1;
        }
    }
    drawn
}

/// Scripts written without spaces, where a line may break between any two characters.
fn is_cjk(c: char) -> bool {
    matches!(c as u32,
        0x1100..=0x11FF      // Hangul Jamo
        | 0x2E80..=0x2FFF    // radicals
        | 0x3000..=0x303F    // CJK punctuation
        | 0x3040..=0x30FF    // kana
        | 0x3100..=0x31FF    // bopomofo, kana extensions
        | 0x3400..=0x4DBF    // extension A
        | 0x4E00..=0x9FFF    // unified ideographs
        | 0xAC00..=0xD7AF    // Hangul syllables
        | 0xF900..=0xFAFF    // compatibility ideographs
        | 0xFE30..=0xFE4F    // compatibility forms
        | 0xFF00..=0xFFEF    // full-width forms
        | 0x20000..=0x3134F) // extensions B..G
}

/// Splits into break units: Latin words (with no spaces), single CJK characters, and spaces.
fn units(text: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let mut word_start: Option<usize> = None;
    for (i, c) in text.char_indices() {
        if c == ' ' || is_cjk(c) {
            if let Some(s) = word_start.take() {
                out.push(&text[s..i]);
            }
            out.push(&text[i..i + c.len_utf8()]);
        } else if word_start.is_none() {
            word_start = Some(i);
        }
    }
    if let Some(s) = word_start {
        out.push(&text[s..]);
    }
    out
}

/// Greedy line filling: Latin breaks at spaces, CJK between characters; a single word wider
/// than the line is broken between characters, which the second return value reports.
fn wrap<F: Font>(scaled: &ab_glyph::PxScaleFont<&F>, text: &str, max_width: f32) -> (Vec<String>, bool) {
    let mut lines: Vec<String> = Vec::new();
    let mut broke_word = false;
    let mut line = String::new();
    let mut pending_space = false;
    for unit in units(text) {
        if unit == " " {
            pending_space = !line.is_empty();
            continue;
        }
        let candidate = if pending_space { format!("{line} {unit}") } else { format!("{line}{unit}") };
        pending_space = false;
        if measure(scaled, &candidate) <= max_width {
            line = candidate;
            continue;
        }
        if !line.is_empty() {
            lines.push(std::mem::take(&mut line));
        }
        if measure(scaled, unit) <= max_width {
            line = unit.to_owned();
        } else {
            // Too wide on its own: break it by character.
            broke_word = true;
            for c in unit.chars() {
                line.push(c);
                if measure(scaled, &line) > max_width && line.chars().count() > 1 {
                    line.pop();
                    lines.push(std::mem::take(&mut line));
                    line.push(c);
                }
            }
        }
    }
    if !line.is_empty() {
        lines.push(line);
    }
    (lines, broke_word)
}

/// Shortens `line` until it plus an ellipsis fits in `max_width`.
fn with_ellipsis<F: Font>(scaled: &ab_glyph::PxScaleFont<&F>, line: &str, max_width: f32) -> String {
    let ellipsis = if scaled.glyph_id('…').0 != 0 { "…" } else { "..." };
    let mut text: String = line.trim_end().to_owned();
    loop {
        let candidate = format!("{text}{ellipsis}");
        if text.is_empty() || measure(scaled, &candidate) <= max_width {
            return candidate;
        }
        text.pop();
        let trimmed = text.trim_end().len();
        text.truncate(trimmed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text_mask(r: &Rendered) -> Vec<bool> {
        let mut mask = Vec::new();
        for y in TITLE_TOP as u32..TITLE_BOTTOM as u32 {
            for x in 0..GENERATED_WIDTH {
                let p = r.canvas.get(x, y);
                let d: u32 = (0..3).map(|k| p[k].abs_diff(r.background[k]) as u32).sum();
                mask.push(d > 90);
            }
        }
        mask
    }

    #[test]
    fn chinese_glyphs_are_real_not_tofu() {
        // Tofu boxes would look the same for any two titles of the same length; real glyphs differ.
        let a = render("论语", None, None);
        let b = render("孟子", None, None);
        assert!(a.text_rendered && b.text_rendered);
        let (ma, mb) = (text_mask(&a), text_mask(&b));
        let ink_a = ma.iter().filter(|&&m| m).count();
        let differing = ma.iter().zip(&mb).filter(|(x, y)| x != y).count();
        assert!(ink_a > 1000, "title ink pixels: {ink_a}");
        assert!(differing > 1000, "masks differ in only {differing} pixels");
    }

    #[test]
    fn long_latin_titles_wrap_by_word_within_six_lines() {
        let font = font::choose(None, "abc").expect("a system font");
        let scaled = font.as_scaled(PxScale::from(40.0));
        let (lines, broke) = wrap(&scaled, "The Life and Strange Surprizing Adventures of Robinson Crusoe", 320.0);
        assert!(lines.len() > 1 && !broke);
        for line in &lines {
            assert!(measure(&scaled, line) <= 320.0, "{line}");
            assert!(!line.starts_with(' ') && !line.ends_with(' '));
        }
        assert_eq!(lines.join(" "), "The Life and Strange Surprizing Adventures of Robinson Crusoe");
    }

    #[test]
    fn words_are_only_split_when_wider_than_a_line() {
        let font = font::choose(None, "abc").expect("a system font");
        let scaled = font.as_scaled(PxScale::from(40.0));
        let (lines, broke) = wrap(&scaled, "Pneumonoultramicroscopicsilicovolcanoconiosis", 320.0);
        assert!(broke && lines.len() > 1);
        assert!(lines.iter().all(|l| measure(&scaled, l) <= 320.0));
    }

    #[test]
    fn the_chosen_size_avoids_splitting_words() {
        // At the largest size "Moby-Dick;" is wider than a line; a smaller size keeps it whole.
        let font = font::choose(None, "Moby").expect("a system font");
        let mut canvas = Canvas::new(400, 600, [0, 0, 0]);
        let mut split_free = Canvas::new(400, 600, [0, 0, 0]);
        let block = |sizes: std::iter::StepBy<std::iter::Rev<std::ops::RangeInclusive<u32>>>| TextBlock {
            top: TITLE_TOP,
            bottom: TITLE_BOTTOM,
            max_lines: 6,
            sizes,
        };
        block((18..=80).rev().step_by(2)).draw(&mut canvas, &font, "Moby-Dick; or, The Whale", [255; 3]);
        let scaled = font.as_scaled(PxScale::from(80.0));
        assert!(measure(&scaled, "Moby-Dick;") > 320.0, "premise: too wide at 80 px");
        // Find the largest size that wraps without a split and draw at exactly that size.
        let size = (18..=80u32)
            .rev()
            .step_by(2)
            .find(|&s| !wrap(&font.as_scaled(PxScale::from(s as f32)), "Moby-Dick; or, The Whale", 320.0).1)
            .unwrap();
        block((size..=size).rev().step_by(2)).draw(&mut split_free, &font, "Moby-Dick; or, The Whale", [255; 3]);
        assert!(canvas.pixels == split_free.pixels);
    }

    #[test]
    fn cjk_wraps_by_character() {
        let font = font::choose(None, "古文觀止").expect("a CJK font");
        let scaled = font.as_scaled(PxScale::from(60.0));
        let text = "古文觀止古文觀止古文觀止";
        let (lines, broke) = wrap(&scaled, text, 320.0);
        assert!(lines.len() >= 2 && !broke);
        assert_eq!(lines.concat(), text);
    }

    #[test]
    fn overlong_titles_end_in_an_ellipsis() {
        let font = font::choose(None, "x").expect("a system font");
        let long = "word ".repeat(200);
        let mut canvas = Canvas::new(400, 600, [0, 0, 0]);
        let block = TextBlock { top: TITLE_TOP, bottom: TITLE_BOTTOM, max_lines: 6, sizes: (18..=60).rev().step_by(2) };
        let drawn = block.draw(&mut canvas, &font, long.trim(), [255, 255, 255]);
        assert!(drawn > 0);
        let scaled = font.as_scaled(PxScale::from(18.0));
        let last = with_ellipsis(&scaled, &"word ".repeat(30), 320.0);
        assert!(last.ends_with('…') || last.ends_with("..."));
        assert!(measure(&scaled, &last) <= 320.0);
    }

    #[test]
    fn colour_is_deterministic_and_title_dependent() {
        assert_eq!(background_colour(fnv1a(b"Moby Dick")), background_colour(fnv1a(b"Moby Dick")));
        assert_ne!(background_colour(fnv1a(b"Moby Dick")), background_colour(fnv1a(b"Emma")));
    }

    #[test]
    fn no_font_still_gives_a_designed_cover() {
        let r = render_with("Moby Dick", "Herman Melville", None);
        assert!(!r.text_rendered);
        assert_eq!(r.background, render("Moby Dick", None, None).background);
        // The fallback disc sits in the title area.
        assert_ne!(r.canvas.get(200, 240), r.background);
    }
}
