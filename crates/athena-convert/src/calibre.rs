//! E-book → EPUB through Calibre's `ebook-convert` (and LibreOffice first for legacy `.doc`).

use std::ffi::OsStr;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::time::Duration;

use athena_domain::BookFormat;

use crate::error::{excerpt, ConvertError};
use crate::sandbox::{find_program, ExitKind, RunOutput, Sandbox, SandboxCommand, SandboxLimits, StdoutMode, DEFAULT_TAIL_BYTES};

const EBOOK_CONVERT: &str = "ebook-convert";
const EPUB_MIMETYPE: &[u8] = b"application/epub+zip";

/// Bounds for one conversion.
#[derive(Debug, Clone)]
pub struct ConvertLimits {
    /// Wall-clock limit for the whole conversion (LibreOffice and Calibre together for DOC).
    pub timeout: Duration,
    /// Address-space limit per tool process. Calibre's EPUB pipeline does not start QtWebEngine, so it needs far less
    /// virtual memory than a browser: the corpus converts under 512 MiB, and at 200 MiB Qt cannot create threads.
    /// 2 GiB leaves room for big books with images.
    pub address_space_bytes: u64,
    /// Largest input accepted (checked before anything runs).
    pub max_input_bytes: u64,
    /// Largest single file a tool may write (`prlimit --fsize`); bounds disk use by a runaway conversion.
    pub max_output_bytes: u64,
}

impl Default for ConvertLimits {
    fn default() -> Self {
        Self { timeout: Duration::from_secs(5 * 60), address_space_bytes: 2 << 30, max_input_bytes: 512 << 20, max_output_bytes: 1 << 30 }
    }
}

/// A converted EPUB inside its own sandbox directory; dropping this removes the file and the directory.
#[derive(Debug)]
pub struct ConvertedEpub {
    sandbox: Sandbox,
    epub: PathBuf,
    size: u64,
    elapsed: Duration,
}

impl ConvertedEpub {
    pub fn path(&self) -> &Path {
        &self.epub
    }

    pub fn size_bytes(&self) -> u64 {
        self.size
    }

    /// Time spent in the external tools.
    pub fn elapsed(&self) -> Duration {
        self.elapsed
    }

    /// The directory that will be removed on drop (for diagnostics and tests).
    pub fn work_dir(&self) -> &Path {
        self.sandbox.path()
    }
}

/// Whether `ebook-convert` is on PATH (cheap; for health checks).
pub fn calibre_available() -> bool {
    find_program(OsStr::new(EBOOK_CONVERT)).is_some()
}

/// Whether LibreOffice (`soffice` or `libreoffice`) is on PATH; needed only for DOC.
pub fn libreoffice_available() -> bool {
    libreoffice_program().is_some()
}

fn libreoffice_program() -> Option<PathBuf> {
    ["soffice", "libreoffice"].into_iter().find_map(|p| find_program(OsStr::new(p)))
}

/// Calibre's version, e.g. `"6.13.0"`, by running `ebook-convert --version` in a sandbox under `work_parent`.
pub async fn calibre_version(work_parent: &Path) -> Result<String, ConvertError> {
    if !calibre_available() {
        return Err(ConvertError::CalibreMissing);
    }
    let sandbox = Sandbox::create(work_parent)?;
    let limits = SandboxLimits { wall_time: Duration::from_secs(30), ..SandboxLimits::default() };
    let out = sandbox.run(&calibre_command().arg("--version"), &limits).await?;
    let text = String::from_utf8_lossy(&out.stdout);
    // "ebook-convert (calibre 6.13.0)"
    text.split("calibre ")
        .nth(1)
        .and_then(|rest| rest.split(|c: char| c == ')' || c.is_whitespace()).next())
        .filter(|v| !v.is_empty())
        .map(str::to_string)
        .ok_or_else(|| tool_failure("ebook-convert", &out, sandbox.path()))
}

