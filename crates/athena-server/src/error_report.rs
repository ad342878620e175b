//! Sentry error reporting, on when `SENTRY_DSN` is set: panics (any thread) and 5xx responses (`athena_http::report`)
//! become Sentry events, POSTed as envelopes (Sentry's documented ingestion protocol: `/api/{project}/envelope/`
//! with an `X-Sentry-Auth` header) over the reqwest client the server has anyway, instead of the `sentry` SDK and
//! its dependency tree.
//!
//! An event carries the release (`athena@VERSION`), the environment (the mode), the roles, the error's code and
//! internal message, and for a request its method, route template and request id. It never carries bodies, headers,
//! tokens, emails or the concrete path. Sending happens on a background task through a bounded queue: a full
//! queue or a Sentry outage drops events (with a log line), never slows a request.

use std::sync::Arc;
use std::time::Duration;

use athena_config::{Config, Mode};
use athena_http::report::{ErrorReporter, InternalErrorReport};
use serde_json::{json, Value};
use tokio::sync::mpsc;

/// Events waiting to be sent; beyond this, new ones are dropped (an error storm must not grow memory).
const QUEUE: usize = 256;
/// Per event; Sentry answers in milliseconds when it is up.
const SEND_TIMEOUT: Duration = Duration::from_secs(5);
/// Longest message kept (panic payloads and error chains can be long).
const MAX_MESSAGE: usize = 2000;

/// Where and how to send, from a DSN `{scheme}://{public_key}@{host}[:port][/path]/{project_id}`.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Dsn {
    pub envelope_url: String,
    pub public_key: String,
}

impl Dsn {
    pub fn parse(dsn: &str) -> Result<Self, String> {
        let url = reqwest::Url::parse(dsn).map_err(|e| format!("SENTRY_DSN is not a URL: {e}"))?;
        if !matches!(url.scheme(), "http" | "https") {
            return Err("SENTRY_DSN must be an http(s) URL".into());
        }
        let public_key = url.username().to_string();
        if public_key.is_empty() {
            return Err("SENTRY_DSN has no public key (https://KEY@host/PROJECT)".into());
        }
        let host = url.host_str().ok_or("SENTRY_DSN has no host")?;
        let mut segments: Vec<&str> = url.path().split('/').filter(|s| !s.is_empty()).collect();
        let project = segments.pop().filter(|p| !p.is_empty()).ok_or("SENTRY_DSN has no project id")?;
        let prefix = segments.iter().map(|s| format!("/{s}")).collect::<String>();
        let port = url.port().map(|p| format!(":{p}")).unwrap_or_default();
        Ok(Self { envelope_url: format!("{}://{host}{port}{prefix}/api/{project}/envelope/", url.scheme()), public_key })
    }
}

/// What every event says about this process.
#[derive(Debug, Clone)]
struct Common {
    release: String,
    environment: &'static str,
    roles: String,
}

#[derive(Clone)]
struct Reporter {
    tx: mpsc::Sender<Value>,
    common: Arc<Common>,
}

impl Reporter {
    fn event(&self, level: &str, logger: &str, kind: &str, message: &str, mut tags: serde_json::Map<String, Value>) -> Value {
        let message: String = message.chars().take(MAX_MESSAGE).collect();
        tags.insert("roles".into(), Value::String(self.common.roles.clone()));
        json!({
            "event_id": uuid::Uuid::new_v4().simple().to_string(),
            "timestamp": chrono::Utc::now().timestamp_millis() as f64 / 1000.0,
            "platform": "other",
            "level": level,
            "logger": logger,
            "release": self.common.release,
            "environment": self.common.environment,
            "exception": { "values": [ { "type": kind, "value": message } ] },
            "tags": tags,
        })
    }

    fn enqueue(&self, event: Value) {
        if self.tx.try_send(event).is_err() {
            tracing::warn!("error report dropped: the Sentry queue is full or closed");
        }
    }
}

impl ErrorReporter for Reporter {
    fn report(&self, r: InternalErrorReport) {
        let mut tags = serde_json::Map::new();
        tags.insert("method".into(), r.method.clone().into());
        tags.insert("route".into(), r.route.clone().into());
        tags.insert("status".into(), r.status.to_string().into());
        tags.insert("code".into(), r.code.into());
        if let Some(id) = &r.request_id {
            tags.insert("request_id".into(), id.clone().into());
        }
        let message = r.detail.unwrap_or_else(|| format!("{} {} answered {}", r.method, r.route, r.status));
        let mut event = self.event("error", "athena.http", r.code, &message, tags);
        event["transaction"] = format!("{} {}", r.method, r.route).into();
        self.enqueue(event);
    }
}

