//! `cutover doctor`: checks a real AWS setup before the first deploy and explains each problem in
//! one line with its fix. Every check runs, whatever the others find. It makes only calls the
//! template's `DeployPolicy` grants, and a call the credentials may not make is reported as that,
//! naming the action to allow, never as a finding about the resource.

use std::cmp::Ordering;

use aws_sdk_cloudfront::types::{CachePolicyConfig, DistributionConfig};
use aws_sdk_s3::error::ProvideErrorMetadata;
use serde::Serialize;

use crate::aws_error::AwsError;
use crate::backend::{AwsClients, Site};
use crate::edge_bundle::router_region;
use crate::inputs::{AwsBackend, AwsPointer, Backend, InputError, Plan, SiteUrl};
use crate::pointer::{NO_RELEASE, PointerError};
use crate::printable::printable;
use crate::promote::Active;
use crate::release::{self, Layout, RecordError};
use crate::routing::{EdgeNames, FETCH_DEST_HEADER, PIN_HEADER, PIN_QUERY, VERSION_HEADER};
use crate::store::StoreError;

/// The outcome of one check.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Check {
    pub name: &'static str,
    pub passed: bool,
    pub detail: String,
    /// What to do about a failure.
    pub fix: Option<String>,
}

fn pass(name: &'static str, detail: impl Into<String>) -> Check {
    Check { name, passed: true, detail: detail.into(), fix: None }
}

fn fail(name: &'static str, detail: impl Into<String>, fix: impl Into<String>) -> Check {
    Check { name, passed: false, detail: detail.into(), fix: Some(fix.into()) }
}

/// Where the DeployPolicy in infra/cutover.yml is, for fixes.
const POLICY: &str = "the DeployPolicy in infra/cutover.yml";

/// The region the checks' calls go to, as the report names it.
fn region_of(aws: &AwsClients) -> String {
    aws.ssm.config().region().map_or_else(|| "(none set)".to_owned(), ToString::to_string)
}

/// What the DeployPolicy grants `action` on, in the stack's terms: a call outside it is most often
/// an input that does not match the stack, not a missing grant.
fn granted_on(action: &str) -> &'static str {
    match action.split(' ').next().unwrap_or(action) {
        "s3:ListBucket" => "the stack's bucket, listing under `<Prefix>/` and the `_cutover/` folders",
        "s3:GetBucketPublicAccessBlock" => "the stack's bucket",
        a if a.starts_with("s3:") => "arn:aws:s3:::<BucketName>/<Prefix>/* of the stack",
        a if a.starts_with("ssm:") => {
            "the SSM parameter /cutover/<BucketName>/<Prefix>/active in us-east-1 (SSM style)"
        }
        "cloudfront:GetCachePolicy" => "the stack's cache policy",
        a if a.starts_with("cloudfront:") => "the stack's distribution",
        a if a.starts_with("lambda:") => "the stack's router version (origin-path style)",
        _ => "the stack's resources",
    }
}

/// A failed call as a check: an access error says to check first that the inputs match the stack
/// (the DeployPolicy grants `action` only on the stack's resources, named), then names the IAM
/// action to allow on `arn` and the region the call went to; any other error is the check's
/// finding, with `fix`.
fn call_failed(region: &str, name: &'static str, err: &AwsError, action: &str, arn: &str, fix: &str) -> Check {
    if err.is_access_denied() {
        fail(
            name,
            format!("access denied: the credentials may not call {action} ({err})"),
            format!(
                concat!(
                    crate::aws_error::match_the_stack!(),
                    ": {policy} grants {action} only on {granted}; if they do, allow {action} on {arn} in region {region}"
                ),
                policy = POLICY,
                action = action,
                granted = granted_on(action),
                arn = arn,
                region = region,
            ),
        )
    } else {
        fail(name, err.to_string(), fix)
    }
}

/// Which pointer style the distribution must serve.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Style {
    Ssm,
    OriginPath,
}

impl Style {
    /// How to make the pointer hold no release, the template's placeholder.
    fn to_placeholder(self) -> String {
        match self {
            Style::Ssm => format!("put {NO_RELEASE:?} in it"),
            Style::OriginPath => format!("pass LiveVersion={NO_RELEASE} to a stack update"),
        }
    }

    /// What keeps `version` live from now on, after the command that puts it back.
    fn keep_live(self, version: &str) -> String {
        match self {
            Style::Ssm => String::new(),
            Style::OriginPath => {
                format!("; pass LiveVersion={version} to every stack update (README, Hosting on AWS)")
            }
        }
    }

    /// The Lambda@Edge events the router must be attached to.
    pub fn router_events(self) -> &'static [&'static str] {
        match self {
            Style::Ssm => &["viewer-request", "viewer-response", "origin-response"],
            Style::OriginPath => &["viewer-request", "viewer-response", "origin-request", "origin-response"],
        }
    }
}

/// What doctor found, and where it looked.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Report {
    /// The region every call went to: a setup in another region looks like missing grants.
    pub region: String,
    pub checks: Vec<Check>,
}

