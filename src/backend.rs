//! Connects a plan to its store and pointer: the local directory, or S3 and SSM through the AWS chain.

use std::sync::Arc;

use aws_config::retry::RetryConfig;
use aws_sdk_s3::config::{RequestChecksumCalculation, ResponseChecksumValidation};

use crate::inputs::{AwsBackend, AwsPointer, Backend, Plan};
use crate::pointer::alias::{Aliases, SsmAliases, StoreAliases};
use crate::pointer::{Pointer, cloudfront::CloudFrontPointer, file::FilePointer, ssm::SsmPointer};
use crate::release::Layout;
use crate::store::{Store, local::LocalStore, s3::S3Store};

/// Attempts per AWS call: S3 answers `503 SlowDown` under load, and a release should ride it out.
const AWS_MAX_ATTEMPTS: u32 = 6;

/// One site: where its releases live, where its active version lives, and its key layout.
#[derive(Clone)]
pub struct Site {
    pub store: Arc<dyn Store>,
    pub pointer: Arc<dyn Pointer>,
    pub layout: Layout,
    /// Where each pull request's alias (`pr-<n>`, its newest preview) lives, beside the pointer.
    pub aliases: Arc<dyn Aliases>,
}

/// Record reads take a site as its store and its layout (`release::read_record`, `all_records`).
impl AsRef<dyn Store> for Site {
    fn as_ref(&self) -> &(dyn Store + 'static) {
        self.store.as_ref()
    }
}

impl AsRef<Layout> for Site {
    fn as_ref(&self) -> &Layout {
        &self.layout
    }
}

/// The AWS clients a plan needs, from the standard AWS chain (env, web identity, profile).
pub struct AwsClients {
    pub s3: aws_sdk_s3::Client,
    pub ssm: aws_sdk_ssm::Client,
    pub cloudfront: aws_sdk_cloudfront::Client,
}

impl AwsClients {
    /// Clients from the environment's AWS configuration, with `region` if given.
    pub async fn load(region: Option<&str>, path_style: bool) -> Self {
        let mut loader = aws_config::defaults(aws_config::BehaviorVersion::latest())
            .retry_config(RetryConfig::standard().with_max_attempts(AWS_MAX_ATTEMPTS));
        if let Some(region) = region {
            loader = loader.region(aws_config::Region::new(region.to_owned()));
        }
        let shared = loader.load().await;
        let s3 = aws_sdk_s3::config::Builder::from(&shared)
            .force_path_style(path_style)
            .request_checksum_calculation(RequestChecksumCalculation::WhenRequired)
            .response_checksum_validation(ResponseChecksumValidation::WhenRequired)
            .build();
        Self {
            s3: aws_sdk_s3::Client::from_conf(s3),
            ssm: aws_sdk_ssm::Client::new(&shared),
            cloudfront: aws_sdk_cloudfront::Client::new(&shared),
        }
    }
}

impl Site {
    /// The site at `prefix` in `site`'s bucket, through the given clients.
    pub fn on_aws(prefix: &str, site: &AwsBackend, aws: AwsClients) -> Site {
        let layout = Layout::new(prefix);
        let store: Arc<dyn Store> = Arc::new(S3Store::new(aws.s3, &site.bucket));
        let aliases: Arc<dyn Aliases> = match &site.pointer {
            AwsPointer::Ssm { parameter } => Arc::new(SsmAliases::new(aws.ssm.clone(), parameter)),
            AwsPointer::CloudFront { .. } => Arc::new(StoreAliases::new(store.clone(), layout.clone())),
        };
        let pointer: Arc<dyn Pointer> = match &site.pointer {
            AwsPointer::Ssm { parameter } => Arc::new(SsmPointer::new(aws.ssm, parameter)),
            AwsPointer::CloudFront { distribution, origin, invalidation } => Arc::new(CloudFrontPointer::new(
                aws.cloudfront,
                distribution,
                origin.as_deref(),
                layout.clone(),
                store.clone(),
                invalidation.clone(),
            )),
        };
        Site { store, pointer, layout, aliases }
    }

    pub async fn connect(plan: &Plan) -> Site {
        let layout = Layout::new(&plan.prefix);
        match &plan.backend {
            Backend::Local { dir } => {
                let store: Arc<dyn Store> = Arc::new(LocalStore::new(dir));
                let aliases = Arc::new(StoreAliases::new(store.clone(), layout.clone()));
                Site { store, pointer: Arc::new(FilePointer::new(dir, &plan.prefix)), layout, aliases }
            }
            Backend::Aws(site) => {
                Site::on_aws(&plan.prefix, site, AwsClients::load(site.region.as_deref(), site.path_style).await)
            }
        }
    }
}
