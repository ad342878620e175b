//! The sandbox's bounds, checked with real processes.

use std::time::{Duration, Instant};

use athena_convert::sandbox::{ExitKind, Sandbox, SandboxCommand, SandboxLimits, StdoutMode};

fn limits(secs: u64) -> SandboxLimits {
    SandboxLimits { wall_time: Duration::from_secs(secs), ..SandboxLimits::default() }
}

#[tokio::test]
async fn timeout_kills_the_process_group_and_dir_goes() {
    let parent = tempfile::tempdir().unwrap();
    let sandbox = Sandbox::create(parent.path()).unwrap();
    let dir = sandbox.path().to_path_buf();
    // The shell starts a background grandchild that writes a marker if it survives the kill.
    // Absolute path: the sandbox (its cwd) is gone by then.
    let marker = parent.path().join("survivor");
    let cmd = SandboxCommand::new("sh").arg("-c").arg(format!("(sleep 3; echo alive > {}) & sleep 30", marker.display()));
    let started = Instant::now();
    let out = sandbox.run(&cmd, &limits(1)).await.unwrap();
    assert_eq!(out.exit, ExitKind::TimedOut);
    assert!(started.elapsed() < Duration::from_secs(4), "took {:?}", started.elapsed());
    drop(sandbox);
    assert!(!dir.exists(), "sandbox dir must be removed");
    tokio::time::sleep(Duration::from_secs(4)).await;
    assert!(!marker.exists(), "the grandchild outlived the timeout");
}

#[tokio::test]
async fn sleep_30_is_killed_within_limit() {
    let parent = tempfile::tempdir().unwrap();
    let sandbox = Sandbox::create(parent.path()).unwrap();
    let started = Instant::now();
    let out = sandbox.run(&SandboxCommand::new("sleep").arg("30"), &limits(1)).await.unwrap();
    assert_eq!(out.exit, ExitKind::TimedOut);
    assert!(started.elapsed() < Duration::from_secs(3));
    drop(sandbox);
    assert_eq!(std::fs::read_dir(parent.path()).unwrap().count(), 0);
}

#[tokio::test]
async fn dropped_future_kills_the_group() {
    let parent = tempfile::tempdir().unwrap();
    let sandbox = Sandbox::create(parent.path()).unwrap();
    let cmd = SandboxCommand::new("sh").arg("-c").arg("(sleep 2; echo alive > ../survivor) & sleep 30");
    // Cancel the run after 300 ms, as a dropped request would.
    let r = tokio::time::timeout(Duration::from_millis(300), sandbox.run(&cmd, &limits(60))).await;
    assert!(r.is_err());
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert!(!parent.path().join("survivor").exists(), "a cancelled run left its children running");
}

#[tokio::test]
async fn environment_is_clean_and_dir_is_home() {
    let parent = tempfile::tempdir().unwrap();
    let sandbox = Sandbox::create(parent.path()).unwrap();
    let cmd = SandboxCommand::new("sh").arg("-c").arg("env | sort; pwd").env("EXTRA", "1");
    let out = sandbox.run(&cmd, &limits(10)).await.unwrap();
    assert!(out.success());
    let text = String::from_utf8(out.stdout).unwrap();
    let dir = sandbox.path().to_string_lossy().into_owned();
    let names: Vec<&str> = text.lines().filter_map(|l| l.split_once('=').map(|(k, _)| k)).collect();
    for n in &names {
        assert!(["PATH", "LANG", "HOME", "TMPDIR", "EXTRA", "PWD", "SHLVL", "_"].contains(n), "unexpected variable {n}");
    }
    assert!(text.contains(&format!("HOME={dir}")) && text.contains(&format!("TMPDIR={dir}")));
    assert!(text.contains("LANG=C.UTF-8"));
    assert!(text.lines().any(|l| l == dir), "cwd is the sandbox");
}

#[tokio::test]
async fn address_space_limit_fails_cleanly() {
    let parent = tempfile::tempdir().unwrap();
    let sandbox = Sandbox::create(parent.path()).unwrap();
    let lim = SandboxLimits { address_space_bytes: Some(256 << 20), ..limits(20) };
    let cmd = SandboxCommand::new("python3").arg("-c").arg("b = bytearray(1024 * 1024 * 1024); print(len(b))");
    let out = sandbox.run(&cmd, &lim).await.unwrap();
    assert_eq!(out.exit, ExitKind::Exited(1), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8_lossy(&out.stderr).contains("MemoryError"));
    // The same allocation passes without the limit, so the limit is what stopped it.
    let lim = SandboxLimits { address_space_bytes: Some(4 << 30), ..limits(20) };
    let out = sandbox.run(&cmd, &lim).await.unwrap();
    assert!(out.success(), "{}", String::from_utf8_lossy(&out.stderr));
}

#[tokio::test]
async fn output_is_capped() {
    let parent = tempfile::tempdir().unwrap();
    let sandbox = Sandbox::create(parent.path()).unwrap();
    // 1 MiB on each stream; the last line is a marker.
    let script = "head -c 1048576 /dev/zero | tr '\\0' a; echo; echo END-OUT; head -c 1048576 /dev/zero | tr '\\0' b >&2; echo END-ERR >&2";
    let cmd = SandboxCommand::new("sh").arg("-c").arg(script);
    let out = sandbox.run(&cmd, &limits(20)).await.unwrap();
    assert!(out.success());
    assert_eq!(out.stdout.len(), 64 * 1024);
    assert!(out.stdout_truncated && out.stderr_truncated);
    assert!(out.stdout.ends_with(b"END-OUT\n"));
    assert!(out.stderr.ends_with(b"END-ERR\n") && out.stderr.len() == 64 * 1024);

    // Collect mode stops the program at the cap.
    let lim = SandboxLimits { stdout: StdoutMode::Collect(100_000), ..limits(20) };
    let out = sandbox.run(&SandboxCommand::new("cat").arg("/dev/zero"), &lim).await.unwrap();
    assert_eq!(out.exit, ExitKind::OutputLimit);
    assert_eq!(out.stdout.len(), 100_000);
}

#[tokio::test]
async fn file_size_limit_applies() {
    let parent = tempfile::tempdir().unwrap();
    let sandbox = Sandbox::create(parent.path()).unwrap();
    let lim = SandboxLimits { file_size_bytes: Some(1 << 20), ..limits(20) };
    let cmd = SandboxCommand::new("sh").arg("-c").arg("head -c 5000000 /dev/zero > big");
    let out = sandbox.run(&cmd, &lim).await.unwrap();
    assert!(!out.success());
    assert!(std::fs::metadata(sandbox.path().join("big")).unwrap().len() <= 1 << 20);
}

#[tokio::test]
async fn missing_program_is_typed() {
    let parent = tempfile::tempdir().unwrap();
    let sandbox = Sandbox::create(parent.path()).unwrap();
    let e = sandbox.run(&SandboxCommand::new("athena-no-such-tool"), &limits(5)).await.unwrap_err();
    assert_eq!(e.reason_code(), "tool_missing");
}

#[tokio::test]
async fn exit_status_and_signal_are_reported() {
    let parent = tempfile::tempdir().unwrap();
    let sandbox = Sandbox::create(parent.path()).unwrap();
    let out = sandbox.run(&SandboxCommand::new("sh").arg("-c").arg("exit 3"), &limits(5)).await.unwrap();
    assert_eq!(out.exit, ExitKind::Exited(3));
    let out = sandbox.run(&SandboxCommand::new("sh").arg("-c").arg("kill -TERM $$"), &limits(5)).await.unwrap();
    assert_eq!(out.exit, ExitKind::Signaled(15));
}
