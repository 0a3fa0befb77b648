//! The deploy lock: a create-only object with a lease, so two runs never flip the pointer at once.
//!
//! A run that finds the lock held waits; a lock past its lease is taken over with an `If-Match`
//! write, so of two runs taking over the same stale lock only one wins.

use std::time::Duration;

use anyhow::Context;
use bytes::Bytes;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::backend::Site;
use crate::outcome::Refusal;
use crate::store::{Condition, StoreError, json_meta};

/// How often a waiting run looks at the lock again.
const POLL: Duration = Duration::from_millis(200);

#[derive(Debug, Clone, Serialize, Deserialize)]
struct LockBody {
    owner: String,
    run_url: Option<String>,
    acquired_at: DateTime<Utc>,
    expires_at: DateTime<Utc>,
}

/// A held deploy lock; release it with [`DeployLock::release`].
pub struct DeployLock {
    site: Site,
    owner: String,
}

impl DeployLock {
    /// Takes the lock, waiting while another run holds a live one (at most two leases).
    pub async fn acquire(site: &Site, lease: Duration, run_url: Option<&str>) -> anyhow::Result<DeployLock> {
        let key = site.layout.lock_key();
        let owner = format!("{}-{:08x}", std::process::id(), rand::random::<u32>());
        let give_up = tokio::time::Instant::now() + lease * 2 + Duration::from_secs(5);
        let mut waiting_reported = false;
        loop {
            let now = Utc::now();
            let body = LockBody {
                owner: owner.clone(),
                run_url: run_url.map(str::to_owned),
                acquired_at: now,
                expires_at: now + lease,
            };
            let bytes = Bytes::from(serde_json::to_vec(&body)?);
            match site.store.put(&key, bytes.clone(), &json_meta(), Condition::IfAbsent).await {
                Ok(()) => return Ok(DeployLock { site: site.clone(), owner }),
                Err(StoreError::PreconditionFailed) => {}
                Err(StoreError::Other(e)) => return Err(e.context("taking the deploy lock")),
            }
            let Some(held) = site.store.get(&key).await.context("reading the deploy lock")? else { continue };
            let holder: Option<LockBody> = serde_json::from_slice(&held.body).ok();
            let expired = holder.as_ref().is_none_or(|h| h.expires_at <= now);
            if expired {
                match site.store.put(&key, bytes, &json_meta(), Condition::IfMatch(held.etag)).await {
                    Ok(()) => {
                        let who = holder.map_or("an unreadable lock".into(), |h| describe(&h));
                        eprintln!("taking over the stale deploy lock: {who}");
                        return Ok(DeployLock { site: site.clone(), owner });
                    }
                    Err(StoreError::PreconditionFailed) => continue,
                    Err(StoreError::Other(e)) => return Err(e.context("taking over the stale deploy lock")),
                }
            }
            let holder = holder.as_ref().map(describe).unwrap_or_default();
            if tokio::time::Instant::now() >= give_up {
                return Err(Refusal::new(format!("the deploy lock is still held: {holder}")).into());
            }
            if !waiting_reported {
                eprintln!("waiting for the deploy lock: {holder}");
                waiting_reported = true;
            }
            tokio::time::sleep(POLL).await;
        }
    }

    /// Removes the lock if this run still holds it.
    pub async fn release(self) -> anyhow::Result<()> {
        let key = self.site.layout.lock_key();
        let held = self.site.store.get(&key).await.context("reading the deploy lock")?;
        let ours = held
            .and_then(|h| serde_json::from_slice::<LockBody>(&h.body).ok())
            .is_some_and(|body| body.owner == self.owner);
        if ours {
            self.site.store.delete(&[key]).await.context("releasing the deploy lock")?;
        }
        Ok(())
    }
}

fn describe(holder: &LockBody) -> String {
    let run = holder.run_url.as_deref().map(|u| format!(" ({u})")).unwrap_or_default();
    format!(
        "held by {}{run} since {}, lease until {}",
        holder.owner,
        holder.acquired_at.to_rfc3339(),
        holder.expires_at.to_rfc3339()
    )
}
