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
use axum::serve::ListenerExt;
use tokio::net::TcpListener;
use tokio::sync::oneshot;

use crate::backend::Site;
use crate::route_index::{self, RouteIndex};
use crate::routing::{self, Active, Ask, EdgeNames, Outcome, Route};
use crate::version;

mod aliases;
mod files;

/// How long the edge trusts the active version it last read, as the router does.
const ACTIVE_CACHE: Duration = Duration::from_secs(1);
/// Routing indexes kept in memory (releases are immutable, so a kept index never goes stale).
const KEPT_INDEXES: usize = 8;
/// What a 503 tells clients to wait, in seconds, while the active version cannot be read.
const RETRY_AFTER: &str = "5";

struct Edge {
    site: Site,
    names: EdgeNames,
    /// When the active version was last read, and the last good value (`None` until one was read).
    active: Mutex<(Option<Instant>, Option<Option<String>>)>,
    /// Routing indexes of recorded releases, most recently used last.
    indexes: Mutex<Vec<(String, Arc<RouteIndex>)>>,
    aliases: aliases::AliasCache,
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
    /// error counts as unknown for this request and is logged, never shown.
    async fn index(&self, version: &str) -> Option<Arc<RouteIndex>> {
        {
            let mut kept = self.indexes.lock().unwrap_or_else(|e| e.into_inner());
            if let Some(at) = kept.iter().position(|(v, _)| v == version) {
                let entry = kept.remove(at);
                let index = entry.1.clone();
                kept.push(entry);
                return Some(index);
            }
        }
        let index = match route_index::read(&self.site, version).await {
            Ok(index) => Arc::new(index?),
            Err(e) => {
                crate::say!("local edge: reading the routing index of {version}: {e:#}");
                return None;
            }
        };
        let mut kept = self.indexes.lock().unwrap_or_else(|e| e.into_inner());
        if kept.len() >= KEPT_INDEXES {
            kept.remove(0);
        }
        kept.push((version.to_owned(), index.clone()));
        Some(index)
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
    // A response's head and its file are written apart: without NODELAY each waits out the
    // client's delayed ACK (40 ms a file response on Linux).
    let listener = listener.tap_io(|tcp| {
        let _ = tcp.set_nodelay(true);
    });
    let (stop, stopped) = oneshot::channel::<()>();
    let app = router(site, names);
    tokio::spawn(async move {
        let shutdown = async {
            let _ = stopped.await;
        };
        if let Err(e) = axum::serve(listener, app).with_graceful_shutdown(shutdown).await {
            crate::say!("local edge stopped: {e}");
        }
    });
    Ok(RunningEdge { addr, _stop: stop })
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
        indexes: Mutex::new(Vec::new()),
        aliases: Default::default(),
    });
    Router::new().fallback(handle).with_state(edge)
}

async fn handle(State(edge): State<Arc<Edge>>, method: Method, uri: Uri, headers: HeaderMap) -> Response {
    if method != Method::GET && method != Method::HEAD {
        return text(StatusCode::METHOD_NOT_ALLOWED, "only GET and HEAD are served");
    }
    let route = edge.route(&uri, &headers).await;
    let mut response = match &route.outcome {
        Outcome::File { file, status } => {
            let version = route.version.as_deref().unwrap_or_default();
            let mut response =
                send_file(&edge.site, &edge.site.layout.object_key(version, file), &method, &headers).await;
            if response.status() == StatusCode::OK {
                *response.status_mut() = StatusCode::from_u16(*status).unwrap_or(StatusCode::OK);
            }
            response
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
        Outcome::Unavailable => {
            let mut response = text(StatusCode::SERVICE_UNAVAILABLE, "the active version cannot be read yet");
            response.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from_static(RETRY_AFTER));
            response
        }
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

/// The response for one object of the store (streamed, with ranges and conditions), or a plain 404
/// when it is missing or cannot be read (logged; a store error never shows internal details).
async fn send_file(site: &Site, key: &str, method: &Method, request: &HeaderMap) -> Response {
    match files::send(site.store.as_ref(), key, method, request).await {
        Ok(Some(response)) => response,
        Ok(None) => text(StatusCode::NOT_FOUND, "not found"),
        Err(e) => {
            crate::say!("local edge: reading {key}: {e:#}");
            text(StatusCode::NOT_FOUND, "not found")
        }
    }
}

fn text(status: StatusCode, message: &str) -> Response {
    let mut response = Response::new(Body::from(format!("{message}\n")));
    *response.status_mut() = status;
    response.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("text/plain; charset=utf-8"));
    response.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}
