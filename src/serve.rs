//! `cutover serve`: a local edge that serves a store the way the CloudFront router does, so the
//! whole flow (smoke through an override cookie included) runs on a laptop and in tests.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, Uri, header};
use axum::response::Response;
use tokio::net::TcpListener;
use tokio::sync::oneshot;

use crate::backend::Site;
use crate::route_index::{self, RouteIndex};
use crate::routing::{self, Active, Ask, EdgeNames, Outcome, Route};
use crate::version;

pub(crate) mod aliases;
mod files;

/// How long the edge trusts the active version it last read, as the router does.
const ACTIVE_CACHE: Duration = Duration::from_secs(1);
/// Routing indexes kept in memory.
const KEPT_INDEXES: usize = 8;
/// How long a kept index is trusted before it is read again: a release is immutable, but prune
/// may delete it (a missing file it lists drops it at once; this bounds the cases that read none).
const INDEX_TTL: Duration = Duration::from_secs(60);
/// What a 503 tells clients to wait, in seconds, while the active version cannot be read.
const RETRY_AFTER: &str = "5";

struct Edge {
    site: Site,
    names: EdgeNames,
    /// When the active version was last read, and the last good value (`None` until one was read).
    active: Mutex<(Option<Instant>, Option<Option<String>>)>,
    indexes: Mutex<Kept>,
    aliases: aliases::AliasCache,
}

/// Routing indexes of recorded releases with when each was read, most recently used last.
#[derive(Default)]
struct Kept(Vec<(String, Instant, Arc<RouteIndex>)>);

impl Kept {
    /// The kept index of `version`, and whether it was read less than [`INDEX_TTL`] before `now`.
    fn get(&mut self, version: &str, now: Instant) -> Option<(Arc<RouteIndex>, bool)> {
        let at = self.0.iter().position(|(v, _, _)| v == version)?;
        let entry = self.0.remove(at);
        let fresh = now.duration_since(entry.1) < INDEX_TTL;
        let index = entry.2.clone();
        self.0.push(entry);
        Some((index, fresh))
    }

    fn put(&mut self, version: &str, read_at: Instant, index: Arc<RouteIndex>) {
        self.forget(version);
        if self.0.len() >= KEPT_INDEXES {
            self.0.remove(0);
        }
        self.0.push((version.to_owned(), read_at, index));
    }

    fn forget(&mut self, version: &str) {
        self.0.retain(|(v, _, _)| v != version);
    }
}

impl Edge {
    /// The active version, validated: an unreadable or invalid value keeps the last good one (and
    /// is logged); `None` inside when no release is active, outer `None` when none was ever read.
    async fn active(&self) -> Option<Option<String>> {
        let (read_at, last) = self.active.lock().unwrap_or_else(|e| e.into_inner()).clone();
        if read_at.is_some_and(|at| at.elapsed() < ACTIVE_CACHE) {
            return last;
        }
        let good = match self.site.pointer.read().await {
            Ok(None) => Some(None),
            Ok(Some(valid)) if version::is_valid(&valid) => Some(Some(valid)),
            Ok(Some(invalid)) => {
                crate::say!("local edge: the active version {invalid:?} is not a version; keeping the last good one");
                last
            }
            Err(e) => {
                crate::say!("local edge: reading the active version failed, keeping the last good one: {e:#}");
                last
            }
        };
        *self.active.lock().unwrap_or_else(|e| e.into_inner()) = (Some(Instant::now()), good.clone());
        good
    }

