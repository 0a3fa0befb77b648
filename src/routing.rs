//! The edge contract, shared by `cutover serve` and (in JavaScript) the CloudFront router: which
//! version a request sees (overrides, signed or not), which file of it answers with which status
//! (static-host semantics from the release's routing index), and which headers and cookies the
//! response carries. Both sides run the same vectors (`edge/vectors.json`).

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::{KeyInit, Mac};

use crate::route_index::RouteIndex;
use crate::shared_assets::SharedAssets;
use crate::version;

/// The names an override travels by, how a missing page is answered, and the override secret.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EdgeNames {
    /// Query parameter that previews a version (and pins it with cookies).
    pub query: String,
    /// Cookie naming the pinned version.
    pub version_cookie: String,
    /// Cookie that must be `true` for the version cookie to count.
    pub override_cookie: String,
    /// What a path that names nothing in the release serves.
    pub not_found: NotFound,
    /// When set, only overrides signed with it are honoured.
    pub secret: Option<OverrideSecret>,
    /// Fingerprinted paths, served from the site's pool (`shared-assets`).
    pub shared: SharedAssets,
}

impl Default for EdgeNames {
    fn default() -> Self {
        Self {
            query: "override_build_number".into(),
            version_cookie: "Build-Number".into(),
            override_cookie: "Override".into(),
            not_found: NotFound::Auto,
            secret: None,
            shared: SharedAssets::default(),
        }
    }
}

/// The `not-found` input.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NotFound {
    /// `404` when the release has a `404.html`, else `spa`.
    Auto,
    /// The release's `index.html` with status 200, for paths without a file extension.
    Spa,
    /// The release's `404.html` with status 404, or a plain 404.
    Page,
}

impl NotFound {
    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "auto" => Some(Self::Auto),
            "spa" => Some(Self::Spa),
            "404" => Some(Self::Page),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Auto => "auto",
            Self::Spa => "spa",
            Self::Page => "404",
        }
    }
}

/// The `override-secret` input, with the prefix of the site it signs for; never printed.
#[derive(Clone, PartialEq, Eq)]
pub struct OverrideSecret {
    secret: String,
    prefix: String,
}

impl OverrideSecret {
    /// Signs for the site at `prefix` (the `prefix` input as the plan holds it, `""` at the root).
    pub fn new(secret: String, prefix: &str) -> Self {
        Self { secret, prefix: prefix.to_owned() }
    }

    /// For the router bundle only.
    pub fn expose(&self) -> &str {
        &self.secret
    }

    /// The MAC of `<prefix>/<version>~<expiry>`: the site is signed too, so a link made for
    /// another site sharing the secret pins nothing here.
    fn signature(&self, version: &str, expiry: &str) -> hmac::Hmac<sha2::Sha256> {
        let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(self.secret.as_bytes()).expect("hmac takes any key");
        mac.update(format!("{}/{version}~{expiry}", self.prefix).as_bytes());
        mac
    }
}

impl std::fmt::Debug for OverrideSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("OverrideSecret(***)")
    }
}

/// Header naming the version that served a response.
pub const VERSION_HEADER: &str = "x-cutover-version";
/// Header saying why an override was not honoured.
pub const OVERRIDE_HEADER: &str = "x-cutover-override";
/// Override value that drops the pin and returns to the active version (any case).
pub const CLEAR: &str = "clear";
/// The `x-cutover-override` of an override naming no recorded release (or an alias naming none).
pub const UNKNOWN_VERSION: &str = "unknown-version";
/// The page a directory serves.
pub const INDEX_PAGE: &str = "index.html";
/// The page a missing path serves in `404` mode; it always answers with status 404.
pub const NOT_FOUND_PAGE: &str = "404.html";
/// How long a signed override (a preview link, the smoke test's cookie) stays valid.
pub const OVERRIDE_LIFETIME_SECS: u64 = 7 * 24 * 3600;
/// What a cacheable response that is overridden or sets a cookie carries instead of its own.
pub const PRIVATE: &str = "private, no-cache";

