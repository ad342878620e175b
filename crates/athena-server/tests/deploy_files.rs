//! The deployment files under `deploy/` checked against the code they deploy: `.env.example`
//! names exactly the settings of `athena_config`, the compose files parse and use only known
//! variables and the seed's ports, nginx accepts the shipped config and routes through it as
//! documented (a real nginx in front of stand-in upstreams), and every metric an alert or the
//! dashboard names is one the code emits (or a listed external one), as is every metric
//! `docs/OPERATIONS.md` must document.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use athena_config::Config;
use futures::StreamExt;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use yaml_rust2::{Yaml, YamlLoader};

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..").canonicalize().unwrap()
}

fn read(rel: &str) -> String {
    std::fs::read_to_string(repo().join(rel)).unwrap_or_else(|e| panic!("{rel}: {e}"))
}

fn yaml(rel: &str) -> Yaml {
    let mut docs = YamlLoader::load_from_str(&read(rel)).unwrap_or_else(|e| panic!("{rel} is not YAML: {e}"));
    assert_eq!(docs.len(), 1, "{rel}: one document");
    resolve_merges(docs.remove(0))
}

/// Applies YAML merge keys (`<<: *anchor`), as docker compose does; the node's own keys win.
fn resolve_merges(node: Yaml) -> Yaml {
    match node {
        Yaml::Hash(h) => {
            let mut out = yaml_rust2::yaml::Hash::new();
            let mut own = Vec::new();
            for (k, v) in h {
                let v = resolve_merges(v);
                if k.as_str() == Some("<<") {
                    let sources = match v {
                        Yaml::Array(items) => items,
                        other => vec![other],
                    };
                    for source in sources {
                        let Yaml::Hash(sh) = source else { panic!("merge key with a non-mapping value") };
                        for (sk, sv) in sh {
                            out.insert(sk, sv);
                        }
                    }
                } else {
                    own.push((k, v));
                }
            }
            for (k, v) in own {
                out.insert(k, v);
            }
            Yaml::Hash(out)
        }
        Yaml::Array(items) => Yaml::Array(items.into_iter().map(resolve_merges).collect()),
        other => other,
    }
}

fn hash_keys(node: &Yaml) -> Vec<String> {
    node.as_hash().map(|h| h.keys().filter_map(|k| k.as_str().map(str::to_string)).collect()).unwrap_or_default()
}

fn scalar(node: &Yaml) -> Option<String> {
    match node {
        Yaml::String(s) | Yaml::Real(s) => Some(s.clone()),
        Yaml::Integer(i) => Some(i.to_string()),
        Yaml::Boolean(b) => Some(b.to_string()),
        _ => None,
    }
}

fn documented_names() -> BTreeSet<&'static str> {
    Config::specs().iter().map(|s| s.env[0]).collect()
}

fn all_setting_names() -> BTreeSet<&'static str> {
    Config::specs().iter().flat_map(|s| s.env.iter().copied()).collect()
}

// ---------------------------------------------------------------------------------------------
// .env.example
// ---------------------------------------------------------------------------------------------

#[test]
fn env_example_lists_exactly_the_documented_settings() {
    let text = read("deploy/.env.example");
    let mut seen = BTreeMap::new();
    for (n, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let (name, _) = line.split_once('=').unwrap_or_else(|| panic!(".env.example line {}: not NAME=value: {line}", n + 1));
        assert!(seen.insert(name.to_string(), n + 1).is_none(), ".env.example: {name} appears twice");
    }
    let listed: BTreeSet<&str> = seen.keys().map(String::as_str).collect();
    let documented = documented_names();
    let missing: Vec<String> =
        Config::specs().iter().filter(|s| !listed.contains(s.env[0])).map(|s| format!("# {}\n{}=", s.help, s.env[0])).collect();
    let extra: Vec<&&str> = listed.difference(&documented).collect();
    assert!(missing.is_empty(), ".env.example lacks these settings; add:\n\n{}\n", missing.join("\n\n"));
    assert!(extra.is_empty(), ".env.example names what is no documented setting: {extra:?}");
    // Each setting's help travels with it, so the file documents itself.
    for spec in Config::specs() {
        assert!(text.contains(spec.help), ".env.example: the help of {} is missing", spec.env[0]);
    }
}

// ---------------------------------------------------------------------------------------------
// Compose files
// ---------------------------------------------------------------------------------------------

const COMPOSE_FILES: [&str; 3] = ["deploy/docker-compose.yml", "deploy/docker-compose.prod.yml", "deploy/docker-compose.monitoring.yml"];