/// Runs every check for the plan's bucket, pointer, distribution and site URL.
pub async fn doctor(plan: &Plan) -> Result<Report, InputError> {
    let Backend::Aws(site) = &plan.backend else {
        return Err(InputError::new("bucket", "doctor checks an AWS setup; set `bucket`"));
    };
    if plan.edge.secret.is_none() {
        crate::say!(
            "warning: no `override-secret`: anyone can send a link that pins visitors to any stored release; set one from the CI system's secret store and rebundle the router"
        );
    }
    let aws = &AwsClients::load(site.region.as_deref(), site.path_style).await;
    let bucket = &site.bucket;
    let mut checks = vec![bucket_reachable(aws, bucket, &plan.prefix).await, bucket_private(aws, bucket).await];
    let clients = AwsClients { s3: aws.s3.clone(), ssm: aws.ssm.clone(), cloudfront: aws.cloudfront.clone() };
    let live = &Site::on_aws(&plan.prefix, site, clients);
    let region = &region_of(aws);
    let (style, distribution) = match &site.pointer {
        AwsPointer::Ssm { parameter } => {
            checks.push(parameter_usable(aws, live, bucket, parameter).await);
            (Style::Ssm, plan.distribution_id.clone())
        }
        AwsPointer::CloudFront { distribution, .. } => {
            let reads = PointerReads {
                name: "live release",
                style: Style::OriginPath,
                subject: "the origin path".to_owned(),
                value: ("cloudfront:GetDistributionConfig", format!("distribution {distribution}")),
                history: ("s3:GetObject", format!("arn:aws:s3:::{bucket}/{}", live.layout.promotions_key())),
            };
            checks.push(live_release(live, region, bucket, &reads).await);
            (Style::OriginPath, Some(distribution.clone()))
        }
    };
    match distribution {
        None => checks.push(fail(
            "distribution",
            "no distribution to check",
            "set `distribution-id` (a cloudfront: pointer names it itself)",
        )),
        Some(id) => checks.extend(distribution_checks(aws, &id, bucket, style, &plan.edge).await),
    }
    if let Some(url) = &plan.site_url {
        // What the pointer holds now (the checks above say whether it can be read at all).
        let serving = live.pointer.read().await.ok().flatten();
        checks.push(site_answers(url, serving.as_deref(), plan).await);
    }
    let from = if site.region.is_some() { "`region`" } else { "the AWS configuration; set `region` to choose" };
    Ok(Report { region: format!("{} (from {from})", region_of(aws)), checks })
}

/// One key listed under the site's prefix: what the policy's ListBucket grants (HeadBucket would
/// need it without the prefix condition).
async fn bucket_reachable(aws: &AwsClients, bucket: &str, prefix: &str) -> Check {
    let layout = Layout::new(prefix);
    let under = if layout.prefix().is_empty() { String::new() } else { format!("{}/", layout.prefix()) };
    match aws.s3.list_objects_v2().bucket(bucket).prefix(&under).max_keys(1).send().await {
        Ok(_) => pass("bucket", format!("s3://{bucket}/{under} is reachable")),
        Err(e) => call_failed(
            &region_of(aws),
            "bucket",
            &AwsError::new("S3 ListObjectsV2", format!("s3://{bucket}/{under}"), &e),
            &format!("s3:ListBucket (s3:prefix {under}*)"),
            &format!("arn:aws:s3:::{bucket}"),
            "create it (infra/cutover.yml does) or correct `bucket` and `region`",
        ),
    }
}

async fn bucket_private(aws: &AwsClients, bucket: &str) -> Check {
    let not_private = || {
        fail(
            "bucket private",
            format!("s3://{bucket} does not block all public access"),
            "turn on all four Block Public Access settings; CloudFront reads through an Origin Access Control",
        )
    };
    match aws.s3.get_public_access_block().bucket(bucket).send().await {
        Ok(out) => {
            let blocked = out.public_access_block_configuration().is_some_and(|c| {
                [c.block_public_acls(), c.ignore_public_acls(), c.block_public_policy(), c.restrict_public_buckets()]
                    .iter()
                    .all(|flag| *flag == Some(true))
            });
            if blocked {
                pass("bucket private", format!("s3://{bucket} blocks all public access"))
            } else {
                not_private()
            }
        }
        Err(e) if e.code() == Some("NoSuchPublicAccessBlockConfiguration") => not_private(),
        Err(e) => call_failed(
            &region_of(aws),
            "bucket private",
            &AwsError::new("S3 GetPublicAccessBlock", format!("s3://{bucket}"), &e),
            "s3:GetBucketPublicAccessBlock",
            &format!("arn:aws:s3:::{bucket}"),
            "correct `bucket` and `region`",
        ),
    }
}

