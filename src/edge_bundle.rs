//! `cutover edge bundle`: the CloudFront router and its configuration in one zip that Lambda@Edge
//! runs as is. The configuration is baked in because Lambda@Edge has no environment variables.

use std::io::Write;
use std::path::Path;

use anyhow::Context;
use serde::Serialize;

use crate::inputs::{AwsBackend, AwsPointer, Backend, InputError, Plan};

/// The router's source, as tested under Node in `edge/`.
const ROUTER: &str = include_str!("../edge/router.js");

/// `edge/config.json` as the router reads it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RouterConfig {
    pub mode: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub parameter_name: Option<String>,
    pub region: String,
    /// Where the routing indexes live.
    pub bucket: String,
    pub prefix: String,
    pub override_query: String,
    pub version_cookie: String,
    pub override_cookie: String,
    pub cache_seconds: u64,
    /// `auto`, `spa` or `404`: what a path that names nothing serves.
    pub not_found: &'static str,
    /// The `override-secret`, baked in (Lambda@Edge has no environment variables, and reading a
    /// SecureString from another region at every cold start would add latency and a failure mode).
    /// Left out of this struct's JSON, which is the command's printed result: only [`bundle`]
    /// writes it, into the zip.
    #[serde(skip)]
    pub override_secret: Option<String>,
    /// The `shared-assets` rule as one regular expression (see [`crate::shared_assets`]); absent
    /// when sharing is off.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub shared_assets: Option<String>,
    /// Hosts `pr-<n>.<preview_domain>` serve the pull request's alias.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub preview_domain: Option<String>,
}

impl RouterConfig {
    /// The router configuration a plan implies; only AWS pointers have a router.
    pub fn from_plan(plan: &Plan) -> Result<Self, InputError> {
        let Backend::Aws(site) = &plan.backend else {
            return Err(InputError::new("pointer", "the CloudFront router needs an ssm: or cloudfront: pointer"));
        };
        let (mode, parameter_name) = match &site.pointer {
            AwsPointer::Ssm { parameter } => (SSM, Some(parameter.clone())),
            AwsPointer::CloudFront { .. } => (ORIGIN_PATH, None),
        };
        let region = router_region(site);
        refuse_colliding_names(&plan.edge)?;
        Ok(Self {
            mode,
            parameter_name,
            region,
            bucket: site.bucket.clone(),
            prefix: plan.prefix.clone(),
            override_query: plan.edge.query.clone(),
            version_cookie: plan.edge.version_cookie.clone(),
            override_cookie: plan.edge.override_cookie.clone(),
            cache_seconds: plan.edge_cache.as_secs(),
            not_found: plan.edge.not_found.as_str(),
            override_secret: plan.edge.secret.as_ref().map(|s| s.expose().to_owned()),
            shared_assets: plan.edge.shared.pattern(),
            preview_domain: plan.preview_domain.clone(),
        })
    }

    /// What works, but not with infra/cutover.yml (a region other than the only one it deploys in),
    /// a short secret, and host links that the origin-path style or a secret turns off.
    pub fn warnings(&self) -> Vec<String> {
        let mut warnings = Vec::new();
        if self.region != TEMPLATE_REGION {
            warnings.push(format!(
                "the router reads from region {}, but infra/cutover.yml deploys only in {TEMPLATE_REGION} (its parameter and bucket are there): with the template, bundle with `region` {TEMPLATE_REGION}",
                self.region
            ));
        }
        if let Some(length) = self.override_secret.as_ref().map(|s| s.chars().count()).filter(|&n| n < STRONG_SECRET) {
            warnings.push(format!(
                "`override-secret` is {length} characters: the bundle's SHA-256 is public (RouterCodeSha256, the code key) and every signed link is an HMAC under it, so a short secret can be guessed offline; use at least {STRONG_SECRET} random characters (`openssl rand -hex 32`)"
            ));
        }
        if let (Some(domain), ORIGIN_PATH) = (&self.preview_domain, self.mode) {
            warnings.push(format!(
                "`preview-domain` with a cloudfront: pointer: host links need an ssm: pointer (in the origin-path style the router decides after CloudFront's cache lookup, whose key holds no host), so every host under {domain} answers 404 saying so and the stack parameters below leave PreviewDomain out; share the preview link (`preview-url`) instead, or leave `preview-domain` unset"
            ));
        }
        if let (Some(domain), Some(_)) = (&self.preview_domain, &self.override_secret) {
            warnings.push(format!(
                "`preview-domain` with `override-secret`: host links are off (a host carries no signature), so every host under {domain} answers 404 saying so; share the signed preview link (`preview-url`) instead, or leave `preview-domain` unset"
            ));
        }
        warnings
    }

