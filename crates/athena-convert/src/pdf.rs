//! PDF text through Poppler's `pdftotext` / `pdfinfo`, run in a sandbox.

use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::error::{excerpt, ConvertError};
use crate::sandbox::{find_program, ExitKind, RunOutput, Sandbox, SandboxCommand, SandboxLimits, StdoutMode, DEFAULT_TAIL_BYTES};

/// pdftotext ends every page with a form feed.
const PAGE_BREAK: char = '\u{000C}';

#[derive(Debug, Clone)]
pub struct PdfLimits {
    pub timeout: Duration,
    pub address_space_bytes: u64,
    /// Total extracted text accepted; past this the extraction stops with `pdf_text_too_large`.
    pub max_text_bytes: usize,
}

impl Default for PdfLimits {
    fn default() -> Self {
        Self { timeout: Duration::from_secs(120), address_space_bytes: 1 << 30, max_text_bytes: 64 << 20 }
    }
}

/// Extracts the text of every page in reading order (not `-layout`) and calls `each(page_no, text)` for each page,
/// page numbers from 1, empty pages included so that numbers stay aligned with the PDF. Returns the page count.
pub async fn pdf_text_pages(
    pdf: &Path,
    work_parent: &Path,
    limits: &PdfLimits,
    mut each: impl FnMut(u32, String),
) -> Result<u32, ConvertError> {
    let pdf = absolute_input(pdf).await?;
    let sandbox = Sandbox::create(work_parent)?;
    let cmd = poppler_command("pdftotext")?.args(["-enc", "UTF-8", "-q"]).arg(&pdf).arg("-");
    let run_limits = SandboxLimits {
        wall_time: limits.timeout,
        address_space_bytes: Some(limits.address_space_bytes),
        file_size_bytes: Some(0),
        stdout: StdoutMode::Collect(limits.max_text_bytes),
        stderr_tail_bytes: DEFAULT_TAIL_BYTES,
    };
    let out = sandbox.run(&cmd, &run_limits).await?;
    check("pdftotext", &out, &sandbox, limits)?;
    let text = String::from_utf8_lossy(&out.stdout);
    let mut pages: Vec<&str> = text.split(PAGE_BREAK).collect();
    // The text ends with a form feed, so the last piece is what follows the last page.
    if pages.last().is_some_and(|rest| rest.trim().is_empty()) {
        pages.pop();
    }
    let mut count = 0u32;
    for page in pages {
        count += 1;
        each(count, page.to_string());
    }
    Ok(count)
}

/// Page count from `pdfinfo`.
pub async fn pdf_page_count(pdf: &Path, work_parent: &Path, limits: &PdfLimits) -> Result<u32, ConvertError> {
    let pdf = absolute_input(pdf).await?;
    let sandbox = Sandbox::create(work_parent)?;
    let cmd = poppler_command("pdfinfo")?.args(["-enc", "UTF-8"]).arg(&pdf);
    let run_limits = SandboxLimits {
        wall_time: limits.timeout,
        address_space_bytes: Some(limits.address_space_bytes),
        file_size_bytes: Some(0),
        stdout: StdoutMode::Collect(1 << 20),
        stderr_tail_bytes: DEFAULT_TAIL_BYTES,
    };
    let out = sandbox.run(&cmd, &run_limits).await?;
    check("pdfinfo", &out, &sandbox, limits)?;
    let info = String::from_utf8_lossy(&out.stdout);
    info.lines().find_map(|l| l.strip_prefix("Pages:")).and_then(|v| v.trim().parse().ok()).ok_or_else(|| ConvertError::ToolFailed {
        tool: "pdfinfo",
        status: "no page count".into(),
        detail: excerpt(&out.stdout, sandbox.path()),
    })
}

fn poppler_command(tool: &'static str) -> Result<SandboxCommand, ConvertError> {
    if find_program(OsStr::new(tool)).is_none() {
        return Err(ConvertError::PopplerMissing { tool });
    }
    Ok(SandboxCommand::new(tool))
}

/// The tools run with the sandbox as cwd, so the input is passed absolute; an absolute path also can never be read
/// as an option.
async fn absolute_input(pdf: &Path) -> Result<PathBuf, ConvertError> {
    let abs = tokio::fs::canonicalize(pdf).await.map_err(ConvertError::io("opening the PDF"))?;
    let meta = tokio::fs::metadata(&abs).await.map_err(ConvertError::io("opening the PDF"))?;
    if !meta.is_file() {
        return Err(ConvertError::Io {
            context: "opening the PDF",
            source: std::io::Error::new(std::io::ErrorKind::InvalidInput, "not a regular file"),
        });
    }
    Ok(abs)
}

fn check(tool: &'static str, out: &RunOutput, sandbox: &Sandbox, limits: &PdfLimits) -> Result<(), ConvertError> {
    match out.exit {
        ExitKind::Exited(0) => Ok(()),
        ExitKind::TimedOut => Err(ConvertError::Timeout { tool, secs: limits.timeout.as_secs() }),
        ExitKind::OutputLimit => Err(ConvertError::PdfTextTooLarge { limit: limits.max_text_bytes }),
        ExitKind::Exited(code) => Err(ConvertError::PdfUnreadable {
            tool,
            detail: excerpt(if out.stderr.is_empty() { &out.stdout } else { &out.stderr }, sandbox.path()),
            code,
        }),
        ExitKind::Signaled(sig) => {
            Err(ConvertError::ToolFailed { tool, status: format!("killed by signal {sig}"), detail: excerpt(&out.stderr, sandbox.path()) })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn missing_file_is_io_error() {
        let dir = std::env::temp_dir();
        let err = pdf_text_pages(Path::new("/nonexistent/x.pdf"), &dir, &PdfLimits::default(), |_, _| {}).await.unwrap_err();
        assert_eq!(err.reason_code(), "io_error");
    }
}