/// Readable by GetParameter; writable shown by a create-only PutParameter that must be refused
/// because the parameter exists (so nothing is written); then what it holds, as the live-release
/// check of the origin-path style reads it.
async fn parameter_usable(aws: &AwsClients, site: &Site, bucket: &str, parameter: &str) -> Check {
    let region = &region_of(aws);
    let value = match aws.ssm.get_parameter().name(parameter).send().await {
        Ok(out) => out.parameter().and_then(|p| p.value()).unwrap_or_default().to_owned(),
        Err(e) if e.as_service_error().is_some_and(|e| e.is_parameter_not_found()) => {
            // The template creates it, in us-east-1 only: missing is most often the wrong region.
            return fail(
                "parameter",
                format!("SSM parameter {parameter} does not exist in region {region}"),
                format!(
                    "check `region` first (infra/cutover.yml deploys only in us-east-1 and creates the parameter there), then `pointer`; only if it truly does not exist, create it holding {NO_RELEASE:?} (the stack does): the router reads it from the first request"
                ),
            );
        }
        Err(e) => {
            let err = AwsError::new("SSM GetParameter", parameter, &e);
            return call_failed(
                region,
                "parameter",
                &err,
                "ssm:GetParameter",
                parameter,
                "correct `pointer` and `region`",
            );
        }
    };
    let probe =
        aws.ssm.put_parameter().name(parameter).value(&value).overwrite(false).r#type("String".into()).send().await;
    match probe {
        Err(e) if !e.as_service_error().is_some_and(|e| e.is_parameter_already_exists()) => {
            let err = AwsError::new("SSM PutParameter", parameter, &e);
            call_failed(region, "parameter", &err, "ssm:PutParameter", parameter, "correct `pointer` and `region`")
        }
        _ => {
            let reads = PointerReads {
                name: "parameter",
                style: Style::Ssm,
                subject: format!("SSM parameter {parameter} is readable and writable; it"),
                value: ("ssm:GetParameter", parameter.to_owned()),
                history: ("ssm:GetParameterHistory", parameter.to_owned()),
            };
            live_release(site, region, bucket, &reads).await
        }
    }
}

async fn distribution_checks(aws: &AwsClients, id: &str, bucket: &str, style: Style, names: &EdgeNames) -> Vec<Check> {
    let (config, etag) = match aws.cloudfront.get_distribution_config().id(id).send().await {
        Ok(out) => (out.distribution_config().cloned(), out.e_tag().map(str::to_owned)),
        Err(e) => {
            let err = AwsError::new("CloudFront GetDistributionConfig", id, &e);
            let arn = format!("distribution {id}");
            return vec![call_failed(
                &region_of(aws),
                "distribution",
                &err,
                "cloudfront:GetDistributionConfig",
                &arn,
                "correct the distribution ID",
            )];
        }
    };
    let Some(config) = config else {
        return vec![fail("distribution", format!("distribution {id} has no config"), "recreate it")];
    };
    let mut checks = vec![serves_the_bucket(&config, id, bucket, style)];
    checks.push(router_attached(&config, style));
    if style == Style::OriginPath {
        checks.push(may_flip(aws, id, &config, etag.as_deref()).await);
    }
    let policy = match config.default_cache_behavior().and_then(|b| b.cache_policy_id()) {
        None => None,
        Some(policy_id) => match aws.cloudfront.get_cache_policy().id(policy_id).send().await {
            Ok(out) => out.cache_policy().and_then(|p| p.cache_policy_config()).cloned(),
            Err(e) => {
                let err = AwsError::new("CloudFront GetCachePolicy", policy_id, &e);
                let arn = format!("cache policy {policy_id}");
                let fix = "attach the cache policy from infra/cutover.yml";
                checks.push(call_failed(&region_of(aws), "cache policy", &err, "cloudfront:GetCachePolicy", &arn, fix));
                return checks;
            }
        },
    };
    checks.push(cache_policy_sane(policy.as_ref(), style, names));
    checks
}

/// The default behaviour's origin is `bucket` (its domain `<bucket>.s3.…`): a distribution of
/// another site would pass every other check.
fn serves_the_bucket(config: &DistributionConfig, id: &str, bucket: &str, style: Style) -> Check {
    let target = config.default_cache_behavior().map(|b| b.target_origin_id()).unwrap_or_default();
    let origins = config.origins().map(|o| o.items()).unwrap_or_default();
    let origin = origins.iter().find(|o| o.id() == target);
    let domain = origin.map(|o| o.domain_name()).unwrap_or_default();
    let origin_path = origin.and_then(|o| o.origin_path()).unwrap_or_default();
    if !domain.starts_with(&format!("{bucket}.s3.")) {
        fail(
            "distribution",
            format!("distribution {id} serves {:?}, not the bucket {bucket}", printable(domain)),
            "correct `bucket`, or the distribution ID (`pointer` or `distribution-id`): the stack's outputs name both",
        )
    } else if style == Style::Ssm && !origin_path.is_empty() {
        // The SSM router rewrites every URI to /<prefix>/<version>/..., which CloudFront puts
        // behind the origin path: every request would miss.
        fail(
            "distribution",
            format!(
                "distribution {id} serves s3://{bucket} under the origin path {:?}, in front of the router's /<prefix>/<version>/... paths: every request misses",
                printable(origin_path)
            ),
            "empty the origin's path (infra/cutover.yml's SSM style leaves it empty; a switch from the origin-path style must too)",
        )
    } else {
        pass("distribution", format!("distribution {id} serves s3://{bucket}"))
    }
}

