//! Running one external program under bounds.
//!
//! Each run gets a fresh directory that is its working directory, `HOME` and `TMPDIR`; the directory is removed when
//! the [`Sandbox`] is dropped, whatever happened. The program runs in its own process group so that a timeout (or a
//! dropped future) kills the program *and* everything it spawned. The address-space limit is applied by exec'ing
//! through util-linux `prlimit`, because setting rlimits in the child would need `pre_exec`, which is unsafe.
//!
//! A destructor cannot run when the server itself is killed (`kill -9`, the OOM killer), so each run also has a
//! watchdog: a tiny `sh` that leads the process group, blocks reading a pipe whose only writer is this process, and
//! kills the whole group when that read ends, which the kernel makes happen when this process dies, however it
//! dies. `setpriv --pdeathsig` would not do: it reaches only the direct child (Calibre's and LibreOffice's
//! helpers are grandchildren), and it fires when the *thread* that spawned the child exits, not the process.

use std::ffi::{OsStr, OsString};
use std::path::{Path, PathBuf};
use std::process::{ExitStatus, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use nix::sys::signal::{killpg, Signal};
use nix::unistd::Pid;
use tokio::io::{AsyncRead, AsyncReadExt};
use tokio::process::Command;

/// How much of stdout/stderr is kept when only the tail matters (diagnostics).
pub const DEFAULT_TAIL_BYTES: usize = 64 * 1024;

/// After the main process is gone (or killed), how long we still wait for its pipes to close. A grandchild that left
/// the process group could hold them open forever; we stop reading rather than hang.
const PIPE_DRAIN_GRACE: Duration = Duration::from_secs(2);

#[derive(Debug, thiserror::Error)]
pub enum SandboxError {
    #[error("could not create a sandbox directory under {parent}: {source}")]
    CreateDir { parent: PathBuf, source: std::io::Error },
    #[error("program `{program}` is not installed")]
    NotFound { program: String },
    #[error("could not start `{program}`: {source}")]
    Spawn { program: String, source: std::io::Error },
    #[error("waiting for `{program}` failed: {source}")]
    Wait { program: String, source: std::io::Error },
}

impl SandboxError {
    pub fn reason_code(&self) -> &'static str {
        match self {
            Self::CreateDir { .. } => "sandbox_dir",
            Self::NotFound { .. } => "tool_missing",
            Self::Spawn { .. } => "tool_spawn",
            Self::Wait { .. } => "tool_wait",
        }
    }
}

/// A private working directory, removed (recursively) on drop.
#[derive(Debug)]
pub struct Sandbox {
    dir: PathBuf,
}

static SANDBOX_SEQ: AtomicU64 = AtomicU64::new(0);

impl Sandbox {
    /// Creates `parent/athena-sbx-<pid>-<n>-<nanos>` (mode 0700). `parent` must exist.
    pub fn create(parent: &Path) -> Result<Self, SandboxError> {
        use std::os::unix::fs::DirBuilderExt;
        let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.subsec_nanos()).unwrap_or(0);
        let name = format!("athena-sbx-{}-{}-{nanos}", std::process::id(), SANDBOX_SEQ.fetch_add(1, Ordering::Relaxed));
        let dir = parent.join(name);
        std::fs::DirBuilder::new()
            .mode(0o700)
            .create(&dir)
            .map_err(|source| SandboxError::CreateDir { parent: parent.to_path_buf(), source })?;
        Ok(Self { dir })
    }

    pub fn path(&self) -> &Path {
        &self.dir
    }

    /// Runs `cmd` with this directory as cwd, HOME and TMPDIR.
    pub async fn run(&self, cmd: &SandboxCommand, limits: &SandboxLimits) -> Result<RunOutput, SandboxError> {
        run_in_dir(&self.dir, cmd, limits).await
    }

    /// [`Sandbox::run`] for synchronous callers on a blocking thread (OCR and cover rendering run there): drives the
    /// run on a small current-thread runtime of its own. Must not be called from inside an async task.
    pub fn run_blocking(&self, cmd: &SandboxCommand, limits: &SandboxLimits) -> Result<RunOutput, SandboxError> {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|source| SandboxError::Spawn { program: cmd.program.to_string_lossy().into_owned(), source })?;
        runtime.block_on(run_in_dir(&self.dir, cmd, limits))
    }
}