/// Variables that are not Athena settings but the environment of another service's image.
fn service_own_variables(service: &str) -> &'static [&'static str] {
    match service {
        "postgres" => &["POSTGRES_USER", "POSTGRES_PASSWORD", "POSTGRES_DB"],
        "pgbouncer" => &[
            "DB_HOST",
            "DB_PORT",
            "DB_USER",
            "DB_PASSWORD",
            "DB_NAME",
            "AUTH_TYPE",
            "POOL_MODE",
            "LISTEN_PORT",
            "MAX_CLIENT_CONN",
            "DEFAULT_POOL_SIZE",
        ],
        // Read by the entrypoint that writes SeaweedFS's S3 identity.
        "seaweed" => &["MINIO_ACCESS_KEY", "MINIO_SECRET_KEY"],
        "grafana" => &["GF_SECURITY_ADMIN_PASSWORD", "GF_USERS_ALLOW_SIGN_UP"],
        _ => &[],
    }
}

/// `${NAME}`, `${NAME:-x}`, `${NAME:?msg}` (compose interpolation) and `$$NAME` (a literal `$NAME`
/// for the container's shell) in a string.
fn variable_references(text: &str) -> Vec<String> {
    let bytes = text.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'$' {
            let start = match bytes.get(i + 1) {
                Some(b'{') => i + 2,
                Some(b'$') => {
                    let s = i + 2;
                    if bytes.get(s) == Some(&b'{') {
                        s + 1
                    } else {
                        s
                    }
                }
                _ => {
                    i += 1;
                    continue;
                }
            };
            let end = (start..bytes.len()).find(|&j| !(bytes[j].is_ascii_alphanumeric() || bytes[j] == b'_')).unwrap_or(bytes.len());
            if end > start {
                out.push(text[start..end].to_string());
            }
            i = end.max(i + 1);
        } else {
            i += 1;
        }
    }
    out
}

fn strings_in(node: &Yaml, out: &mut Vec<String>) {
    match node {
        Yaml::String(s) => out.push(s.clone()),
        Yaml::Array(items) => items.iter().for_each(|i| strings_in(i, out)),
        Yaml::Hash(h) => h.iter().for_each(|(k, v)| {
            strings_in(k, out);
            strings_in(v, out);
        }),
        _ => {}
    }
}

fn services(doc: &Yaml) -> Vec<(String, &Yaml)> {
    doc["services"].as_hash().expect("a services mapping").iter().map(|(k, v)| (k.as_str().unwrap().to_string(), v)).collect()
}

fn is_athena(service: &Yaml) -> bool {
    service["image"].as_str().is_some_and(|i| i.starts_with("athena:"))
}

#[test]
fn compose_files_reference_only_known_variables() {
    let settings = all_setting_names();
    let documented = documented_names();
    for file in COMPOSE_FILES {
        let doc = yaml(file);
        for (name, service) in services(&doc) {
            let own = service_own_variables(&name);
            // Keys of `environment:` are what the container reads.
            for key in hash_keys(&service["environment"]) {
                if is_athena(service) {
                    assert!(documented.contains(key.as_str()), "{file}: {name} sets {key}, which is no documented Athena setting");
                } else {
                    assert!(own.contains(&key.as_str()), "{file}: {name} sets {key}, which is not on its allow-list");
                }
            }
            let mut texts = Vec::new();
            strings_in(service, &mut texts);
            for var in texts.iter().flat_map(|t| variable_references(t)) {
                assert!(
                    settings.contains(var.as_str()) || own.contains(&var.as_str()),
                    "{file}: {name} references ${{{var}}}, which is neither a setting nor on the service's allow-list"
                );
            }
            if is_athena(service) {
                assert_eq!(service["env_file"].as_str(), Some(".env"), "{file}: {name} reads deploy/.env");
            }
        }
    }
}

/// Published host ports of a service (`"HOST:CONTAINER"` or `"IP:HOST:CONTAINER"`), as
/// (host, container) pairs.
fn published(service: &Yaml) -> BTreeSet<(u16, u16)> {
    service["ports"]
        .as_vec()
        .map(|ports| {
            ports
                .iter()
                .map(|p| {
                    let p = scalar(p).expect("port entries are strings");
                    let parts: Vec<&str> = p.split(':').collect();
                    assert!(parts.len() >= 2, "port `{p}` publishes no host port");
                    let n = parts.len();
                    (parts[n - 2].parse().unwrap(), parts[n - 1].parse().unwrap())
                })
                .collect()
        })
        .unwrap_or_default()
}

