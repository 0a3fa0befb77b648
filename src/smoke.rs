//! Smoke: request the staged version through the real edge with the override cookie, retrying
//! with backoff until a deadline, because edges take seconds to see a new release. The site URL may
//! carry credentials for a protected site; [`SiteUrl`] sends them and shows them nowhere.

use std::time::Duration;

use reqwest::header::{CACHE_CONTROL, COOKIE};
use serde::Serialize;
use tokio::time::Instant;

use crate::inputs::{SiteUrl, SmokePlan};
use crate::routing::{self, EdgeNames, VERSION_HEADER};

const FIRST_BACKOFF: Duration = Duration::from_millis(200);
const MAX_BACKOFF: Duration = Duration::from_secs(5);
const REQUEST_TIMEOUT: Duration = Duration::from_secs(15);

/// The last word on one smoke path.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SmokeCheck {
    pub path: String,
    pub passed: bool,
    pub attempts: u32,
    /// What was wrong with the last attempt, or `ok`.
    pub detail: String,
}

/// The smoke test failed; nothing was promoted. It carries the result of every path.
#[derive(Debug, thiserror::Error)]
#[error("smoke test failed: {message}")]
pub struct SmokeFailure {
    pub message: String,
    pub checks: Vec<SmokeCheck>,
}

/// Why a smoke test did not pass.
#[derive(Debug, thiserror::Error)]
pub enum SmokeError {
    /// A path failed (exit 3).
    #[error(transparent)]
    Failed(#[from] SmokeFailure),
    /// No HTTP client could be made to test with.
    #[error(transparent)]
    Client(#[from] reqwest::Error),
}

/// Smoke-tests every path; an error names each failing path and why.
pub async fn smoke(
    site: &SiteUrl,
    version: &str,
    plan: &SmokePlan,
    names: &EdgeNames,
) -> Result<Vec<SmokeCheck>, SmokeError> {
    let client = reqwest::Client::builder().timeout(REQUEST_TIMEOUT).build()?;
    let deadline = Instant::now() + plan.timeout;
    let checks = futures::future::join_all(
        plan.paths.iter().map(|path| check_path(&client, site, path, version, plan, names, deadline)),
    )
    .await;
    let failed: Vec<String> =
        checks.iter().filter(|c| !c.passed).map(|c| format!("{}: {}", c.path, c.detail)).collect();
    if failed.is_empty() {
        Ok(checks)
    } else {
        Err(SmokeFailure { message: format!("version {version} at {site}: {}", failed.join("; ")), checks }.into())
    }
}

async fn check_path(
    client: &reqwest::Client,
    site: &SiteUrl,
    path: &str,
    version: &str,
    plan: &SmokePlan,
    names: &EdgeNames,
    deadline: Instant,
) -> SmokeCheck {
    let mut backoff = FIRST_BACKOFF;
    let mut attempts = 0;
    loop {
        attempts += 1;
        let detail = match attempt(site.get(client, path), version, plan, names).await {
            Ok(()) => return SmokeCheck { path: path.to_owned(), passed: true, attempts, detail: "ok".into() },
            Err(problem) => problem,
        };
        if Instant::now() + backoff > deadline {
            return SmokeCheck { path: path.to_owned(), passed: false, attempts, detail };
        }
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(MAX_BACKOFF);
    }
}

async fn attempt(
    request: reqwest::RequestBuilder,
    version: &str,
    plan: &SmokePlan,
    names: &EdgeNames,
) -> Result<(), String> {
    let response = request
        .header(COOKIE, routing::override_cookie(names, version))
        .header(CACHE_CONTROL, "no-cache")
        .send()
        .await
        .map_err(|e| format!("request failed: {e}"))?;
    let status = response.status().as_u16();
    let served = response.headers().get(VERSION_HEADER).and_then(|v| v.to_str().ok()).map(str::to_owned);
    if status != plan.expect_status {
        return Err(format!("status {status}, expected {}", plan.expect_status));
    }
    if served.as_deref() != Some(version) {
        let served = served.map_or("no".into(), |v| format!("{v:?}"));
        return Err(format!("{served} {VERSION_HEADER} header, expected {version:?}"));
    }
    if let Some(expected) = &plan.expect_text {
        let body = response.text().await.map_err(|e| format!("reading the body: {e}"))?;
        if !body.contains(expected.as_str()) {
            return Err(format!("body does not contain {expected:?}"));
        }
    }
    Ok(())
}
