//! The web site: the customer site, the organiser console and the cluster console, plain
//! HTML, CSS and JavaScript modules embedded in the binary (`api-gateway/web/`, see
//! docs/web.md and docs/architecture.md, "The web site: no build step").
//!
//! There is no bundler, so module URLs cannot carry content hashes; instead the whole site
//! has one version (a hash of every embedded file) and `index.html` loads it from
//! `/assets/{version}/...`. Modules import each other by relative paths, so every import
//! inherits the versioned prefix: assets under the current version are immutable and cached
//! for a year, and a new build changes every URL at once. `index.html` itself is revalidated on
//! every load (`no-cache` with an `ETag`, answered `304` when unchanged). Assets asked for under
//! another version (a page loaded before an upgrade) are served from this build, uncached.

use std::collections::HashMap;
use std::sync::{Arc, OnceLock};

use axum::extract::Path;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use include_dir::{include_dir, Dir};

use crate::error::ApiError;
use crate::state::AppState;

/// The site's files, embedded at build time (`build.rs` reruns the build when they change).
static WEB: Dir<'static> = include_dir!("$CARGO_MANIFEST_DIR/web");

/// Where `index.html` names the versioned asset prefix.
const PREFIX_MARK: &str = "{{ASSETS}}";

/// The security policy of every page: nothing but this origin (no CDN, no inline script).
/// `connect-src` also names the page's own host over `ws:`/`wss:` (the live seat map), since
/// not every browser counts a WebSocket to the same host as `'self'`.
fn csp(host: Option<&str>) -> String {
    let live = host
        .filter(|h| {
            !h.is_empty()
                && h.len() <= 255
                && h.bytes().all(|b| b.is_ascii_alphanumeric() || b".-:[]".contains(&b))
        })
        .map(|h| format!(" ws://{h} wss://{h}"))
        .unwrap_or_default();
    format!(
        "default-src 'self'; img-src 'self' data: blob:; style-src 'self'; script-src 'self'; \
         connect-src 'self'{live}; object-src 'none'; base-uri 'none'; frame-ancestors 'none'; \
         form-action 'self'"
    )
}

/// One servable file.
struct Asset {
    body: &'static [u8],
    content_type: &'static str,
    etag: HeaderValue,
}

/// The site, indexed once per process.
struct Site {
    version: String,
    index: Vec<u8>,
    index_etag: HeaderValue,
    assets: HashMap<&'static str, Asset>,
}

/// FNV-1a over bytes: a stable content hash for ETags and the site version (not a security
/// boundary: it only decides what a cache may keep).
fn fnv(hash: u64, bytes: &[u8]) -> u64 {
    bytes.iter().fold(hash, |h, b| (h ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3))
}

const FNV_OFFSET: u64 = 0xcbf2_9ce4_8422_2325;

fn etag(hash: u64) -> HeaderValue {
    HeaderValue::from_str(&format!("\"{hash:016x}\"")).unwrap_or(HeaderValue::from_static("\"0\""))
}

fn content_type(path: &str) -> &'static str {
    match path.rsplit_once('.').map(|(_, ext)| ext) {
        Some("html") => "text/html; charset=utf-8",
        Some("js") => "text/javascript; charset=utf-8",
        Some("css") => "text/css; charset=utf-8",
        Some("svg") => "image/svg+xml",
        Some("png") => "image/png",
        Some("json") => "application/json",
        _ => "application/octet-stream",
    }
}

fn collect(dir: &'static Dir<'static>, into: &mut Vec<&'static include_dir::File<'static>>) {
    into.extend(dir.files());
    for sub in dir.dirs() {
        collect(sub, into);
    }
}

fn site() -> &'static Site {
    static SITE: OnceLock<Site> = OnceLock::new();
    SITE.get_or_init(|| {
        let mut files = Vec::new();
        collect(&WEB, &mut files);
        files.sort_by_key(|f| f.path());
        let mut version = FNV_OFFSET;
        let mut assets = HashMap::new();
        for file in &files {
            let Some(path) = file.path().to_str() else { continue };
            version = fnv(fnv(version, path.as_bytes()), file.contents());
            if let Some(rel) = path.strip_prefix("assets/") {
                let asset = Asset {
                    body: file.contents(),
                    content_type: content_type(rel),
                    etag: etag(fnv(FNV_OFFSET, file.contents())),
                };
                assets.insert(rel, asset);
            }
        }
        let version = format!("{:012x}", version & 0xffff_ffff_ffff);
        let template = WEB.get_file("index.html").map_or(&b""[..], include_dir::File::contents);
        let index = String::from_utf8_lossy(template)
            .replace(PREFIX_MARK, &format!("/assets/{version}"))
            .into_bytes();
        let index_etag = etag(fnv(FNV_OFFSET, &index));
        Site { version, index, index_etag, assets }
    })
}

