//! First page of a PDF as PNG, rendered by Poppler's `pdftoppm` in a child process.
//!
//! A separate process keeps a hostile PDF's parser crashes and memory out of the server; the
//! child is killed at the deadline, its output is capped, and its files are removed.

use std::ffi::OsStr;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use wait_timeout::ChildExt;

use crate::MediaError;

/// Allowed output widths in pixels.
pub const PDF_WIDTH_RANGE: std::ops::RangeInclusive<u32> = 16..=4096;
/// Largest PNG read back; a 4096×12288 RGB page compresses far below this in practice.
pub const MAX_PNG_BYTES: u64 = 64 * 1024 * 1024;
/// Rendered pages are cropped to at most this many times their width in height, so a
/// degenerate page size (say 3 × 14400 pt) cannot make Poppler allocate gigabytes.
const MAX_ASPECT: u32 = 3;
/// How much of the tool's stderr is kept for the error message.
const STDERR_KEEP: usize = 2048;

const PDFTOPPM: &str = "pdftoppm";

/// Renders page 1 of `pdf` as a PNG `width_px` wide (height follows the page's aspect ratio,
/// cropped from the top at three times the width). The tool writes into `tmp_dir`; its file
/// is removed before returning, whatever happens. The child is killed after `timeout`.
pub fn pdf_first_page_png(pdf: &Path, width_px: u32, timeout: Duration, tmp_dir: &Path) -> Result<Vec<u8>, MediaError> {
    render_with_tool(OsStr::new(PDFTOPPM), pdf, width_px, timeout, tmp_dir)
}

/// Removes the output file when dropped, so early returns and timeouts leave nothing behind.
struct TempOutput(PathBuf);

impl Drop for TempOutput {
    fn drop(&mut self) {
        if let Err(e) = std::fs::remove_file(&self.0) {
            if e.kind() != std::io::ErrorKind::NotFound {
                tracing::warn!(path = %self.0.display(), error = %e, "could not remove render output");
            }
        }
    }
}

fn unique_prefix(tmp_dir: &Path) -> PathBuf {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.subsec_nanos()).unwrap_or(0);
    tmp_dir.join(format!("athena-page1-{}-{n}-{nanos}", std::process::id()))
}

fn render_with_tool(tool: &OsStr, pdf: &Path, width_px: u32, timeout: Duration, tmp_dir: &Path) -> Result<Vec<u8>, MediaError> {
    if !PDF_WIDTH_RANGE.contains(&width_px) {
        return Err(MediaError::InvalidArgument { message: format!("width {width_px} is outside {PDF_WIDTH_RANGE:?}") });
    }
    if !pdf.is_file() {
        return Err(MediaError::RenderFailed { message: format!("{} is not a readable file", pdf.display()) });
    }
    let prefix = unique_prefix(tmp_dir);
    // With -singlefile, pdftoppm writes exactly `<prefix>.png`.
    let output = TempOutput(prefix.with_extension("png"));
    let max_height = width_px * MAX_ASPECT;

    let mut child = Command::new(tool)
        .args(["-f", "1", "-l", "1", "-singlefile", "-png"])
        .args(["-scale-to-x", &width_px.to_string(), "-scale-to-y", "-1"])
        // Crop box in output pixels: bounds the raster even for absurd page shapes.
        .args(["-x", "0", "-y", "0", "-W", &width_px.to_string()])
        .args(["-H", &max_height.to_string()])
        .arg("--")
        .arg(pdf)
        .arg(&prefix)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| match e.kind() {
            std::io::ErrorKind::NotFound | std::io::ErrorKind::PermissionDenied => MediaError::ToolMissing { tool: PDFTOPPM },
            _ => MediaError::io("starting pdftoppm", e),
        })?;

    // Drain stderr on a thread: a child blocked on a full pipe would look like a timeout.
    let stderr = child.stderr.take();
    let stderr_reader = std::thread::spawn(move || {
        let mut kept = Vec::new();
        if let Some(mut s) = stderr {
            let mut buf = [0u8; 4096];
            while let Ok(n) = s.read(&mut buf) {
                if n == 0 {
                    break;
                }
                let room = STDERR_KEEP.saturating_sub(kept.len());
                kept.extend_from_slice(&buf[..n.min(room)]);
            }
        }
        String::from_utf8_lossy(&kept).into_owned()
    });

    let status = match child.wait_timeout(timeout) {
        Ok(Some(status)) => status,
        Ok(None) => {
            // Kill, then reap so no zombie is left; errors here mean it already exited. The
            // stderr thread is not joined: a grandchild could hold the pipe open, and the
            // thread ends by itself when the pipe closes.
            let _ = child.kill();
            let _ = child.wait();
            return Err(MediaError::RenderTimeout { after: timeout });
        }
        Err(e) => {
            let _ = child.kill();
            let _ = child.wait();
            return Err(MediaError::io("waiting for pdftoppm", e));
        }
    };
    let stderr_text = stderr_reader.join().unwrap_or_default();

    if !status.success() {
        return Err(MediaError::RenderFailed { message: format!("pdftoppm exited with {status}: {}", summarise(&stderr_text)) });
    }
    let file = std::fs::File::open(&output.0)
        .map_err(|_| MediaError::RenderFailed { message: format!("pdftoppm produced no page image: {}", summarise(&stderr_text)) })?;
    let len = file.metadata().map_err(|e| MediaError::io("reading render output", e))?.len();
    if len > MAX_PNG_BYTES {
        return Err(MediaError::RenderOutputTooLarge { max: MAX_PNG_BYTES });
    }
    let mut png = Vec::with_capacity(usize::try_from(len).unwrap_or(0));
    file.take(MAX_PNG_BYTES + 1).read_to_end(&mut png).map_err(|e| MediaError::io("reading render output", e))?;
    if png.len() as u64 > MAX_PNG_BYTES {
        return Err(MediaError::RenderOutputTooLarge { max: MAX_PNG_BYTES });
    }
    if !png.starts_with(b"\x89PNG\r\n\x1a\n") {
        return Err(MediaError::RenderFailed { message: "pdftoppm output is not a PNG".to_owned() });
    }
    Ok(png)
}