#[test]
fn compose_services_use_the_seeds_ports_limits_logs_and_health_checks() {
    // The ports the programs actually use when nothing is configured.
    let defaults = Config::from_sources(None, "none", |_| None).unwrap();
    assert_eq!((defaults.api_port, defaults.sync_port, defaults.metrics_port, defaults.worker.metrics_port), (48000, 48090, 49091, 49092));

    let expected: BTreeMap<&str, Vec<(u16, u16)>> = BTreeMap::from([
        ("api", vec![(48000, 48000)]),
        ("sync", vec![(48090, 48090), (49091, 49091)]),
        ("worker", vec![(49092, 49092)]),
        ("pgbouncer", vec![(6432, 6432)]),
        ("valkey", vec![(6379, 6379)]),
        ("seaweed", vec![(48333, 8333), (48888, 8888)]),
        ("postgres", vec![]),
        ("migrate", vec![]),
        ("backup", vec![]),
        ("nginx", vec![(48080, 80), (48443, 443)]),
        ("prometheus", vec![(49090, 9090)]),
        ("grafana", vec![(43000, 3000)]),
        ("node-exporter", vec![]),
    ]);
    let mut found = BTreeSet::new();
    let base = yaml("deploy/docker-compose.yml");
    for file in COMPOSE_FILES {
        let doc = yaml(file);
        for (name, service) in services(&doc) {
            found.insert(name.clone());
            let want: BTreeSet<(u16, u16)> =
                expected.get(name.as_str()).unwrap_or_else(|| panic!("{file}: unexpected service {name}")).iter().copied().collect();
            assert_eq!(published(service), want, "{file}: ports of {name}");

            let one_shot = service["restart"].as_str() == Some("no");
            let logging = &service["logging"];
            assert_eq!(logging["driver"].as_str(), Some("json-file"), "{file}: {name} logs as json-file");
            assert_eq!(logging["options"]["max-size"].as_str(), Some("50m"), "{file}: {name} rotates at 50m");
            assert_eq!(logging["options"]["max-file"].as_str(), Some("3"), "{file}: {name} keeps 3 files");
            if !one_shot {
                assert_eq!(service["restart"].as_str(), Some("unless-stopped"), "{file}: {name} restart policy");
                let test = &service["healthcheck"]["test"];
                assert!(test.as_vec().is_some_and(|t| t.len() >= 2), "{file}: {name} has a health check");
                assert!(!service["deploy"]["resources"]["limits"]["memory"].is_badvalue(), "{file}: {name} has a memory limit");
                assert!(!service["deploy"]["resources"]["limits"]["cpus"].is_badvalue(), "{file}: {name} has a CPU limit");
            }
            if let Some(net) = service["networks"].as_vec() {
                assert_eq!(net.iter().filter_map(Yaml::as_str).collect::<Vec<_>>(), ["athena-network"], "{file}: {name} network");
            } else {
                panic!("{file}: {name} joins athena-network");
            }
        }
    }
    assert_eq!(found, expected.keys().map(|s| s.to_string()).collect(), "every expected service exists");

    // Seed §7.8's limits for api and worker.
    let services: BTreeMap<String, &Yaml> = services(&base).into_iter().collect();
    for (name, cpus, memory) in [("api", "8", "8G"), ("worker", "12", "16G")] {
        let limits = &services[name]["deploy"]["resources"]["limits"];
        assert_eq!((scalar(&limits["cpus"]).as_deref(), limits["memory"].as_str()), (Some(cpus), Some(memory)), "{name} limits");
    }
    // The roles: same image, one role each, health checks on their own ports.
    for (name, role, health) in [("api", "api", "48000/health"), ("sync", "sync", "48090/health"), ("worker", "worker", "49092/metrics")] {
        let s = services[name];
        let command: Vec<&str> = s["command"].as_vec().unwrap().iter().filter_map(Yaml::as_str).collect();
        assert_eq!(command, ["serve", "--role", role], "{name} command");
        let test: Vec<&str> = s["healthcheck"]["test"].as_vec().unwrap().iter().filter_map(Yaml::as_str).collect();
        assert!(test.iter().any(|t| t.ends_with(health)), "{name} health check {test:?}");
        assert_eq!(s["build"]["dockerfile"].as_str(), Some("deploy/Dockerfile"));
        assert_eq!(s["environment"]["ATHENA_MODE"].as_str(), Some("production"), "{name}: containers bind all interfaces");
    }
    // API and worker go through PgBouncer in session mode; sync connects directly (seed §1.4).
    assert_eq!(services["api"]["environment"]["POSTGRES_HOST"].as_str(), Some("pgbouncer"));
    assert_eq!(services["worker"]["environment"]["POSTGRES_HOST"].as_str(), Some("pgbouncer"));
    assert_eq!(services["sync"]["environment"]["POSTGRES_HOST"].as_str(), Some("postgres"));
    assert_eq!(services["pgbouncer"]["environment"]["POOL_MODE"].as_str(), Some("session"));
    assert_eq!(services["pgbouncer"]["environment"]["LISTEN_PORT"].as_str(), Some("6432"));
    assert_eq!(services["migrate"]["command"].as_vec().unwrap()[0].as_str(), Some("migrate"));
    assert_eq!(services["api"]["depends_on"]["migrate"]["condition"].as_str(), Some("service_completed_successfully"));

    let dockerfile = read("deploy/Dockerfile");
    for needle in [
        "FROM rust:1.95-bookworm",
        "FROM debian:bookworm-slim",
        "scripts/fetch-models.sh",
        "calibre",
        "poppler-utils",
        "tesseract-ocr-chi-sim",
        "tesseract-ocr-eng",
        "fonts-wqy-microhei",
        "ca-certificates",
        "USER athena",
        "HEALTHCHECK",
        "/health",
        "ENTRYPOINT [\"athena\"]",
        "CMD [\"serve\"]",
    ] {
        assert!(dockerfile.contains(needle), "deploy/Dockerfile lacks `{needle}`");
    }
}

