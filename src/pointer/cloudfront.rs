//! The active version as a CloudFront origin path (`/<prefix>/<version>`), the other promotion
//! style the field uses: flip the distribution's origin, then invalidate the cached copies.
//!
//! CloudFront keeps no history of origin paths, so promotions are logged in the store beside the
//! release records, under the same deploy lock that guards the flip.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use aws_sdk_cloudfront::Client;
use aws_sdk_cloudfront::client::Waiters;
use aws_sdk_cloudfront::config::http::HttpResponse;
use aws_sdk_cloudfront::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_cloudfront::operation::update_distribution::UpdateDistributionError;
use aws_sdk_cloudfront::types::{DistributionConfig, InvalidationBatch, Paths};
use aws_smithy_runtime_api::client::waiters::error::WaiterError;
use bytes::Bytes;

use super::{Flipped, NO_RELEASE, Pointer, PointerError, PointerResult, Promotion};
use crate::aws_error::AwsError;
use crate::inputs::Invalidation;
use crate::release::Layout;
use crate::store::{Condition, Store, json_meta};
use crate::version;

/// Attempts at UpdateDistribution when another writer changed the config in between.
const UPDATE_ATTEMPTS: usize = 4;
/// Promotions kept in the log.
const HISTORY_LIMIT: usize = 100;

pub struct CloudFrontPointer {
    client: Client,
    distribution: String,
    origin: Option<String>,
    layout: Layout,
    store: Arc<dyn Store>,
    invalidation: Option<Invalidation>,
}

impl CloudFrontPointer {
    pub fn new(
        client: Client,
        distribution: &str,
        origin: Option<&str>,
        layout: Layout,
        store: Arc<dyn Store>,
        invalidation: Option<Invalidation>,
    ) -> Self {
        Self {
            client,
            distribution: distribution.to_owned(),
            origin: origin.map(str::to_owned),
            layout,
            store,
            invalidation,
        }
    }

    async fn config(&self) -> PointerResult<(DistributionConfig, String)> {
        let out = self
            .client
            .get_distribution_config()
            .id(&self.distribution)
            .send()
            .await
            .map_err(|e| AwsError::new("CloudFront GetDistributionConfig", &self.distribution, &e))?;
        let config =
            out.distribution_config().cloned().ok_or(PointerError::Incomplete("the distribution has no config"))?;
        Ok((config, out.e_tag().unwrap_or_default().to_owned()))
    }

    async fn invalidate(&self, plan: &Invalidation) -> PointerResult<String> {
        let quantity = i32::try_from(plan.paths.len()).map_err(PointerError::TooManyPaths)?;
        let paths = Paths::builder().quantity(quantity).set_items(Some(plan.paths.clone())).build()?;
        let reference = format!("cutover-{}-{:08x}", chrono::Utc::now().timestamp_millis(), rand::random::<u32>());
        let batch = InvalidationBatch::builder().paths(paths).caller_reference(reference).build()?;
        let out = self
            .client
            .create_invalidation()
            .distribution_id(&self.distribution)
            .invalidation_batch(batch)
            .send()
            .await
            .map_err(|e| AwsError::new("CloudFront CreateInvalidation", &self.distribution, &e))?;
        let id = out
            .invalidation()
            .map(|i| i.id().to_owned())
            .ok_or(PointerError::Incomplete("CloudFront returned no invalidation"))?;
        if let Some(limit) = plan.wait {
            self.wait_for(&id, limit).await?;
        }
        Ok(id)
    }

    /// Waits with the SDK's waiter (its polling and backoff) until the invalidation completes or
    /// `limit` passes; past `limit` the run goes on and the edges catch up on their own.
    async fn wait_for(&self, id: &str, limit: Duration) -> PointerResult<()> {
        let waited = self
            .client
            .wait_until_invalidation_completed()
            .distribution_id(&self.distribution)
            .id(id)
            .wait(limit)
            .await;
        let resource = || format!("{id} of {}", self.distribution);
        match waited {
            Ok(_) => Ok(()),
            Err(WaiterError::ExceededMaxWait(_)) => {
                crate::say!("invalidation {id} is still in progress after {}s; edges will catch up", limit.as_secs());
                Ok(())
            }
            Err(WaiterError::OperationFailed(failed)) => {
                Err(AwsError::new("CloudFront GetInvalidation", resource(), failed.error()).into())
            }
            Err(other) => Err(AwsError::failed("CloudFront GetInvalidation", resource(), &other).into()),
        }
    }

