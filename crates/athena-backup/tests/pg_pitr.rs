//! PostgreSQL point-in-time recovery, as docs/BACKUP.md describes it: a throwaway cluster (initdb as
//! the `postgres` user, its own port and socket dir) with `archive_mode=on` and an `archive_command`
//! copying WAL to a folder; a `pg_basebackup`; writes before and after a target time; recovery of
//! the base backup with `restore_command` to that time. Rows up to the target must be there, later
//! ones not. Both clusters are stopped and removed even when an assertion fails.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

const BIN: &str = "/usr/lib/postgresql/15/bin";

fn as_postgres(program: &str, args: &[&str]) -> Output {
    let out = Command::new("runuser").args(["-u", "postgres", "--"]).arg(format!("{BIN}/{program}")).args(args).output().unwrap();
    assert!(out.status.success(), "{program} {args:?}: {}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    out
}

fn sql(port: u16, query: &str) -> String {
    let port = port.to_string();
    let out = as_postgres("psql", &["-X", "-h", "127.0.0.1", "-p", &port, "-U", "postgres", "-d", "postgres", "-Atc", query]);
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// Stops the clusters it knows and removes the folder, whatever happened.
struct Cleanup {
    root: PathBuf,
    data_dirs: Vec<PathBuf>,
}

impl Drop for Cleanup {
    fn drop(&mut self) {
        for d in &self.data_dirs {
            if d.join("postmaster.pid").exists() {
                let _ = Command::new("runuser")
                    .args(["-u", "postgres", "--"])
                    .arg(format!("{BIN}/pg_ctl"))
                    .args(["-D"])
                    .arg(d)
                    .args(["-m", "immediate", "-w", "stop"])
                    .output();
            }
        }
        let _ = std::fs::remove_dir_all(&self.root);
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

fn configure(data: &Path, root: &Path, port: u16, extra: &str) {
    let conf = format!(
        "\nport = {port}\nlisten_addresses = '127.0.0.1'\nunix_socket_directories = '{root}'\nwal_level = replica\n\
         archive_mode = on\narchive_command = 'test ! -f {archive}/%f && cp %p {archive}/%f'\nfsync = off\n{extra}\n",
        root = root.display(),
        archive = root.join("archive").display(),
    );
    let path = data.join("postgresql.conf");
    let mut text = std::fs::read_to_string(&path).unwrap();
    text.push_str(&conf);
    std::fs::write(&path, text).unwrap();
}

fn start(data: &Path) {
    let log = data.with_extension("log");
    as_postgres("pg_ctl", &["-D", data.to_str().unwrap(), "-l", log.to_str().unwrap(), "-w", "-t", "30", "start"]);
}

#[test]
fn wal_archive_recovers_to_a_target_time() {
    assert!(Path::new(BIN).join("initdb").exists(), "PostgreSQL 15 server binaries are needed in {BIN}");
    let started = Instant::now();
    let root = std::env::temp_dir().join(format!("athena-pitr-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&root);
    std::fs::create_dir_all(root.join("archive")).unwrap();
    let (data, base, restored) = (root.join("data"), root.join("base"), root.join("restored"));
    let mut cleanup = Cleanup { root: root.clone(), data_dirs: vec![data.clone(), restored.clone()] };
    let chown = Command::new("chown").args(["-R", "postgres:postgres"]).arg(&root).status().unwrap();
    assert!(chown.success());

    as_postgres("initdb", &["-D", data.to_str().unwrap(), "-A", "trust", "-U", "postgres", "--no-sync"]);
    let port = free_port();
    configure(&data, &root, port, "");
    start(&data);
    sql(port, "CREATE TABLE events (id int PRIMARY KEY, at timestamptz NOT NULL DEFAULT clock_timestamp())");
    sql(port, "INSERT INTO events (id) SELECT g FROM generate_series(1, 100) g");
    as_postgres(
        "pg_basebackup",
        &["-h", "127.0.0.1", "-p", &port.to_string(), "-U", "postgres", "-D", base.to_str().unwrap(), "-X", "stream", "--no-sync"],
    );

    sql(port, "INSERT INTO events (id) SELECT g FROM generate_series(101, 200) g");
    let target = sql(port, "SELECT clock_timestamp()");
    std::thread::sleep(Duration::from_millis(1100));
    sql(port, "INSERT INTO events (id) SELECT g FROM generate_series(201, 300) g");
    // Close the WAL segment so the archiver ships the later rows too, and wait for it.
    let last = sql(port, "SELECT pg_walfile_name(pg_switch_wal())");
    let deadline = Instant::now() + Duration::from_secs(20);
    while !root.join("archive").join(&last).exists() {
        assert!(Instant::now() < deadline, "WAL segment {last} was never archived");
        std::thread::sleep(Duration::from_millis(100));
    }
    as_postgres("pg_ctl", &["-D", data.to_str().unwrap(), "-m", "fast", "-w", "stop"]);

    // Recovery: the base backup, the archive, a target time.
    let copy = Command::new("cp").arg("-a").arg(&base).arg(&restored).status().unwrap();
    assert!(copy.success());
    let port2 = free_port();
    let recovery = format!(
        "restore_command = 'cp {}/%f %p'\nrecovery_target_time = '{target}'\nrecovery_target_action = 'promote'\narchive_mode = off",
        root.join("archive").display()
    );
    configure(&restored, &root, port2, &recovery);
    std::fs::write(restored.join("recovery.signal"), b"").unwrap();
    let chown = Command::new("chown").args(["-R", "postgres:postgres"]).arg(&restored).status().unwrap();
    assert!(chown.success());
    start(&restored);
    let deadline = Instant::now() + Duration::from_secs(30);
    while sql(port2, "SELECT pg_is_in_recovery()") != "f" {
        assert!(Instant::now() < deadline, "recovery did not finish");
        std::thread::sleep(Duration::from_millis(100));
    }
    let (count, max) = (sql(port2, "SELECT count(*) FROM events"), sql(port2, "SELECT max(id) FROM events"));
    assert_eq!((count.as_str(), max.as_str()), ("200", "200"), "rows up to the target time are back, later ones are not");
    as_postgres("pg_ctl", &["-D", restored.to_str().unwrap(), "-m", "fast", "-w", "stop"]);
    cleanup.data_dirs.clear();
    println!("PITR drill took {:.1} s", started.elapsed().as_secs_f64());
    assert!(started.elapsed() < Duration::from_secs(60));
}