// ---------------------------------------------------------------------------------------------
// nginx
// ---------------------------------------------------------------------------------------------

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// The shipped config made runnable here: upstream hosts become 127.0.0.1 at the given ports,
/// `/etc/nginx` and `/var/log/nginx` become the temp dir, and the listeners the given ports.
struct NginxSite {
    dir: tempfile::TempDir,
}

impl NginxSite {
    fn new(upstreams: [(&str, u16); 3], http: u16, https: u16) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        let root = d.to_str().unwrap();
        std::fs::create_dir_all(d.join("snippets")).unwrap();
        std::fs::create_dir_all(d.join("tls")).unwrap();
        let mut conf = read("deploy/nginx/athena.conf");
        for (host, port) in upstreams {
            let (from, default_port) = match host {
                "api" => ("server api:48000;", 48000),
                "sync" => ("server sync:48090;", 48090),
                _ => ("server seaweed:8333;", 8333),
            };
            assert!(conf.contains(from), "athena.conf: upstream `{from}`");
            let port = if port == 0 { default_port } else { port };
            conf = conf.replace(from, &format!("server 127.0.0.1:{port};"));
        }
        for (from, to) in [
            ("listen 80 default_server;", format!("listen 127.0.0.1:{http};")),
            ("listen 443 ssl http2 default_server;", format!("listen 127.0.0.1:{https} ssl http2;")),
        ] {
            assert!(conf.contains(from), "athena.conf: `{from}`");
            conf = conf.replace(from, &to);
        }
        conf = conf.replace("/etc/nginx/", &format!("{root}/")).replace("/var/log/nginx/", &format!("{root}/"));
        std::fs::write(d.join("athena.conf"), conf).unwrap();
        let tls = read("deploy/nginx/athena-tls.conf").replace("/etc/nginx/", &format!("{root}/"));
        std::fs::write(d.join("snippets/athena-tls.conf"), tls).unwrap();
        let out = Command::new("openssl")
            .args(["req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=localhost"])
            .arg("-keyout")
            .arg(d.join("tls/privkey.pem"))
            .arg("-out")
            .arg(d.join("tls/fullchain.pem"))
            .output()
            .expect("openssl must be installed");
        assert!(out.status.success(), "openssl: {}", String::from_utf8_lossy(&out.stderr));
        // The nginx image's nginx.conf includes conf.d/*.conf inside `http`; this wrapper does the same.
        let wrapper = format!(
            "daemon off;\npid {root}/nginx.pid;\nerror_log {root}/error.log warn;\nevents {{ worker_connections 256; }}\n\
             http {{\n  client_body_temp_path {root}/body;\n  proxy_temp_path {root}/proxy;\n  fastcgi_temp_path {root}/fastcgi;\n  \
             uwsgi_temp_path {root}/uwsgi;\n  scgi_temp_path {root}/scgi;\n  include {root}/athena.conf;\n}}\n"
        );
        std::fs::write(d.join("nginx.conf"), wrapper).unwrap();
        Self { dir }
    }

    fn nginx(&self, extra: &[&str]) -> Command {
        let mut cmd = Command::new(nginx_binary());
        cmd.arg("-p").arg(self.dir.path()).arg("-c").arg(self.dir.path().join("nginx.conf")).args(extra);
        cmd
    }
}

