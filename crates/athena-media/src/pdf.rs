//! First page of a PDF as PNG, rendered by Poppler's `pdftoppm` in a child process.
//!
//! A separate process keeps a hostile PDF's parser crashes and memory out of the server. It runs in the conversion
//! sandbox of `athena-convert` (one runner for every tool): killed with its process group at the deadline or when
//! the server dies, its output capped, its directory and files removed.

use std::ffi::OsStr;
use std::io::Read;
use std::path::Path;
use std::time::Duration;

use athena_convert::sandbox::{ExitKind, Sandbox, SandboxCommand, SandboxError, SandboxLimits, StdoutMode};

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

fn render_with_tool(tool: &OsStr, pdf: &Path, width_px: u32, timeout: Duration, tmp_dir: &Path) -> Result<Vec<u8>, MediaError> {
    if !PDF_WIDTH_RANGE.contains(&width_px) {
        return Err(MediaError::InvalidArgument { message: format!("width {width_px} is outside {PDF_WIDTH_RANGE:?}") });
    }
    if !pdf.is_file() {
        return Err(MediaError::RenderFailed { message: format!("{} is not a readable file", pdf.display()) });
    }
    // The sandbox directory (removed when `sandbox` drops, whatever happens) is the tool's working directory and
    // receives its one output file.
    let sandbox = Sandbox::create(tmp_dir).map_err(|e| MediaError::io("creating the render sandbox", sandbox_io(e)))?;
    let prefix = sandbox.path().join("page1");
    let max_height = width_px * MAX_ASPECT;
    let pdf = std::path::absolute(pdf).unwrap_or_else(|_| pdf.to_path_buf());
    let cmd = SandboxCommand::new(tool)
        .args(["-f", "1", "-l", "1", "-singlefile", "-png"])
        .args(["-scale-to-x", &width_px.to_string(), "-scale-to-y", "-1"])
        // Crop box in output pixels: bounds the raster even for absurd page shapes.
        .args(["-x", "0", "-y", "0", "-W", &width_px.to_string()])
        .args(["-H", &max_height.to_string()])
        .arg("--")
        .arg(&pdf)
        .arg(&prefix);
    let limits = SandboxLimits {
        wall_time: timeout,
        address_space_bytes: None,
        // With -singlefile, pdftoppm writes exactly `<prefix>.png`; a bigger one is refused below anyway.
        file_size_bytes: Some(MAX_PNG_BYTES + 1),
        stdout: StdoutMode::Tail(STDERR_KEEP),
        stderr_tail_bytes: STDERR_KEEP,
    };
    let out = sandbox.run_blocking(&cmd, &limits).map_err(|e| match e {
        SandboxError::NotFound { .. } => MediaError::ToolMissing { tool: PDFTOPPM },
        other => MediaError::io("running pdftoppm", sandbox_io(other)),
    })?;
    let stderr_text = String::from_utf8_lossy(&out.stderr).into_owned();
    match out.exit {
        ExitKind::Exited(0) => {}
        ExitKind::TimedOut => return Err(MediaError::RenderTimeout { after: timeout }),
        other => return Err(MediaError::RenderFailed { message: format!("pdftoppm ended with {other:?}: {}", summarise(&stderr_text)) }),
    }
    let file = std::fs::File::open(prefix.with_extension("png"))
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

fn sandbox_io(e: SandboxError) -> std::io::Error {
    match e {
        SandboxError::CreateDir { source, .. } | SandboxError::Spawn { source, .. } | SandboxError::Wait { source, .. } => source,
        other => std::io::Error::other(other.to_string()),
    }
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