/// Converts `input` (of `input_format`) to EPUB in a fresh sandbox under `work_parent`.
pub async fn ebook_convert(
    input: &Path,
    input_format: BookFormat,
    work_parent: &Path,
    limits: &ConvertLimits,
) -> Result<ConvertedEpub, ConvertError> {
    if matches!(input_format, BookFormat::Epub | BookFormat::Pdf) {
        return Err(ConvertError::UnsupportedFormat { format: input_format });
    }
    if !calibre_available() {
        return Err(ConvertError::CalibreMissing);
    }
    let lo = if input_format == BookFormat::Doc { Some(libreoffice_program().ok_or(ConvertError::LibreOfficeMissing)?) } else { None };
    let size = tokio::fs::metadata(input).await.map_err(ConvertError::io("reading the input file"))?.len();
    if size > limits.max_input_bytes {
        return Err(ConvertError::InputTooLarge { size, limit: limits.max_input_bytes });
    }

    let sandbox = Sandbox::create(work_parent)?;
    // Calibre picks its input plugin by extension, and a fixed ASCII name keeps odd user file names off the command
    // line.
    let staged = sandbox.path().join(format!("input.{}", input_format.as_str()));
    tokio::fs::copy(input, &staged).await.map_err(ConvertError::io("copying the input into the sandbox"))?;

    let deadline = tokio::time::Instant::now() + limits.timeout;
    let mut elapsed = Duration::ZERO;
    let (calibre_input, calibre_format) = match lo {
        Some(soffice) => {
            let (docx, took) = doc_to_docx(&sandbox, &soffice, &staged, limits, deadline).await?;
            elapsed += took;
            (docx, BookFormat::Docx)
        }
        None => (staged, input_format),
    };

    let out_name = "output.epub";
    let cmd = calibre_command().arg(file_name(&calibre_input)).arg(out_name).args(format_options(calibre_format));
    let run_limits = tool_limits(limits, deadline);
    let out = sandbox.run(&cmd, &run_limits).await?;
    elapsed += out.elapsed;
    tracing::debug!(format = %input_format, ms = out.elapsed.as_millis() as u64, "ebook-convert finished");
    check_run("ebook-convert", &out, &sandbox, limits, input_format)?;

    let epub = sandbox.path().join(out_name);
    let size = match validate_epub(epub.clone()).await {
        Ok(size) => size,
        Err(e) if input_format == BookFormat::Djvu => {
            tracing::debug!(error = %e, "DJVU conversion produced no usable EPUB");
            return Err(ConvertError::DjvuNoText);
        }
        Err(e) => return Err(e),
    };
    Ok(ConvertedEpub { sandbox, epub, size, elapsed })
}

fn calibre_command() -> SandboxCommand {
    SandboxCommand::new(EBOOK_CONVERT)
        // Calibre imports Qt even for headless work; without a display it must use the offscreen platform.
        .env("QT_QPA_PLATFORM", "offscreen")
        // Chromium refuses to run as root with its sandbox on; our process sandbox is the boundary. Only matters if
        // a code path starts QtWebEngine (the EPUB pipeline does not), but then it would otherwise abort.
        .env("QTWEBENGINE_CHROMIUM_FLAGS", "--no-sandbox")
}

fn file_name(p: &Path) -> &OsStr {
    p.file_name().unwrap_or(p.as_os_str())
}

/// The remaining time budget and the per-process bounds for one tool run.
fn tool_limits(limits: &ConvertLimits, deadline: tokio::time::Instant) -> SandboxLimits {
    SandboxLimits {
        wall_time: deadline.saturating_duration_since(tokio::time::Instant::now()),
        address_space_bytes: Some(limits.address_space_bytes),
        file_size_bytes: Some(limits.max_output_bytes),
        stdout: StdoutMode::Tail(DEFAULT_TAIL_BYTES),
        stderr_tail_bytes: DEFAULT_TAIL_BYTES,
    }
}

/// Headings that mark a chapter in text without markup: Chinese `第…章/回/节/卷/篇`, classical `…篇`/`卷…`, English
/// `Chapter/Part/Book N`, and the usual front/back matter. Short lines only, so that prose never matches.
const HEADING_REGEX: &str = concat!(
    "^(第[0-9０-９一二三四五六七八九十百千零〇两]+[章回节節卷篇部集幕].{0,30}",
    "|[一-鿿]{1,8}[篇卷]",
    "|卷[0-9０-９一二三四五六七八九十百千零〇两]+.{0,30}",
    "|(chapter|part|book)\\s+([0-9]+|[ivxlc]+|[a-z]+)\\b.{0,50}",
    "|prologue|epilogue|序|序言|前言|后记|後記|楔子|尾声|尾聲)$"
);

