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
use crate::routing::{self, EdgeNames, VERSION_HEADER};

/// How long the edge trusts the active version it last read, as the router does.
const ACTIVE_CACHE: Duration = Duration::from_secs(1);

struct Edge {
    site: Site,
    names: EdgeNames,
    active: Mutex<Option<(Instant, Option<String>)>>,
}

impl Edge {
    async fn active(&self) -> anyhow::Result<Option<String>> {
        if let Some((read_at, version)) = self.active.lock().unwrap_or_else(|e| e.into_inner()).as_ref()
            && read_at.elapsed() < ACTIVE_CACHE
        {
            return Ok(version.clone());
        }
        let version = self.site.pointer.read().await?;
        *self.active.lock().unwrap_or_else(|e| e.into_inner()) = Some((Instant::now(), version.clone()));
        Ok(version)
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
    let edge = Arc::new(Edge { site, names, active: Mutex::new(None) });
    Router::new().fallback(handle).with_state(edge)
}

async fn handle(State(edge): State<Arc<Edge>>, method: Method, uri: Uri, headers: HeaderMap) -> Response {
    if method != Method::GET && method != Method::HEAD {
        return text(StatusCode::METHOD_NOT_ALLOWED, "only GET and HEAD are served");
    }
    let active = match edge.active().await {
        Ok(active) => active,
        Err(e) => return text(StatusCode::BAD_GATEWAY, &format!("reading the active version: {e:#}")),
    };
    let cookie = headers.get(header::COOKIE).and_then(|v| v.to_str().ok());
    let route = routing::route(&edge.names, uri.path(), uri.query(), cookie, active.as_deref());
    let mut response = match (&route.version, &route.file) {
        (None, _) => text(StatusCode::NOT_FOUND, "no release is active"),
        (_, None) => text(StatusCode::BAD_REQUEST, "unsafe path"),
        (Some(version), Some(file)) => {
            let key = edge.site.layout.object_key(version, file);
            match edge.site.store.get(&key).await {
                Ok(Some(object)) => {
                    let mut response = Response::new(Body::from(object.body));
                    let headers = response.headers_mut();
                    for (name, value) in [
                        (header::CONTENT_TYPE, object.meta.content_type),
                        (header::CACHE_CONTROL, object.meta.cache_control),
                        (header::ETAG, format!("\"{}\"", object.etag)),
                    ] {
                        if let Ok(value) = HeaderValue::try_from(value) {
                            headers.insert(name, value);
                        }
                    }
                    response
                }
                Ok(None) => text(StatusCode::NOT_FOUND, &format!("{file} is not in release {version}")),
                Err(e) => text(StatusCode::BAD_GATEWAY, &format!("reading {key}: {:#}", anyhow::Error::new(e))),
            }
        }
    };
    let headers = response.headers_mut();
    if let Some(value) = route.version.as_deref().and_then(|v| HeaderValue::from_str(v).ok()) {
        headers.insert(VERSION_HEADER, value);
    }
    for cookie in route.set_cookies {
        if let Ok(value) = HeaderValue::from_str(&cookie) {
            headers.append(header::SET_COOKIE, value);
        }
    }
    response
}

fn text(status: StatusCode, message: &str) -> Response {
    let mut response = Response::new(Body::from(format!("{message}\n")));
    *response.status_mut() = status;
    response.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("text/plain; charset=utf-8"));
    response.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}
