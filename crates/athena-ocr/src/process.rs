//! Running external tools (Poppler, Tesseract) with a time limit and bounded output, through the conversion
//! sandbox of `athena-convert`: own directory, clean environment, the whole process group killed on timeout, and
//! killed too when the server dies (its watchdog), so no tool outlives a killed worker.

use std::ffi::OsStr;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use athena_convert::sandbox::{ExitKind, Sandbox, SandboxCommand, SandboxError, SandboxLimits, StdoutMode};

use crate::OcrError;

/// What a finished tool printed (stdout, up to the caller's limit).
pub(crate) struct ToolOutput {
    pub stdout: Vec<u8>,
}

/// Environment the tools may need from the server's (the sandbox starts from an empty one).
const PASSED_ON: &[&str] = &["TESSDATA_PREFIX"];

/// Runs `cmd` (program, arguments and the variables set on it) in a sandbox under `work_parent`, killing it after
/// `timeout`; stdout beyond `max_stdout` bytes ends the run as a failure. A non-zero exit is an error carrying the
/// start of stderr. Paths in the arguments must be absolute (the tool's working directory is the sandbox).
pub(crate) fn run(cmd: Command, work_parent: &Path, timeout: Duration, max_stdout: u64) -> Result<ToolOutput, OcrError> {
    let program = cmd.get_program().to_string_lossy().into_owned();
    let mut sandboxed = SandboxCommand::new(cmd.get_program()).args(cmd.get_args());
    for (key, value) in cmd.get_envs() {
        if let Some(value) = value {
            sandboxed = sandboxed.env(key, value);
        }
    }
    for key in PASSED_ON {
        if cmd.get_envs().all(|(k, _)| k != OsStr::new(key)) {
            if let Some(value) = std::env::var_os(key) {
                sandboxed = sandboxed.env(key, value);
            }
        }
    }
    let limits = SandboxLimits {
        wall_time: timeout,
        // As before the sandbox: Poppler and Tesseract are bounded by the page's pixel limit, not by rlimits.
        address_space_bytes: None,
        file_size_bytes: None,
        stdout: StdoutMode::Collect(usize::try_from(max_stdout).unwrap_or(usize::MAX)),
        stderr_tail_bytes: 8 * 1024,
    };
    let sandbox = Sandbox::create(work_parent).map_err(|e| OcrError::io(format!("creating a sandbox for {program}"), sandbox_io(e)))?;
    let out = sandbox.run_blocking(&sandboxed, &limits).map_err(|e| match e {
        SandboxError::NotFound { .. } => OcrError::ToolMissing { program: program.clone(), message: "not installed".into() },
        other => OcrError::ToolMissing { program: program.clone(), message: other.to_string() },
    })?;
    let stderr = || String::from_utf8_lossy(&out.stderr).trim().chars().take(1000).collect::<String>();
    match out.exit {
        ExitKind::Exited(0) => Ok(ToolOutput { stdout: out.stdout }),
        ExitKind::TimedOut => Err(OcrError::Timeout { program, seconds: timeout.as_secs() }),
        ExitKind::OutputLimit => {
            Err(OcrError::ToolFailed { program, status: format!("more than {max_stdout} bytes of output"), stderr: stderr() })
        }
        ExitKind::Exited(code) => Err(OcrError::ToolFailed { program, status: format!("exit status: {code}"), stderr: stderr() }),
        ExitKind::Signaled(signal) => Err(OcrError::ToolFailed { program, status: format!("signal: {signal}"), stderr: stderr() }),
    }
}

fn sandbox_io(e: SandboxError) -> std::io::Error {
    match e {
        SandboxError::CreateDir { source, .. } | SandboxError::Spawn { source, .. } | SandboxError::Wait { source, .. } => source,
        other => std::io::Error::other(other.to_string()),
    }
}
