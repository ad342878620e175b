//! The built web app (`web/dist`, setting `web_dir`) served at `/` on the API port.
//!
//! Files are looked up below the web directory only: the path is percent-decoded, `.`/`..`
//! segments and backslashes are refused, and the resolved file must still lie inside the
//! canonical directory (no symlink escapes). Hashed build output under `/assets/` is cached for a
//! year; everything else (`index.html` above all) is `no-cache`, so a new build is picked up on the
//! next load. Unknown paths that do not look like a file get `index.html` (the app routes them on
//! the client); the API's own prefixes are never answered with the app. Without an `index.html`
//! in the directory, `/` keeps the placeholder page.

use std::path::{Component, Path, PathBuf};

use axum::extract::State;
use axum::http::{header, HeaderValue, Method, StatusCode, Uri};
use axum::response::{Html, IntoResponse, Response};

use crate::error::ApiError;
use crate::state::ApiState;

/// Path prefixes that belong to the server, never to the app (a miss there is the API's 404).
const RESERVED: &[&str] = &["/api/", "/powersync/", "/docs/", "/health", "/metrics", "/openapi.json"];

const IMMUTABLE: &str = "public, max-age=31536000, immutable";
const NO_CACHE: &str = "no-cache";

/// The router's fallback: the app's files, its `index.html` for client-side routes, or the
/// API's 404 envelope.
pub async fn fallback(State(s): State<ApiState>, method: Method, uri: Uri) -> Response {
    respond(&s.app.config.web_dir, &method, uri.path()).await
}

/// What `GET|HEAD path` answers with the app built into `dir`.
pub(crate) async fn respond(dir: &Path, method: &Method, path: &str) -> Response {
    let reserved = RESERVED.iter().any(|p| path.starts_with(p) || path == p.trim_end_matches('/'));
    if reserved {
        return ApiError::not_found().into_response();
    }
    if method != Method::GET && method != Method::HEAD {
        // Only files are served here: any other method finds nothing (as before the app existed).
        return ApiError::not_found().into_response();
    }
    let Ok(root) = tokio::fs::canonicalize(dir).await else {
        return no_app(path);
    };
    if !tokio::fs::try_exists(root.join("index.html")).await.unwrap_or(false) {
        return no_app(path);
    }
    let Some(relative) = safe_relative(path) else {
        return ApiError::not_found().into_response();
    };
    if !relative.as_os_str().is_empty() {
        if let Some(file) = inside(&root, &root.join(&relative)).await {
            return file_response(&file, cache_for(path)).await;
        }
        // A path naming a file (an extension in its last segment) that is not there is a 404, not
        // the app: a missing script must not be answered with HTML.
        let looks_like_file = relative.extension().is_some();
        if looks_like_file {
            return ApiError::not_found().into_response();
        }
    }
    file_response(&root.join("index.html"), NO_CACHE).await
}

/// The placeholder page at `/` while no app is built; 404 elsewhere.
fn no_app(path: &str) -> Response {
    if path == "/" || path.is_empty() {
        return Html(include_str!("routes/placeholder.html")).into_response();
    }
    ApiError::not_found().into_response()
}

fn cache_for(path: &str) -> &'static str {
    if path.starts_with("/assets/") {
        IMMUTABLE
    } else {
        NO_CACHE
    }
}

/// The request path as a relative path of plain segments; `None` for anything that could leave
/// the directory or is not valid text.
fn safe_relative(path: &str) -> Option<PathBuf> {
    let decoded = percent_decode(path)?;
    if decoded.contains('\\') || decoded.contains('\0') {
        return None;
    }
    let mut out = PathBuf::new();
    for segment in decoded.split('/').filter(|s| !s.is_empty()) {
        let mut components = Path::new(segment).components();
        match (components.next(), components.next()) {
            (Some(Component::Normal(c)), None) => out.push(c),
            _ => return None,
        }
    }
    Some(out)
}