    /// Invalidates after a flip that landed, and marks the last promotion pending when that
    /// fails, so that promoting the version again retries; a `retry` that succeeds clears the mark
    /// (a first try that succeeds has none to clear, and reads no log).
    async fn invalidate_flip(&self, retry: bool) -> Flipped {
        let Some(plan) = &self.invalidation else { return Flipped::default() };
        let invalidated = self.invalidate(plan).await;
        let marked = if retry || invalidated.is_err() { self.mark_pending(invalidated.is_err()).await } else { Ok(()) };
        match (invalidated, marked) {
            (Ok(id), Ok(())) => Flipped { invalidation_id: Some(id), invalidation_failed: None },
            (Ok(id), Err(e)) => {
                let e = anyhow::Error::from(e);
                crate::say!("warning: invalidation {id} was sent, but the promotion log still says one is due: {e:#}");
                Flipped { invalidation_id: Some(id), invalidation_failed: None }
            }
            (Err(e), marked) => {
                let mut failed = format!("{:#}", anyhow::Error::from(e));
                if let Err(m) = marked {
                    failed
                        .push_str(&format!(" (and the promotion log could not say so: {:#})", anyhow::Error::from(m)));
                }
                Flipped { invalidation_id: None, invalidation_failed: Some(failed) }
            }
        }
    }

    /// Sets whether the last logged promotion still needs its invalidation; writes only a change.
    async fn mark_pending(&self, pending: bool) -> PointerResult<()> {
        let mut history = self.history().await?;
        match history.last_mut() {
            Some(last) if last.invalidation_pending != pending => last.invalidation_pending = pending,
            _ => return Ok(()),
        }
        self.save_log(&history).await
    }

    async fn log_promotion(&self, promotion: Promotion) -> PointerResult<()> {
        let mut history = self.history().await?;
        history.push(promotion);
        let excess = history.len().saturating_sub(HISTORY_LIMIT);
        history.drain(..excess);
        self.save_log(&history).await
    }

    async fn save_log(&self, history: &[Promotion]) -> PointerResult<()> {
        let body = Bytes::from(serde_json::to_vec_pretty(history).expect("a promotion log always serialises"));
        self.store.put(&self.layout.promotions_key(), body, &json_meta(), Condition::Always).await?;
        Ok(())
    }
}

/// The origin a pointer flips: the one named, else the default cache behaviour's target.
fn origin_id<'a>(config: &'a DistributionConfig, named: Option<&'a str>) -> PointerResult<&'a str> {
    match named {
        Some(id) => Ok(id),
        None => config
            .default_cache_behavior()
            .map(|b| b.target_origin_id())
            .ok_or(PointerError::Incomplete("the distribution has no default cache behaviour to find its origin by")),
    }
}

/// The version an origin path names under `layout`, if it names one.
pub fn version_of_origin_path(layout: &Layout, origin_path: &str) -> Option<String> {
    let rest = origin_path.strip_prefix('/')?;
    let rest = if layout.prefix().is_empty() { rest } else { rest.strip_prefix(layout.prefix())?.strip_prefix('/')? };
    version::is_valid(rest).then(|| rest.to_owned())
}

/// What an origin path holds as a pointer value: the version it names, nothing for the template's
/// placeholder `/<prefix>/-`, and any other path (another prefix, none at all) whole, so that
/// promote refuses it as a value cutover did not write, as it refuses one in an SSM parameter.
pub fn active_of_origin_path(layout: &Layout, path: &str) -> Option<String> {
    if path == origin_path(layout, NO_RELEASE) {
        return None;
    }
    Some(version_of_origin_path(layout, path).unwrap_or_else(|| path.to_owned()))
}

/// The origin path that serves `version`.
pub fn origin_path(layout: &Layout, version: &str) -> String {
    format!("/{}", layout.version_dir(version).trim_end_matches('/'))
}

/// Sets the origin path of the chosen origin in a distribution config.
pub fn set_origin_path(config: &mut DistributionConfig, named: Option<&str>, path: &str) -> PointerResult<()> {
    let id = origin_id(config, named)?.to_owned();
    let origins = config.origins.as_mut().ok_or(PointerError::Incomplete("the distribution has no origins"))?;
    let Some(origin) = origins.items.iter_mut().find(|o| o.id == id) else {
        return Err(PointerError::NotFound { origin: id, distribution: "the distribution".to_owned() });
    };
    origin.origin_path = Some(path.to_owned());
    Ok(())
}

/// What the distribution config is called in messages.
const CONFIG: &str = "the distribution config";