    /// The routing index of a recorded release; `None` for a version that is not one. A store
    /// error is logged, never shown: an index read before is kept through it (read again after
    /// another [`INDEX_TTL`]), else the version counts as unknown for this request.
    async fn index(&self, version: &str) -> Option<Arc<RouteIndex>> {
        let kept = self.indexes.lock().unwrap_or_else(|e| e.into_inner()).get(version, Instant::now());
        if let Some((index, true)) = kept {
            return Some(index);
        }
        let read_at = Instant::now();
        let index = match route_index::read(&self.site, version).await {
            Ok(Some(index)) => Arc::new(index),
            Ok(None) => {
                self.indexes.lock().unwrap_or_else(|e| e.into_inner()).forget(version);
                return None;
            }
            Err(e) => {
                crate::say!("local edge: reading the routing index of {version}: {e:#}");
                kept.map(|(index, _)| index)?
            }
        };
        self.indexes.lock().unwrap_or_else(|e| e.into_inner()).put(version, read_at, index.clone());
        Some(index)
    }

    /// The key of a release's file: in the shared pool for a fingerprinted one (see
    /// [`RouteIndex::in_pool`]), else in the version's directory.
    async fn object_key(&self, version: &str, file: &str) -> String {
        let index = self.index(version).await.unwrap_or_default();
        let layout = &self.site.layout;
        if index.in_pool(file, &self.names.shared) { layout.shared_key(file) } else { layout.object_key(version, file) }
    }

    /// Whether the file a route serves is one its version's index lists.
    async fn lists(&self, route: &Route) -> bool {
        let (Some(version), Outcome::File { file, .. }) = (&route.version, &route.outcome) else { return false };
        self.index(version).await.is_some_and(|index| index.contains(file))
    }

    /// Drops a version's index: a file it lists is gone (the release was pruned since it was read).
    fn forget(&self, version: &str) {
        crate::say!("local edge: a file of {version} is missing; reading its routing index again");
        self.indexes.lock().unwrap_or_else(|e| e.into_inner()).forget(version);
    }

    /// Where a request goes: the edge contract (`routing`) with what the store holds.
    async fn route(&self, uri: &Uri, headers: &HeaderMap) -> Route {
        let cookies: Vec<String> = headers
            .get_all(header::COOKIE)
            .iter()
            .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
            .collect();
        let cookies: Vec<&str> = cookies.iter().map(String::as_str).collect();
        let asked = routing::ask(&self.names, uri.query(), &cookies, routing::unix_now());
        let host = headers.get(header::HOST).and_then(|h| h.to_str().ok());
        let asked = self.aliases.resolve(&self.site, &self.names, asked, host).await;
        let header = |name: &str| headers.get(name).and_then(|h| h.to_str().ok());
        let pin = routing::framework_pin(
            uri.path(),
            uri.query(),
            header(routing::PIN_HEADER),
            header(routing::FETCH_DEST_HEADER),
        );
        let asked = routing::with_framework_pin(asked, pin);
        let pinned = match &asked {
            Ask::Pin { version, .. } => self.index(version).await,
            _ => None,
        };
        let active = self.active().await;
        let active_index = match &active {
            Some(Some(version)) => Some(self.index(version).await.unwrap_or_default()),
            _ => None,
        };
        let active = match (&active, &active_index) {
            (Some(Some(version)), Some(index)) => Active::Version(version, index),
            (Some(_), _) => Active::None,
            (None, _) => Active::Unavailable,
        };
        routing::route(&self.names, uri.path(), uri.query(), &asked, pinned.as_deref(), active)
    }
}

/// A running edge; dropping it stops the server.
pub struct RunningEdge {
    pub addr: SocketAddr,
    _stop: oneshot::Sender<()>,
}

/// Starts the edge on `listen` in the background.
pub async fn start(site: Site, listen: SocketAddr, names: EdgeNames) -> anyhow::Result<RunningEdge> {
    let listener = TcpListener::bind(listen).await.map_err(|e| anyhow::anyhow!("listening on {listen}: {e}"))?;
    let addr = listener.local_addr()?;
    let (stop, mut stopped) = oneshot::channel::<()>();
    let app = router(site, names);
    tokio::spawn(async move {
        loop {
            let tcp = tokio::select! {
                accepted = listener.accept() => match accepted {
                    Ok((tcp, _)) => tcp,
                    Err(e) => {
                        // Out of file descriptors, most likely: the connections open now will end.
                        crate::say!("local edge: accepting a connection: {e}");
                        tokio::time::sleep(Duration::from_millis(100)).await;
                        continue;
                    }
                },
                _ = &mut stopped => break,
            };
            tokio::spawn(connection(tcp, app.clone()));
        }
    });
    Ok(RunningEdge { addr, _stop: stop })
}