/// The first non-empty stderr lines on one line, for the error message.
fn summarise(stderr: &str) -> String {
    let joined: Vec<&str> = stderr.lines().map(str::trim).filter(|l| !l.is_empty()).take(3).collect();
    if joined.is_empty() {
        "no diagnostics".to_owned()
    } else {
        joined.join("; ")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scanned_en() -> std::path::PathBuf {
        std::env::var_os("ATHENA_CORPUS")
            .map(std::path::PathBuf::from)
            .into_iter()
            .chain([Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/corpus"), "/work/shared/corpus".into()])
            .find(|d| d.join("truth.json").is_file())
            .expect("the shared corpus")
            .join("pdf/scanned-en.pdf")
    }

    #[test]
    fn missing_tool_is_tool_missing() {
        let dir = std::env::temp_dir();
        let pdf = &scanned_en();
        let err = render_with_tool(OsStr::new("/nonexistent/pdftoppm-not-here"), pdf, 400, Duration::from_secs(5), &dir).unwrap_err();
        assert_eq!(err.reason_code(), "tool_missing");
    }

    #[test]
    fn slow_tool_is_killed_at_the_deadline() {
        // A script that ignores its arguments and hangs stands in for a renderer stuck on a
        // hostile file.
        let dir = tempfile::tempdir().unwrap();
        let script = dir.path().join("slow-tool.sh");
        std::fs::write(&script, "#!/bin/sh\nexec sleep 30\n").unwrap();
        let mut perms = std::fs::metadata(&script).unwrap().permissions();
        std::os::unix::fs::PermissionsExt::set_mode(&mut perms, 0o755);
        std::fs::set_permissions(&script, perms).unwrap();
        let pdf = &scanned_en();
        let started = std::time::Instant::now();
        let err = render_with_tool(script.as_os_str(), pdf, 400, Duration::from_millis(300), dir.path()).unwrap_err();
        assert_eq!(err.reason_code(), "render_timeout");
        assert!(started.elapsed() < Duration::from_secs(5));
        // Only the script is left: no output file survives the kill.
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
    }

    #[test]
    fn widths_outside_the_range_are_refused() {
        let err = pdf_first_page_png(&scanned_en(), 100_000, Duration::from_secs(5), &std::env::temp_dir()).unwrap_err();
        assert_eq!(err.reason_code(), "invalid_argument");
    }
}