/// Query parameter a framework pins a request to its own version with (Next.js's `deploymentId`).
pub const PIN_QUERY: &str = "dpl";
/// Header a framework pins a request to its own version with (Next.js's `deploymentId`).
pub const PIN_HEADER: &str = "x-deployment-id";
/// Header a browser names a request's destination in.
pub const FETCH_DEST_HEADER: &str = "sec-fetch-dest";
/// What RFC 9110 (5.6.3, OWS) lets surround a field value: SP and HTAB only, never the other
/// Unicode whitespace `str::trim` (and JavaScript's `trim`) would take off.
const OWS: [char; 2] = [' ', '\t'];
/// `Sec-Fetch-Dest` values of a page navigation (top-level or framed): never pinned.
const NAVIGATIONS: [&str; 5] = ["document", "iframe", "frame", "embed", "object"];

/// Where a request's version came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    Query,
    Cookie,
    /// A preview host `pr-<n>.<domain>`: pins like the cookie, sets none; with no preview to show
    /// it answers [`Outcome::NoPreview`], never the live site.
    Host,
    /// A framework's pin (`dpl` or `x-deployment-id`): a page's own version for its subresources;
    /// no cookie, and cacheable (the version is in the cache key).
    Framework,
    Active,
}

/// The version a framework pins a request to: `?dpl=` (first) or `x-deployment-id`, when it is a
/// valid version and the request is no page: neither a navigation by `Sec-Fetch-Dest` nor a
/// page-shaped path (the root, a directory, a name without extension, `.html` or `.htm`). [`route`]
/// then honours it only for a file the pinned release holds at that very path, so an old page is
/// never served to a visitor, whatever a link carries.
pub fn framework_pin(
    raw_path: &str,
    query: Option<&str>,
    pin_header: Option<&str>,
    fetch_dest: Option<&str>,
) -> Option<String> {
    let navigation =
        fetch_dest.is_some_and(|d| NAVIGATIONS.contains(&d.trim_matches(OWS).to_ascii_lowercase().as_str()));
    if navigation || page_shaped(raw_path) {
        return None;
    }
    let value =
        query.and_then(|q| parameter(q, PIN_QUERY)).or_else(|| pin_header.map(|h| h.trim_matches(OWS).to_owned()))?;
    version::is_valid(&value).then_some(value)
}

/// A request that may answer with a page (a bad path too: it is never pinned).
fn page_shaped(raw_path: &str) -> bool {
    let Some(path) = decode_path(raw_path) else { return true };
    let last = path.rsplit('/').next().unwrap_or_default().to_ascii_lowercase();
    let has_extension = last.char_indices().any(|(i, c)| c == '.' && i > 0);
    !has_extension || last.ends_with(".html") || last.ends_with(".htm")
}

/// What `asked` becomes with a framework's pin: the pin applies only where nothing else was asked.
pub fn with_framework_pin(asked: Ask, pin: Option<String>) -> Ask {
    match (asked, pin) {
        (Ask::Active, Some(version)) => Ask::Pin { value: version.clone(), version, source: Source::Framework },
        (asked, _) => asked,
    }
}

/// What a request asks for, before anyone looks at what exists.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Ask {
    Active,
    Clear,
    /// An override that passed its checks; `value` is what the version cookie carries.
    Pin {
        version: String,
        source: Source,
        value: String,
    },
    /// An override that did not, and why (`invalid`, `unsigned`, `bad-signature`, `expired`).
    Refused(&'static str),
    /// A host under the preview domain that shows no preview, and why: never the live site.
    NoPreview(NoPreview),
}

/// Why a request to a host under the preview domain shows no preview; it answers 404 with
/// [`NoPreview::message`], `noindex` and `no-store` (`generated` in edge/router.js says the same).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NoPreview {
    /// `pr-<n>.<domain>`, whose alias names no stored preview of its own (none, closed, foreign).
    Missing(u64),
    /// Any other name under the domain (`www.`, `pr-07.`, `x.pr-7.`, capitals, a trailing dot).
    Host,
    /// Any host under the domain with `override-secret` set: a host carries no signature.
    Signed,
    /// The clear link on a host under the domain: it clears the cookies and shows nothing, as
    /// the host shows only previews.
    Cleared,
}