impl Drop for Sandbox {
    fn drop(&mut self) {
        // Tools write read-only files sometimes; remove_dir_all copes because the directory itself stays writable.
        if let Err(e) = std::fs::remove_dir_all(&self.dir) {
            if e.kind() != std::io::ErrorKind::NotFound {
                tracing::warn!(dir = %self.dir.display(), error = %e, "could not remove sandbox directory");
            }
        }
    }
}

/// What to run. The environment starts empty: only PATH, LANG, HOME, TMPDIR and the pairs added here are set.
#[derive(Debug, Clone)]
pub struct SandboxCommand {
    program: OsString,
    args: Vec<OsString>,
    env: Vec<(OsString, OsString)>,
}

impl SandboxCommand {
    pub fn new(program: impl AsRef<OsStr>) -> Self {
        Self { program: program.as_ref().to_owned(), args: Vec::new(), env: Vec::new() }
    }

    pub fn arg(mut self, arg: impl AsRef<OsStr>) -> Self {
        self.args.push(arg.as_ref().to_owned());
        self
    }

    pub fn args<I, S>(mut self, args: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        self.args.extend(args.into_iter().map(|a| a.as_ref().to_owned()));
        self
    }

    pub fn env(mut self, key: impl AsRef<OsStr>, value: impl AsRef<OsStr>) -> Self {
        self.env.push((key.as_ref().to_owned(), value.as_ref().to_owned()));
        self
    }

    pub fn program(&self) -> &OsStr {
        &self.program
    }
}

/// What to keep of stdout.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StdoutMode {
    /// Keep only the last N bytes (diagnostics).
    Tail(usize),
    /// Keep everything up to N bytes; past that the process group is killed and the run ends as
    /// [`ExitKind::OutputLimit`].
    Collect(usize),
}

#[derive(Debug, Clone)]
pub struct SandboxLimits {
    pub wall_time: Duration,
    /// Address-space (virtual memory) limit in bytes, applied through `prlimit --as`. `None`: no limit.
    pub address_space_bytes: Option<u64>,
    /// Largest file the program may write (`prlimit --fsize`). `None`: no limit.
    pub file_size_bytes: Option<u64>,
    pub stdout: StdoutMode,
    /// stderr is always kept as a tail of this many bytes.
    pub stderr_tail_bytes: usize,
}