    /// The infra/cutover.yml parameters that put these names in the origin-path cache key, and with
    /// `preview-domain` in the SSM style the ones that make the distribution answer its hosts, as `Name=value` pairs
    /// for `--parameter-overrides`: the stack and the router must agree. No input holds the
    /// certificate, so its value is a placeholder to replace (a shell refuses it as it stands).
    pub fn stack_parameters(&self) -> String {
        let mut pairs = vec![
            format!("VersionCookie={}", self.version_cookie),
            format!("OverrideCookie={}", self.override_cookie),
            format!("OverrideQuery={}", self.override_query),
        ];
        if let (Some(domain), SSM) = (&self.preview_domain, self.mode) {
            pairs.push(format!("PreviewDomain={domain}"));
            pairs.push(format!("PreviewCertificateArn=<arn-of-a-us-east-1-certificate-for-*.{domain}>"));
        }
        pairs.join(" ")
    }
}

/// The router's modes: the version in the URI before the cache lookup (an SSM pointer), or in the
/// distribution's origin path (a CloudFront pointer).
const SSM: &str = "ssm";
const ORIGIN_PATH: &str = "origin-path";

/// The region the router reads from: `region`, else the only one the template deploys in
/// (whatever AWS_REGION says).
pub fn router_region(site: &AwsBackend) -> String {
    site.region.clone().unwrap_or_else(|| TEMPLATE_REGION.to_owned())
}

/// The only region infra/cutover.yml deploys in (Lambda@Edge functions live there).
const TEMPLATE_REGION: &str = "us-east-1";

/// The fewest characters of an `override-secret` not warned about: a random 32-character secret
/// (128 bits as hex) is out of reach of an offline search against the bundle's published hash.
const STRONG_SECRET: usize = 32;

/// Names the router would confuse: the override query taken by the framework pin, or one cookie
/// for both the version and the override (each would read the other's value).
fn refuse_colliding_names(names: &crate::routing::EdgeNames) -> Result<(), InputError> {
    if names.query.eq_ignore_ascii_case(crate::routing::PIN_QUERY) {
        let problem = format!(
            "{:?} is the framework pin's query (`?{}=` serves a page's subresources from its version); choose another name",
            names.query,
            crate::routing::PIN_QUERY
        );
        return Err(InputError::new("override-query", problem));
    }
    if names.version_cookie.eq_ignore_ascii_case(&names.override_cookie) {
        let problem = format!(
            "{:?} is also the `version-cookie`: the router would read the pinned version as an override; choose another name",
            names.override_cookie
        );
        return Err(InputError::new("override-cookie", problem));
    }
    Ok(())
}

/// `config.json` as the zip holds it: the configuration with its secret.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Baked<'a> {
    #[serde(flatten)]
    config: &'a RouterConfig,
    #[serde(skip_serializing_if = "Option::is_none")]
    override_secret: Option<&'a str>,
}

/// Writes the deployable zip (`index.js` with handler `index.handler`, and `config.json`) to `out`.
pub fn bundle(config: &RouterConfig, out: &Path) -> anyhow::Result<()> {
    // The zip replaces `out` by rename: only ever a file, never a device or a directory.
    if std::fs::symlink_metadata(out).is_ok_and(|m| !m.is_file()) {
        let problem = format!("{} exists and is not a regular file; name a file for the zip", out.display());
        return Err(crate::inputs::InputError::new("out", problem).into());
    }
    let tmp = out.with_extension("zip.partial");
    let file = std::fs::File::create(&tmp).with_context(|| format!("creating {}", tmp.display()))?;
    let mut zip = zip::ZipWriter::new(file);
    let options = zip::write::SimpleFileOptions::default()
        .compression_method(zip::CompressionMethod::Stored)
        .unix_permissions(0o644);
    let config_json =
        serde_json::to_string_pretty(&Baked { config, override_secret: config.override_secret.as_deref() })? + "\n";
    for (name, body) in [("index.js", ROUTER), ("config.json", config_json.as_str())] {
        zip.start_file(name, options)?;
        zip.write_all(body.as_bytes())?;
    }
    zip.finish()?;
    std::fs::rename(&tmp, out).with_context(|| format!("writing {}", out.display()))
}