impl NoPreview {
    /// The body of the 404, the same in the router.
    pub fn message(self) -> String {
        match self {
            Self::Missing(number) => format!("no preview for pull request {number}"),
            Self::Host => "no preview at this host: preview hosts are pr-<n> under the preview domain".to_owned(),
            Self::Signed => "preview hosts are off with override-secret: use the signed preview link".to_owned(),
            Self::Cleared => {
                "preview cookies cleared: a preview host shows only previews, never the live site".to_owned()
            }
        }
    }
}

/// Reads the override from the query (first), else from the cookies; `now` in Unix seconds.
pub fn ask(names: &EdgeNames, query: Option<&str>, cookie_headers: &[&str], now: u64) -> Ask {
    if let Some(value) = query.and_then(|q| parameter(q, &names.query)) {
        if value.eq_ignore_ascii_case(CLEAR) {
            return Ask::Clear;
        }
        return pin(names, value, Source::Query, now);
    }
    let cookies = parse_cookies(cookie_headers);
    let cookie = |name: &str| cookies.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone());
    match (cookie(&names.override_cookie).as_deref(), cookie(&names.version_cookie)) {
        (Some("true"), Some(value)) => pin(names, value, Source::Cookie, now),
        _ => Ask::Active,
    }
}

fn pin(names: &EdgeNames, value: String, source: Source, now: u64) -> Ask {
    match check(names.secret.as_ref(), &value, now) {
        Ok(version) => Ask::Pin { version, source, value },
        Err(why) => Ask::Refused(why),
    }
}

/// The version an override value names: bare without a secret, `<version>~<expiry>~<signature>` with one.
fn check(secret: Option<&OverrideSecret>, value: &str, now: u64) -> Result<String, &'static str> {
    let Some(secret) = secret else {
        return if version::is_valid(value) { Ok(value.to_owned()) } else { Err("invalid") };
    };
    let mut parts = value.rsplitn(3, '~');
    let (Some(signature), Some(expiry), Some(version)) = (parts.next(), parts.next(), parts.next()) else {
        return Err(if version::is_valid(value) { "unsigned" } else { "invalid" });
    };
    let expires =
        expiry.parse::<u64>().ok().filter(|_| expiry.len() <= 12 && expiry.bytes().all(|b| b.is_ascii_digit()));
    let (Some(expires), true) = (expires, version::is_valid(version)) else {
        return Err("invalid");
    };
    let signature = URL_SAFE_NO_PAD.decode(signature).map_err(|_| "bad-signature")?;
    secret.signature(version, expiry).verify_slice(&signature).map_err(|_| "bad-signature")?;
    if now > expires {
        return Err("expired");
    }
    Ok(version.to_owned())
}

/// The override value for `version`: signed until `now` plus the lifetime when there is a secret.
pub fn override_value(names: &EdgeNames, version: &str, now: u64) -> String {
    match &names.secret {
        None => version.to_owned(),
        Some(secret) => {
            let expiry = (now + OVERRIDE_LIFETIME_SECS).to_string();
            let signature = URL_SAFE_NO_PAD.encode(secret.signature(version, &expiry).finalize().into_bytes());
            format!("{version}~{expiry}~{signature}")
        }
    }
}

/// The `Cookie` header that pins a version, as the smoke test sends it (signed when there is a secret).
pub fn override_cookie(names: &EdgeNames, version: &str) -> String {
    format!("{}={}; {}=true", names.version_cookie, override_value(names, version, unix_now()), names.override_cookie)
}

/// Seconds since the Unix epoch.
pub fn unix_now() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

