//! `cutover doctor`: checks a real AWS setup before the first deploy and explains each problem in
//! one line with its fix. Every check runs, whatever the others find.

use aws_sdk_cloudfront::types::{CachePolicyConfig, DistributionConfig};
use serde::Serialize;

use crate::aws_error::AwsError;
use crate::backend::AwsClients;
use crate::inputs::{AwsPointer, Backend, InputError, Plan, SiteUrl};
use crate::routing::{EdgeNames, VERSION_HEADER};

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

/// Which pointer style the distribution must serve.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Style {
    Ssm,
    OriginPath,
}

impl Style {
    /// The Lambda@Edge events the router must be attached to.
    pub fn router_events(self) -> &'static [&'static str] {
        match self {
            Style::Ssm => &["viewer-request", "viewer-response", "origin-response"],
            Style::OriginPath => &["viewer-request", "viewer-response", "origin-request", "origin-response"],
        }
    }
}

/// Runs every check for the plan's bucket, pointer, distribution and site URL.
pub async fn doctor(plan: &Plan) -> Result<Vec<Check>, InputError> {
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
    let mut checks = vec![bucket_reachable(aws, bucket).await, bucket_private(aws, bucket).await];
    let (style, distribution) = match &site.pointer {
        AwsPointer::Ssm { parameter } => {
            checks.push(parameter_usable(aws, parameter).await);
            (Style::Ssm, plan.distribution_id.clone())
        }
        AwsPointer::CloudFront { distribution, .. } => (Style::OriginPath, Some(distribution.clone())),
    };
    match distribution {
        None => checks.push(fail(
            "distribution",
            "no distribution to check",
            "set `distribution-id` (a cloudfront: pointer names it itself)",
        )),
        Some(id) => checks.extend(distribution_checks(aws, &id, style, &plan.edge).await),
    }
    if let Some(url) = &plan.site_url {
        checks.push(site_answers(url).await);
    }
    Ok(checks)
}

async fn bucket_reachable(aws: &AwsClients, bucket: &str) -> Check {
    match aws.s3.head_bucket().bucket(bucket).send().await {
        Ok(_) => pass("bucket", format!("s3://{bucket} is reachable")),
        Err(e) => fail(
            "bucket",
            AwsError::new("S3 HeadBucket", format!("s3://{bucket}"), &e).to_string(),
            "create it (infra/cutover.yml does) or correct `bucket` and the credentials' region",
        ),
    }
}

async fn bucket_private(aws: &AwsClients, bucket: &str) -> Check {
    let blocked = match aws.s3.get_public_access_block().bucket(bucket).send().await {
        Ok(out) => out.public_access_block_configuration().is_some_and(|c| {
            [c.block_public_acls(), c.ignore_public_acls(), c.block_public_policy(), c.restrict_public_buckets()]
                .iter()
                .all(|flag| *flag == Some(true))
        }),
        Err(_) => false,
    };
    if blocked {
        pass("bucket private", format!("s3://{bucket} blocks all public access"))
    } else {
        fail(
            "bucket private",
            format!("s3://{bucket} does not block all public access"),
            "turn on all four Block Public Access settings; CloudFront reads through an Origin Access Control",
        )
    }
}

/// Readable by GetParameter; writable shown by a create-only PutParameter that must be refused
/// because the parameter exists (so nothing is written).
async fn parameter_usable(aws: &AwsClients, parameter: &str) -> Check {
    let value = match aws.ssm.get_parameter().name(parameter).send().await {
        Ok(out) => out.parameter().and_then(|p| p.value()).unwrap_or_default().to_owned(),
        Err(e) if e.as_service_error().is_some_and(|e| e.is_parameter_not_found()) => {
            return fail(
                "parameter",
                format!("SSM parameter {parameter} does not exist"),
                "create it (infra/cutover.yml does): the router reads it from the first request",
            );
        }
        Err(e) => {
            return fail(
                "parameter",
                AwsError::new("SSM GetParameter", parameter, &e).to_string(),
                "allow ssm:GetParameter on it (the DeployPolicy in infra/cutover.yml does)",
            );
        }
    };
    let probe =
        aws.ssm.put_parameter().name(parameter).value(&value).overwrite(false).r#type("String".into()).send().await;
    match probe {
        Err(e) if e.as_service_error().is_some_and(|e| e.is_parameter_already_exists()) => {
            pass("parameter", format!("SSM parameter {parameter} is readable and writable"))
        }
        Ok(_) => pass("parameter", format!("SSM parameter {parameter} is readable and writable")),
        Err(e) => fail(
            "parameter",
            AwsError::new("SSM PutParameter", parameter, &e).to_string(),
            "allow ssm:PutParameter and ssm:GetParameterHistory on it (the DeployPolicy in infra/cutover.yml does)",
        ),
    }
}

