//! The edge contract, shared by `cutover serve` and (in JavaScript) the CloudFront router: which
//! version a request sees, which file of it, and which cookies the response sets.

use percent_encoding::percent_decode_str;

use crate::version;

/// The names an override travels by; the defaults are the ones hand-rolled routers use.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct EdgeNames {
    /// Query parameter that previews a version (and pins it with cookies).
    pub query: String,
    /// Cookie naming the pinned version.
    pub version_cookie: String,
    /// Cookie that must be `true` for the version cookie to count.
    pub override_cookie: String,
}

impl Default for EdgeNames {
    fn default() -> Self {
        Self {
            query: "override_build_number".into(),
            version_cookie: "Build-Number".into(),
            override_cookie: "Override".into(),
        }
    }
}

/// Header naming the version that served a response.
pub const VERSION_HEADER: &str = "x-cutover-version";
/// Override value that drops the pin and returns to the active version.
pub const CLEAR: &str = "clear";

/// Where a request's version came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    Query,
    Cookie,
    Active,
}

/// What the edge does with one request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Route {
    /// The version to serve; `None` when nothing is active and nothing overrides.
    pub version: Option<String>,
    pub source: Source,
    /// Release-relative file to serve; `None` when the path is not a safe key.
    pub file: Option<String>,
    /// `Set-Cookie` values for the response: only ever when the request carried the override query.
    pub set_cookies: Vec<String>,
}

/// Routes a request given its raw (percent-encoded) path, raw query, `Cookie` header and the active version.
pub fn route(
    names: &EdgeNames,
    raw_path: &str,
    query: Option<&str>,
    cookie_header: Option<&str>,
    active: Option<&str>,
) -> Route {
    let file = release_file(raw_path);
    let active = || active.map(str::to_owned);
    let (version_cookie, override_cookie) = (names.version_cookie.as_str(), names.override_cookie.as_str());
    if let Some(asked) = query.and_then(|q| parameter(q, &names.query)) {
        if asked == CLEAR {
            let set_cookies =
                [version_cookie, override_cookie].map(|name| format!("{name}=; Path=/; Max-Age=0")).to_vec();
            return Route { version: active(), source: Source::Active, file, set_cookies };
        }
        if version::is_valid(&asked) {
            let set_cookies = vec![
                format!("{version_cookie}={asked}; Path=/; SameSite=Lax"),
                format!("{override_cookie}=true; Path=/; SameSite=Lax"),
            ];
            return Route { version: Some(asked), source: Source::Query, file, set_cookies };
        }
    }
    let cookies = cookie_header.map(parse_cookies).unwrap_or_default();
    let cookie = |name: &str| cookies.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str());
    if cookie(override_cookie) == Some("true")
        && let Some(pinned) = cookie(version_cookie).filter(|v| version::is_valid(v))
    {
        return Route { version: Some(pinned.to_owned()), source: Source::Cookie, file, set_cookies: Vec::new() };
    }
    Route { version: active(), source: Source::Active, file, set_cookies: Vec::new() }
}

/// The release file a path names: decoded; `index.html` for paths without a file extension (SPA fallback).
pub fn release_file(raw_path: &str) -> Option<String> {
    let decoded = percent_decode_str(raw_path).decode_utf8().ok()?;
    let path = decoded.trim_start_matches('/');
    let segments: Vec<&str> = path.split('/').collect();
    if segments.iter().any(|s| *s == "." || *s == "..") || path.contains("//") {
        return None;
    }
    let last = segments.last().copied().unwrap_or_default();
    let has_extension = last.char_indices().any(|(i, c)| c == '.' && i > 0);
    Some(if has_extension { path.to_owned() } else { "index.html".to_owned() })
}

fn parameter(query: &str, name: &str) -> Option<String> {
    url::form_urlencoded::parse(query.as_bytes()).find(|(k, _)| k == name).map(|(_, v)| v.into_owned())
}

fn parse_cookies(header: &str) -> Vec<(String, String)> {
    header
        .split(';')
        .filter_map(|pair| pair.trim().split_once('='))
        .map(|(k, v)| (k.trim().to_owned(), v.trim().trim_matches('"').to_owned()))
        .collect()
}