/// What answers a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// A release file, with status 200 (404 for the not-found page).
    File { file: String, status: u16 },
    /// 301 to this location (a directory without its trailing slash).
    Redirect(String),
    /// A plain 404: nothing in the release answers.
    NotFound,
    /// 400: the path cannot name a file (bad percent-encoding, dot segments, empty segments, NUL).
    BadPath,
    /// 404: no release is active and nothing overrides.
    NoRelease,
    /// 503 with `Retry-After`: the active version could not be read yet.
    Unavailable,
    /// 404 with [`NoPreview::message`], `noindex` and `no-store`: a host under the preview domain
    /// that shows no preview (no alias, a closed or foreign one, any other name, a secret set) is
    /// never the live site, which wildcard DNS would make an indexable copy of.
    NoPreview(NoPreview),
}

/// What the edge does with one request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Route {
    /// The version that answers, if any.
    pub version: Option<String>,
    pub source: Source,
    pub outcome: Outcome,
    /// `Set-Cookie` values: the pin for an honoured override query, the clearing for `clear`.
    pub set_cookies: Vec<String>,
    /// Headers the response carries over its own (version, refusal, noindex, private).
    pub headers: Vec<(&'static str, String)>,
}

/// The active version as the edge last read it.
#[derive(Debug, Clone, Copy)]
pub enum Active<'a> {
    /// A version and its index (empty when the version has none).
    Version(&'a str, &'a RouteIndex),
    /// No release is active.
    None,
    /// Never read successfully yet.
    Unavailable,
}

/// Routes a request: `pinned` is the index of the version `ask` pins (`None`: not a recorded release).
pub fn route(
    names: &EdgeNames,
    raw_path: &str,
    query: Option<&str>,
    ask: &Ask,
    pinned: Option<&RouteIndex>,
    active: Active<'_>,
) -> Route {
    let mut headers = Vec::new();
    let mut set_cookies = Vec::new();
    let mut chosen = None;
    let path = decode_path(raw_path);
    match ask {
        Ask::NoPreview(why) => return no_preview(names, *why),
        Ask::Clear => set_cookies = clear_cookies(names),
        Ask::Refused(why) => headers.push((OVERRIDE_HEADER, (*why).to_owned())),
        // A framework's pin to a version not stored is no override: the active version answers.
        // So does one whose path the pinned release does not hold as a file of its own: what it
        // would resolve to there is a page (a clean URL, a directory's index, the not-found page,
        // the SPA fallback) or another release's chunk, never to be served from an old release.
        Ask::Pin { source: Source::Framework, version, .. } => {
            let holds = |index: &&RouteIndex| path.as_deref().is_some_and(|path| index.contains(path));
            chosen = pinned.filter(holds).map(|index| (version.as_str(), index, Source::Framework));
        }
        Ask::Pin { version, source, value } => match pinned {
            Some(index) => {
                if *source == Source::Query {
                    set_cookies = vec![
                        format!("{}={value}; Path=/; SameSite=Lax", names.version_cookie),
                        format!("{}=true; Path=/; SameSite=Lax", names.override_cookie),
                    ];
                }
                headers.push(("x-robots-tag", "noindex".to_owned()));
                chosen = Some((version.as_str(), index, *source));
            }
            None => match crate::pull_request::alias_of(value).filter(|_| *source == Source::Host) {
                Some(pr) => return no_preview(names, NoPreview::Missing(pr.number())),
                None => headers.push((OVERRIDE_HEADER, UNKNOWN_VERSION.to_owned())),
            },
        },
        Ask::Active => {}
    }
    // A response that carries nothing beyond its version may come from the pool; any other must
    // be answered by the deciding handler when it is a 404 (CloudFront runs no viewer-response
    // on an origin's 403/404), so a path the release lacks gets the release's own not-found answer.
    let plain = headers.is_empty() && set_cookies.is_empty();
    let serving = chosen.or(match active {
        Active::Version(version, index) => Some((version, index, Source::Active)),
        Active::None | Active::Unavailable => None,
    });
    let (version, source, outcome) = match (serving, active) {
        (Some((version, index, source)), _) => {
            // A fingerprinted path this release lacks is another release's, asked for by a page
            // of that release: served from the shared pool, whatever the version.
            let pooled = path.as_deref().filter(|path| plain && !index.contains(path) && names.shared.matches(path));
            let outcome = match pooled {
                Some(file) => Outcome::File { file: file.to_owned(), status: 200 },
                None => resolve(raw_path, path.as_deref(), query, index, names.not_found),
            };
            (Some(version.to_owned()), source, outcome)
        }
        (None, Active::Unavailable) => (None, Source::Active, Outcome::Unavailable),
        (None, _) => (None, Source::Active, Outcome::NoRelease),
    };
    if let Some(version) = &version {
        headers.insert(0, (VERSION_HEADER, version.clone()));
    }
    if matches!(source, Source::Query | Source::Cookie | Source::Host) || !set_cookies.is_empty() {
        headers.push(("cache-control", PRIVATE.to_owned()));
    }
    Route { version, source, outcome, set_cookies, headers }
}