impl Default for SandboxLimits {
    fn default() -> Self {
        Self {
            wall_time: Duration::from_secs(60),
            address_space_bytes: Some(2 << 30),
            file_size_bytes: None,
            stdout: StdoutMode::Tail(DEFAULT_TAIL_BYTES),
            stderr_tail_bytes: DEFAULT_TAIL_BYTES,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExitKind {
    Exited(i32),
    Signaled(i32),
    /// The wall-clock limit passed; the process group was killed.
    TimedOut,
    /// stdout passed the [`StdoutMode::Collect`] cap; the process group was killed.
    OutputLimit,
}

#[derive(Debug)]
pub struct RunOutput {
    pub exit: ExitKind,
    pub stdout: Vec<u8>,
    /// True when bytes were dropped from the front of `stdout` (tail mode) or the cap was hit.
    pub stdout_truncated: bool,
    pub stderr: Vec<u8>,
    pub stderr_truncated: bool,
    pub elapsed: Duration,
}

impl RunOutput {
    pub fn success(&self) -> bool {
        self.exit == ExitKind::Exited(0)
    }
}

/// Kills a process group when dropped, unless the group was already reaped and killed explicitly. This is what makes
/// a cancelled future (e.g. a dropped request) take the tool's children down with it; `kill_on_drop` alone only
/// kills the direct child.
struct GroupGuard {
    pgid: Option<Pid>,
}

impl GroupGuard {
    fn kill(&mut self) {
        if let Some(pgid) = self.pgid.take() {
            // ESRCH (group already empty) is the normal case after a clean exit.
            let _ = killpg(pgid, Signal::SIGKILL);
        }
    }
}

impl Drop for GroupGuard {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Collects a pipe: either the tail or everything up to a cap.
struct Capture {
    buf: Vec<u8>,
    truncated: bool,
    over_cap: bool,
}

async fn capture<R: AsyncRead + Unpin>(mut r: R, mode: StdoutMode) -> Capture {
    let mut buf = Vec::new();
    let mut truncated = false;
    let mut over_cap = false;
    let mut chunk = vec![0u8; 16 * 1024];
    loop {
        let n = match r.read(&mut chunk).await {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        match mode {
            StdoutMode::Tail(cap) => {
                buf.extend_from_slice(&chunk[..n]);
                // Drain in batches so that keeping the tail stays amortised O(n).
                if buf.len() > cap.saturating_mul(2).max(cap + chunk.len()) {
                    let cut = buf.len() - cap;
                    buf.drain(..cut);
                    truncated = true;
                }
            }
            StdoutMode::Collect(cap) => {
                let room = cap.saturating_sub(buf.len());
                buf.extend_from_slice(&chunk[..n.min(room)]);
                if n > room {
                    truncated = true;
                    over_cap = true;
                    break;
                }
            }
        }
    }
    if let StdoutMode::Tail(cap) = mode {
        if buf.len() > cap {
            let cut = buf.len() - cap;
            buf.drain(..cut);
            truncated = true;
        }
    }
    Capture { buf, truncated, over_cap }
}

/// Looks `program` up on the PATH the sandbox will use (absolute paths are checked as they are).
pub fn find_program(program: &OsStr) -> Option<PathBuf> {
    use std::os::unix::fs::PermissionsExt;
    let is_exec = |p: &Path| std::fs::metadata(p).map(|m| m.is_file() && m.permissions().mode() & 0o111 != 0).unwrap_or(false);
    let as_path = Path::new(program);
    if as_path.components().count() > 1 {
        return is_exec(as_path).then(|| as_path.to_path_buf());
    }
    std::env::split_paths(&sandbox_path()).map(|d| d.join(program)).find(|p| is_exec(p))
}

/// PATH given to tools: the server's own PATH (tools may live in /opt), or a standard one when it has none.
fn sandbox_path() -> OsString {
    std::env::var_os("PATH").filter(|p| !p.is_empty()).unwrap_or_else(|| OsString::from("/usr/local/bin:/usr/bin:/bin"))
}

async fn run_in_dir(dir: &Path, cmd: &SandboxCommand, limits: &SandboxLimits) -> Result<RunOutput, SandboxError> {
    let program_name = cmd.program.to_string_lossy().into_owned();
    let program = find_program(&cmd.program).ok_or_else(|| SandboxError::NotFound { program: program_name.clone() })?;

    let mut rlimits = Vec::new();
    if let Some(bytes) = limits.address_space_bytes {
        rlimits.push(format!("--as={bytes}"));
    }
    if let Some(bytes) = limits.file_size_bytes {
        rlimits.push(format!("--fsize={bytes}"));
    }
    // prlimit sets the limits on itself and then execs the program, so the pid (and process group) stay the same.
    let mut command = if rlimits.is_empty() {
        Command::new(&program)
    } else {
        let prlimit = find_program(OsStr::new("prlimit")).ok_or(SandboxError::NotFound { program: "prlimit".into() })?;
        let mut c = Command::new(prlimit);
        c.args(&rlimits).arg("--").arg(&program);
        c
    };
    // The watchdog goes first and leads the group the program joins, so there is no moment when the program runs
    // without someone to kill it if this process dies.
    let mut watchdog = spawn_watchdog()?;
    let pgid = watchdog.id().and_then(|id| i32::try_from(id).ok()).ok_or_else(|| SandboxError::Spawn {
        program: "sh (sandbox watchdog)".into(),
        source: std::io::Error::other("the watchdog exited at once"),
    })?;
    // From here on, whatever happens (error, timeout, drop), the whole group (watchdog included) is killed.
    let mut guard = GroupGuard { pgid: Some(Pid::from_raw(pgid)) };
    command
        .args(&cmd.args)
        .current_dir(dir)
        .env_clear()
        .env("PATH", sandbox_path())
        .env("LANG", "C.UTF-8")
        .env("HOME", dir)
        .env("TMPDIR", dir)
        .envs(cmd.env.iter().map(|(k, v)| (k, v)))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(pgid)
        .kill_on_drop(true);

    let started = Instant::now();
    let mut child = command.spawn().map_err(|source| SandboxError::Spawn { program: program_name.clone(), source })?;

    let stdout = child.stdout.take().map(|s| tokio::spawn(capture(s, limits.stdout)));
    let stderr = child.stderr.take().map(|s| tokio::spawn(capture(s, StdoutMode::Tail(limits.stderr_tail_bytes))));
    let mut stdout = stdout;

    let deadline = tokio::time::Instant::now() + limits.wall_time;
    let mut stdout_result: Option<Capture> = None;
    let exit = loop {
        tokio::select! {
            status = child.wait() => {
                let status = status.map_err(|source| SandboxError::Wait { program: program_name.clone(), source })?;
                break exit_kind(status);
            }
            out = async { stdout.as_mut().expect("polled only while Some").await }, if stdout.is_some() => {
                stdout = None;
                let out = out.unwrap_or(Capture { buf: Vec::new(), truncated: false, over_cap: false });
                let over = out.over_cap;
                stdout_result = Some(out);
                if over {
                    guard.kill();
                    let _ = child.wait().await;
                    break ExitKind::OutputLimit;
                }
            }
            _ = tokio::time::sleep_until(deadline) => {
                guard.kill();
                let _ = child.wait().await;
                break ExitKind::TimedOut;
            }
        }
    };
    // The main process is gone; take its helpers (and the watchdog) with it so that nothing outlives the sandbox
    // directory.
    guard.kill();
    let _ = watchdog.wait().await;

    let stdout = match (stdout_result, stdout) {
        (Some(c), _) => c,
        (None, Some(task)) => drain(task).await,
        (None, None) => Capture { buf: Vec::new(), truncated: false, over_cap: false },
    };
    let stderr = match stderr {
        Some(task) => drain(task).await,
        None => Capture { buf: Vec::new(), truncated: false, over_cap: false },
    };
    let exit = if exit != ExitKind::TimedOut && stdout.over_cap { ExitKind::OutputLimit } else { exit };
    Ok(RunOutput {
        exit,
        stdout: stdout.buf,
        stdout_truncated: stdout.truncated,
        stderr: stderr.buf,
        stderr_truncated: stderr.truncated,
        elapsed: started.elapsed(),
    })
}

/// The watchdog's script: `read` returns only at end of file, i.e. once every writer of its stdin is gone, and the only
/// writer is this process (the pipe is close-on-exec, so no tool inherits it). `kill 0` signals the watchdog's own
/// process group: the tool, its children and the watchdog itself.
const WATCHDOG_SCRIPT: &str = "read -r _; kill -KILL 0";

/// Starts the watchdog as the leader of a new process group; the returned child holds the pipe's write end, which
/// must stay open (it does while the `Child` lives) for as long as the tool runs.
fn spawn_watchdog() -> Result<tokio::process::Child, SandboxError> {
    let sh = find_program(OsStr::new("sh")).ok_or(SandboxError::NotFound { program: "sh".into() })?;
    Command::new(sh)
        .arg("-c")
        .arg(WATCHDOG_SCRIPT)
        .env_clear()
        .env("PATH", sandbox_path())
        .current_dir("/")
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .process_group(0)
        .kill_on_drop(true)
        .spawn()
        .map_err(|source| SandboxError::Spawn { program: "sh (sandbox watchdog)".into(), source })
}

async fn drain(mut task: tokio::task::JoinHandle<Capture>) -> Capture {
    match tokio::time::timeout(PIPE_DRAIN_GRACE, &mut task).await {
        Ok(Ok(c)) => c,
        _ => {
            task.abort();
            Capture { buf: Vec::new(), truncated: true, over_cap: false }
        }
    }
}

fn exit_kind(status: ExitStatus) -> ExitKind {
    use std::os::unix::process::ExitStatusExt;
    match (status.code(), status.signal()) {
        (Some(code), _) => ExitKind::Exited(code),
        (None, Some(sig)) => ExitKind::Signaled(sig),
        (None, None) => ExitKind::Exited(-1),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn tail_keeps_last_bytes() {
        let data: Vec<u8> = (0..200_000u32).map(|i| (i % 251) as u8).collect();
        let c = capture(&data[..], StdoutMode::Tail(1000)).await;
        assert_eq!(c.buf, data[data.len() - 1000..]);
        assert!(c.truncated);
    }

    #[tokio::test]
    async fn collect_stops_at_cap() {
        let data = vec![7u8; 100_000];
        let c = capture(&data[..], StdoutMode::Collect(50_000)).await;
        assert_eq!(c.buf.len(), 50_000);
        assert!(c.over_cap);
        let c = capture(&data[..], StdoutMode::Collect(100_000)).await;
        assert!(!c.over_cap && c.buf.len() == 100_000);
    }
}