/// What a flip needs besides what doctor can probe: AWS checks it only on a change.
const REPLICATION: &str = "a flip also needs lambda:GetFunction and lambda:EnableReplication* on the router's version, which AWS checks only on a change (the DeployPolicy grants both)";

/// An `If-Match` no distribution has: real AWS authorizes the update before it compares this, so
/// the probe is answered `PreconditionFailed` when allowed and `AccessDenied` when not.
const WRONG_ETAG: &str = "E0CUTOVERDOCTOR";

/// The origin-path style's flip may be made, probed without changing anything: an
/// UpdateDistribution carrying the config exactly as read, under an `If-Match` that cannot match
/// (an endpoint that ignores `If-Match`, as moto does, applies the config unchanged). The Lambda
/// grants such an update needs for its Lambda@Edge associations are named, not probed: AWS checks
/// them only on a change, and a Lambda client for one read-only call would be a fourth SDK crate.
async fn may_flip(aws: &AwsClients, id: &str, config: &DistributionConfig, etag: Option<&str>) -> Check {
    let region = &region_of(aws);
    let wrong = if etag == Some(WRONG_ETAG) { "E1CUTOVERDOCTOR" } else { WRONG_ETAG };
    let probe = aws.cloudfront.update_distribution().id(id).if_match(wrong).distribution_config(config.clone());
    match probe.send().await {
        Ok(_) => {}
        Err(e) if matches!(e.code(), Some("PreconditionFailed" | "InvalidIfMatchVersion")) => {}
        Err(e) => {
            let err = AwsError::new("CloudFront UpdateDistribution", id, &e);
            let check = call_failed(
                region,
                "flip",
                &err,
                "cloudfront:UpdateDistribution",
                &format!("distribution {id}"),
                "correct the distribution ID",
            );
            return Check { fix: check.fix.map(|fix| format!("{fix}; {REPLICATION}")), ..check };
        }
    }
    pass("flip", format!("the credentials may update distribution {id} (probed, nothing changed); {REPLICATION}"))
}