/// Starts reporting when `SENTRY_DSN` is set; a no-op otherwise. Process-wide (the panic hook and the HTTP
/// reporter are global), so only the first call in a process installs anything. Must run inside the runtime.
pub fn install(config: &Config, roles: &[crate::Role]) {
    let Some(dsn) = &config.sentry_dsn else { return };
    let dsn = match Dsn::parse(dsn.expose()) {
        Ok(d) => d,
        Err(e) => {
            // The DSN is a secret: the message names the problem, never the value.
            tracing::error!(error = %e, "Sentry reporting is off");
            return;
        }
    };
    static INSTALLED: std::sync::Once = std::sync::Once::new();
    let mut first = false;
    INSTALLED.call_once(|| first = true);
    if !first {
        return;
    }
    let common = Common {
        release: format!("athena@{}", env!("CARGO_PKG_VERSION")),
        environment: match config.mode {
            Mode::Development => "development",
            Mode::Production => "production",
        },
        roles: roles
            .iter()
            .map(|r| match r {
                crate::Role::Api => "api",
                crate::Role::Sync => "sync",
                crate::Role::Worker => "worker",
            })
            .collect::<Vec<_>>()
            .join(","),
    };
    start(dsn, common);
    tracing::info!("Sentry reporting on");
}

/// Starts the sender and installs the HTTP reporter and the panic hook (which chains to the previous one, so panics
/// are still logged as before).
fn start(dsn: Dsn, common: Common) {
    let (tx, rx) = mpsc::channel(QUEUE);
    let reporter = Reporter { tx, common: Arc::new(common) };
    tokio::spawn(send_loop(dsn, rx));
    athena_http::report::set_error_reporter(Box::new(reporter.clone()));

    let previous = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        let message = info
            .payload()
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| info.payload().downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "panic".into());
        let mut tags = serde_json::Map::new();
        if let Some(location) = info.location() {
            tags.insert("location".into(), format!("{}:{}", location.file(), location.line()).into());
        }
        if let Some(name) = std::thread::current().name() {
            tags.insert("thread".into(), name.into());
        }
        reporter.enqueue(reporter.event("fatal", "athena.panic", "panic", &message, tags));
        previous(info);
    }));
}

async fn send_loop(dsn: Dsn, mut rx: mpsc::Receiver<Value>) {
    let client = match reqwest::Client::builder().timeout(SEND_TIMEOUT).build() {
        Ok(c) => c,
        Err(e) => {
            tracing::error!(error = %e, "Sentry reporting is off: no HTTP client");
            return;
        }
    };
    let auth = format!("Sentry sentry_version=7, sentry_client=athena/{}, sentry_key={}", env!("CARGO_PKG_VERSION"), dsn.public_key);
    while let Some(event) = rx.recv().await {
        let body = envelope(&event);
        let sent = client
            .post(&dsn.envelope_url)
            .header("content-type", "application/x-sentry-envelope")
            .header("x-sentry-auth", &auth)
            .body(body)
            .send()
            .await;
        match sent {
            Ok(r) if r.status().is_success() => {}
            Ok(r) => tracing::warn!(status = %r.status(), "Sentry refused an error report"),
            Err(e) => tracing::warn!(error = %e, "could not send an error report to Sentry"),
        }
    }
}