/// The two calls a flip makes, so the stale-ETag retry can be tested without CloudFront.
#[async_trait]
pub trait DistributionApi: Send + Sync {
    async fn get(&self) -> PointerResult<(DistributionConfig, String)>;
    /// [`PointerError::PreconditionFailed`] when the ETag was stale (412): someone changed the
    /// config in between.
    async fn update(&self, config: DistributionConfig, etag: &str) -> PointerResult<()>;
}

/// A failed UpdateDistribution: a stale ETag (412) apart from every other failure.
fn update_error(distribution: &str, err: &SdkError<UpdateDistributionError, HttpResponse>) -> PointerError {
    match err.code() {
        Some("PreconditionFailed") => PointerError::PreconditionFailed { what: CONFIG, attempts: 1 },
        _ => AwsError::new("CloudFront UpdateDistribution", distribution, err).into(),
    }
}

#[async_trait]
impl DistributionApi for CloudFrontPointer {
    async fn get(&self) -> PointerResult<(DistributionConfig, String)> {
        self.config().await
    }

    async fn update(&self, config: DistributionConfig, etag: &str) -> PointerResult<()> {
        let sent = self
            .client
            .update_distribution()
            .id(&self.distribution)
            .if_match(etag)
            .distribution_config(config)
            .send()
            .await;
        sent.map(drop).map_err(|e| update_error(&self.distribution, &e))
    }
}

/// Reads, changes and writes the config, reading again when the ETag went stale.
pub async fn flip_origin_path(api: &dyn DistributionApi, origin: Option<&str>, path: &str) -> PointerResult<()> {
    for _ in 0..UPDATE_ATTEMPTS {
        let (mut config, etag) = api.get().await?;
        set_origin_path(&mut config, origin, path)?;
        match api.update(config, &etag).await {
            Err(PointerError::PreconditionFailed { .. }) => continue,
            updated => return updated,
        }
    }
    Err(PointerError::PreconditionFailed { what: CONFIG, attempts: UPDATE_ATTEMPTS })
}

#[async_trait]
impl Pointer for CloudFrontPointer {
    async fn read(&self) -> PointerResult<Option<String>> {
        let (config, _) = self.config().await?;
        let id = origin_id(&config, self.origin.as_deref())?;
        let origins = config.origins().map(|o| o.items()).unwrap_or_default();
        let Some(origin) = origins.iter().find(|o| o.id() == id) else {
            let distribution = format!("distribution {}", self.distribution);
            return Err(PointerError::NotFound { origin: id.to_owned(), distribution });
        };
        Ok(active_of_origin_path(&self.layout, origin.origin_path().unwrap_or_default()))
    }

    async fn write(&self, version: &str, note: &str) -> PointerResult<Flipped> {
        flip_origin_path(self, self.origin.as_deref(), &origin_path(&self.layout, version)).await?;
        let promotion = Promotion {
            version: version.to_owned(),
            at: Some(chrono::Utc::now()),
            note: note.to_owned(),
            invalidation_pending: false,
        };
        self.log_promotion(promotion).await.map_err(|e| PointerError::Logging(Box::new(e)))?;
        Ok(self.invalidate_flip(false).await)
    }

    async fn finish_flip(&self, version: &str) -> PointerResult<Flipped> {
        let pending = self.history().await?.last().is_some_and(|p| p.version == version && p.invalidation_pending);
        if !pending {
            return Ok(Flipped::default());
        }
        crate::say!("{version} is live, but the invalidation after its flip failed: sending it now");
        Ok(self.invalidate_flip(true).await)
    }

    async fn history(&self) -> PointerResult<Vec<Promotion>> {
        let key = self.layout.promotions_key();
        match self.store.get(&key).await {
            Ok(Some(fetched)) => {
                serde_json::from_slice(&fetched.body).map_err(|source| PointerError::Damaged { what: key, source })
            }
            Ok(None) => Ok(Vec::new()),
            Err(source) => Err(PointerError::Reading { key, source }),
        }
    }