/// What hyper may queue for a connection's socket before it stops reading the file (one of the
/// local store's 32 KiB chunks): its default, about 400 KB or 16 chunks, made each stalled
/// download hold 0.5 MiB.
const CONNECTION_BUFFER: usize = 32 * 1024;

/// Serves one connection (HTTP/1.1, kept alive) until the client goes.
async fn connection(tcp: tokio::net::TcpStream, app: Router) {
    // A response's head and its file are written apart: without NODELAY each waits out the
    // client's delayed ACK (40 ms a file response on Linux).
    let _ = tcp.set_nodelay(true);
    let service = hyper_util::service::TowerToHyperService::new(app);
    let served = hyper::server::conn::http1::Builder::new()
        .max_buf_size(CONNECTION_BUFFER)
        .serve_connection(hyper_util::rt::TokioIo::new(tcp), service)
        .await;
    if let Err(e) = served
        && !e.is_incomplete_message()
        && !e.is_closed()
    {
        crate::say!("local edge: a connection ended: {e}");
    }
}

/// Serves until interrupted.
pub async fn serve(site: Site, listen: SocketAddr, names: EdgeNames) -> anyhow::Result<()> {
    let described = format!("{} ({})", site.store.describe(), site.pointer.describe());
    let edge = start(site, listen, names).await?;
    crate::say!("serving {described} on http://{}", edge.addr);
    tokio::signal::ctrl_c().await?;
    Ok(())
}

fn router(site: Site, names: EdgeNames) -> Router {
    let edge = Arc::new(Edge {
        site,
        names,
        active: Mutex::new((None, None)),
        indexes: Mutex::new(Kept::default()),
        aliases: Default::default(),
    });
    Router::new().fallback(handle).with_state(edge)
}

async fn handle(State(edge): State<Arc<Edge>>, method: Method, uri: Uri, headers: HeaderMap) -> Response {
    if method != Method::GET && method != Method::HEAD {
        return text(StatusCode::METHOD_NOT_ALLOWED, "only GET and HEAD are served");
    }
    // More than one Host, or one that is not visible ASCII, is a 400 (RFC 9112, 3.2): either
    // reading would let one request be a preview host and the live site at once.
    let mut hosts = headers.get_all(header::HOST).iter();
    if hosts.next().is_some_and(|host| host.to_str().is_err()) || hosts.next().is_some() {
        return text(StatusCode::BAD_REQUEST, "bad Host header: send exactly one, in ASCII");
    }
    let route = edge.route(&uri, &headers).await;
    let (route, mut response) = match answer(&edge, &route, &method, &headers).await {
        Some(response) => (route, response),
        None if edge.lists(&route).await => {
            // A file the index lists is gone: the release was pruned since its index was read.
            edge.forget(route.version.as_deref().unwrap_or_default());
            let route = edge.route(&uri, &headers).await;
            let response = answer(&edge, &route, &method, &headers).await;
            (route, response.unwrap_or_else(|| text(StatusCode::NOT_FOUND, "not found")))
        }
        // A pool miss for a path the index does not list (another release's chunk) says nothing
        // about this release: a plain 404, its index kept.
        None => (route, text(StatusCode::NOT_FOUND, "not found")),
    };
    let headers = response.headers_mut();
    for (name, value) in &route.headers {
        if let Ok(value) = HeaderValue::from_str(value) {
            headers.insert(*name, value);
        }
    }
    for cookie in &route.set_cookies {
        if let Ok(value) = HeaderValue::from_str(cookie) {
            headers.append(header::SET_COOKIE, value);
        }
    }
    response
}

