//! Finding and caching the font used for generated covers.

use std::collections::HashMap;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock};

use ab_glyph::{Font, FontVec};

/// Where generated covers get their font from.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum FontSource {
    /// A TrueType/OpenType file or collection (face 0 of a `.ttc` is used). If it cannot be
    /// loaded the standard system paths are tried instead, so a bad setting never costs a cover.
    Path(PathBuf),
}

/// Standard Debian/Ubuntu locations, Latin bold faces first (they look best for Latin titles);
/// the CJK faces after them are chosen when the text needs glyphs the Latin faces lack.
pub const SYSTEM_FONT_PATHS: &[&str] = &[
    "/usr/share/fonts/truetype/dejavu/DejaVuSans-Bold.ttf",
    "/usr/share/fonts/truetype/liberation2/LiberationSans-Bold.ttf",
    "/usr/share/fonts/truetype/liberation/LiberationSans-Bold.ttf",
    "/usr/share/fonts/truetype/wqy/wqy-microhei.ttc",
    "/usr/share/fonts/opentype/noto/NotoSansCJK-Bold.ttc",
    "/usr/share/fonts/opentype/noto/NotoSansCJK-Regular.ttc",
    "/usr/share/fonts/opentype/noto/NotoSerifCJK-Regular.ttc",
    "/usr/share/fonts/noto-cjk/NotoSansCJK-Regular.ttc",
    "/usr/share/fonts/truetype/wqy/wqy-zenhei.ttc",
    "/usr/share/fonts/truetype/droid/DroidSansFallbackFull.ttf",
    "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf",
];

/// Font files bigger than this are not read (the largest CJK collections are about 30 MB).
const MAX_FONT_BYTES: u64 = 64 * 1024 * 1024;

type Cache = Mutex<HashMap<PathBuf, Option<Arc<FontVec>>>>;

/// Parsed fonts by path, including failures, so each file is read and parsed once per process.
fn cache() -> &'static Cache {
    static CACHE: OnceLock<Cache> = OnceLock::new();
    CACHE.get_or_init(|| Mutex::new(HashMap::new()))
}

/// Loads (or returns the cached) face 0 of the font at `path`; `None` if missing or unparsable.
pub(crate) fn load(path: &Path) -> Option<Arc<FontVec>> {
    // A poisoned lock only means another thread panicked mid-insert; the map itself is still valid.
    let mut map = cache().lock().unwrap_or_else(|p| p.into_inner());
    if let Some(hit) = map.get(path) {
        return hit.clone();
    }
    let loaded = read_font(path).map(Arc::new);
    if loaded.is_none() {
        tracing::debug!(path = %path.display(), "font not usable");
    }
    map.insert(path.to_path_buf(), loaded.clone());
    loaded
}

fn read_font(path: &Path) -> Option<FontVec> {
    let file = std::fs::File::open(path).ok()?;
    let len = file.metadata().ok()?.len();
    if len > MAX_FONT_BYTES {
        return None;
    }
    let mut data = Vec::with_capacity(usize::try_from(len).ok()?);
    file.take(MAX_FONT_BYTES).read_to_end(&mut data).ok()?;
    FontVec::try_from_vec_and_index(data, 0).ok()
}

/// How many of the non-whitespace characters of `text` the font has glyphs for, and how many there are.
fn coverage(font: &FontVec, text: &str) -> (usize, usize) {
    let mut have = 0;
    let mut total = 0;
    for c in text.chars().filter(|c| !c.is_whitespace()) {
        total += 1;
        if font.glyph_id(c).0 != 0 {
            have += 1;
        }
    }
    (have, total)
}

/// Picks the font for `text`: the explicit one if it loads, else the first system font that
/// covers every character, else the system font that covers the most.
pub(crate) fn choose(source: Option<&FontSource>, text: &str) -> Option<Arc<FontVec>> {
    if let Some(FontSource::Path(path)) = source {
        if let Some(font) = load(path) {
            return Some(font);
        }
        tracing::warn!(path = %path.display(), "configured cover font not usable; trying system fonts");
    }
    let mut best: Option<(usize, Arc<FontVec>)> = None;
    for path in SYSTEM_FONT_PATHS {
        let Some(font) = load(Path::new(path)) else {
            continue;
        };
        let (have, total) = coverage(&font, text);
        if have == total {
            return Some(font);
        }
        if best.as_ref().is_none_or(|(n, _)| have > *n) {
            best = Some((have, font));
        }
    }
    best.map(|(_, f)| f)
}

#[cfg(test)]
mod tests {
    use super::*;

    const WQY: &str = "/usr/share/fonts/truetype/wqy/wqy-microhei.ttc";

    #[test]
    fn chinese_text_gets_a_font_with_real_glyphs() {
        if !Path::new(WQY).exists() {
            panic!("this machine should have fonts-wqy-microhei installed at {WQY}");
        }
        let font = choose(None, "论语 古文觀止").expect("a CJK font");
        assert_eq!(coverage(&font, "论语古文觀止"), (6, 6));
    }

    #[test]
    fn ttc_collections_load_face_zero() {
        let font = load(Path::new(WQY)).expect("wqy-microhei.ttc parses");
        assert_ne!(font.glyph_id('論').0, 0);
    }

    #[test]
    fn missing_explicit_path_falls_back_to_system_fonts() {
        let font = choose(Some(&FontSource::Path("/nonexistent/font.ttf".into())), "Moby Dick");
        assert!(font.is_some());
    }

    #[test]
    fn garbage_font_file_is_rejected_not_panicking() {
        let dir = std::env::temp_dir().join(format!("athena-media-font-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("bad.ttf");
        std::fs::write(&path, b"definitely not a font").unwrap();
        assert!(load(&path).is_none());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