/// The site's version (the hash in its asset URLs).
pub fn version() -> &'static str {
    &site().version
}

/// The site's routes: `/` (the one page; the rest is routed in the browser after `#`) and the
/// assets. Not in the OpenAPI document: they are pages, not API.
pub(super) fn routes() -> Router<Arc<AppState>> {
    Router::new()
        .route("/", get(index))
        .route("/index.html", get(index))
        .route("/assets/{version}/{*path}", get(asset))
}

fn not_modified(headers: &HeaderMap, etag: &HeaderValue) -> bool {
    headers
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.split(',').any(|t| t.trim() == etag.to_str().unwrap_or_default()))
}

fn respond(
    headers: &HeaderMap,
    body: &'static [u8],
    content_type: &'static str,
    etag: &HeaderValue,
    cache: &'static str,
) -> Response {
    let mut response = if not_modified(headers, etag) {
        StatusCode::NOT_MODIFIED.into_response()
    } else {
        ([(header::CONTENT_TYPE, content_type)], body).into_response()
    };
    let h = response.headers_mut();
    h.insert(header::ETAG, etag.clone());
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static(cache));
    h.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    response
}

async fn index(headers: HeaderMap) -> Response {
    let site = site();
    let mut response =
        respond(&headers, &site.index, "text/html; charset=utf-8", &site.index_etag, "no-cache");
    let host = headers.get(header::HOST).and_then(|v| v.to_str().ok());
    let h = response.headers_mut();
    if let Ok(policy) = HeaderValue::from_str(&csp(host)) {
        h.insert(header::CONTENT_SECURITY_POLICY, policy);
    }
    h.insert(header::REFERRER_POLICY, HeaderValue::from_static("same-origin"));
    response
}

async fn asset(
    Path((version, path)): Path<(String, String)>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let site = site();
    let asset = site.assets.get(path.as_str()).ok_or(ApiError::NotFound("asset"))?;
    let cache =
        if version == site.version { "public, max-age=31536000, immutable" } else { "no-cache" };
    Ok(respond(&headers, asset.body, asset.content_type, &asset.etag, cache))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_index_names_this_builds_asset_prefix_and_every_asset_it_loads_exists() {
        let site = site();
        let index = String::from_utf8_lossy(&site.index);
        let prefix = format!("/assets/{}/", site.version);
        assert!(!index.contains(PREFIX_MARK));
        let mut named = 0;
        for part in index.split(&prefix).skip(1) {
            let path: String = part.chars().take_while(|c| *c != '"').collect();
            assert!(site.assets.contains_key(path.as_str()), "{path} is not embedded");
            named += 1;
        }
        assert!(named >= 2, "index.html loads its stylesheet and app module");
    }

    #[test]
    fn the_policy_names_the_pages_own_host_for_the_live_seat_map_and_nothing_odd() {
        assert!(csp(Some("127.0.0.1:8080"))
            .contains("connect-src 'self' ws://127.0.0.1:8080 wss://127.0.0.1:8080;"));
        assert!(csp(Some("evil; script-src *")).contains("connect-src 'self';"));
        assert!(csp(None).contains("connect-src 'self';"));
    }

    #[test]
    fn every_module_import_is_relative_and_resolves_to_an_embedded_file() {
        // Relative imports keep the versioned prefix (see the module docs).
        let site = site();
        for (path, asset) in &site.assets {
            if !path.ends_with(".js") {
                continue;
            }
            let text = String::from_utf8_lossy(asset.body);
            for line in text.lines() {
                let line = line.trim_start();
                let Some(from) = line
                    .strip_prefix("import ")
                    .and_then(|l| l.split_once(" from '").map(|(_, r)| r))
                    .or_else(|| line.split_once("import('").map(|(_, r)| r))
                else {
                    continue;
                };
                let target = from.split('\'').next().unwrap_or_default();
                assert!(target.starts_with("./") || target.starts_with("../"), "{path}: {line}");
                let dir: Vec<&str> = path.split('/').collect();
                let mut parts: Vec<&str> = dir[..dir.len() - 1].to_vec();
                for seg in target.split('/') {
                    match seg {
                        "." => {}
                        ".." => {
                            parts.pop();
                        }
                        s => parts.push(s),
                    }
                }
                let resolved = parts.join("/");
                assert!(site.assets.contains_key(resolved.as_str()), "{path} imports {target}");
            }
        }
    }
}