/// An envelope with one event item: envelope header, item header, payload, each on its own line.
fn envelope(event: &Value) -> Vec<u8> {
    let payload = serde_json::to_vec(event).unwrap_or_default();
    let header =
        json!({ "event_id": event["event_id"], "sent_at": chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true) });
    let item = json!({ "type": "event", "length": payload.len(), "content_type": "application/json" });
    let mut out = Vec::with_capacity(payload.len() + 200);
    out.extend_from_slice(header.to_string().as_bytes());
    out.push(b'\n');
    out.extend_from_slice(item.to_string().as_bytes());
    out.push(b'\n');
    out.extend_from_slice(&payload);
    out.push(b'\n');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dsn_gives_the_envelope_endpoint_and_key() {
        let d = Dsn::parse("https://abc123@o1.ingest.sentry.io/42").unwrap();
        assert_eq!(d, Dsn { envelope_url: "https://o1.ingest.sentry.io/api/42/envelope/".into(), public_key: "abc123".into() });
        let d = Dsn::parse("http://k@127.0.0.1:9000/sentry/7").unwrap();
        assert_eq!(d.envelope_url, "http://127.0.0.1:9000/sentry/api/7/envelope/");
        assert!(Dsn::parse("https://o1.ingest.sentry.io/42").is_err(), "no key");
        assert!(Dsn::parse("https://k@host/").is_err(), "no project");
        assert!(Dsn::parse("ftp://k@host/1").is_err());
    }

    /// A panic on any thread reaches the ingest endpoint as a `fatal` event with the release and environment.
    /// (5xx responses are covered end to end by `crates/athena/tests/sentry.rs`.)
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_panic_is_sent_as_an_envelope() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (got_tx, mut got_rx) = mpsc::unbounded_channel::<(String, String)>();
        tokio::spawn(async move {
            use tokio::io::{AsyncReadExt, AsyncWriteExt};
            loop {
                let Ok((mut sock, _)) = listener.accept().await else { return };
                let got_tx = got_tx.clone();
                tokio::spawn(async move {
                    // One request per connection is enough here: read until the body's declared length.
                    let mut buf = Vec::new();
                    let mut chunk = [0u8; 8192];
                    loop {
                        let n = sock.read(&mut chunk).await.unwrap_or(0);
                        if n == 0 {
                            break;
                        }
                        buf.extend_from_slice(&chunk[..n]);
                        let text = String::from_utf8_lossy(&buf).to_string();
                        if let Some(end) = text.find("\r\n\r\n") {
                            let len = text[..end]
                                .lines()
                                .find_map(|l| {
                                    l.to_ascii_lowercase().strip_prefix("content-length:").map(|v| v.trim().parse::<usize>().unwrap())
                                })
                                .unwrap_or(0);
                            if buf.len() >= end + 4 + len {
                                let _ = got_tx
                                    .send((text[..end].to_string(), String::from_utf8_lossy(&buf[end + 4..end + 4 + len]).to_string()));
                                let _ = sock.write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\nconnection: close\r\n\r\n{}").await;
                                break;
                            }
                        }
                    }
                });
            }
        });
        let dsn = Dsn::parse(&format!("http://panickey@{addr}/7")).unwrap();
        start(dsn, Common { release: "athena@test".into(), environment: "production", roles: "worker".into() });
        let _ = std::thread::Builder::new().name("doomed".into()).spawn(|| panic!("unique panic 5f1c")).unwrap().join();
        let (head, body) = loop {
            let (head, body) =
                tokio::time::timeout(Duration::from_secs(10), got_rx.recv()).await.expect("no envelope within 10 s").unwrap();
            if body.contains("unique panic 5f1c") {
                break (head, body);
            }
        };
        assert!(head.starts_with("POST /api/7/envelope/ HTTP/1.1"), "{head}");
        assert!(head.to_ascii_lowercase().contains("x-sentry-auth: sentry sentry_version=7"), "{head}");
        assert!(head.contains("sentry_key=panickey"), "{head}");
        let event: Value = serde_json::from_str(body.lines().nth(2).unwrap()).unwrap();
        assert_eq!(event["level"], "fatal");
        assert_eq!(event["release"], "athena@test");
        assert_eq!(event["environment"], "production");
        assert_eq!(event["exception"]["values"][0]["type"], "panic");
        assert_eq!(event["exception"]["values"][0]["value"], "unique panic 5f1c");
        assert_eq!(event["tags"]["thread"], "doomed");
        assert!(event["tags"]["location"].as_str().unwrap().contains("error_report.rs:"), "{event}");
    }

    #[test]
    fn envelope_is_three_lines_with_the_payload_length() {
        let event = json!({ "event_id": "0123456789abcdef0123456789abcdef", "level": "error" });
        let body = String::from_utf8(envelope(&event)).unwrap();
        let lines: Vec<&str> = body.lines().collect();
        assert_eq!(lines.len(), 3);
        let header: Value = serde_json::from_str(lines[0]).unwrap();
        assert_eq!(header["event_id"], "0123456789abcdef0123456789abcdef");
        let item: Value = serde_json::from_str(lines[1]).unwrap();
        assert_eq!(item["type"], "event");
        assert_eq!(item["length"].as_u64().unwrap() as usize, lines[2].len());
        assert_eq!(serde_json::from_str::<Value>(lines[2]).unwrap(), event);
    }
}
