//! Running external tools with a time limit and bounded output.

use std::io::Read;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::OcrError;

/// What a finished tool printed (each stream cut at the caller's limit).
pub(crate) struct ToolOutput {
    pub stdout: Vec<u8>,
}

fn read_capped(mut r: impl Read + Send + 'static, limit: u64) -> std::thread::JoinHandle<Vec<u8>> {
    std::thread::spawn(move || {
        let mut buf = Vec::new();
        let _ = (&mut r).take(limit).read_to_end(&mut buf);
        // Keep draining so the child never blocks on a full pipe.
        let _ = std::io::copy(&mut r, &mut std::io::sink());
        buf
    })
}

/// Runs `cmd`, killing it after `timeout`; stdout beyond `max_stdout` bytes is discarded.
/// A non-zero exit is an error carrying the start of stderr.
pub(crate) fn run(mut cmd: Command, timeout: Duration, max_stdout: u64) -> Result<ToolOutput, OcrError> {
    let program = cmd.get_program().to_string_lossy().into_owned();
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| OcrError::ToolMissing { program: program.clone(), message: e.to_string() })?;
    let out = child.stdout.take().map(|s| read_capped(s, max_stdout));
    let err = child.stderr.take().map(|s| read_capped(s, 8 * 1024));
    let start = Instant::now();
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break status,
            Ok(None) if start.elapsed() >= timeout => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(OcrError::Timeout { program, seconds: timeout.as_secs() });
            }
            Ok(None) => std::thread::sleep(Duration::from_millis(10)),
            Err(e) => return Err(OcrError::io(format!("waiting for {program}"), e)),
        }
    };
    let stdout = out.and_then(|h| h.join().ok()).unwrap_or_default();
    let stderr = err.and_then(|h| h.join().ok()).unwrap_or_default();
    if !status.success() {
        return Err(OcrError::ToolFailed {
            program,
            status: status.to_string(),
            stderr: String::from_utf8_lossy(&stderr).trim().chars().take(1000).collect(),
        });
    }
    Ok(ToolOutput { stdout })
}