/// Calibre's default chapter XPath, plus short paragraphs and headings that look like [`HEADING_REGEX`].
fn chapter_xpath() -> String {
    format!(
        "//*[((name()='h1' or name()='h2') and re:test(., '\\s*((chapter|book|section|part)\\s+)|((prolog|prologue|epilogue)(\\s+|$))', 'i')) \
         or @class = 'chapter' \
         or ((name()='h1' or name()='h2' or name()='h3' or name()='p' or name()='div') \
             and not(.//*[name()='p' or name()='div']) \
             and string-length(normalize-space(.)) <= 40 \
             and re:test(normalize-space(.), '{HEADING_REGEX}', 'i'))]"
    )
}

/// Per-format Calibre options, chosen by converting the corpus and counting chapters:
/// - TXT, FB2, RTF: Calibre's own heading heuristics only know Western patterns, so `lunyu.txt` came out as one
///   chapter; the chapter XPath above splits and titles the 20 篇 of the 论语 (and RTF/FB2 without heading markup).
/// - DOCX: Calibre trusts a Word TOC field when present, which is a stale cache in many documents (the corpus file
///   lost its first entry); headings are the source of truth, so the TOC is rebuilt from h1–h3, without the
///   "Table of Contents" heading itself. If that yields fewer than two entries Calibre keeps the original TOC.
/// - MOBI, AZW3, LIT, DJVU: the input's own TOC is right; extra page breaks would only add empty files.
fn format_options(format: BookFormat) -> Vec<String> {
    match format {
        BookFormat::Txt | BookFormat::Fb2 | BookFormat::Rtf => vec!["--chapter".into(), chapter_xpath()],
        BookFormat::Docx => vec![
            "--use-auto-toc".into(),
            "--level1-toc".into(),
            "//h:h1".into(),
            "--level2-toc".into(),
            "//h:h2".into(),
            "--level3-toc".into(),
            "//h:h3".into(),
            "--toc-filter".into(),
            "^\\s*(Table of Contents|Contents|目录|目錄)\\s*$".into(),
        ],
        _ => Vec::new(),
    }
}

async fn doc_to_docx(
    sandbox: &Sandbox,
    soffice: &Path,
    staged: &Path,
    limits: &ConvertLimits,
    deadline: tokio::time::Instant,
) -> Result<(PathBuf, Duration), ConvertError> {
    let profile = sandbox.path().join("lo-profile");
    let cmd = SandboxCommand::new(soffice)
        .arg("--headless")
        .arg("--norestore")
        .arg("--nolockcheck")
        // A private profile: LibreOffice otherwise shares (and locks) one per user.
        .arg(format!("-env:UserInstallation=file://{}", profile.display()))
        .args(["--convert-to", "docx", "--outdir", "docx"])
        .arg(file_name(staged));
    let out = sandbox.run(&cmd, &tool_limits(limits, deadline)).await?;
    check_run("soffice", &out, sandbox, limits, BookFormat::Doc)?;
    let docx = sandbox.path().join("docx").join("input.docx");
    match tokio::fs::metadata(&docx).await {
        Ok(m) if m.len() > 0 => Ok((docx, out.elapsed)),
        _ => Err(ConvertError::ToolFailed {
            tool: "soffice",
            status: "no output".into(),
            detail: excerpt(if out.stderr.is_empty() { &out.stdout } else { &out.stderr }, sandbox.path()),
        }),
    }
}

fn check_run(
    tool: &'static str,
    out: &RunOutput,
    sandbox: &Sandbox,
    limits: &ConvertLimits,
    format: BookFormat,
) -> Result<(), ConvertError> {
    match out.exit {
        ExitKind::Exited(0) => Ok(()),
        ExitKind::TimedOut => Err(ConvertError::Timeout { tool, secs: limits.timeout.as_secs() }),
        _ => {
            let stderr = String::from_utf8_lossy(&out.stderr);
            if format == BookFormat::Djvu && stderr.contains("contains no text") {
                return Err(ConvertError::DjvuNoText);
            }
            if ["MemoryError", "std::bad_alloc", "Cannot allocate memory", "Thread creation error"].iter().any(|m| stderr.contains(m)) {
                return Err(ConvertError::OutOfMemory {
                    tool,
                    limit_mib: limits.address_space_bytes >> 20,
                    detail: excerpt(&out.stderr, sandbox.path()),
                });
            }
            Err(tool_failure(tool, out, sandbox.path()))
        }
    }
}