/// The `Cookie` header that pins a version, as the smoke test sends it.
pub fn override_cookie(names: &EdgeNames, version: &str) -> String {
    format!("{}={version}; {}=true", names.version_cookie, names.override_cookie)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The vectors the CloudFront router's tests run too (edge/test/router.test.js).
    #[test]
    fn shared_vectors() {
        let vectors: serde_json::Value = serde_json::from_str(include_str!("../edge/vectors.json")).unwrap();
        let layout = crate::release::Layout::new("site");
        for vector in vectors.as_array().unwrap() {
            let text = |key: &str| vector[key].as_str();
            let query = text("query").filter(|q| !q.is_empty());
            let route = route(&EdgeNames::default(), text("uri").unwrap(), query, text("cookie"), text("active"));
            let name = text("name").unwrap();
            assert_eq!(route.version.as_deref(), text("version"), "{name}");
            let path = match (&route.version, &route.file) {
                (Some(version), Some(file)) => Some(format!("/{}", layout.object_key(version, file))),
                _ => None,
            };
            assert_eq!(path.as_deref(), text("path"), "{name}");
            let cookies: Vec<&str> =
                vector["set_cookies"].as_array().unwrap().iter().filter_map(|c| c.as_str()).collect();
            assert_eq!(route.set_cookies, cookies, "{name}");
        }
    }

    #[test]
    fn active_version_serves_by_default_with_spa_fallback() {
        let r = route(&EdgeNames::default(), "/about/team", None, None, Some("41"));
        assert_eq!(
            (r.version.as_deref(), r.file.as_deref(), r.source),
            (Some("41"), Some("index.html"), Source::Active)
        );
        assert!(r.set_cookies.is_empty());
        assert_eq!(route(&EdgeNames::default(), "/", None, None, Some("41")).file.as_deref(), Some("index.html"));
        assert_eq!(route(&EdgeNames::default(), "/assets/app.js", None, None, None).version, None);
    }

    #[test]
    fn override_query_wins_and_alone_sets_cookies() {
        let r = route(
            &EdgeNames::default(),
            "/",
            Some("a=1&override_build_number=42"),
            Some("Override=true; Build-Number=40"),
            Some("41"),
        );
        assert_eq!((r.version.as_deref(), r.source), (Some("42"), Source::Query));
        assert_eq!(r.set_cookies, ["Build-Number=42; Path=/; SameSite=Lax", "Override=true; Path=/; SameSite=Lax"]);
        let r = route(&EdgeNames::default(), "/", None, Some("Override=true; Build-Number=40"), Some("41"));
        assert_eq!((r.version.as_deref(), r.source), (Some("40"), Source::Cookie));
        assert!(r.set_cookies.is_empty());
    }

    #[test]
    fn cookie_counts_only_with_override_true_and_bad_versions_are_ignored() {
        assert_eq!(
            route(&EdgeNames::default(), "/", None, Some("Build-Number=40"), Some("41")).version.as_deref(),
            Some("41")
        );
        assert_eq!(
            route(&EdgeNames::default(), "/", None, Some("Override=true; Build-Number=../x"), Some("41"))
                .version
                .as_deref(),
            Some("41")
        );
        let r = route(&EdgeNames::default(), "/", Some("override_build_number=..%2Fetc"), None, Some("41"));
        assert_eq!((r.version.as_deref(), r.set_cookies.len()), (Some("41"), 0));
    }

    #[test]
    fn names_are_configurable() {
        let names = EdgeNames { query: "preview".into(), version_cookie: "v".into(), override_cookie: "pin".into() };
        let r = route(&names, "/", Some("preview=7"), None, Some("41"));
        assert_eq!(r.set_cookies, ["v=7; Path=/; SameSite=Lax", "pin=true; Path=/; SameSite=Lax"]);
        assert_eq!(route(&names, "/", None, Some("v=6; pin=true"), Some("41")).version.as_deref(), Some("6"));
        assert_eq!(
            route(&names, "/", Some("override_build_number=7"), None, Some("41")).version.as_deref(),
            Some("41")
        );
        assert_eq!(override_cookie(&names, "6"), "v=6; pin=true");
    }

    #[test]
    fn clear_drops_the_pin() {
        let r = route(
            &EdgeNames::default(),
            "/",
            Some("override_build_number=clear"),
            Some("Override=true; Build-Number=40"),
            Some("41"),
        );
        assert_eq!(r.version.as_deref(), Some("41"));
        assert!(r.set_cookies.iter().all(|c| c.contains("Max-Age=0")));
    }

    #[test]
    fn paths_decode_and_unsafe_ones_are_refused() {
        assert_eq!(release_file("/a%20b/c%2B.txt").as_deref(), Some("a b/c+.txt"));
        assert_eq!(release_file("/.well-known/security.txt").as_deref(), Some(".well-known/security.txt"));
        assert_eq!(release_file("/../secret.txt"), None);
        assert_eq!(release_file("/a/%2E%2E/b.txt"), None);
        assert_eq!(release_file("/%FF.txt"), None);
    }
}