impl Route {
    /// Whether the response must carry more than its version (cookies, an override's headers):
    /// such a response ignores `Range` and conditions, since CloudFront runs no viewer-response
    /// on the 416 or 412 an origin would give, and its not-found page is at most
    /// [`MAX_PAGE_BYTES`] (the router answers it itself).
    pub fn carries_more_than_version(&self) -> bool {
        !self.set_cookies.is_empty() || self.headers.iter().any(|(name, _)| *name != VERSION_HEADER)
    }
}

/// The largest not-found page a response that carries more than its version serves (the router
/// generates that response, and Lambda@Edge caps a generated one at 40 KB); a larger one answers
/// a plain 404.
pub const MAX_PAGE_BYTES: u64 = 32 * 1024;

/// The answer of a host under the preview domain that shows no preview: never the live site,
/// which wildcard DNS would make an indexable copy of; the clear link's clears the cookies.
fn no_preview(names: &EdgeNames, why: NoPreview) -> Route {
    let headers = vec![("x-robots-tag", "noindex".to_owned()), ("cache-control", "no-store".to_owned())];
    let set_cookies = if why == NoPreview::Cleared { clear_cookies(names) } else { Vec::new() };
    Route { version: None, source: Source::Host, outcome: Outcome::NoPreview(why), set_cookies, headers }
}

fn clear_cookies(names: &EdgeNames) -> Vec<String> {
    [&names.version_cookie, &names.override_cookie].map(|name| format!("{name}=; Path=/; Max-Age=0")).to_vec()
}

/// Static-host semantics for the request path `raw_path`, decoded as `path` ([`decode_path`]):
/// the file the path names, else its directory's index page (`/dir` is redirected to `/dir/`),
/// else `<path>.html`, else what `not-found` says.
fn resolve(
    raw_path: &str,
    path: Option<&str>,
    query: Option<&str>,
    index: &RouteIndex,
    not_found: NotFound,
) -> Outcome {
    let Some(path) = path else {
        return Outcome::BadPath;
    };
    let file = |file: String| {
        let status = if file == NOT_FOUND_PAGE { 404 } else { 200 };
        Outcome::File { file, status }
    };
    if path.is_empty() || path.ends_with('/') {
        let page = format!("{path}{INDEX_PAGE}");
        if index.contains(&page) {
            return file(page);
        }
    } else {
        if index.contains(path) {
            return file(path.to_owned());
        }
        if index.contains(&format!("{path}/{INDEX_PAGE}")) {
            let query = query.filter(|q| !q.is_empty()).map(|q| format!("?{q}")).unwrap_or_default();
            return Outcome::Redirect(format!("{raw_path}/{query}"));
        }
        let clean = format!("{path}.html");
        if index.contains(&clean) {
            return file(clean);
        }
    }
    let has_page = index.contains(NOT_FOUND_PAGE);
    let spa = match not_found {
        NotFound::Auto => !has_page,
        NotFound::Spa => true,
        NotFound::Page => false,
    };
    let last = path.rsplit('/').next().unwrap_or_default();
    let has_extension = last.char_indices().any(|(i, c)| c == '.' && i > 0);
    if spa && !has_extension && index.contains(INDEX_PAGE) {
        file(INDEX_PAGE.to_owned())
    } else if has_page {
        file(NOT_FOUND_PAGE.to_owned())
    } else {
        Outcome::NotFound
    }
}

