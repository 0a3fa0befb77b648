//! Leases on one object: the deploy lock, so two runs never flip the pointer at once, and the
//! staging claim, so two runs never write into the same version at once.
//!
//! A lease is a create-only object naming its holder and when it lapses. A run that finds one
//! held waits; one past its lapse time is taken over with an `If-Match` write, so of two runs
//! taking over the same stale lease only one wins. Both leases are renewed while their holder
//! works, so they lapse only when the holder is gone or stalled, and a holder checks its own clock
//! (its [`Fence`]) before each write, so a stalled one writes nothing once it may have lapsed.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use std::time::Instant;

use bytes::Bytes;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::backend::Site;
use crate::interrupt::{CLEANUP, Registered};
use crate::outcome::{Guard, Lapsed, Refusal};
use crate::printable::printable;
use crate::release::{RecordError, read_record};
use crate::store::{Condition, Fetched, StoreError, json_meta};

/// Why a lease could not be taken, kept or given back.
#[derive(Debug, thiserror::Error)]
pub enum LockError {
    /// The lease object could not be read or written; `doing` says what the run was doing.
    #[error("{doing}")]
    Store {
        doing: String,
        #[source]
        source: StoreError,
    },
    /// The version's record, read to see whether a claim is needed.
    #[error(transparent)]
    Record(#[from] RecordError),
    #[error(transparent)]
    Lapsed(#[from] Lapsed),
    /// The deploy lock stayed held by another run (exit 4).
    #[error(transparent)]
    Refused(#[from] Refusal),
    #[error("lost the staging claim to another run (this run stalled past its lease); nothing was recorded")]
    Lost,
    #[error("releasing {what}")]
    Releasing {
        what: &'static str,
        #[source]
        source: Box<LockError>,
    },
}

/// A failed store call on a lease, `doing` saying which.
fn store_error(doing: impl Into<String>) -> impl FnOnce(StoreError) -> LockError {
    move |source| LockError::Store { doing: doing.into(), source }
}

/// How often a waiting run looks at a lease again.
const POLL: Duration = Duration::from_millis(200);

/// How often a waiting run says it is still waiting.
const WAITING_NOTE: Duration = Duration::from_secs(30);

#[derive(Debug, Clone, Serialize, Deserialize)]
struct LeaseBody {
    owner: String,
    run_url: Option<String>,
    acquired_at: DateTime<Utc>,
    expires_at: DateTime<Utc>,
}

impl LeaseBody {
    fn describe(&self) -> String {
        let run = self.run_url.as_deref().map(|u| format!(" ({u})")).unwrap_or_default();
        // The owner and run URL are whatever the lock object holds.
        printable(&format!(
            "held by {}{run} since {}, lease until {}",
            self.owner,
            self.acquired_at.to_rfc3339(),
            self.expires_at.to_rfc3339()
        ))
    }
}

/// A held lease on one key; give it back with [`Lease::release`].
#[derive(Clone)]
struct Lease {
    site: Site,
    key: String,
    owner: String,
    length: Duration,
    run_url: Option<String>,
}

/// A taken lease, given back by a signal that stops the run too, so no re-run waits for it.
struct Held {
    lease: Lease,
    _on_stop: Registered,
}

impl Held {
    fn new(lease: Lease) -> Held {
        let undo = lease.clone();
        let on_stop = CLEANUP.on_stop(move || Box::pin(async move { undo.release(None).await.unwrap_or_default() }));
        Held { lease, _on_stop: on_stop }
    }
}

/// What one attempt to take a lease found.
enum Attempt {
    Taken(Held),
    Held(Option<LeaseBody>),
}

impl Lease {
    fn new(site: &Site, key: String, length: Duration, run_url: Option<&str>) -> Lease {
        let owner = format!("{}-{:08x}", std::process::id(), rand::random::<u32>());
        Lease { site: site.clone(), key, owner, length, run_url: run_url.map(str::to_owned) }
    }

    fn body(&self) -> Bytes {
        let now = Utc::now();
        let body = LeaseBody {
            owner: self.owner.clone(),
            run_url: self.run_url.clone(),
            acquired_at: now,
            expires_at: now + self.length,
        };
        Bytes::from(serde_json::to_vec(&body).expect("a lease always serialises"))
    }

    /// Creates the lease, or takes it over when it has lapsed; `what` names it in messages.
    async fn attempt(self, what: &str) -> Result<Attempt, LockError> {
        match self.site.store.put(&self.key, self.body(), &json_meta(), Condition::IfAbsent).await {
            Ok(()) => return Ok(Attempt::Taken(Held::new(self))),
            Err(StoreError::PreconditionFailed) => {}
            Err(e) => return Err(store_error(format!("taking the {what}"))(e)),
        }
        let Some(held) = self.site.store.get(&self.key).await.map_err(store_error(format!("reading the {what}")))?
        else {
            return Ok(Attempt::Held(None));
        };
        let holder: Option<LeaseBody> = serde_json::from_slice(&held.body).ok();
        // A lease that cannot be read is honoured for one lease length from its last write.
        let live = match &holder {
            Some(h) => h.expires_at > Utc::now(),
            None => held.modified.is_none_or(|at| at + self.length > Utc::now()),
        };
        if live {
            return Ok(Attempt::Held(holder));
        }
        match self.site.store.put(&self.key, self.body(), &json_meta(), Condition::IfMatch(held.etag)).await {
            Ok(()) => {
                let who = holder.map_or("an unreadable lease".into(), |h| h.describe());
                crate::say!("taking over the stale {what}: {who}");
                Ok(Attempt::Taken(Held::new(self)))
            }
            Err(StoreError::PreconditionFailed) => Ok(Attempt::Held(None)),
            Err(e) => Err(store_error(format!("taking over the stale {what}"))(e)),
        }
    }

    /// The lease as stored, if this holder still has it.
    async fn held(&self) -> Result<Option<Fetched>, LockError> {
        let stored = self.site.store.get(&self.key).await.map_err(store_error("reading a lease"))?;
        Ok(stored.filter(|s| serde_json::from_slice::<LeaseBody>(&s.body).is_ok_and(|b| b.owner == self.owner)))
    }

    /// Pushes the lapse time one lease length on; `false` when another run holds it now.
    async fn renew(&self) -> Result<bool, LockError> {
        let Some(held) = self.held().await? else { return Ok(false) };
        match self.site.store.put(&self.key, self.body(), &json_meta(), Condition::IfMatch(held.etag)).await {
            Ok(()) => Ok(true),
            Err(StoreError::PreconditionFailed) => Ok(false),
            Err(e) => Err(store_error("renewing a lease")(e)),
        }
    }

    /// Removes the lease if this run still holds it: the delete is conditional on the ETag read, so
    /// a release that lands late (after the lease lapsed and another run took it) removes nothing.
    /// `seen`, an ETag this run read its own lease with, is tried first without reading the lease
    /// again; a renewal since (or another holder) makes that delete fail, and the lease is read.
    async fn release(&self, seen: Option<String>) -> Result<(), LockError> {
        let failed = |source| LockError::Store { doing: "releasing a lease".into(), source };
        if let Some(etag) = seen {
            match self.site.store.delete_if_match(&self.key, &etag).await {
                Err(StoreError::PreconditionFailed) => {}
                done => return done.map_err(failed),
            }
        }
        let Some(held) = self.held().await? else { return Ok(()) };
        match self.site.store.delete_if_match(&self.key, &held.etag).await {
            Ok(()) | Err(StoreError::PreconditionFailed) => Ok(()),
            Err(source) => Err(failed(source)),
        }
    }
}

/// A held deploy lock, renewed while the run works; release it with [`DeployLock::release`]. Its
/// fence is checked before each write made under it: a run paused past the lease writes nothing
/// when it resumes.
pub struct DeployLock(Renewed);

impl DeployLock {
    /// Takes the lock, waiting while another run holds a live one (at most two leases).
    pub async fn acquire(site: &Site, lease: Duration, run_url: Option<&str>) -> Result<DeployLock, LockError> {
        let give_up = tokio::time::Instant::now() + lease * 2 + Duration::from_secs(5);
        let mut waiting_reported = false;
        loop {
            let attempt = Lease::new(site, site.layout.lock_key(), lease, run_url);
            let sent = Instant::now();
            let holder = match attempt.attempt("deploy lock").await? {
                Attempt::Taken(held) => return Ok(DeployLock(Renewed::start(held, sent, "the deploy lock"))),
                Attempt::Held(holder) => holder.map(|h| h.describe()).unwrap_or_default(),
            };
            if tokio::time::Instant::now() >= give_up {
                return Err(Refusal(Guard::LockHeld { holder }).into());
            }
            if !waiting_reported {
                crate::say!("waiting for the deploy lock: {holder}");
                waiting_reported = true;
            }
            tokio::time::sleep(POLL).await;
        }
    }

    /// Fails (a refusal: nothing is written) once the lock may have lapsed.
    pub fn check(&self) -> Result<(), Refusal> {
        self.0.fence.check().map_err(|lapsed| Refusal(Guard::LockLapsed(lapsed)))
    }

    /// Removes the lock if this run still holds it.
    pub async fn release(self) -> Result<(), LockError> {
        self.0.release("the deploy lock", None).await
    }
}

/// A taken lease renewed in the background while its holder works, with the fence its writes check.
struct Renewed {
    held: Arc<Held>,
    lost: Arc<AtomicBool>,
    fence: Fence,
    _renewer: Renewer,
}

impl Renewed {
    fn start(held: Held, taken_at: Instant, what: &'static str) -> Renewed {
        let held = Arc::new(held);
        let lost = Arc::new(AtomicBool::new(false));
        let fence = Fence::since(taken_at, held.lease.length, what);
        let renewer = tokio::spawn({
            let (held, lost, renewed) = (Arc::clone(&held), Arc::clone(&lost), Arc::clone(&fence.renewed));
            async move {
                loop {
                    tokio::time::sleep(held.lease.length / 5).await;
                    let sent = Instant::now();
                    // A failed renewal is retried at the next tick; only another holder ends it.
                    match held.lease.renew().await {
                        Ok(true) => *renewed.lock().unwrap_or_else(|e| e.into_inner()) = sent,
                        Ok(false) => {
                            lost.store(true, Ordering::SeqCst);
                            return;
                        }
                        Err(_) => {}
                    }
                }
            }
        });
        Renewed { held, lost, fence, _renewer: Renewer(renewer) }
    }

    /// Stops renewing and gives the lease (`what`, for messages) up; `seen` as [`Lease::release`].
    async fn release(self, what: &'static str, seen: Option<String>) -> Result<(), LockError> {
        drop(self._renewer);
        self.held.lease.release(seen).await.map_err(|e| LockError::Releasing { what, source: Box::new(e) })
    }
}

/// How a run stands with a version's staging claim.
pub enum Claimed {
    /// This run may write the version's files; the claim is renewed until it is released.
    Writer(StagingClaim),
    /// The version was recorded (before or while this run waited): nothing may be written.
    Recorded,
}

/// The right to write a version's files, renewed in the background while the run stages.
pub struct StagingClaim {
    renewed: Renewed,
    /// The claim's ETag as [`StagingClaim::confirm`] last read it: the release deletes by it
    /// without reading the claim again.
    confirmed: Mutex<Option<String>>,
}

/// Checked before each write under a claim: the claim was renewed recently enough, by this
/// process's own monotonic clock (which runs on while the process is stopped or starved), that no
/// other run can have taken it over. A run paused past its lease stops writing when it resumes;
/// conditional writes cover the moment between the check and the write.
#[derive(Clone)]
pub struct Fence {
    renewed: Arc<Mutex<Instant>>,
    lease: Duration,
    /// The lease, for messages: `the staging claim`.
    what: &'static str,
}

impl Fence {
    fn since(taken: Instant, lease: Duration, what: &'static str) -> Fence {
        Fence { renewed: Arc::new(Mutex::new(taken)), lease, what }
    }

    pub fn check(&self) -> Result<(), Lapsed> {
        let since = self.renewed.lock().unwrap_or_else(|e| e.into_inner()).elapsed();
        // Another run may take over once its clock passes our renewal's send time plus the lease;
        // a tenth of the lease is left for the two machines' clocks to differ.
        if since > self.lease * 9 / 10 {
            return Err(Lapsed { what: self.what, since, lease: self.lease });
        }
        Ok(())
    }
}

/// The background task renewing a lease; stopped when dropped, so no path leaves it running.
struct Renewer(tokio::task::JoinHandle<()>);

impl Drop for Renewer {
    fn drop(&mut self) {
        self.0.abort();
    }
}

impl StagingClaim {
    /// Claims `version` for writing; waits while another live run stages it, and answers
    /// [`Claimed::Recorded`] once the version has a record.
    pub async fn acquire(
        site: &Site,
        version: &str,
        lease: Duration,
        run_url: Option<&str>,
    ) -> Result<Claimed, LockError> {
        let record_key = site.layout.record_key(version);
        let what = format!("staging claim on version {version}");
        let mut next_note = tokio::time::Instant::now();
        loop {
            let attempt = Lease::new(site, site.layout.claim_key(version), lease, run_url);
            let sent = Instant::now();
            // The record is read after each attempt, not before: read after the claim is taken, it
            // also sees a record the holder before this run wrote just before it let go, so one
            // read covers both; a held claim never keeps a recorded version waiting.
            let attempt = attempt.attempt(&what).await?;
            let recorded = read_record(site, &record_key).await?.is_some();
            match attempt {
                Attempt::Taken(held) if recorded => {
                    held.lease.release(None).await?;
                    return Ok(Claimed::Recorded);
                }
                Attempt::Taken(held) => {
                    let renewed = Renewed::start(held, sent, "the staging claim");
                    return Ok(Claimed::Writer(StagingClaim { renewed, confirmed: Mutex::new(None) }));
                }
                Attempt::Held(_) if recorded => return Ok(Claimed::Recorded),
                Attempt::Held(holder) => {
                    if tokio::time::Instant::now() >= next_note {
                        let holder = holder.map(|h| h.describe()).unwrap_or_default();
                        crate::say!("waiting: version {version} is being staged by another run, {holder}");
                        next_note = tokio::time::Instant::now() + WAITING_NOTE;
                    }
                    tokio::time::sleep(POLL).await;
                }
            }
        }
    }

    /// The check each write under this claim makes first.
    pub fn fence(&self) -> Fence {
        self.renewed.fence.clone()
    }

    /// Fails unless this run still holds the claim: checked before the record makes the files final.
    pub async fn confirm(&self) -> Result<(), LockError> {
        self.renewed.fence.check()?;
        if self.renewed.lost.load(Ordering::SeqCst) {
            return Err(LockError::Lost);
        }
        let held = self.renewed.held.lease.held().await?.ok_or(LockError::Lost)?;
        *self.confirmed.lock().unwrap_or_else(|e| e.into_inner()) = Some(held.etag);
        Ok(())
    }

    /// Stops renewing and gives the claim up.
    pub async fn release(self) -> Result<(), LockError> {
        let confirmed = self.confirmed.into_inner().unwrap_or_else(|e| e.into_inner());
        self.renewed.release("the staging claim", confirmed).await
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::pointer::{alias::StoreAliases, file::FilePointer};
    use crate::release::Layout;
    use crate::store::local::LocalStore;

    const KEY: &str = "site/_cutover/staging/1.json";

    async fn taken(site: &Site) -> Lease {
        let lease = Lease::new(site, KEY.into(), Duration::from_secs(60), None);
        match lease.attempt("staging claim").await.unwrap() {
            Attempt::Taken(held) => held.lease.clone(),
            Attempt::Held(_) => panic!("the claim is free"),
        }
    }

    /// A release by the ETag the claim's holder last read stays exact when something changed:
    /// renewed since, the lease is read again and removed; another holder's lease is never
    /// removed. (That it costs one request when nothing changed is counted on moto by
    /// `requests::a_redeploy_asks_each_guard_once`.)
    #[tokio::test]
    async fn a_release_by_a_seen_etag_removes_only_this_runs_lease() {
        let dir = tempfile::tempdir().unwrap();
        let store: Arc<dyn crate::store::Store> = Arc::new(LocalStore::new(dir.path()));
        let layout = Layout::new("site");
        let aliases = Arc::new(StoreAliases::new(store.clone(), layout.clone()));
        let site = Site { store, pointer: Arc::new(FilePointer::new(dir.path(), "site")), layout, aliases };
        let stored = async || site.store.get(KEY).await.unwrap();

        let lease = taken(&site).await;
        let seen = lease.held().await.unwrap().unwrap().etag;
        lease.release(Some(seen)).await.unwrap();
        assert!(stored().await.is_none(), "released by the ETag seen");

        let lease = taken(&site).await;
        let seen = lease.held().await.unwrap().unwrap().etag;
        assert!(lease.renew().await.unwrap());
        lease.release(Some(seen)).await.unwrap();
        assert!(stored().await.is_none(), "renewed since the ETag was seen: read again and released");

        let lease = taken(&site).await;
        let seen = lease.held().await.unwrap().unwrap().etag;
        let other = Lease { owner: "next-holder".into(), ..lease.clone() };
        site.store.put(KEY, other.body(), &json_meta(), Condition::Always).await.unwrap();
        lease.release(Some(seen)).await.unwrap();
        let left = stored().await.expect("the next holder's lease was removed");
        assert!(String::from_utf8_lossy(&left.body).contains("next-holder"));
    }
}