fn tool_failure(tool: &'static str, out: &RunOutput, sandbox: &Path) -> ConvertError {
    let status = match out.exit {
        ExitKind::Exited(c) => format!("exit status {c}"),
        ExitKind::Signaled(s) => format!("killed by signal {s}"),
        ExitKind::TimedOut => "timed out".into(),
        ExitKind::OutputLimit => "output limit".into(),
    };
    let detail = excerpt(if out.stderr.iter().all(u8::is_ascii_whitespace) { &out.stdout } else { &out.stderr }, sandbox);
    ConvertError::ToolFailed { tool, status, detail }
}

/// Checks that `path` is a non-empty zip whose `mimetype` entry is `application/epub+zip`; returns its size.
async fn validate_epub(path: PathBuf) -> Result<u64, ConvertError> {
    tokio::task::spawn_blocking(move || validate_epub_blocking(&path))
        .await
        .map_err(|e| ConvertError::InvalidOutput { detail: format!("validation task failed: {e}") })?
}

fn validate_epub_blocking(path: &Path) -> Result<u64, ConvertError> {
    let invalid = |detail: &str| ConvertError::InvalidOutput { detail: detail.to_string() };
    let file = match std::fs::File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Err(invalid("no output file was written")),
        Err(e) => return Err(ConvertError::Io { context: "opening the converted EPUB", source: e }),
    };
    let size = file.metadata().map_err(ConvertError::io("reading the converted EPUB"))?.len();
    if size == 0 {
        return Err(invalid("the output file is empty"));
    }
    let mut archive = zip::ZipArchive::new(file).map_err(|_| invalid("the output is not a zip archive"))?;
    let mut entry = archive.by_name("mimetype").map_err(|_| invalid("the output has no mimetype entry"))?;
    let mut mimetype = Vec::new();
    // The entry is 20 bytes; reading a little more is enough to tell a wrong value without trusting its size.
    (&mut entry).take(64).read_to_end(&mut mimetype).map_err(|_| invalid("the mimetype entry cannot be read"))?;
    if mimetype.trim_ascii() != EPUB_MIMETYPE {
        return Err(invalid("the mimetype entry is not application/epub+zip"));
    }
    Ok(size)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn validation_rejects_non_epubs() {
        let dir = tempfile::tempdir().unwrap();
        let empty = dir.path().join("empty.epub");
        std::fs::write(&empty, b"").unwrap();
        assert_eq!(validate_epub_blocking(&empty).unwrap_err().reason_code(), "invalid_output");
        let text = dir.path().join("text.epub");
        std::fs::write(&text, b"hello").unwrap();
        assert_eq!(validate_epub_blocking(&text).unwrap_err().reason_code(), "invalid_output");
        assert_eq!(validate_epub_blocking(&dir.path().join("missing.epub")).unwrap_err().reason_code(), "invalid_output");

        let wrong = dir.path().join("wrong.epub");
        let mut zw = zip::ZipWriter::new(std::fs::File::create(&wrong).unwrap());
        zw.start_file("mimetype", zip::write::SimpleFileOptions::default()).unwrap();
        std::io::Write::write_all(&mut zw, b"application/zip").unwrap();
        zw.finish().unwrap();
        assert_eq!(validate_epub_blocking(&wrong).unwrap_err().reason_code(), "invalid_output");

        let good = dir.path().join("good.epub");
        let mut zw = zip::ZipWriter::new(std::fs::File::create(&good).unwrap());
        zw.start_file("mimetype", zip::write::SimpleFileOptions::default()).unwrap();
        std::io::Write::write_all(&mut zw, EPUB_MIMETYPE).unwrap();
        zw.finish().unwrap();
        assert!(validate_epub_blocking(&good).unwrap() > 0);
    }
}