fn nginx_binary() -> PathBuf {
    ["/usr/sbin/nginx", "/usr/local/sbin/nginx", "/usr/bin/nginx"]
        .iter()
        .map(PathBuf::from)
        .find(|p| p.exists())
        .expect("nginx is not installed: scripts/install-deps.sh installs Debian's nginx")
}

#[test]
fn nginx_config_passes_nginx_t() {
    let site = NginxSite::new([("api", 0), ("sync", 0), ("seaweed", 0)], free_port(), free_port());
    let out = site.nginx(&["-t", "-q"]).output().unwrap();
    assert!(out.status.success(), "nginx -t failed:\n{}", String::from_utf8_lossy(&out.stderr));
}

/// A stand-in upstream: answers every request with `NAME METHOD PATH` and the headers the
/// routing contract names; on `/sync/stream` it streams two lines a second apart.
async fn upstream(name: &'static str) -> u16 {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        loop {
            let Ok((mut sock, _)) = listener.accept().await else { return };
            tokio::spawn(async move {
                let mut head = Vec::new();
                let mut buf = [0u8; 4096];
                while !head.windows(4).any(|w| w == b"\r\n\r\n") {
                    match sock.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => head.extend_from_slice(&buf[..n]),
                    }
                }
                let head = String::from_utf8_lossy(&head).to_string();
                let mut lines = head.lines();
                let request_line = lines.next().unwrap_or_default().to_string();
                let headers: BTreeMap<String, String> =
                    lines.filter_map(|l| l.split_once(':')).map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string())).collect();
                let mut parts = request_line.split(' ');
                let (method, path, version) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""), parts.next().unwrap_or(""));
                let pick = |h: &str| headers.get(h).cloned().unwrap_or_default();
                let body = serde_json::json!({
                    "upstream": name, "method": method, "path": path, "version": version,
                    "host": pick("host"), "x_forwarded_prefix": pick("x-forwarded-prefix"),
                    "x_forwarded_proto": pick("x-forwarded-proto"), "x_request_id": pick("x-request-id"),
                })
                .to_string();
                if path == "/sync/stream" {
                    let first = format!("{body}\n");
                    let reply = format!(
                        "HTTP/1.1 200 OK\r\nContent-Type: application/x-ndjson\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n{:x}\r\n{first}\r\n",
                        first.len()
                    );
                    if sock.write_all(reply.as_bytes()).await.is_err() {
                        return;
                    }
                    let _ = sock.flush().await;
                    tokio::time::sleep(Duration::from_millis(1500)).await;
                    let second = "{\"checkpoint_complete\":true}\n";
                    let _ = sock.write_all(format!("{:x}\r\n{second}\r\n0\r\n\r\n", second.len()).as_bytes()).await;
                } else {
                    let reply = format!(
                        "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                        body.len()
                    );
                    let _ = sock.write_all(reply.as_bytes()).await;
                }
                let _ = sock.shutdown().await;
            });
        }
    });
    port
}

