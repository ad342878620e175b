//! A tool must not outlive the process that started it, even when that process is killed with `kill -9` (no
//! destructor runs). Each test re-runs this test binary as a child "worker" that starts a sandboxed tool, kills the
//! child with SIGKILL while the tool runs, and then looks through /proc for anything still running in the sandbox.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use athena_convert::sandbox::{Sandbox, SandboxCommand, SandboxLimits};
use athena_convert::{ebook_convert, ConvertLimits};
use athena_domain::BookFormat;

/// Set in the child: the directory its sandboxes go under, and what to run.
const CHILD_DIR: &str = "ATHENA_ORPHAN_TEST_DIR";
const CHILD_JOB: &str = "ATHENA_ORPHAN_TEST_JOB";

/// How long the tools may take to disappear after the kill.
const GONE_WITHIN: Duration = Duration::from_secs(5);

/// The child's side: run a long job in a sandbox under `CHILD_DIR` until killed. Ignored so that a plain test run
/// skips it; the tests below run it with `--ignored` in a child process.
#[tokio::test]
#[ignore = "helper: run in a child process by the kill -9 tests of this file"]
async fn child_worker() {
    let dir = PathBuf::from(std::env::var_os(CHILD_DIR).expect("run by the kill -9 tests"));
    match std::env::var(CHILD_JOB).as_deref() {
        Ok("calibre") => {
            // The corpus's Lunyu a hundred times over (6.5 MB of text): Calibre needs many seconds for it, where the
            // corpus books themselves convert in under one.
            let one = std::fs::read(common::corpus().join("convert/lunyu.txt")).unwrap();
            let book = dir.join("big-lunyu.txt");
            std::fs::write(&book, one.repeat(100)).unwrap();
            let r = ebook_convert(&book, BookFormat::Txt, &dir, &ConvertLimits::default()).await;
            // Reaching this line means the conversion ended before the parent killed us.
            panic!("conversion finished before the kill: {:?}", r.map(|e| e.size_bytes()));
        }
        Ok("shell") => {
            let sandbox = Sandbox::create(&dir).unwrap();
            // A grandchild (the background sleep) besides the direct child, as Calibre and LibreOffice have.
            let cmd = SandboxCommand::new("sh").arg("-c").arg("sleep 120 & sleep 120");
            let limits = SandboxLimits { wall_time: Duration::from_secs(300), ..SandboxLimits::default() };
            let _ = sandbox.run(&cmd, &limits).await;
            panic!("the sandboxed shell ended before the kill");
        }
        other => panic!("unknown job {other:?}"),
    }
}

fn start_child(dir: &Path, job: &str) -> Child {
    let exe = std::env::current_exe().unwrap();
    Command::new(exe)
        .args(["child_worker", "--exact", "--ignored", "--nocapture", "--test-threads=1"])
        .env(CHILD_DIR, dir)
        .env(CHILD_JOB, job)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap()
}

/// A live (not zombie) process whose working directory or HOME is inside `dir`: every sandboxed tool has both, and
/// Calibre's helpers inherit them.
#[derive(Debug)]
struct Found {
    pid: u32,
    cmdline: String,
}

fn processes_in(dir: &Path) -> Vec<Found> {
    let home = format!("HOME={}", dir.display());
    let mut found = Vec::new();
    let Ok(entries) = std::fs::read_dir("/proc") else { return found };
    for e in entries.flatten() {
        let Some(pid) = e.file_name().to_str().and_then(|s| s.parse::<u32>().ok()) else { continue };
        let proc_dir = e.path();
        // Field 3 of /proc/PID/stat is the state; a zombie has exited and only waits to be reaped.
        let zombie = std::fs::read_to_string(proc_dir.join("stat"))
            .ok()
            .and_then(|s| s.rsplit_once(')').map(|(_, rest)| rest.trim_start().starts_with('Z')))
            .unwrap_or(true);
        if zombie {
            continue;
        }
        let in_cwd = std::fs::read_link(proc_dir.join("cwd")).is_ok_and(|cwd| cwd.starts_with(dir));
        let in_home =
            std::fs::read(proc_dir.join("environ")).is_ok_and(|env| env.split(|b| *b == 0).any(|v| v.starts_with(home.as_bytes())));
        if in_cwd || in_home {
            let cmdline = std::fs::read(proc_dir.join("cmdline")).unwrap_or_default();
            let cmdline = String::from_utf8_lossy(&cmdline).replace('\0', " ").trim().to_string();
            found.push(Found { pid, cmdline });
        }
    }
    found
}

/// Starts the child, waits until `ready` holds for the processes in its sandbox, kills the child with SIGKILL and
/// asserts that nothing is left running in the sandbox within [`GONE_WITHIN`].
fn kill_9_leaves_nothing(job: &str, ready: impl Fn(&[Found]) -> bool, settle: Duration) {
    let dir = tempfile::tempdir().unwrap();
    let mut child = start_child(dir.path(), job);
    let started = Instant::now();
    loop {
        let found = processes_in(dir.path());
        if ready(&found) {
            break;
        }
        if let Some(status) = child.try_wait().unwrap() {
            panic!("the child worker exited ({status}) before its tool ran: {found:?}");
        }
        assert!(started.elapsed() < Duration::from_secs(60), "the tool never started: {found:?}");
        std::thread::sleep(Duration::from_millis(20));
    }
    // Let the tool get going (Calibre starts its helpers after it has loaded the input).
    std::thread::sleep(settle);
    let before = processes_in(dir.path());
    assert!(ready(&before), "the tool ended before the kill (the test needs a longer job): {before:?}");
    assert!(child.try_wait().unwrap().is_none(), "the child worker exited before the kill");
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();

    let killed = Instant::now();
    loop {
        let left = processes_in(dir.path());
        if left.is_empty() {
            eprintln!("{job}: {} process(es) gone {:?} after kill -9 of the worker: {before:?}", before.len(), killed.elapsed());
            return;
        }
        if killed.elapsed() > GONE_WITHIN {
            // Do not leave them behind for the next test run.
            for p in &left {
                let _ = Command::new("kill").args(["-KILL", &p.pid.to_string()]).status();
            }
            panic!("still running {GONE_WITHIN:?} after kill -9 of the worker: {left:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn kill_9_of_the_worker_takes_the_sandboxed_shell_and_its_grandchild_down() {
    // Ready once both sleeps (the shell's own and the background one) run.
    kill_9_leaves_nothing("shell", |found| found.iter().filter(|p| p.cmdline == "sleep 120").count() == 2, Duration::ZERO);
}

#[test]
fn kill_9_of_the_worker_mid_conversion_takes_ebook_convert_down() {
    kill_9_leaves_nothing("calibre", |found| found.iter().any(|p| p.cmdline.contains("ebook-convert")), Duration::from_millis(1500));
}