/// The release-relative path a request path names, `""` for the root and ending in `/` for a
/// directory; `None` unless it starts with `/`, every `%` starts a valid escape, it decodes to
/// UTF-8 without NUL, and it has no `.`, `..` or empty segment.
pub fn decode_path(raw_path: &str) -> Option<String> {
    let rest = raw_path.strip_prefix('/')?;
    let bytes = rest.as_bytes();
    let mut decoded = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = bytes.get(i + 1..i + 3).and_then(|h| std::str::from_utf8(h).ok())?;
            if !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
                return None;
            }
            decoded.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            decoded.push(bytes[i]);
            i += 1;
        }
    }
    let path = String::from_utf8(decoded).ok()?;
    let segments: Vec<&str> = path.split('/').collect();
    let (last, dirs) = segments.split_last()?;
    let bad = |s: &&str| s.is_empty() || *s == "." || *s == "..";
    if path.contains('\0') || dirs.iter().any(bad) || *last == "." || *last == ".." {
        return None;
    }
    Some(path)
}

fn parameter(query: &str, name: &str) -> Option<String> {
    url::form_urlencoded::parse(query.as_bytes()).find(|(k, _)| k == name).map(|(_, v)| v.into_owned())
}

/// Every `name=value` pair of every `Cookie` header, in order (RFC 6265 §5.4: HTTP/2 may split
/// them); one pair of surrounding quotes is taken off a value, as the RFC's grammar has it.
fn parse_cookies(headers: &[&str]) -> Vec<(String, String)> {
    let trim = |s: &str| s.trim_matches(OWS).to_owned();
    headers
        .iter()
        .flat_map(|h| h.split(';'))
        .filter_map(|pair| pair.split_once('='))
        .map(|(k, v)| {
            let v = trim(v);
            let unquoted = v.strip_prefix('"').and_then(|v| v.strip_suffix('"')).map(str::to_owned);
            (trim(k), unquoted.unwrap_or(v))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn index(files: &[&str]) -> RouteIndex {
        RouteIndex::new(files.iter().copied())
    }

    /// The vectors the CloudFront router's tests and `cutover serve` run too.
    #[test]
    fn shared_vectors() {
        let doc: serde_json::Value = serde_json::from_str(include_str!("../edge/vectors.json")).unwrap();
        let now = doc["now"].as_u64().unwrap();
        let releases = doc["releases"].as_object().unwrap();
        for vector in doc["vectors"].as_array().unwrap() {
            let text = |key: &str| vector[key].as_str();
            let name = text("name").unwrap();
            let fixture = &doc["fixtures"][text("fixture").unwrap()];
            let index = RouteIndex::new(fixture.as_array().unwrap().iter().map(|f| f.as_str().unwrap()));
            let names = EdgeNames {
                not_found: NotFound::parse(text("not_found").unwrap_or("auto")).unwrap(),
                secret: text("secret").map(|s| OverrideSecret::new(s.to_owned(), "site")),
                ..EdgeNames::default()
            };
            let query = text("query").filter(|q| !q.is_empty());
            let cookies: Vec<&str> = text("cookie").into_iter().collect();
            let header = |name: &str| vector["headers"][name].as_str();
            let pin = framework_pin(text("uri").unwrap(), query, header(PIN_HEADER), header(FETCH_DEST_HEADER));
            // Aliases resolve as `cutover serve` resolves them, its preview hosts being `*.localhost`.
            let host = text("host").map(|h| h.replace("<preview-domain>", "localhost"));
            let alias = |pr: crate::pull_request::PullRequest| {
                let value = doc["aliases"][pr.alias()].as_str().map(str::to_owned);
                std::future::ready(crate::serve::aliases::preview_named(pr, value))
            };
            let resolved =
                crate::serve::aliases::resolve_with(&names, ask(&names, query, &cookies, now), host.as_deref(), alias);
            let asked = futures::FutureExt::now_or_never(resolved).expect("the vectors' aliases are ready at once");
            let asked = with_framework_pin(asked, pin);
            let known = |v: &str| releases[text("fixture").unwrap()].as_array().unwrap().iter().any(|r| r == v);
            let pinned = match &asked {
                Ask::Pin { version, .. } if known(version) => Some(&index),
                _ => None,
            };
            let active = match text("active") {
                Some(v) => Active::Version(v, &index),
                None => Active::None,
            };
            let r = route(&names, text("uri").unwrap(), query, &asked, pinned, active);
            assert_eq!(r.version.as_deref(), text("version"), "{name}");
            let (status, file, location) = match &r.outcome {
                Outcome::File { file, status } => (*status, Some(file.as_str()), None),
                Outcome::Redirect(to) => (301, None, Some(to.as_str())),
                Outcome::NotFound | Outcome::NoRelease | Outcome::NoPreview(_) => (404, None, None),
                Outcome::BadPath => (400, None, None),
                Outcome::Unavailable => (503, None, None),
            };
            assert_eq!(u64::from(status), vector["status"].as_u64().unwrap(), "{name}");
            assert_eq!(file, text("file"), "{name}");
            assert_eq!(location, text("location"), "{name}");
            let cookies: Vec<&str> =
                vector["set_cookies"].as_array().unwrap().iter().filter_map(|c| c.as_str()).collect();
            assert_eq!(r.set_cookies, cookies, "{name}");
            let header = |n: &str| r.headers.iter().find(|(k, _)| *k == n).map(|(_, v)| v.as_str());
            assert_eq!(header(OVERRIDE_HEADER), text("override"), "{name}");
            let overridden = matches!(r.source, Source::Query | Source::Cookie | Source::Host);
            assert_eq!(header("x-robots-tag").is_some(), overridden, "{name}");
            if let Some(robots) = vector.get("robots") {
                assert_eq!(header("x-robots-tag"), robots.as_str(), "{name}");
            }
            if let Some(body) = text("body") {
                assert!(matches!(&r.outcome, Outcome::NoPreview(why) if why.message() == body), "{name}");
            }
            assert_eq!(header("cache-control").is_some(), overridden || !cookies.is_empty(), "{name}");
            if let Some(cache) = vector.get("cache_control") {
                assert_eq!(header("cache-control"), cache.as_str(), "{name}");
            }
            assert_eq!(r.source == Source::Framework, vector["pinned"] == true, "{name}");
        }
    }

    #[test]
    fn signed_values_verify_and_tampering_or_expiry_is_refused() {
        let names = EdgeNames { secret: Some(OverrideSecret::new("k".into(), "site")), ..EdgeNames::default() };
        let value = override_value(&names, "v2.0.0", 1_000);
        assert!(value.starts_with(&format!("v2.0.0~{}~", 1_000 + OVERRIDE_LIFETIME_SECS)), "{value}");
        let asked = |v: &str, now| ask(&names, Some(&format!("override_build_number={v}")), &[], now);
        assert!(matches!(asked(&value, 2_000), Ask::Pin { ref version, .. } if version == "v2.0.0"));
        assert_eq!(asked(&value, 1_001 + OVERRIDE_LIFETIME_SECS), Ask::Refused("expired"));
        assert_eq!(asked(&value.replacen("v2.0.0", "v2.0.1", 1), 2_000), Ask::Refused("bad-signature"));
        assert_eq!(asked("v2.0.0", 2_000), Ask::Refused("unsigned"));
        assert_eq!(asked("../x~1~a", 2_000), Ask::Refused("invalid"));
        let other = EdgeNames { secret: Some(OverrideSecret::new("j".into(), "site")), ..EdgeNames::default() };
        assert_eq!(asked(&override_value(&other, "v2.0.0", 1_000), 2_000), Ask::Refused("bad-signature"));
        for prefix in ["", "other", "site/x"] {
            let elsewhere = EdgeNames { secret: Some(OverrideSecret::new("k".into(), prefix)), ..EdgeNames::default() };
            let value = override_value(&elsewhere, "v2.0.0", 1_000);
            assert_eq!(asked(&value, 2_000), Ask::Refused("bad-signature"), "a link of the site at {prefix:?}");
        }
        assert_eq!(format!("{:?}", names.secret), "Some(OverrideSecret(***))");
    }

    #[test]
    fn cookies_from_several_headers_and_odd_values() {
        let c = parse_cookies(&["a=1; pref=Jos\u{e9}", "Build-Number=\"8\"; Override=true", "q=\"\"8\"\""]);
        let get = |n: &str| c.iter().find(|(k, _)| k == n).map(|(_, v)| v.as_str());
        assert_eq!((get("pref"), get("Build-Number"), get("Override")), (Some("Jos\u{e9}"), Some("8"), Some("true")));
        assert_eq!(get("q"), Some("\"8\""));
        let names = EdgeNames::default();
        let asked = ask(&names, None, &["pref=Jos\u{e9}", "Build-Number=8; Override=true"], 0);
        assert!(matches!(asked, Ask::Pin { ref version, source: Source::Cookie, .. } if version == "8"));
    }

    /// A chunk the release lacks comes from the pool only when the response carries nothing but
    /// its version: any other gets the release's own 404, answered with its cookies and headers.
    #[test]
    fn the_pool_answers_a_missing_chunk_only_for_a_response_with_nothing_to_add() {
        let names =
            EdgeNames { shared: SharedAssets::parse("assets/*-<base64url:8>.js").unwrap(), ..EdgeNames::default() };
        let i = index(&["index.html", "404.html"]);
        let uri = "/assets/missing-ABCDEFGH.js";
        let routed = |query: Option<&str>, cookie: &[&str]| {
            let asked = ask(&names, query, cookie, 0);
            let pinned = matches!(asked, Ask::Pin { .. }).then_some(&i);
            route(&names, uri, query, &asked, pinned, Active::Version("41", &i))
        };
        let plain = routed(None, &[]);
        assert_eq!(plain.outcome, Outcome::File { file: "assets/missing-ABCDEFGH.js".into(), status: 200 });
        assert!(!plain.carries_more_than_version());
        let page = Outcome::File { file: NOT_FOUND_PAGE.into(), status: 404 };
        for (query, cookie) in [
            (Some("override_build_number=clear"), &[][..]),
            (Some("override_build_number=40"), &[]),
            (Some("override_build_number=..%2F"), &[]),
            (None, &["Build-Number=40; Override=true"][..]),
        ] {
            let r = routed(query, cookie);
            assert_eq!(r.outcome, page, "{query:?} {cookie:?}");
            assert!(r.carries_more_than_version(), "{query:?} {cookie:?}");
        }
    }

    #[test]
    fn paths_decode_strictly() {
        assert_eq!(decode_path("/a%20b/c%2B.txt").as_deref(), Some("a b/c+.txt"));
        assert_eq!(decode_path("/").as_deref(), Some(""));
        assert_eq!(decode_path("/about/").as_deref(), Some("about/"));
        for bad in ["/../secret.txt", "/a/%2E%2E/b.txt", "/%FF.txt", "/100%.txt", "/%zz", "/a//b", "//x", "/a%00", "x"]
        {
            assert_eq!(decode_path(bad), None, "{bad}");
        }
        let i = index(&["about/index.html", "docs.html", "index.html"]);
        let resolved = |raw: &str, query| resolve(raw, decode_path(raw).as_deref(), query, &i, NotFound::Auto);
        assert_eq!(resolved("/about", Some("a=1")), Outcome::Redirect("/about/?a=1".into()));
        assert_eq!(resolved("/docs", None), Outcome::File { file: "docs.html".into(), status: 200 });
    }
}