/// Kills the nginx it holds when the test ends, however it ends.
struct Running(std::process::Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[tokio::test]
async fn nginx_routes_api_sync_s3_and_the_web_app_as_documented() {
    let (api, sync, s3) = (upstream("api").await, upstream("sync").await, upstream("s3").await);
    let (http, https) = (free_port(), free_port());
    let site = NginxSite::new([("api", api), ("sync", sync), ("seaweed", s3)], http, https);
    let _nginx = Running(site.nginx(&[]).stdin(Stdio::null()).stdout(Stdio::null()).stderr(Stdio::inherit()).spawn().unwrap());

    let client = reqwest::Client::builder()
        .danger_accept_invalid_certs(true)
        .redirect(reqwest::redirect::Policy::none())
        .timeout(Duration::from_secs(20))
        .build()
        .unwrap();
    let base = format!("https://localhost:{https}");
    // Readiness: nginx answers once it has bound its ports.
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if client.get(format!("{base}/health")).send().await.is_ok() {
            break;
        }
        assert!(Instant::now() < deadline, "nginx did not start");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    async fn get(client: &reqwest::Client, url: String) -> serde_json::Value {
        let r = client.get(&url).send().await.unwrap();
        assert_eq!(r.status(), 200, "{url}");
        r.json().await.unwrap()
    }
    let r = get(&client, format!("{base}/api/v1/books?limit=5")).await;
    assert_eq!((r["upstream"].as_str(), r["path"].as_str()), (Some("api"), Some("/api/v1/books?limit=5")));
    assert_eq!(r["x_forwarded_proto"], "https");
    assert_eq!(r["x_request_id"].as_str().map(str::len), Some(32), "nginx's request id is passed on: {r}");
    // The web app and its client-side routes, /health and /docs are the API's.
    for path in ["/", "/library/shelf/42", "/health", "/docs"] {
        let r = get(&client, format!("{base}{path}")).await;
        assert_eq!((r["upstream"].as_str(), r["path"].as_str()), (Some("api"), Some(path)));
    }
    // Signed S3 URLs: the prefix is stripped and announced for signature checks; Host is the client's.
    let r = get(&client, format!("{base}/s3/athena/users/u/book.epub?X-Amz-Signature=abc")).await;
    assert_eq!((r["upstream"].as_str(), r["path"].as_str()), (Some("s3"), Some("/athena/users/u/book.epub?X-Amz-Signature=abc")));
    assert_eq!(r["x_forwarded_prefix"], "/s3");
    assert_eq!(r["host"].as_str(), Some(format!("localhost:{https}").as_str()));
    // Metrics are not public.
    assert_eq!(client.get(format!("{base}/metrics")).send().await.unwrap().status(), 404);
    // Plain HTTP redirects to HTTPS.
    let r = client.get(format!("http://127.0.0.1:{http}/api/v1/books")).send().await.unwrap();
    assert_eq!(r.status(), 301);

    // /powersync/: prefix stripped, HTTP/1.1 upstream, and each line arrives as it is sent.
    let r = get(&client, format!("{base}/powersync/write-checkpoint2.json?client_id=x")).await;
    assert_eq!((r["upstream"].as_str(), r["path"].as_str()), (Some("sync"), Some("/write-checkpoint2.json?client_id=x")));
    assert_eq!(r["version"], "HTTP/1.1");
    let started = Instant::now();
    let resp = client.post(format!("{base}/powersync/sync/stream")).body("{}").send().await.unwrap();
    assert_eq!(resp.status(), 200);
    let mut body = resp.bytes_stream();
    let first = body.next().await.unwrap().unwrap();
    let first_at = started.elapsed();
    assert!(String::from_utf8_lossy(&first).contains("\"upstream\":\"sync\""), "{first:?}");
    assert!(first_at < Duration::from_millis(1200), "the first line was held back {first_at:?}: buffering is on");
    let mut rest = Vec::new();
    while let Some(chunk) = body.next().await {
        rest.extend_from_slice(&chunk.unwrap());
    }
    assert!(String::from_utf8_lossy(&rest).contains("checkpoint_complete"));
    assert!(started.elapsed() >= Duration::from_millis(1400));
}

// ---------------------------------------------------------------------------------------------
// Prometheus, alerts, dashboard, metrics inventory
// ---------------------------------------------------------------------------------------------

/// Metrics that come from other exporters, which Athena's files may name.
const EXTERNAL_METRICS: [&str; 3] = ["up", "node_filesystem_avail_bytes", "node_filesystem_size_bytes"];

/// Every metric name the code passes to `counter!`, `gauge!`, `histogram!` or a `describe_*!`.
fn emitted_metrics() -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    let mut files = Vec::new();
    let crates = repo().join("crates");
    for entry in std::fs::read_dir(&crates).unwrap() {
        collect_rs(&entry.unwrap().path().join("src"), &mut files);
    }
    for file in files {
        let text = std::fs::read_to_string(&file).unwrap();
        for mac in ["counter!(", "gauge!(", "histogram!("] {
            let mut rest = text.as_str();
            while let Some(at) = rest.find(mac) {
                rest = &rest[at + mac.len()..];
                let trimmed = rest.trim_start();
                if let Some(lit) = trimmed.strip_prefix('"') {
                    if let Some(end) = lit.find('"') {
                        names.insert(lit[..end].to_string());
                    }
                }
            }
        }
    }
    names
}