fn percent_decode(s: &str) -> Option<String> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = s.get(i + 1..i + 3)?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

/// `candidate` when it is a regular file whose real path lies inside `root`.
async fn inside(root: &Path, candidate: &Path) -> Option<PathBuf> {
    let real = tokio::fs::canonicalize(candidate).await.ok()?;
    if !real.starts_with(root) {
        return None;
    }
    let meta = tokio::fs::metadata(&real).await.ok()?;
    meta.is_file().then_some(real)
}

async fn file_response(file: &Path, cache: &'static str) -> Response {
    match tokio::fs::read(file).await {
        Ok(bytes) => {
            let mut res = (StatusCode::OK, bytes).into_response();
            let headers = res.headers_mut();
            headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(mime_for(file)));
            headers.insert(header::CACHE_CONTROL, HeaderValue::from_static(cache));
            headers.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
            res
        }
        Err(e) => {
            tracing::warn!(error = %e, file = %file.display(), "web app file unreadable");
            ApiError::not_found().into_response()
        }
    }
}

fn mime_for(file: &Path) -> &'static str {
    let ext = file.extension().and_then(|e| e.to_str()).unwrap_or("").to_ascii_lowercase();
    match ext.as_str() {
        "html" => "text/html; charset=utf-8",
        "js" | "mjs" => "text/javascript; charset=utf-8",
        "css" => "text/css; charset=utf-8",
        "json" | "map" => "application/json",
        "webmanifest" => "application/manifest+json",
        "wasm" => "application/wasm",
        "svg" => "image/svg+xml",
        "png" => "image/png",
        "jpg" | "jpeg" => "image/jpeg",
        "webp" => "image/webp",
        "ico" => "image/x-icon",
        "woff2" => "font/woff2",
        "woff" => "font/woff",
        "ttf" => "font/ttf",
        "otf" => "font/otf",
        "txt" => "text/plain; charset=utf-8",
        "bcmap" => "application/octet-stream",
        "pfb" => "application/octet-stream",
        _ => "application/octet-stream",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn get(dir: &Path, path: &str) -> (StatusCode, Option<String>, Option<String>, String) {
        let res = respond(dir, &Method::GET, path).await;
        let status = res.status();
        let header = |h| res.headers().get(h).map(|v: &HeaderValue| v.to_str().unwrap().to_string());
        let (ct, cc) = (header(header::CONTENT_TYPE), header(header::CACHE_CONTROL));
        let body = axum::body::to_bytes(res.into_body(), usize::MAX).await.unwrap();
        (status, ct, cc, String::from_utf8_lossy(&body).into_owned())
    }

    fn built_app() -> tempfile::TempDir {
        let tmp = tempfile::tempdir().unwrap();
        let dist = tmp.path().join("dist");
        std::fs::create_dir_all(dist.join("assets")).unwrap();
        std::fs::write(dist.join("index.html"), "<!doctype html><title>app</title>").unwrap();
        std::fs::write(dist.join("assets/app-abc123.js"), "console.log(1)").unwrap();
        std::fs::write(dist.join("assets/sqlite-x1.wasm"), b"\0asm\x01\0\0\0").unwrap();
        std::fs::write(dist.join("favicon.svg"), "<svg/>").unwrap();
        std::fs::write(tmp.path().join("secret.txt"), "outside").unwrap();
        tmp
    }

    #[tokio::test]
    async fn serves_files_with_types_and_cache_headers() {
        let tmp = built_app();
        let dist = tmp.path().join("dist");
        let (s, ct, cc, body) = get(&dist, "/").await;
        assert_eq!(s, StatusCode::OK);
        assert_eq!(ct.as_deref(), Some("text/html; charset=utf-8"));
        assert_eq!(cc.as_deref(), Some(NO_CACHE));
        assert!(body.contains("<title>app</title>"));

        let (s, ct, cc, body) = get(&dist, "/assets/app-abc123.js").await;
        assert_eq!((s, ct.as_deref(), cc.as_deref()), (StatusCode::OK, Some("text/javascript; charset=utf-8"), Some(IMMUTABLE)));
        assert_eq!(body, "console.log(1)");

        let (s, ct, cc, _) = get(&dist, "/assets/sqlite-x1.wasm").await;
        assert_eq!((s, ct.as_deref(), cc.as_deref()), (StatusCode::OK, Some("application/wasm"), Some(IMMUTABLE)));

        let (s, ct, cc, _) = get(&dist, "/favicon.svg").await;
        assert_eq!((s, ct.as_deref(), cc.as_deref()), (StatusCode::OK, Some("image/svg+xml"), Some(NO_CACHE)));
    }

    #[tokio::test]
    async fn client_routes_fall_back_to_index_but_missing_files_do_not() {
        let tmp = built_app();
        let dist = tmp.path().join("dist");
        for route in ["/library", "/reader/3f0c", "/settings/"] {
            let (s, ct, cc, body) = get(&dist, route).await;
            assert_eq!(s, StatusCode::OK, "{route}");
            assert_eq!(ct.as_deref(), Some("text/html; charset=utf-8"), "{route}");
            assert_eq!(cc.as_deref(), Some(NO_CACHE), "{route}");
            assert!(body.contains("<title>app</title>"), "{route}");
        }
        let (s, _, _, body) = get(&dist, "/assets/missing-123.js").await;
        assert_eq!(s, StatusCode::NOT_FOUND);
        assert!(body.contains("\"not_found\""), "{body}");
    }

    #[tokio::test]
    async fn api_paths_are_not_swallowed_by_the_app() {
        let tmp = built_app();
        let dist = tmp.path().join("dist");
        for path in ["/api/v1/nothing-here", "/powersync/nothing", "/health/x", "/metrics", "/openapi.json", "/docs/x"] {
            let (s, ct, _, body) = get(&dist, path).await;
            assert_eq!(s, StatusCode::NOT_FOUND, "{path}");
            assert_eq!(ct.as_deref(), Some("application/json"), "{path}");
            assert!(body.contains("\"status\":\"error\""), "{path}: {body}");
        }
        let res = respond(&dist, &Method::POST, "/library").await;
        assert_eq!(res.status(), StatusCode::NOT_FOUND);
    }

    #[tokio::test]
    async fn path_traversal_is_refused() {
        let tmp = built_app();
        let dist = tmp.path().join("dist");
        for path in [
            "/../secret.txt",
            "/assets/../../secret.txt",
            "/%2e%2e/secret.txt",
            "/assets/%2E%2E/%2e%2e/secret.txt",
            "/..%5csecret.txt",
            "/a/%00",
        ] {
            let (s, _, _, body) = get(&dist, path).await;
            assert_eq!(s, StatusCode::NOT_FOUND, "{path}");
            assert!(!body.contains("outside"), "{path} leaked a file outside the web dir");
        }
        #[cfg(unix)]
        {
            std::os::unix::fs::symlink(tmp.path().join("secret.txt"), dist.join("link.txt")).unwrap();
            let (s, _, _, body) = get(&dist, "/link.txt").await;
            assert_eq!(s, StatusCode::NOT_FOUND);
            assert!(!body.contains("outside"));
        }
    }

    #[tokio::test]
    async fn without_a_build_the_placeholder_stays() {
        let tmp = tempfile::tempdir().unwrap();
        let missing = tmp.path().join("no-such-dist");
        let (s, ct, _, body) = get(&missing, "/").await;
        assert_eq!((s, ct.as_deref()), (StatusCode::OK, Some("text/html; charset=utf-8")));
        assert!(body.contains("not built yet"), "{body}");
        let (s, _, _, _) = get(&missing, "/library").await;
        assert_eq!(s, StatusCode::NOT_FOUND);
    }
}