    fn describe(&self) -> String {
        format!("CloudFront distribution {} origin path", self.distribution)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_sdk_cloudfront::types::{DefaultCacheBehavior, Origin, Origins};
    use std::sync::Mutex;

    fn config() -> DistributionConfig {
        let origin = |id: &str| {
            Origin::builder()
                .id(id)
                .domain_name(format!("{id}.s3.amazonaws.com"))
                .origin_path("/site/1")
                .build()
                .unwrap()
        };
        DistributionConfig::builder()
            .caller_reference("x")
            .comment("")
            .enabled(true)
            .origins(Origins::builder().quantity(2).items(origin("logs")).items(origin("site")).build().unwrap())
            .default_cache_behavior(
                DefaultCacheBehavior::builder()
                    .target_origin_id("site")
                    .viewer_protocol_policy("allow-all".into())
                    .build()
                    .unwrap(),
            )
            .build()
            .unwrap()
    }

    #[test]
    fn origin_paths_and_versions() {
        let site = Layout::new("site");
        assert_eq!(origin_path(&site, "42"), "/site/42");
        assert_eq!(version_of_origin_path(&site, "/site/42").as_deref(), Some("42"));
        assert_eq!(version_of_origin_path(&site, "/other/42"), None);
        assert_eq!(version_of_origin_path(&site, ""), None);
        assert_eq!(version_of_origin_path(&Layout::new(""), "/v1.2.3").as_deref(), Some("v1.2.3"));
        assert_eq!(active_of_origin_path(&site, "/site/42").as_deref(), Some("42"));
        assert_eq!(active_of_origin_path(&site, "/site/-"), None);
        assert_eq!(active_of_origin_path(&Layout::new(""), "/-"), None);
        for foreign in ["/web/7", "/somethingelse", "", "/site", "/site/", "/site/a/b"] {
            assert_eq!(active_of_origin_path(&site, foreign).as_deref(), Some(foreign), "{foreign:?}");
        }
    }

    #[test]
    fn the_default_behaviours_origin_is_flipped_unless_one_is_named() {
        let mut c = config();
        set_origin_path(&mut c, None, "/site/2").unwrap();
        let paths: Vec<_> = c.origins().unwrap().items().iter().map(|o| o.origin_path().unwrap().to_owned()).collect();
        assert_eq!(paths, ["/site/1", "/site/2"]);
        set_origin_path(&mut c, Some("logs"), "/site/3").unwrap();
        assert_eq!(c.origins().unwrap().items()[0].origin_path(), Some("/site/3"));
        assert!(set_origin_path(&mut c, Some("nope"), "/x").is_err());
    }

    /// A distribution whose ETag goes stale `stale` times before an update succeeds.
    struct Racy {
        stale: Mutex<usize>,
        updates: Mutex<Vec<(String, String)>>,
    }

    #[async_trait]
    impl DistributionApi for Racy {
        async fn get(&self) -> PointerResult<(DistributionConfig, String)> {
            Ok((config(), format!("E{}", *self.stale.lock().unwrap())))
        }

        async fn update(&self, config: DistributionConfig, etag: &str) -> PointerResult<()> {
            let path = config.origins().unwrap().items()[1].origin_path().unwrap().to_owned();
            self.updates.lock().unwrap().push((etag.to_owned(), path));
            let mut stale = self.stale.lock().unwrap();
            if *stale == 0 {
                return Ok(());
            }
            *stale -= 1;
            Err(PointerError::PreconditionFailed { what: CONFIG, attempts: 1 })
        }
    }

    #[tokio::test]
    async fn a_stale_etag_reads_the_config_again() {
        let api = Racy { stale: Mutex::new(2), updates: Mutex::new(Vec::new()) };
        flip_origin_path(&api, None, "/site/9").await.unwrap();
        let updates = api.updates.lock().unwrap().clone();
        assert_eq!(
            updates,
            [("E2".into(), "/site/9".into()), ("E1".into(), "/site/9".into()), ("E0".into(), "/site/9".into())]
        );

        let api = Racy { stale: Mutex::new(UPDATE_ATTEMPTS), updates: Mutex::new(Vec::new()) };
        let err = flip_origin_path(&api, None, "/site/9").await.unwrap_err();
        assert_eq!(err.to_string(), "the distribution config kept changing under this run (4 attempts); try again");
    }

    #[test]
    fn a_stale_etag_is_a_failed_precondition_and_other_failures_name_the_call() {
        let answer = |status, code| {
            crate::aws_error::service_answer(status, Some(code), "m", &[], UpdateDistributionError::generic)
        };
        let stale = update_error("E1", &answer(412, "PreconditionFailed"));
        assert!(matches!(stale, PointerError::PreconditionFailed { attempts: 1, .. }), "{stale}");
        let denied = update_error("E1", &answer(403, "AccessDenied"));
        assert!(matches!(&denied, PointerError::Aws(aws) if aws.call == "CloudFront UpdateDistribution"), "{denied}");
        let missing = set_origin_path(&mut config(), Some("nope"), "/x").unwrap_err();
        assert!(matches!(&missing, PointerError::NotFound { origin, .. } if origin == "nope"), "{missing}");
        assert_eq!(missing.to_string(), "no origin \"nope\" in the distribution");
    }
}