fn collect_rs(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else { return };
    for entry in entries {
        let path = entry.unwrap().path();
        if path.is_dir() {
            collect_rs(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// Metric names in a PromQL expression: identifiers outside quotes that are not functions,
/// keywords or label names (label names sit inside `{}` or in `by (…)`/`on (…)` lists).
fn metrics_in(expr: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    let chars: Vec<char> = expr.chars().collect();
    let (mut i, mut brace, mut paren_labels) = (0, 0, false);
    let mut last_word = String::new();
    while i < chars.len() {
        let c = chars[i];
        if c == '"' || c == '\'' {
            i += 1;
            while i < chars.len() && chars[i] != c {
                i += if chars[i] == '\\' { 2 } else { 1 };
            }
            i += 1;
            continue;
        }
        match c {
            '{' => brace += 1,
            '}' => brace -= 1,
            '[' => {
                // Range or subquery: skip the duration.
                while i < chars.len() && chars[i] != ']' {
                    i += 1;
                }
            }
            '(' => paren_labels = matches!(last_word.as_str(), "by" | "without" | "on" | "ignoring" | "group_left" | "group_right"),
            ')' => paren_labels = false,
            _ => {}
        }
        if c.is_ascii_alphabetic() || c == '_' {
            let start = i;
            while i < chars.len() && (chars[i].is_ascii_alphanumeric() || chars[i] == '_' || chars[i] == ':') {
                i += 1;
            }
            let word: String = chars[start..i].iter().collect();
            let next = chars[i..].iter().find(|c| !c.is_whitespace());
            let is_call = next == Some(&'(');
            let keyword = matches!(
                word.as_str(),
                "by" | "without" | "on" | "ignoring" | "group_left" | "group_right" | "and" | "or" | "unless" | "bool" | "offset"
                    // Aggregations may put `by (…)` before their argument list.
                    | "sum" | "min" | "max" | "avg" | "count" | "group" | "stddev" | "stdvar" | "topk" | "bottomk" | "quantile"
            );
            if brace == 0 && !paren_labels && !is_call && !keyword {
                out.insert(word.clone());
            }
            last_word = word;
            continue;
        }
        i += 1;
    }
    out
}

#[test]
fn metrics_in_expressions_are_found_and_keywords_are_not() {
    let m = metrics_in(r#"histogram_quantile(0.95, sum by (le, route) (rate(athena_x_bucket{route!="/a/{*key}"}[5m]))) > 0.3"#);
    assert_eq!(m, BTreeSet::from(["athena_x_bucket".to_string()]));
    let m = metrics_in("max by (queue) (a_depth) > 0 unless on (queue) sum by (queue) (b) > 0 and up{job=~\"x\"} == 0");
    assert_eq!(m, ["a_depth", "b", "up"].map(String::from).into_iter().collect());
}

/// Checks a metric an alert or panel names: emitted by the code (a histogram's `_bucket`, `_sum`,
/// `_count` series included) or an external one.
fn assert_known_metric(emitted: &BTreeSet<String>, metric: &str, context: &str) {
    let base = ["_bucket", "_sum", "_count"].iter().find_map(|s| metric.strip_suffix(s)).unwrap_or(metric);
    assert!(
        emitted.contains(metric) || emitted.contains(base) || EXTERNAL_METRICS.contains(&metric),
        "{context}: `{metric}` is not emitted by the code (known: {emitted:?}) nor a listed external metric"
    );
}

#[test]
fn prometheus_scrapes_every_role() {
    let doc = yaml("deploy/prometheus/prometheus.yml");
    let mut targets = BTreeMap::new();
    for job in doc["scrape_configs"].as_vec().expect("scrape_configs") {
        let name = job["job_name"].as_str().expect("job_name").to_string();
        let path = job["metrics_path"].as_str().unwrap_or("/metrics").to_string();
        for sc in job["static_configs"].as_vec().expect("static_configs") {
            for t in sc["targets"].as_vec().expect("targets") {
                targets.insert(t.as_str().unwrap().to_string(), (name.clone(), path.clone()));
            }
        }
    }
    for (target, job) in [("api:48000", "athena-api"), ("sync:49091", "athena-sync"), ("worker:49092", "athena-worker")] {
        assert_eq!(targets.get(target), Some(&(job.to_string(), "/metrics".to_string())), "scrape target {target}");
    }
    let rule_files: Vec<&str> = doc["rule_files"].as_vec().unwrap().iter().filter_map(Yaml::as_str).collect();
    assert_eq!(rule_files, ["/etc/prometheus/alerts.yml"]);
    let monitoring = read("deploy/docker-compose.monitoring.yml");
    assert!(monitoring.contains("./prometheus/alerts.yml:/etc/prometheus/alerts.yml"), "the rule file is mounted where it is read");
}

#[test]
fn alerts_are_well_formed_and_name_emitted_metrics() {
    let emitted = emitted_metrics();
    assert!(emitted.contains("athena_http_requests_total") && emitted.contains("powersync_sync_lag_ms"), "scan found {emitted:?}");
    let doc = yaml("deploy/prometheus/alerts.yml");
    let mut alerts = BTreeSet::new();
    let mut referenced = BTreeSet::new();
    for group in doc["groups"].as_vec().expect("groups") {
        let gname = group["name"].as_str().expect("group name");
        for rule in group["rules"].as_vec().expect("rules") {
            let name = rule["alert"].as_str().unwrap_or_else(|| panic!("{gname}: every rule is an alert"));
            assert!(alerts.insert(name.to_string()), "alert {name} defined twice");
            let expr = rule["expr"].as_str().unwrap_or_else(|| panic!("{name}: expr"));
            let severity = rule["labels"]["severity"].as_str().unwrap_or_else(|| panic!("{name}: severity"));
            assert!(["critical", "warning", "info"].contains(&severity), "{name}: severity {severity}");
            assert!(rule["annotations"]["summary"].as_str().is_some(), "{name}: summary");
            if let Some(f) = rule["for"].as_str() {
                assert!(f.ends_with('m') || f.ends_with('h') || f.ends_with('s'), "{name}: for {f}");
            }
            for metric in metrics_in(expr) {
                assert_known_metric(&emitted, &metric, &format!("alert {name}"));
                referenced.insert(metric);
            }
        }
    }
    // The alerts the operations manual promises (seed §5.3 and the issue).
    let by_name = |n: &str| {
        doc["groups"]
            .as_vec()
            .unwrap()
            .iter()
            .flat_map(|g| g["rules"].as_vec().unwrap().iter())
            .find(|r| r["alert"].as_str() == Some(n))
            .unwrap_or_else(|| panic!("alert {n} exists"))
            .clone()
    };
    for (name, metric, threshold, duration) in [
        ("AthenaHighErrorRate", "athena_http_requests_total", "> 0.05", "10m"),
        ("AthenaSlowRequests", "athena_http_request_duration_seconds_bucket", "> 0.3", "10m"),
        ("AthenaBackupTooOld", "athena_backup_age_seconds", "> 24 * 3600", "10m"),
        ("AthenaQueueGrowing", "athena_queue_depth", "deriv(", "30m"),
        ("AthenaSyncLagHigh", "powersync_sync_lag_ms", "> 5000", "10m"),
        ("AthenaDiskNearlyFull", "node_filesystem_avail_bytes", "< 0.10", "15m"),
    ] {
        let rule = by_name(name);
        let expr = rule["expr"].as_str().unwrap();
        assert!(metrics_in(expr).contains(metric), "{name} watches {metric}");
        assert!(expr.contains(threshold), "{name}: `{threshold}` in {expr}");
        assert_eq!(rule["for"].as_str(), Some(duration), "{name}: for");
    }
    // The promtool unit tests beside the rules name only alerts that exist.
    let tests = yaml("deploy/prometheus/alerts_test.yml");
    for case in tests["tests"].as_vec().expect("tests") {
        for t in case["alert_rule_test"].as_vec().expect("alert_rule_test") {
            let a = t["alertname"].as_str().unwrap();
            assert!(alerts.contains(a), "alerts_test.yml names unknown alert {a}");
        }
    }
}

#[test]
fn dashboard_panels_query_emitted_metrics() {
    let emitted = emitted_metrics();
    let dash: serde_json::Value = serde_json::from_str(&read("deploy/grafana/athena.json")).expect("dashboard JSON");
    assert_eq!(dash["uid"], "athena-overview");
    let mut shown = BTreeSet::new();
    let panels = dash["panels"].as_array().expect("panels");
    for panel in panels {
        let title = panel["title"].as_str().expect("title");
        for target in panel["targets"].as_array().map(Vec::as_slice).unwrap_or_default() {
            let expr = target["expr"].as_str().unwrap_or_else(|| panic!("{title}: expr"));
            for metric in metrics_in(expr) {
                assert_known_metric(&emitted, &metric, &format!("panel {title}"));
                shown.insert(metric);
            }
        }
    }
    // Every metric the code emits is on the dashboard (as itself or as a histogram's series).
    for metric in &emitted {
        assert!(
            shown.iter().any(|s| s == metric || s.strip_suffix("_bucket") == Some(metric) || s.strip_suffix("_sum") == Some(metric)),
            "the dashboard shows no panel for {metric}"
        );
    }
}

#[test]
fn operations_manual_documents_every_emitted_metric() {
    let manual = read("docs/OPERATIONS.md");
    for metric in emitted_metrics() {
        assert!(manual.contains(&format!("`{metric}`")), "docs/OPERATIONS.md does not document `{metric}`");
    }
    for command in ["athena doctor", "athena migrate", "athena jobs list --queue gpu_high", "athena storage check", "docs/BACKUP.md"] {
        assert!(manual.contains(command), "docs/OPERATIONS.md mentions `{command}`");
    }
}
