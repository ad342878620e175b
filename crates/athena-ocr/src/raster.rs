//! Rasterising PDF pages with Poppler (`pdfinfo`, `pdftoppm`), one page per call, each call time-limited.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use crate::OcrError;

/// Renders single PDF pages to PNG files.
#[derive(Debug, Clone)]
pub struct Rasterizer {
    /// Resolution asked for; lowered for a page whose image would exceed `max_pixels`.
    pub dpi: u32,
    /// Limit for each `pdfinfo` / `pdftoppm` run; the tool is killed when it is reached.
    pub timeout: Duration,
    pub max_pixels: u64,
    pub pdftoppm: PathBuf,
    pub pdfinfo: PathBuf,
}

impl Default for Rasterizer {
    fn default() -> Self {
        Self {
            dpi: 300,
            timeout: Duration::from_secs(60),
            max_pixels: 60_000_000,
            pdftoppm: PathBuf::from("pdftoppm"),
            pdfinfo: PathBuf::from("pdfinfo"),
        }
    }
}

/// One rendered page.
#[derive(Debug, Clone, PartialEq)]
pub struct RasterPage {
    pub path: PathBuf,
    /// The resolution actually used.
    pub dpi: u32,
}

const MAX_INFO: u64 = 1024 * 1024;

impl Rasterizer {
    fn info(&self, pdf: &Path, page: Option<u32>) -> Result<String, OcrError> {
        let mut cmd = Command::new(&self.pdfinfo);
        if let Some(n) = page {
            cmd.args(["-f", &n.to_string(), "-l", &n.to_string()]);
        }
        cmd.arg(absolute(pdf));
        let out = crate::process::run(cmd, &std::env::temp_dir(), self.timeout, MAX_INFO).map_err(|e| match e {
            OcrError::ToolFailed { stderr, .. } => OcrError::BadPdf(stderr),
            other => other,
        })?;
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }

    /// Number of pages, from `pdfinfo`.
    pub fn page_count(&self, pdf: &Path) -> Result<u32, OcrError> {
        let info = self.info(pdf, None)?;
        info.lines()
            .find_map(|l| l.strip_prefix("Pages:").and_then(|v| v.trim().parse().ok()))
            .ok_or_else(|| OcrError::BadPdf("pdfinfo reported no page count".into()))
    }

    /// Renders page `page` (1-based) of `pdf` into `out_dir/page-<page>.png`.
    pub fn render_page(&self, pdf: &Path, page: u32, out_dir: &Path) -> Result<RasterPage, OcrError> {
        if page == 0 {
            return Err(OcrError::BadPdf("page numbers start at 1".into()));
        }
        let info = self.info(pdf, Some(page))?;
        let pages: u32 = info.lines().find_map(|l| l.strip_prefix("Pages:").and_then(|v| v.trim().parse().ok())).unwrap_or(0);
        if page > pages {
            return Err(OcrError::BadPdf(format!("page {page} requested, document has {pages}")));
        }
        let dpi = match page_size_pts(&info, page) {
            Some((w, h)) => fit_dpi(self.dpi, w, h, self.max_pixels),
            None => self.dpi,
        };
        let out_dir = absolute(out_dir);
        let prefix = out_dir.join(format!("page-{page}"));
        let mut cmd = Command::new(&self.pdftoppm);
        cmd.args(["-f", &page.to_string(), "-l", &page.to_string(), "-r", &dpi.to_string()])
            .args(["-png", "-singlefile"])
            .arg(absolute(pdf))
            .arg(&prefix);
        crate::process::run(cmd, &out_dir, self.timeout, MAX_INFO)?;
        let path = prefix.with_extension("png");
        if !path.is_file() {
            return Err(OcrError::BadPdf(format!("pdftoppm wrote no image for page {page}")));
        }
        Ok(RasterPage { path, dpi })
    }
}

/// Tools run with their sandbox as working directory, so relative paths are resolved here first.
fn absolute(path: &Path) -> PathBuf {
    std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf())
}

/// `Page    3 size: 595.276 x 841.89 pts (A4)` → (595.276, 841.89).
fn page_size_pts(info: &str, page: u32) -> Option<(f64, f64)> {
    let line = info.lines().find(|l| {
        let mut it = l.split_whitespace();
        it.next() == Some("Page") && it.next() == Some(&page.to_string()) && it.next() == Some("size:")
    })?;
    let rest = line.split_once("size:")?.1;
    let mut nums = rest.split_whitespace();
    let w: f64 = nums.next()?.parse().ok()?;
    nums.next()?;
    let h: f64 = nums.next()?.parse().ok()?;
    (w > 0.0 && h > 0.0 && w.is_finite() && h.is_finite()).then_some((w, h))
}

/// The highest resolution up to `dpi` at which a `w × h` pt page stays within `max_pixels`.
fn fit_dpi(dpi: u32, w_pt: f64, h_pt: f64, max_pixels: u64) -> u32 {
    let px = (w_pt * dpi as f64 / 72.0) * (h_pt * dpi as f64 / 72.0);
    if px <= max_pixels as f64 {
        return dpi;
    }
    ((dpi as f64 * (max_pixels as f64 / px).sqrt()).floor() as u32).max(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_page_size_and_fits_dpi() {
        let info = "Pages:          6\nPage    2 size: 595.276 x 841.89 pts (A4)\nPage    2 rot:  0\n";
        assert_eq!(page_size_pts(info, 2), Some((595.276, 841.89)));
        assert_eq!(page_size_pts(info, 1), None);
        assert_eq!(fit_dpi(300, 595.0, 842.0, 60_000_000), 300);
        // A 200-inch poster is rendered at a lower resolution.
        let dpi = fit_dpi(300, 14400.0, 14400.0, 60_000_000);
        assert!(dpi < 300 && (200.0 * dpi as f64).powi(2) <= 60_000_000.0);
    }
}