/// The response a route gets; `None` when the file it names is missing from the store.
async fn answer(edge: &Edge, route: &Route, method: &Method, headers: &HeaderMap) -> Option<Response> {
    let response = match &route.outcome {
        Outcome::File { file, status } => {
            let version = route.version.as_deref().unwrap_or_default();
            let key = edge.object_key(version, file).await;
            // The not-found page answers 404 however it is asked for (no range, no 304), and a
            // response that carries more than its version ignores ranges and conditions (see
            // Route::carries_more_than_version).
            let plain = *status == 200 && !route.carries_more_than_version();
            let headers = if plain { headers } else { &HeaderMap::new() };
            let mut response = send_file(&edge.site, &key, method, headers).await?;
            if response.status() == StatusCode::OK {
                *response.status_mut() = StatusCode::from_u16(*status).unwrap_or(StatusCode::OK);
            }
            if *status == 404
                && route.carries_more_than_version()
                && content_length(&response) > routing::MAX_PAGE_BYTES
            {
                text(StatusCode::NOT_FOUND, "not found")
            } else {
                response
            }
        }
        Outcome::Redirect(location) => {
            let mut response = text(StatusCode::MOVED_PERMANENTLY, "moved");
            if let Ok(value) = HeaderValue::from_str(location) {
                response.headers_mut().insert(header::LOCATION, value);
            }
            response
        }
        Outcome::NotFound => text(StatusCode::NOT_FOUND, "not found"),
        Outcome::BadPath => text(StatusCode::BAD_REQUEST, "bad path"),
        Outcome::NoRelease => text(StatusCode::NOT_FOUND, "no release is active"),
        Outcome::NoPreview(why) => text(StatusCode::NOT_FOUND, &why.message()),
        Outcome::Unavailable => {
            let mut response = text(StatusCode::SERVICE_UNAVAILABLE, "the active version cannot be read yet");
            response.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from_static(RETRY_AFTER));
            response
        }
    };
    Some(response)
}

/// The response for one object of the store (streamed, with ranges and conditions); `None` when
/// it is missing, a plain 404 when it cannot be read (logged; a store error never shows internal
/// details).
async fn send_file(site: &Site, key: &str, method: &Method, request: &HeaderMap) -> Option<Response> {
    match files::send(site.store.as_ref(), key, method, request).await {
        Ok(response) => response,
        Err(e) => {
            crate::say!("local edge: reading {key}: {e:#}");
            Some(text(StatusCode::NOT_FOUND, "not found"))
        }
    }
}

fn content_length(response: &Response) -> u64 {
    let length = response.headers().get(header::CONTENT_LENGTH).and_then(|v| v.to_str().ok());
    length.and_then(|v| v.parse().ok()).unwrap_or(0)
}

fn text(status: StatusCode, message: &str) -> Response {
    let mut response = Response::new(Body::from(format!("{message}\n")));
    *response.status_mut() = status;
    response.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("text/plain; charset=utf-8"));
    response.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kept_indexes_are_bounded_forgotten_on_demand_and_read_again_after_their_ttl() {
        let mut kept = Kept::default();
        let start = Instant::now();
        let index = Arc::new(RouteIndex::new(["index.html"]));
        for version in 0..=KEPT_INDEXES {
            kept.put(&version.to_string(), start, index.clone());
        }
        assert!(kept.get("0", start).is_none(), "the least recently used is let go");
        let fresh = |kept: &mut Kept, version: &str, at| kept.get(version, at).map(|(_, fresh)| fresh);
        assert_eq!(fresh(&mut kept, "1", start + INDEX_TTL - Duration::from_secs(1)), Some(true));
        assert_eq!(fresh(&mut kept, "1", start + INDEX_TTL), Some(false), "past its ttl an index is read again");
        kept.put("1", start + INDEX_TTL, index.clone());
        assert_eq!(fresh(&mut kept, "1", start + INDEX_TTL), Some(true), "and trusted again once read");
        kept.forget("2");
        assert!(kept.get("2", start).is_none());
        assert_eq!(fresh(&mut kept, "3", start), Some(true));
    }
}
