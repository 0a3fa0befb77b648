//! The alias `pr-<n>`: which preview release a pull request's stable link shows. It is kept beside
//! the active version, where the edge already reads: an SSM pointer's sibling parameter
//! (`<parameter>-pr-<n>`), else an object in the store (`<prefix>/_cutover/aliases/pr-<n>.json`,
//! for the file pointer and CloudFront origin paths).

use std::sync::Arc;

use async_trait::async_trait;
use aws_sdk_ssm::Client;
use aws_sdk_ssm::types::ParameterType;
use bytes::Bytes;

use super::{PointerError, PointerResult};
use crate::aws_error::AwsError;
use crate::pull_request::PullRequest;
use crate::release::Layout;
use crate::store::{Condition, Store, json_meta};

/// Where the aliases of a site's pull requests live.
#[async_trait]
pub trait Aliases: Send + Sync {
    /// The preview the alias names; `None` when the pull request has none.
    async fn read(&self, pr: PullRequest) -> PointerResult<Option<String>>;
    /// Points the alias at `version`.
    async fn write(&self, pr: PullRequest, version: &str) -> PointerResult<()>;
    /// Removes the alias; a missing one is not an error.
    async fn delete(&self, pr: PullRequest) -> PointerResult<()>;
}

/// The sibling parameter of an SSM pointer: `<parameter>-pr-<n>`, so one IAM grant on
/// `<parameter>*` covers the router's reads.
pub struct SsmAliases {
    client: Client,
    parameter: String,
}

impl SsmAliases {
    pub fn new(client: Client, parameter: &str) -> Self {
        Self { client, parameter: parameter.to_owned() }
    }

    fn name(&self, pr: PullRequest) -> String {
        sibling(&self.parameter, pr)
    }
}

/// The name of the alias parameter beside the pointer `parameter`.
pub fn sibling(parameter: &str, pr: PullRequest) -> String {
    format!("{parameter}-{}", pr.alias())
}

#[async_trait]
impl Aliases for SsmAliases {
    async fn read(&self, pr: PullRequest) -> PointerResult<Option<String>> {
        let name = self.name(pr);
        match self.client.get_parameter().name(&name).send().await {
            Ok(out) => Ok(out.parameter().and_then(|p| p.value()).map(str::to_owned)),
            Err(e) if e.as_service_error().is_some_and(|e| e.is_parameter_not_found()) => Ok(None),
            Err(e) => Err(AwsError::new("SSM GetParameter", &name, &e).into()),
        }
    }

    async fn write(&self, pr: PullRequest, version: &str) -> PointerResult<()> {
        let name = self.name(pr);
        self.client
            .put_parameter()
            .name(&name)
            .value(version)
            .r#type(ParameterType::String)
            .overwrite(true)
            .description(format!("cutover: the newest preview of pull request {pr}"))
            .send()
            .await
            .map_err(|e| AwsError::new("SSM PutParameter", &name, &e))?;
        Ok(())
    }

    async fn delete(&self, pr: PullRequest) -> PointerResult<()> {
        let name = self.name(pr);
        match self.client.delete_parameter().name(&name).send().await {
            Ok(_) => Ok(()),
            Err(e) if e.as_service_error().is_some_and(|e| e.is_parameter_not_found()) => Ok(()),
            Err(e) => Err(AwsError::new("SSM DeleteParameter", &name, &e).into()),
        }
    }
}

/// Aliases as objects under the site's `_cutover/aliases/`.
pub struct StoreAliases {
    store: Arc<dyn Store>,
    layout: Layout,
}

#[derive(serde::Serialize, serde::Deserialize)]
struct AliasObject {
    version: String,
}

impl StoreAliases {
    pub fn new(store: Arc<dyn Store>, layout: Layout) -> Self {
        Self { store, layout }
    }
}

/// `<prefix>/_cutover/aliases/pr-<n>.json`, the object the router reads in origin-path mode.
pub fn key(layout: &Layout, pr: PullRequest) -> String {
    format!("{}aliases/{}.json", layout.cutover_dir(), pr.alias())
}

#[async_trait]
impl Aliases for StoreAliases {
    async fn read(&self, pr: PullRequest) -> PointerResult<Option<String>> {
        let key = key(&self.layout, pr);
        let Some(fetched) =
            self.store.get(&key).await.map_err(|source| PointerError::Reading { key: key.clone(), source })?
        else {
            return Ok(None);
        };
        let alias: AliasObject = serde_json::from_slice(&fetched.body)
            .map_err(|source| PointerError::Damaged { what: format!("alias {key}"), source })?;
        Ok(Some(alias.version))
    }

    async fn write(&self, pr: PullRequest, version: &str) -> PointerResult<()> {
        let body = serde_json::to_vec(&AliasObject { version: version.to_owned() }).expect("an alias serialises");
        self.store.put(&key(&self.layout, pr), Bytes::from(body), &json_meta(), Condition::Always).await?;
        Ok(())
    }

    async fn delete(&self, pr: PullRequest) -> PointerResult<()> {
        self.store.delete(&[key(&self.layout, pr)]).await?;
        Ok(())
    }
}