/// The check that reads what a pointer holds, and where its reads go (for access errors).
struct PointerReads {
    name: &'static str,
    style: Style,
    /// What the check's detail says holds the value.
    subject: String,
    /// The IAM action and resource of reading the value, and of reading the promotion history.
    value: (&'static str, String),
    history: (&'static str, String),
}

/// The pointer serves what the last promotion made live. Its value is tested as promote's guards
/// test it ([`Active::of`]), so doctor passes exactly the values promote takes; a value that is
/// no release of this site, or no release while the history says one was promoted (a stack update
/// that sent the placeholder, a parameter set by hand), fails with the command that puts the last
/// promoted release back, the one promote's guards let through.
async fn live_release(site: &Site, region: &str, bucket: &str, reads: &PointerReads) -> Check {
    let name = reads.name;
    let value = match site.pointer.read().await {
        Ok(value) => value,
        Err(e) => return pointer_failed(region, name, e, reads.value.0, &reads.value.1),
    };
    let history = match site.pointer.history().await {
        Ok(history) => history,
        Err(e) => return pointer_failed(region, name, e, reads.history.0, &reads.history.1),
    };
    let records = |e| record_failed(region, name, e, bucket, &site.layout);
    let live = match Active::of(site, value).await {
        Ok(live) => live,
        Err(e) => return records(e),
    };
    // The last promotion of a release of this site: one set by hand that names none is no
    // version to put back.
    let mut last = None;
    for promotion in history.iter().rev() {
        match Active::of(site, Some(promotion.version.clone())).await {
            Ok(Active::Known(version)) => {
                last = Some(version);
                break;
            }
            Ok(_) => {}
            Err(e) => return records(e),
        }
    }
    let subject = &reads.subject;
    let Some(version) = last else {
        return match live {
            Active::None => pass(
                name,
                format!("{subject} holds the placeholder {NO_RELEASE:?}: no release is live yet (no promotion yet)"),
            ),
            Active::Known(value) => pass(name, format!("{subject} serves version {value} (no promotion logged)")),
            Active::Foreign(value) => fail(
                name,
                format!(
                    "{subject} holds {:?}, which is not a release of this site: promote refuses it",
                    printable(&value)
                ),
                format!(
                    "set `take-over-pointer: true` for the first release, or {} (no release is live)",
                    reads.style.to_placeholder()
                ),
            ),
        };
    };
    // The command that puts it back is the one promote's guards let through.
    let (command, serves) = match &live {
        Active::Known(value) if *value == version => {
            return pass(name, format!("{subject} serves {version}, the last promotion"));
        }
        Active::Foreign(value) => (
            format!("`cutover promote {version}` with `take-over-pointer: true`"),
            format!("{:?}, no release of this site", printable(value)),
        ),
        Active::Known(value) if matches!(release::compare(site, &version, value).await, Ok(Ordering::Less)) => {
            (format!("`cutover rollback --to {version}`"), format!("version {value}"))
        }
        Active::Known(value) => (format!("`cutover promote {version}`"), format!("version {value}")),
        Active::None => (format!("`cutover promote {version}`"), "no release".to_owned()),
    };
    fail(
        name,
        format!("{subject} serves {serves}, but the last promotion made {version} live"),
        format!("{command} puts it back{}", reads.style.keep_live(&version)),
    )
}

/// What a failed read of the pointer's value or history tells the user.
const POINTER_FIX: &str = "correct `pointer`, `bucket` and `region`";

/// A failed pointer read as the check `name`: the AWS call's error goes through [`call_failed`],
/// so a refused call names its action like every other check.
fn pointer_failed(region: &str, name: &'static str, err: PointerError, action: &str, arn: &str) -> Check {
    match err {
        PointerError::Aws(aws) | PointerError::Reading { source: StoreError::Aws(aws), .. } => {
            call_failed(region, name, &aws, action, arn, POINTER_FIX)
        }
        other => fail(name, format!("{:#}", anyhow::Error::from(other)), POINTER_FIX),
    }
}

/// A failed read of a release record (is the pointer's value a release of this site?) as the
/// check `name`.
fn record_failed(region: &str, name: &'static str, err: RecordError, bucket: &str, layout: &Layout) -> Check {
    match err {
        RecordError::Store { source: StoreError::Aws(aws), .. } => {
            let arn = format!("arn:aws:s3:::{bucket}/{}*", layout.records_dir());
            call_failed(region, name, &aws, "s3:GetObject", &arn, POINTER_FIX)
        }
        other => fail(name, format!("{:#}", anyhow::Error::from(other)), POINTER_FIX),
    }
}

/// The router is attached to every event its pointer style needs.
pub fn router_attached(config: &DistributionConfig, style: Style) -> Check {
    let attached: Vec<&str> = config
        .default_cache_behavior()
        .and_then(|b| b.lambda_function_associations())
        .map(|a| a.items().iter().map(|i| i.event_type().as_str()).collect())
        .unwrap_or_default();
    let missing: Vec<&str> = style.router_events().iter().copied().filter(|e| !attached.contains(e)).collect();
    if missing.is_empty() {
        pass("router", format!("the router runs at {}", attached.join(", ")))
    } else {
        fail(
            "router",
            format!("the router is not attached at {}", missing.join(", ")),
            "attach a numbered version of the `cutover edge bundle` function to those events of the default behaviour",
        )
    }
}

/// Whether a cache key's cookies or query strings with `behavior` hold a name (`named`: the name is
/// in the policy's list, which `allExcept` leaves out and `whitelist` keeps).
fn in_key(behavior: &str, named: bool) -> bool {
    match behavior {
        "all" => true,
        "whitelist" => named,
        "allExcept" => !named,
        _ => false,
    }
}

/// The cache key fits the pointer style: with an origin path, the override must be in it; with
/// SSM, the router already puts the version in the URI, and all cookies would only split the cache.
pub fn cache_policy_sane(policy: Option<&CachePolicyConfig>, style: Style, names: &EdgeNames) -> Check {
    let Some(policy) = policy else {
        return fail(
            "cache policy",
            "the default behaviour has no readable cache policy",
            "attach the cache policy from infra/cutover.yml",
        );
    };
    let key = policy.parameters_in_cache_key_and_forwarded_to_origin();
    let cookies = key.and_then(|k| k.cookies_config());
    let queries = key.and_then(|k| k.query_strings_config());
    let cookie_behavior = cookies.map_or("none", |c| c.cookie_behavior().as_str());
    let query_behavior = queries.map_or("none", |q| q.query_string_behavior().as_str());
    let named_cookies: Vec<&str> =
        cookies.and_then(|c| c.cookies()).map(|n| n.items().iter().map(String::as_str).collect()).unwrap_or_default();
    let named_queries: Vec<&str> = queries
        .and_then(|q| q.query_strings())
        .map(|n| n.items().iter().map(String::as_str).collect())
        .unwrap_or_default();
    match style {
        Style::Ssm if matches!(cookie_behavior, "all" | "allExcept") => fail(
            "cache policy",
            "the cache key holds every cookie, which splits the cache per visitor",
            "use no cookies in the cache key: the router puts the version in the URI",
        ),
        Style::Ssm => pass("cache policy", "the cache key fits the SSM pointer"),
        Style::OriginPath => {
            let has_cookie = |name: &str| in_key(cookie_behavior, named_cookies.contains(&name));
            let has_query = |name: &str| in_key(query_behavior, named_queries.contains(&name));
            let headers = key.and_then(|k| k.headers_config());
            let has_header = |name: &str| {
                headers.is_some_and(|h| {
                    h.header_behavior().as_str() == "whitelist"
                        && h.headers().is_some_and(|n| n.items().iter().any(|i| i.eq_ignore_ascii_case(name)))
                })
            };
            let mut missing: Vec<String> = [&names.version_cookie, &names.override_cookie]
                .into_iter()
                .filter(|c| !has_cookie(c))
                .map(|c| format!("cookie {c}"))
                .collect();
            missing.extend(
                [names.query.as_str(), PIN_QUERY].into_iter().filter(|q| !has_query(q)).map(|q| format!("query {q}")),
            );
            missing.extend(
                [PIN_HEADER, FETCH_DEST_HEADER].into_iter().filter(|h| !has_header(h)).map(|h| format!("header {h}")),
            );
            if missing.is_empty() {
                pass("cache policy", "the override cookies and query and the framework pins are in the cache key")
            } else {
                fail(
                    "cache policy",
                    format!(
                        "the cache key lacks {}, so previews or framework-pinned requests would be served from the live version's cache",
                        missing.join(", ")
                    ),
                    format!(
                        "attach the origin-path cache policy infra/cutover.yml creates, with the stack parameters VersionCookie={} OverrideCookie={} OverrideQuery={} (`cutover edge bundle` prints them); it also keys on the query {PIN_QUERY} and the headers {PIN_HEADER} and {FETCH_DEST_HEADER}",
                        names.version_cookie, names.override_cookie, names.query
                    ),
                )
            }
        }
    }
}

/// The site URL answers through the router, and serves the version the pointer holds (`live`).
async fn site_answers(url: &SiteUrl, live: Option<&str>, plan: &Plan) -> Check {
    let client = match reqwest::Client::builder().timeout(std::time::Duration::from_secs(15)).build() {
        Ok(client) => client,
        Err(e) => return fail("site", format!("no HTTP client: {e}"), "report this"),
    };
    // Where a router bundled with this step's inputs reads the active version, and the fixes
    // for a router that cannot read it and for one that serves another version, per style.
    let (unreadable, stale) = match &plan.backend {
        Backend::Aws(site @ AwsBackend { pointer: AwsPointer::Ssm { parameter }, .. }) => {
            let reads = format!("SSM parameter {parameter} in region {}", router_region(site));
            (
                format!(
                    "this step's inputs put the active version in {reads}: bundle the router (`cutover edge bundle`) with the same `region` and `pointer`, and let the router's role read it"
                ),
                format!("the router reads another parameter or region than {reads}: bundle it with this step's inputs"),
            )
        }
        _ => (
            "in the origin-path style the router reads no parameter (the active version is the origin path CloudFront sends it), so this 503 comes from a router bundled for the SSM style: bundle it with `pointer: cloudfront:<DistributionId>` (`cutover edge bundle`) and attach it as the distribution's origin-request function".to_owned(),
            "CloudFront still serves cached answers of the old origin path: create an invalidation of `/*` (re-running `cutover promote <live version>` sends one when the flip's own failed)".to_owned(),
        ),
    };
    match url.get(&client, "").send().await {
        Ok(response) if response.status().as_u16() == 503 && response.headers().contains_key("retry-after") => fail(
            "site",
            format!("{url} answers 503 with Retry-After: the router could not read the active version"),
            unreadable,
        ),
        Ok(response) if response.headers().contains_key(VERSION_HEADER) => {
            let served = response.headers().get(VERSION_HEADER).and_then(|v| v.to_str().ok()).unwrap_or_default();
            match live {
                Some(live) if served != live => fail(
                    "site",
                    format!("{url} serves version {}, but the live version is {}", printable(served), printable(live)),
                    format!(
                        "just after a promotion, CloudFront or the router may still cache the old answer (the router for `edge-cache`, {}s; an origin-path flip until its invalidation ends): run doctor again; if it persists, {stale}",
                        plan.edge_cache.as_secs()
                    ),
                ),
                _ => pass("site", format!("{url} answers {} through the router", response.status().as_u16())),
            }
        }
        Ok(response) => fail(
            "site",
            format!("{url} answers {} without {VERSION_HEADER}", response.status().as_u16()),
            "the router is not in front of this URL: check `site-url` and the distribution's behaviours",
        ),
        Err(e) => fail("site", format!("{url} does not answer: {e}"), "check `site-url` and DNS"),
    }
}

impl Report {
    /// The report for people: the region, one line per check, and the fix under each failure.
    pub fn render(&self) -> String {
        let mut out = format!("region: {}\n", self.region);
        for check in &self.checks {
            let mark = if check.passed { "ok  " } else { "FAIL" };
            out.push_str(&format!("{mark} {:<15} {}\n", check.name, check.detail));
            if let Some(fix) = &check.fix {
                out.push_str(&format!("     {:<15} fix: {fix}\n", ""));
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_sdk_cloudfront::types::{
        CachePolicyCookieBehavior, CachePolicyCookiesConfig, CachePolicyHeaderBehavior, CachePolicyHeadersConfig,
        CachePolicyQueryStringBehavior, CachePolicyQueryStringsConfig, CookieNames, DefaultCacheBehavior, EventType,
        Headers, LambdaFunctionAssociation, LambdaFunctionAssociations, Origin, Origins,
        ParametersInCacheKeyAndForwardedToOrigin, QueryStringNames,
    };

    fn distribution(events: &[&str]) -> DistributionConfig {
        let mut associations = LambdaFunctionAssociations::builder().quantity(i32::try_from(events.len()).unwrap());
        for event in events {
            associations = associations.items(
                LambdaFunctionAssociation::builder()
                    .lambda_function_arn("arn:aws:lambda:us-east-1:1:function:router:3")
                    .event_type(EventType::from(*event))
                    .build()
                    .unwrap(),
            );
        }
        DistributionConfig::builder()
            .caller_reference("x")
            .comment("")
            .enabled(true)
            .default_cache_behavior(
                DefaultCacheBehavior::builder()
                    .target_origin_id("site")
                    .viewer_protocol_policy("redirect-to-https".into())
                    .lambda_function_associations(associations.build().unwrap())
                    .build()
                    .unwrap(),
            )
            .build()
            .unwrap()
    }

    fn policy(
        cookies: CachePolicyCookieBehavior,
        cookie_names: &[&str],
        query: CachePolicyQueryStringBehavior,
        queries: &[&str],
        headers: &[&str],
    ) -> CachePolicyConfig {
        let mut cookie_config = CachePolicyCookiesConfig::builder().cookie_behavior(cookies);
        if !cookie_names.is_empty() {
            let mut names = CookieNames::builder().quantity(i32::try_from(cookie_names.len()).unwrap());
            for name in cookie_names {
                names = names.items(*name);
            }
            cookie_config = cookie_config.cookies(names.build().unwrap());
        }
        let mut query_config = CachePolicyQueryStringsConfig::builder().query_string_behavior(query);
        if !queries.is_empty() {
            let mut names = QueryStringNames::builder().quantity(i32::try_from(queries.len()).unwrap());
            for name in queries {
                names = names.items(*name);
            }
            query_config = query_config.query_strings(names.build().unwrap());
        }
        let mut headers_config = CachePolicyHeadersConfig::builder().header_behavior(CachePolicyHeaderBehavior::None);
        if !headers.is_empty() {
            let mut names = Headers::builder().quantity(i32::try_from(headers.len()).unwrap());
            for name in headers {
                names = names.items(*name);
            }
            headers_config =
                headers_config.header_behavior(CachePolicyHeaderBehavior::Whitelist).headers(names.build().unwrap());
        }
        let key = ParametersInCacheKeyAndForwardedToOrigin::builder()
            .enable_accept_encoding_gzip(true)
            .headers_config(headers_config.build().unwrap())
            .cookies_config(cookie_config.build().unwrap())
            .query_strings_config(query_config.build().unwrap())
            .build()
            .unwrap();
        CachePolicyConfig::builder()
            .name("p")
            .min_ttl(0)
            .parameters_in_cache_key_and_forwarded_to_origin(key)
            .build()
            .unwrap()
    }

    #[test]
    fn the_router_must_run_at_every_event_of_its_style() {
        let ssm = ["viewer-request", "viewer-response", "origin-response"];
        assert!(router_attached(&distribution(&ssm), Style::Ssm).passed);
        let no_404_status = router_attached(&distribution(&ssm[..2]), Style::Ssm);
        assert!(!no_404_status.passed && no_404_status.detail.contains("origin-response"), "{no_404_status:?}");
        let missing = router_attached(&distribution(&["viewer-request"]), Style::Ssm);
        assert!(!missing.passed && missing.detail.contains("viewer-response"), "{missing:?}");
        let origin = router_attached(&distribution(&["viewer-request", "viewer-response"]), Style::OriginPath);
        assert!(!origin.passed && origin.detail.contains("origin-request, origin-response"), "{origin:?}");
        assert!(!router_attached(&distribution(&[]), Style::Ssm).passed);
    }

    #[test]
    fn the_cache_key_must_fit_the_style() {
        use CachePolicyCookieBehavior as C;
        use CachePolicyQueryStringBehavior as Q;
        let names = EdgeNames::default();
        let none = policy(C::None, &[], Q::None, &[], &[]);
        assert!(cache_policy_sane(Some(&none), Style::Ssm, &names).passed);
        assert!(!cache_policy_sane(Some(&none), Style::OriginPath, &names).passed);
        assert!(!cache_policy_sane(Some(&policy(C::All, &[], Q::None, &[], &[])), Style::Ssm, &names).passed);
        let cookies = ["Build-Number", "Override"];
        let pins = ["X-Deployment-Id", "sec-fetch-dest"];
        let fit = policy(C::Whitelist, &cookies, Q::Whitelist, &["override_build_number", "dpl"], &pins);
        assert!(cache_policy_sane(Some(&fit), Style::OriginPath, &names).passed);
        let half = policy(C::Whitelist, &["Build-Number"], Q::Whitelist, &["override_build_number", "dpl"], &pins);
        let check = cache_policy_sane(Some(&half), Style::OriginPath, &names);
        assert!(!check.passed && check.detail.contains("cookie Override"), "{check:?}");
        // The framework pins are keys too: a policy with only the override names misses them.
        let unpinned = policy(C::Whitelist, &cookies, Q::Whitelist, &["override_build_number"], &[]);
        let check = cache_policy_sane(Some(&unpinned), Style::OriginPath, &names);
        assert!(
            !check.passed && check.detail.contains("query dpl, header x-deployment-id, header sec-fetch-dest"),
            "{check:?}"
        );
        let fix = check.fix.unwrap();
        assert!(fix.contains("OverrideQuery=override_build_number") && !fix.contains("whitelist"), "{fix}");
        assert!(!cache_policy_sane(None, Style::Ssm, &names).passed);
        // `allExcept` holds every name it does not list.
        let all_but_other = policy(C::AllExcept, &["zzz"], Q::AllExcept, &["zzz"], &pins);
        let check = cache_policy_sane(Some(&all_but_other), Style::OriginPath, &names);
        assert!(check.passed, "{check:?}");
        let all_but_pin = policy(C::AllExcept, &["zzz"], Q::AllExcept, &["dpl"], &pins);
        let check = cache_policy_sane(Some(&all_but_pin), Style::OriginPath, &names);
        assert!(!check.passed && check.detail.contains("query dpl") && !check.detail.contains("cookie"), "{check:?}");
        assert!(
            !cache_policy_sane(Some(&all_but_other), Style::Ssm, &names).passed,
            "every cookie but one splits the cache"
        );
    }

    #[test]
    fn the_ssm_style_needs_an_origin_without_a_path() {
        let with_path = |path: &str| {
            let behavior = distribution(&["viewer-request"]).default_cache_behavior().unwrap().clone();
            let origin = Origin::builder()
                .id("site")
                .domain_name("my-site-bucket.s3.us-east-1.amazonaws.com")
                .origin_path(path)
                .build()
                .unwrap();
            DistributionConfig::builder()
                .caller_reference("x")
                .comment("")
                .enabled(true)
                .default_cache_behavior(behavior)
                .origins(Origins::builder().quantity(1).items(origin).build().unwrap())
                .build()
                .unwrap()
        };
        assert!(serves_the_bucket(&with_path(""), "E1", "my-site-bucket", Style::Ssm).passed);
        let check = serves_the_bucket(&with_path("/site/1"), "E1", "my-site-bucket", Style::Ssm);
        assert!(!check.passed && check.detail.contains("\"/site/1\""), "{check:?}");
        assert!(serves_the_bucket(&with_path("/site/1"), "E1", "my-site-bucket", Style::OriginPath).passed);
        assert!(!serves_the_bucket(&with_path(""), "E1", "other-bucket", Style::Ssm).passed);
    }

    #[test]
    fn a_refused_call_is_an_access_error_naming_the_action_and_nothing_else_is() {
        let err = |code: Option<&str>, status| AwsError {
            call: "S3 GetPublicAccessBlock".into(),
            resource: "s3://b".into(),
            code: code.map(str::to_owned),
            status: Some(status),
            problem: String::new(),
            hint: None,
        };
        for refused in [err(Some("AccessDenied"), 403), err(Some("AccessDeniedException"), 400), err(None, 403)] {
            let check = call_failed(
                "us-east-1",
                "bucket private",
                &refused,
                "s3:GetBucketPublicAccessBlock",
                "arn:aws:s3:::b",
                "x",
            );
            assert!(
                check.detail.starts_with("access denied: the credentials may not call s3:GetBucketPublicAccessBlock")
            );
            assert_eq!(
                check.fix.as_deref(),
                Some(
                    "check first that `bucket`, `prefix`, `region` (us-east-1) and `pointer` (unset in the template's SSM style, `cloudfront:<DistributionId>` in its origin-path style) match the stack: the DeployPolicy in infra/cutover.yml grants s3:GetBucketPublicAccessBlock only on the stack's bucket; if they do, allow s3:GetBucketPublicAccessBlock on arn:aws:s3:::b in region us-east-1"
                )
            );
        }
        for other in [err(Some("NoSuchBucket"), 404), err(Some("SignatureDoesNotMatch"), 403)] {
            let check = call_failed(
                "us-east-1",
                "bucket private",
                &other,
                "s3:GetBucketPublicAccessBlock",
                "arn:aws:s3:::b",
                "fix it",
            );
            assert!(!check.passed && !check.detail.contains("access denied"), "{check:?}");
            assert_eq!(check.fix.as_deref(), Some("fix it"));
        }
    }

    #[test]
    fn the_report_gives_each_failure_its_fix() {
        let checks = vec![pass("bucket", "s3://b is reachable"), fail("router", "not attached", "attach it")];
        let text = Report { region: "eu-west-1 (from `region`)".into(), checks }.render();
        assert_eq!(
            text,
            "region: eu-west-1 (from `region`)\nok   bucket          s3://b is reachable\nFAIL router          not attached\n                     fix: attach it\n"
        );
    }
}