async fn distribution_checks(aws: &AwsClients, id: &str, style: Style, names: &EdgeNames) -> Vec<Check> {
    let config = match aws.cloudfront.get_distribution_config().id(id).send().await {
        Ok(out) => out.distribution_config().cloned(),
        Err(e) => {
            return vec![fail(
                "distribution",
                AwsError::new("CloudFront GetDistributionConfig", id, &e).to_string(),
                "correct the distribution ID, or allow cloudfront:GetDistributionConfig",
            )];
        }
    };
    let Some(config) = config else {
        return vec![fail("distribution", format!("distribution {id} has no config"), "recreate it")];
    };
    let mut checks = vec![pass("distribution", format!("distribution {id} found"))];
    checks.push(router_attached(&config, style));
    let policy = match config.default_cache_behavior().and_then(|b| b.cache_policy_id()) {
        None => None,
        Some(policy_id) => aws
            .cloudfront
            .get_cache_policy()
            .id(policy_id)
            .send()
            .await
            .ok()
            .and_then(|out| out.cache_policy().and_then(|p| p.cache_policy_config()).cloned()),
    };
    checks.push(cache_policy_sane(policy.as_ref(), style, names));
    checks
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
        Style::Ssm if cookie_behavior == "all" => fail(
            "cache policy",
            "the cache key holds every cookie, which splits the cache per visitor",
            "use no cookies in the cache key: the router puts the version in the URI",
        ),
        Style::Ssm => pass("cache policy", "the cache key fits the SSM pointer"),
        Style::OriginPath => {
            let has_cookie = |name: &str| {
                cookie_behavior == "all" || (cookie_behavior == "whitelist" && named_cookies.contains(&name))
            };
            let has_query = query_behavior == "all"
                || (query_behavior == "whitelist" && named_queries.contains(&names.query.as_str()));
            if has_cookie(&names.version_cookie) && has_cookie(&names.override_cookie) && has_query {
                pass("cache policy", "the override cookies and query are in the cache key")
            } else {
                fail(
                    "cache policy",
                    "the override cookies or query are missing from the cache key, so previews would be served from the live version's cache",
                    format!(
                        "whitelist the cookies {} and {} and the query string {} in the cache policy",
                        names.version_cookie, names.override_cookie, names.query
                    ),
                )
            }
        }
    }
}

async fn site_answers(url: &SiteUrl) -> Check {
    let client = match reqwest::Client::builder().timeout(std::time::Duration::from_secs(15)).build() {
        Ok(client) => client,
        Err(e) => return fail("site", format!("no HTTP client: {e}"), "report this"),
    };
    match url.get(&client, "").send().await {
        Ok(response) if response.headers().contains_key(VERSION_HEADER) => {
            pass("site", format!("{url} answers {} through the router", response.status().as_u16()))
        }
        Ok(response) => fail(
            "site",
            format!("{url} answers {} without {VERSION_HEADER}", response.status().as_u16()),
            "the router is not in front of this URL: check `site-url` and the distribution's behaviours",
        ),
        Err(e) => fail("site", format!("{url} does not answer: {e}"), "check `site-url` and DNS"),
    }
}

/// The report for people: one line per check, and the fix under each failure.
pub fn render(checks: &[Check]) -> String {
    let mut out = String::new();
    for check in checks {
        let mark = if check.passed { "ok  " } else { "FAIL" };
        out.push_str(&format!("{mark} {:<15} {}\n", check.name, check.detail));
        if let Some(fix) = &check.fix {
            out.push_str(&format!("     {:<15} fix: {fix}\n", ""));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_sdk_cloudfront::types::{
        CachePolicyCookieBehavior, CachePolicyCookiesConfig, CachePolicyHeaderBehavior, CachePolicyHeadersConfig,
        CachePolicyQueryStringBehavior, CachePolicyQueryStringsConfig, CookieNames, DefaultCacheBehavior, EventType,
        LambdaFunctionAssociation, LambdaFunctionAssociations, ParametersInCacheKeyAndForwardedToOrigin,
        QueryStringNames,
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
        let key = ParametersInCacheKeyAndForwardedToOrigin::builder()
            .enable_accept_encoding_gzip(true)
            .headers_config(
                CachePolicyHeadersConfig::builder().header_behavior(CachePolicyHeaderBehavior::None).build().unwrap(),
            )
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
        let none = policy(C::None, &[], Q::None, &[]);
        assert!(cache_policy_sane(Some(&none), Style::Ssm, &names).passed);
        assert!(!cache_policy_sane(Some(&none), Style::OriginPath, &names).passed);
        assert!(!cache_policy_sane(Some(&policy(C::All, &[], Q::None, &[])), Style::Ssm, &names).passed);
        let fit = policy(C::Whitelist, &["Build-Number", "Override"], Q::Whitelist, &["override_build_number"]);
        assert!(cache_policy_sane(Some(&fit), Style::OriginPath, &names).passed);
        let half = policy(C::Whitelist, &["Build-Number"], Q::Whitelist, &["override_build_number"]);
        let check = cache_policy_sane(Some(&half), Style::OriginPath, &names);
        assert!(!check.passed && check.fix.as_deref().unwrap().contains("Override"), "{check:?}");
        assert!(!cache_policy_sane(None, Style::Ssm, &names).passed);
    }

    #[test]
    fn the_report_gives_each_failure_its_fix() {
        let text = render(&[pass("bucket", "s3://b is reachable"), fail("router", "not attached", "attach it")]);
        assert_eq!(
            text,
            "ok   bucket          s3://b is reachable\nFAIL router          not attached\n                     fix: attach it\n"
        );
    }
}
