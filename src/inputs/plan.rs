//! The plan every command runs from: the merged inputs checked into typed values, in which only
//! valid pairs of store and pointer can be written down.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use super::parse::{
    CONCURRENCY, EDGE_CACHE, INVALIDATION_WAIT, KEEP, LOCK_LEASE, PREVIEW_TTL, SKEW_WINDOW, SMOKE_TIMEOUT,
    parameter_name_problem, parse_bool, parse_count, parse_distribution_id, parse_duration, parse_invalidation_paths,
    parse_listen, parse_name, parse_prefix, parse_preview_domain, parse_smoke_paths, parse_status, validate_bucket,
};
use super::{InputError, Inputs, RawInputs, SiteUrl};
use crate::env::Env;
use crate::github::{GitHub, Token};
use crate::pull_request::{self, PullRequest};
use crate::release::RunInfo;
use crate::routing::{EdgeNames, NotFound, OverrideSecret};
use crate::rules::CacheRules;
use crate::shared_assets::SharedAssets;
use crate::version;

/// Where releases and the active version live.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Backend {
    /// The embedded default: a local directory, the active version in a file beside the releases.
    Local { dir: PathBuf },
    /// A bucket, with the active version in SSM or in a CloudFront origin path.
    Aws(AwsBackend),
}

/// A site on AWS.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AwsBackend {
    pub bucket: String,
    pub region: Option<String>,
    pub path_style: bool,
    pub pointer: AwsPointer,
}

/// Where the active version of a site on AWS is recorded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AwsPointer {
    Ssm { parameter: String },
    CloudFront { distribution: String, origin: Option<String>, invalidation: Option<Invalidation> },
}

/// What happens after a CloudFront flip so that cached copies of the old version go.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Invalidation {
    pub paths: Vec<String>,
    /// Wait at most this long for the invalidation to complete.
    pub wait: Option<Duration>,
}

#[derive(Debug, Clone)]
pub struct SmokePlan {
    pub paths: Vec<String>,
    pub expect_text: Option<String>,
    pub expect_status: u16,
    pub timeout: Duration,
}

/// The validated plan every command runs from.
#[derive(Debug, Clone)]
pub struct Plan {
    pub dist_dir: PathBuf,
    pub backend: Backend,
    pub prefix: String,
    /// The version this run releases, if one could be resolved.
    pub version: Option<String>,
    pub site_url: Option<SiteUrl>,
    pub distribution_id: Option<String>,
    pub smoke: SmokePlan,
    pub concurrency: usize,
    pub keep: Option<usize>,
    /// The pull request a preview is for: `Ok(None)` when none was given or found; an error only
    /// `preview` reports, so a bad CI variable never stops a release.
    pub pull_request: Result<Option<PullRequest>, InputError>,
    /// Whether this run is for GitHub's event reopening or closing the pull request, and when.
    pub pull_request_event: pull_request::Event,
    /// With `prune`: how old a preview may get.
    pub preview_ttl: Duration,
    /// With `prune`: every release live at any moment this long ago or since is kept.
    pub skew_window: Duration,
    /// Hosts `pr-<n>.<domain>` show each pull request's newest preview.
    pub preview_domain: Option<String>,
    /// With `github-token`: where `preview` comments and records its deployment.
    pub github: Option<GitHub>,
    /// With `rollback`: where to go back to.
    pub rollback_to: Option<String>,
    pub release_secret_files: bool,
    pub take_over_pointer: bool,
    pub cache_rules: CacheRules,
    pub lock_lease: Duration,
    /// The names overrides travel by, at the edge and in the smoke test.
    pub edge: EdgeNames,
    /// How long the CloudFront router caches the active version.
    pub edge_cache: Duration,
    pub listen: SocketAddr,
    pub dry_run: bool,
    pub json: bool,
    pub run: RunInfo,
}

impl Plan {
    /// Validates layered inputs into a plan. Nothing is touched beyond reading `dist-dir`'s kind.
    pub fn resolve(raw: &RawInputs, env: &Env) -> Result<Plan, InputError> {
        let inputs = raw.with_defaults();
        let prefix = parse_prefix(&inputs.prefix)?;
        let backend = match &inputs.bucket {
            None => {
                let asked = raw.store_dir.is_some() || raw.pointer.as_deref() == Some("file");
                if let Some(ci) = env.ci_name().filter(|_| !asked) {
                    return Err(InputError::new(
                        "bucket",
                        format!(
                            "not set, and this run is in {ci}: the embedded local store would be left behind with the CI machine and nothing would be released; set `bucket`, or set `store-dir` to use the embedded store on purpose"
                        ),
                    ));
                }
                refuse_aws_pointer(inputs.pointer.as_deref())?;
                Backend::Local { dir: PathBuf::from(&inputs.store_dir) }
            }
            Some(bucket) => {
                validate_bucket(bucket)?;
                let endpoint_overridden = env.is_set("AWS_ENDPOINT_URL") || env.is_set("AWS_ENDPOINT_URL_S3");
                let path_style = match &inputs.s3_path_style {
                    Some(v) => parse_bool("s3-path-style", v)?,
                    None => endpoint_overridden,
                };
                // The region sizes the parameter's ARN, which counts toward SSM's length limit.
                let region = inputs.region.as_deref().or(env.get("AWS_REGION")).or(env.get("AWS_DEFAULT_REGION"));
                let pointer = aws_pointer(&inputs, bucket, &prefix, region)?;
                Backend::Aws(AwsBackend { bucket: bucket.clone(), region: inputs.region.clone(), path_style, pointer })
            }
        };
        let version = match &inputs.version {
            Some(v) => Some(version::validate(v).map_err(|p| InputError::new("version", p))?),
            None => version::from_ci(env)
                .map(|(v, source)| version::validate(&v).map_err(|p| InputError::new(source, p)))
                .transpose()?,
        };
        let site_url = inputs.site_url.as_deref().map(SiteUrl::parse).transpose()?;
        let smoke = SmokePlan {
            paths: parse_smoke_paths(&inputs.smoke_paths)?,
            expect_text: inputs.smoke_expect_text.clone(),
            expect_status: parse_status(&inputs.smoke_status)?,
            timeout: parse_duration(&SMOKE_TIMEOUT, &inputs.smoke_timeout)?,
        };
        let concurrency = parse_count(&CONCURRENCY, &inputs.concurrency)?;
        let keep = inputs.keep.as_deref().map(|k| parse_count(&KEEP, k)).transpose()?;
        let pull_request = match pull_request::detect(inputs.pull_request.as_deref(), env) {
            Err(("pull-request", problem)) => return Err(InputError::new("pull-request", problem)),
            detected => detected.map_err(|(source, problem)| InputError::new(source, problem)),
        };
        let preview_ttl = parse_duration(&PREVIEW_TTL, &inputs.preview_ttl)?;
        let skew_window = parse_duration(&SKEW_WINDOW, &inputs.skew_window)?;
        let preview_domain = inputs.preview_domain.as_deref().map(parse_preview_domain).transpose()?;
        if let (Some(domain), Some(host)) = (&preview_domain, site_url.as_ref().and_then(SiteUrl::host))
            && crate::pull_request::preview_host(host, domain).is_some()
        {
            return Err(InputError::new(
                "preview-domain",
                format!(
                    "{domain} holds the site's own host {host} (`site-url`): every host under it shows only previews, so the live site would answer 404; give the previews a domain the site is not under, such as previews.{domain}"
                ),
            ));
        }
        let rollback_to =
            inputs.to.as_deref().map(|v| version::validate(v).map_err(|p| InputError::new("to", p))).transpose()?;
        let cache_rules = CacheRules::parse(inputs.cache_control.as_deref().unwrap_or(""))
            .map_err(|p| InputError::new("cache-control", p))?;
        let lock_lease = parse_duration(&LOCK_LEASE, &inputs.lock_lease)?;
        let listen = parse_listen(&inputs.listen)?;
        let edge = EdgeNames {
            query: parse_name("override-query", &inputs.override_query)?,
            version_cookie: parse_name("version-cookie", &inputs.version_cookie)?,
            override_cookie: parse_name("override-cookie", &inputs.override_cookie)?,
            not_found: NotFound::parse(&inputs.not_found).ok_or_else(|| {
                InputError::new("not-found", format!("{:?} is not `auto`, `spa` or `404`", inputs.not_found))
            })?,
            secret: inputs.override_secret.clone().map(|secret| OverrideSecret::new(secret, &prefix)),
            shared: SharedAssets::parse(&inputs.shared_assets).map_err(|p| InputError::new("shared-assets", p))?,
        };
        let edge_cache = parse_duration(&EDGE_CACHE, &inputs.edge_cache)?;
        Ok(Plan {
            dist_dir: PathBuf::from(&inputs.dist_dir),
            backend,
            prefix,
            version,
            site_url,
            distribution_id: inputs
                .distribution_id
                .as_deref()
                .map(|d| parse_distribution_id("distribution-id", d))
                .transpose()?,
            smoke,
            concurrency,
            keep,
            pull_request,
            pull_request_event: pull_request::event(env),
            preview_ttl,
            skew_window,
            preview_domain,
            github: inputs.github_token.clone().map(|token| GitHub::new(Token::new(token), env)),
            rollback_to,
            release_secret_files: parse_bool("release-secret-files", &inputs.release_secret_files)?,
            take_over_pointer: parse_bool("take-over-pointer", &inputs.take_over_pointer)?,
            cache_rules,
            lock_lease,
            edge,
            edge_cache,
            listen,
            dry_run: parse_bool("dry-run", &inputs.dry_run)?,
            json: parse_bool("json", &inputs.json)?,
            run: RunInfo::from_env(env),
        })
    }

    /// The version this run releases, or a bad-input error saying how to give one.
    pub fn require_version(&self) -> Result<&str, InputError> {
        self.version.as_deref().ok_or_else(|| {
            InputError::new("version", "not given and no git tag or CI run number found in the environment")
        })
    }

    /// The pull request a preview is for, or a bad-input error naming where it was looked for.
    pub fn require_pull_request(&self) -> Result<PullRequest, InputError> {
        self.pull_request.clone()?.ok_or_else(|| {
            InputError::new(
                "pull-request",
                "not given and this run is not for a pull request (GITHUB_EVENT_NAME pull_request*, CIRCLE_PULL_REQUEST)",
            )
        })
    }

    /// Checks that `dist-dir` is a directory; only commands that stage need it.
    pub fn require_dist_dir(&self) -> Result<(), InputError> {
        let dir = &self.dist_dir;
        match std::fs::metadata(dir) {
            Ok(m) if m.is_dir() => Ok(()),
            Ok(_) => Err(InputError::new("dist-dir", format!("{} is not a directory", dir.display()))),
            Err(e) => Err(InputError::new("dist-dir", format!("{}: {e}", dir.display()))),
        }
    }
}

impl RawInputs {
    /// `--json` as asked, read even when other inputs are bad, so a failure still ends in JSON.
    pub fn json_asked(&self) -> bool {
        self.json.as_deref().is_some_and(|v| parse_bool("json", v).unwrap_or(false))
    }
}

/// On the embedded store the active version lives in a file: the pointer is `file` or unset.
fn refuse_aws_pointer(text: Option<&str>) -> Result<(), InputError> {
    let Some(spec) = text.filter(|spec| *spec != "file") else {
        return Ok(());
    };
    match spec.split_once(':') {
        Some(("ssm", name)) => {
            ssm_parameter(name, None)?;
            Err(InputError::new("pointer", "ssm needs a bucket; set `bucket` or use pointer file"))
        }
        Some(("cloudfront", _)) => {
            Err(InputError::new("pointer", "cloudfront needs a bucket; set `bucket` or use pointer file"))
        }
        _ => Err(unknown_pointer(spec)),
    }
}

/// The pointer of a site in `bucket`: the one given, else an SSM parameter named after the site.
fn aws_pointer(inputs: &Inputs, bucket: &str, prefix: &str, region: Option<&str>) -> Result<AwsPointer, InputError> {
    let Some(spec) = inputs.pointer.as_deref() else {
        let site = [bucket, prefix].iter().filter(|s| !s.is_empty()).copied().collect::<Vec<_>>();
        let parameter = format!("/cutover/{}/active", site.join("/"));
        if let Some(problem) = parameter_name_problem(&parameter, region) {
            return Err(InputError::new(
                "prefix",
                format!(
                    "makes the default pointer ssm:{parameter} unusable: it {problem}; shorten `prefix` or set `pointer`"
                ),
            ));
        }
        return Ok(AwsPointer::Ssm { parameter });
    };
    if spec == "file" {
        return Err(InputError::new("pointer", "file works only on the embedded store; use ssm:<parameter-name>"));
    }
    match spec.split_once(':') {
        Some(("ssm", name)) => Ok(AwsPointer::Ssm { parameter: ssm_parameter(name, region)? }),
        Some(("cloudfront", target)) => {
            let (distribution, origin) = match target.split_once('/') {
                Some((distribution, origin)) => (distribution, Some(origin)),
                None => (target, None),
            };
            let distribution = parse_distribution_id("pointer", distribution)?;
            if origin.is_some_and(|o| o.is_empty() || o.chars().any(char::is_control)) {
                return Err(InputError::new(
                    "pointer",
                    format!(
                        "{spec:?} is not cloudfront:<distribution-id>[/<origin-id>]: the origin ID is empty or has control characters"
                    ),
                ));
            }
            let origin = origin.map(str::to_owned);
            Ok(AwsPointer::CloudFront { distribution, origin, invalidation: invalidation(inputs)? })
        }
        _ => Err(unknown_pointer(spec)),
    }
}

/// The name of an `ssm:` pointer, checked by SSM's rules.
fn ssm_parameter(name: &str, region: Option<&str>) -> Result<String, InputError> {
    match parameter_name_problem(name, region) {
        Some(problem) => {
            Err(InputError::new("pointer", format!("{name:?} is not an SSM parameter name: it {problem}")))
        }
        None => Ok(name.to_owned()),
    }
}

fn unknown_pointer(spec: &str) -> InputError {
    InputError::new(
        "pointer",
        format!("{spec:?} is not a known pointer; use ssm:<parameter-name>, cloudfront:<distribution-id> or file"),
    )
}

/// What a `cloudfront:` flip invalidates, and how long it waits.
fn invalidation(inputs: &Inputs) -> Result<Option<Invalidation>, InputError> {
    if !parse_bool("invalidate", &inputs.invalidate)? {
        return Ok(None);
    }
    let paths = parse_invalidation_paths(&inputs.invalidation_paths)?;
    let wait = parse_duration(&INVALIDATION_WAIT, &inputs.invalidation_wait)?;
    Ok(Some(Invalidation { paths, wait: (!wait.is_zero()).then_some(wait) }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::inputs::INPUTS;
    use crate::inputs::parse::HOUR;

    fn plan(vars: &[(&str, &str)]) -> Result<Plan, InputError> {
        let env: Env = vars.iter().copied().collect();
        Plan::resolve(&RawInputs::layered(&env, &RawInputs::default()), &env)
    }

    /// The pointer of a plan on AWS.
    fn pointer(plan: &Plan) -> &AwsPointer {
        match &plan.backend {
            Backend::Aws(site) => &site.pointer,
            Backend::Local { .. } => panic!("a plan on the embedded store has no AWS pointer"),
        }
    }

    #[test]
    fn prefix_empty_means_the_default_and_slash_the_bucket_root() {
        let flag = |prefix: &str| {
            let flags = RawInputs { prefix: Some(prefix.into()), ..Default::default() };
            Plan::resolve(&RawInputs::layered(&Env::default(), &flags), &Env::default()).map(|p| p.prefix)
        };
        assert_eq!(flag("").unwrap(), "site");
        assert_eq!(plan(&[("INPUT_PREFIX", "")]).unwrap().prefix, "site");
        assert_eq!(plan(&[("CUTOVER_PREFIX", "")]).unwrap().prefix, "site");
        assert_eq!(flag("/").unwrap(), "");
        assert_eq!(plan(&[("CUTOVER_PREFIX", "/")]).unwrap().prefix, "");
        assert_eq!(flag("sites/blog/").unwrap(), "sites/blog");
        // What the layers never pass on is refused too, so no spelling but `/` means the root.
        let err = parse_prefix("").unwrap_err();
        assert!(err.to_string().contains("give `/` for the bucket root"), "{err}");
        for bad in ["//", "/site", " "] {
            assert_eq!(flag(bad).unwrap_err().input, "prefix", "{bad:?}");
        }
        let prefix = INPUTS.iter().find(|spec| spec.name() == "prefix").unwrap();
        assert!(prefix.description.contains("`/` asks for the bucket root"));
    }

    #[test]
    fn bucket_selects_aws_with_a_default_ssm_pointer_and_path_style_under_an_endpoint() {
        let p = plan(&[("CUTOVER_BUCKET", "my-site"), ("AWS_ENDPOINT_URL", "http://127.0.0.1:5000")]).unwrap();
        let ssm = AwsPointer::Ssm { parameter: "/cutover/my-site/site/active".into() };
        let site = |path_style| AwsBackend { bucket: "my-site".into(), region: None, path_style, pointer: ssm.clone() };
        assert_eq!(p.backend, Backend::Aws(site(true)));
        let p = plan(&[("CUTOVER_BUCKET", "my-site")]).unwrap();
        assert_eq!(p.backend, Backend::Aws(site(false)));
    }

    #[test]
    fn cloudfront_pointers_carry_their_invalidation() {
        let p =
            plan(&[("CUTOVER_BUCKET", "bkt"), ("CUTOVER_POINTER", "cloudfront:E2QWRUHAPOMQZL/site-origin")]).unwrap();
        let invalidation = Some(Invalidation { paths: vec!["/*".into()], wait: None });
        let expected = AwsPointer::CloudFront {
            distribution: "E2QWRUHAPOMQZL".into(),
            origin: Some("site-origin".into()),
            invalidation,
        };
        assert_eq!(pointer(&p), &expected);
        let p = plan(&[
            ("CUTOVER_BUCKET", "bkt"),
            ("CUTOVER_POINTER", "cloudfront:E1ABCDEFGHIJKL"),
            ("CUTOVER_INVALIDATE", "false"),
        ])
        .unwrap();
        assert!(matches!(pointer(&p), AwsPointer::CloudFront { invalidation: None, origin: None, .. }));
        let p = plan(&[
            ("CUTOVER_BUCKET", "bkt"),
            ("CUTOVER_POINTER", "cloudfront:E1ABCDEFGHIJKL"),
            ("CUTOVER_INVALIDATION_PATHS", "/index.html, /assets/*"),
            ("CUTOVER_INVALIDATION_WAIT", "5m"),
        ])
        .unwrap();
        let AwsPointer::CloudFront { invalidation: Some(i), .. } = pointer(&p) else { panic!() };
        assert_eq!(
            (i.paths.clone(), i.wait),
            (vec!["/index.html".into(), "/assets/*".into()], Some(Duration::from_secs(300)))
        );
    }

    #[test]
    fn version_comes_from_tag_then_run_number() {
        let p = plan(&[("GITHUB_REF_TYPE", "tag"), ("GITHUB_REF_NAME", "v1.2.3"), ("GITHUB_RUN_NUMBER", "7")]).unwrap();
        assert_eq!(p.version.as_deref(), Some("v1.2.3"));
        assert_eq!(plan(&[("BUILD_NUMBER", "41")]).unwrap().version.as_deref(), Some("41"));
        assert_eq!(plan(&[("CUTOVER_VERSION", "x9"), ("BUILD_NUMBER", "41")]).unwrap().version.as_deref(), Some("x9"));
    }

    /// `/Level-1/L2/.../L14/L15/parameter-name`: AWS's own example of a name one level too deep.
    const SIXTEEN_LEVELS: &str = "ssm:/Level-1/L2/L3/L4/L5/L6/L7/L8/L9/L10/L11/L12/L13/L14/L15/parameter-name";

    #[test]
    fn aws_names_are_checked_by_aws_rules() {
        let with = |vars: &[(&str, &str)]| plan(&[&[("CUTOVER_BUCKET", "bkt")], vars].concat());
        for name in [
            "MyParameter1",
            "/MyParameter2",
            "/Dev/Production/East/Project-ABC/MyParameter",
            "/Level-1/L2/L3/L4/L5/L6/L7/L8/L9/L10/L11/L12/L13/L14/parameter-name",
            "/my-aws/ssm",
            "/a_b.c-d",
        ] {
            let p = with(&[("CUTOVER_POINTER", &format!("ssm:{name}"))]).unwrap();
            assert_eq!(pointer(&p), &AwsPointer::Ssm { parameter: name.into() });
        }
        // The name counts with its ARN: 45 characters in us-east-2, 56 in us-gov-west-1.
        let name = |length: usize| format!("ssm:/{}", "n".repeat(length - 1));
        let region = |region: &'static str| [("AWS_REGION", region)];
        assert!(with(&[&region("us-east-2")[..], &[("CUTOVER_POINTER", &name(1011 - 44))]].concat()).is_ok());
        let long = with(&[&region("us-east-2")[..], &[("CUTOVER_POINTER", &name(1011 - 43))]].concat());
        assert!(long.unwrap_err().problem.contains("1012 characters counted with its ARN"));
        assert!(with(&[&region("us-gov-west-1")[..], &[("CUTOVER_POINTER", &name(1011 - 44))]].concat()).is_err());
        assert!(with(&[("CUTOVER_REGION", "us-gov-west-1"), ("CUTOVER_POINTER", &name(1011 - 55))]).is_ok());
        assert!(with(&[("CUTOVER_POINTER", &name(1011 - 55))]).is_ok(), "unknown region: the longest is assumed");
        assert!(with(&[("CUTOVER_POINTER", &name(1011 - 54))]).is_err());

        for bucket in ["abc", "my.site-1", "site-111122223333-us-west-2-an", "1.2.3", &"b".repeat(63)] {
            assert!(plan(&[("CUTOVER_BUCKET", bucket)]).is_ok(), "{bucket}");
        }
        for id in ["E2QWRUHAPOMQZL", "A1B2C3D4E5F6G", "EDFDVBD6EXAMPLE"] {
            let p = with(&[("CUTOVER_POINTER", &format!("cloudfront:{id}")), ("CUTOVER_DISTRIBUTION_ID", id)]).unwrap();
            assert!(matches!(pointer(&p), AwsPointer::CloudFront { distribution, .. } if distribution == id));
        }
        let why = |vars: &[(&str, &str)]| with(vars).unwrap_err().to_string();
        assert!(why(&[("CUTOVER_POINTER", "ssm:/aws/reserved")]).contains("begins with \"aws\" or \"ssm\""));
        assert!(why(&[("CUTOVER_POINTER", SIXTEEN_LEVELS)]).contains("has 16 levels; SSM allows at most 15"));
        assert!(why(&[("CUTOVER_BUCKET", "site.mrap")]).contains("must not end with \".mrap\""));
    }

    #[test]
    fn bad_inputs_name_the_input() {
        let cases: &[(&[(&str, &str)], &str)] = &[
            (&[("CUTOVER_PREFIX", "/site")], "prefix"),
            (&[("CUTOVER_PREFIX", "a//b")], "prefix"),
            (&[("CUTOVER_PREFIX", "a/../b")], "prefix"),
            (&[("CUTOVER_PREFIX", "_cutover")], "prefix"),
            (&[("CUTOVER_BUCKET", "Not_A_Bucket")], "bucket"),
            (&[("CUTOVER_POINTER", "redis:x")], "pointer"),
            (&[("CUTOVER_POINTER", "ssm:/a b")], "pointer"),
            (&[("CUTOVER_POINTER", "ssm:/x")], "pointer"),
            (&[("CUTOVER_POINTER", "cloudfront:E123")], "pointer"),
            (&[("CUTOVER_BUCKET", "bkt"), ("CUTOVER_POINTER", "cloudfront:e123")], "pointer"),
            (&[("CUTOVER_BUCKET", "bkt"), ("CUTOVER_POINTER", "cloudfront:E1")], "pointer"),
            (&[("CUTOVER_BUCKET", "bkt"), ("CUTOVER_POINTER", "cloudfront:1E2QWRUHAPOMQZ")], "pointer"),
            (&[("CUTOVER_BUCKET", "bkt"), ("CUTOVER_POINTER", "cloudfront:E2QWRUHAPOMQZLXYZ")], "pointer"),
            (&[("CUTOVER_BUCKET", "bkt"), ("CUTOVER_POINTER", "cloudfront:E2QWRUHAPOMQZL/")], "pointer"),
            (&[("CUTOVER_BUCKET", "bkt"), ("CUTOVER_POINTER", "ssm:/aws/reserved")], "pointer"),
            (&[("CUTOVER_BUCKET", "bkt"), ("CUTOVER_POINTER", "ssm:/ssm/x")], "pointer"),
            (&[("CUTOVER_BUCKET", "bkt"), ("CUTOVER_POINTER", "ssm:/AWS")], "pointer"),
            (&[("CUTOVER_BUCKET", "bkt"), ("CUTOVER_POINTER", "ssm:awsTestParameter")], "pointer"),
            (&[("CUTOVER_BUCKET", "bkt"), ("CUTOVER_POINTER", "ssm:SSM-testparameter")], "pointer"),
            (&[("CUTOVER_BUCKET", "bkt"), ("CUTOVER_POINTER", "ssm:MyParameter3/L1")], "pointer"),
            (&[("CUTOVER_BUCKET", "bkt"), ("CUTOVER_POINTER", "ssm:/a//b")], "pointer"),
            (&[("CUTOVER_BUCKET", "bkt"), ("CUTOVER_POINTER", "ssm:/a/")], "pointer"),
            (&[("CUTOVER_BUCKET", "bkt"), ("CUTOVER_POINTER", "ssm:/")], "pointer"),
            (&[("CUTOVER_BUCKET", "bkt"), ("CUTOVER_POINTER", "ssm:")], "pointer"),
            (&[("CUTOVER_BUCKET", "bkt"), ("CUTOVER_POINTER", "ssm:/a:1")], "pointer"),
            (&[("CUTOVER_BUCKET", "bkt"), ("CUTOVER_POINTER", "ssm:/é")], "pointer"),
            (
                &[("CUTOVER_BUCKET", "bkt"), ("CUTOVER_POINTER", "ssm:arn:aws:ssm:us-east-1:111122223333:parameter/a")],
                "pointer",
            ),
            (&[("CUTOVER_BUCKET", "bkt"), ("CUTOVER_POINTER", SIXTEEN_LEVELS)], "pointer"),
            (&[("CUTOVER_BUCKET", "bkt"), ("CUTOVER_PREFIX", "a/b/c/d/e/f/g/h/i/j/k/l/m")], "prefix"),
            (&[("CUTOVER_BUCKET", "ab")], "bucket"),
            (&[("CUTOVER_BUCKET", &"b".repeat(64))], "bucket"),
            (&[("CUTOVER_BUCKET", "-site")], "bucket"),
            (&[("CUTOVER_BUCKET", "site.")], "bucket"),
            (&[("CUTOVER_BUCKET", "my..site")], "bucket"),
            (&[("CUTOVER_BUCKET", "192.168.5.4")], "bucket"),
            (&[("CUTOVER_BUCKET", "xn--site")], "bucket"),
            (&[("CUTOVER_BUCKET", "sthree-site")], "bucket"),
            (&[("CUTOVER_BUCKET", "amzn-s3-demo-site")], "bucket"),
            (&[("CUTOVER_BUCKET", "site-s3alias")], "bucket"),
            (&[("CUTOVER_BUCKET", "site--ol-s3")], "bucket"),
            (&[("CUTOVER_BUCKET", "site.mrap")], "bucket"),
            (&[("CUTOVER_BUCKET", "site--usw2-az1--x-s3")], "bucket"),
            (&[("CUTOVER_BUCKET", "site--table-s3")], "bucket"),
            (
                &[
                    ("CUTOVER_BUCKET", "bkt"),
                    ("CUTOVER_POINTER", "cloudfront:E1ABCDEFGHIJKL"),
                    ("CUTOVER_INVALIDATION_PATHS", "x"),
                ],
                "invalidation-paths",
            ),
            (&[("CUTOVER_SITE_URL", "not a url")], "site-url"),
            (&[("CUTOVER_SITE_URL", "ftp://x")], "site-url"),
            (&[("CUTOVER_CONCURRENCY", "0")], "concurrency"),
            (&[("CUTOVER_CONCURRENCY", "many")], "concurrency"),
            (&[("CUTOVER_KEEP", "-1")], "keep"),
            (&[("CUTOVER_SMOKE_TIMEOUT", "soon")], "smoke-timeout"),
            (&[("CUTOVER_SMOKE_STATUS", "700")], "smoke-status"),
            (&[("CUTOVER_SMOKE_PATHS", "health")], "smoke-paths"),
            (&[("CUTOVER_CACHE_CONTROL", "*.html")], "cache-control"),
            (&[("CUTOVER_VERSION", "a/b")], "version"),
            (&[("CUTOVER_VERSION", "_cutover")], "version"),
            (&[("GITHUB_REF_TYPE", "tag"), ("GITHUB_REF_NAME", "release/1")], "GITHUB_REF_NAME"),
            (&[("CUTOVER_DRY_RUN", "maybe")], "dry-run"),
            (&[("CUTOVER_LISTEN", "localhost")], "listen"),
            (&[("CUTOVER_DISTRIBUTION_ID", "d123.cloudfront.net")], "distribution-id"),
            (&[("CUTOVER_VERSION_COOKIE", "a b")], "version-cookie"),
            (&[("CUTOVER_OVERRIDE_QUERY", "x=y")], "override-query"),
            (&[("CUTOVER_EDGE_CACHE", "a while")], "edge-cache"),
            (&[("CUTOVER_EDGE_CACHE", "100000000y")], "edge-cache"),
            (&[("CUTOVER_LOCK_LEASE", "100000000y")], "lock-lease"),
            (&[("CUTOVER_LOCK_LEASE", "0s")], "lock-lease"),
            (&[("CUTOVER_SMOKE_TIMEOUT", "18446744073709551615")], "smoke-timeout"),
            (&[("CUTOVER_SMOKE_TIMEOUT", "99999999999999999999999y")], "smoke-timeout"),
            (
                &[
                    ("CUTOVER_BUCKET", "bkt"),
                    ("CUTOVER_POINTER", "cloudfront:E2QWRUHAPOMQZL"),
                    ("CUTOVER_INVALIDATION_WAIT", "2h"),
                ],
                "invalidation-wait",
            ),
            (&[("CUTOVER_CONCURRENCY", "18446744073709551616")], "concurrency"),
            (&[("CUTOVER_KEEP", "99999999999999999999999")], "keep"),
            (&[("CUTOVER_KEEP", "100001")], "keep"),
            (&[("CUTOVER_PULL_REQUEST", "PR-1")], "pull-request"),
            (&[("CUTOVER_PULL_REQUEST", "1/../2")], "pull-request"),
            (&[("CUTOVER_PREVIEW_TTL", "30m")], "preview-ttl"),
            (&[("CUTOVER_PREVIEW_DOMAIN", "Preview.example.com")], "preview-domain"),
            (&[("CUTOVER_PREVIEW_DOMAIN", "preview.example.com.")], "preview-domain"),
            (&[("CUTOVER_PREVIEW_DOMAIN", "preview.example.com:443")], "preview-domain"),
            (&[("CUTOVER_PREVIEW_DOMAIN", "preview..example.com")], "preview-domain"),
            (&[("CUTOVER_PREVIEW_DOMAIN", "localhost")], "preview-domain"),
            (&[("CUTOVER_PREVIEW_DOMAIN", "*.example.com")], "preview-domain"),
            (
                &[("CUTOVER_PREVIEW_DOMAIN", "example.com"), ("CUTOVER_SITE_URL", "https://WWW.Example.com./")],
                "preview-domain",
            ),
            (
                &[("CUTOVER_PREVIEW_DOMAIN", "example.com"), ("CUTOVER_SITE_URL", "https://a.b.example.com/")],
                "preview-domain",
            ),
            (&[("CUTOVER_PREVIEW_TTL", "31d")], "preview-ttl"),
            (&[("CUTOVER_SKEW_WINDOW", "31d")], "skew-window"),
            (&[("CUTOVER_SKEW_WINDOW", "a week")], "skew-window"),
        ];
        for (vars, input) in cases {
            let err = plan(vars).expect_err(&format!("{vars:?} should be refused"));
            assert_eq!(err.input, *input, "{vars:?}: {err}");
            assert!(err.to_string().starts_with(&format!("input `{input}`")), "{err}");
        }
    }

    #[test]
    fn a_preview_domain_beside_or_above_the_sites_host_is_taken() {
        for (domain, site) in
            [("preview.example.com", "https://www.example.com/"), ("example.com", "https://example.com/")]
        {
            let planned = plan(&[("CUTOVER_PREVIEW_DOMAIN", domain), ("CUTOVER_SITE_URL", site)]);
            assert!(planned.is_ok(), "{domain} with {site}: {:?}", planned.err());
        }
    }

    #[test]
    fn in_ci_the_embedded_store_is_used_only_when_asked_for() {
        let systems = [
            ("GITHUB_ACTIONS", "true"),
            ("TEAMCITY_VERSION", "2025.03"),
            ("CIRCLECI", "true"),
            ("JENKINS_URL", "https://jenkins.example.com/"),
            ("TF_BUILD", "True"),
            ("CI", "true"),
        ];
        for ci in systems {
            let err = plan(&[ci]).expect_err("a CI run without a bucket is refused");
            assert_eq!(err.input, "bucket", "{ci:?}: {err}");
            assert!(err.problem.contains("set `store-dir`"), "{err}");
            assert!(plan(&[ci, ("CUTOVER_STORE_DIR", ".cutover")]).is_ok(), "{ci:?}");
            assert!(plan(&[ci, ("CUTOVER_POINTER", "file")]).is_ok(), "{ci:?}");
            assert!(plan(&[ci, ("CUTOVER_BUCKET", "my-site")]).is_ok(), "{ci:?}");
        }
        assert!(plan(&[("CI", "false")]).is_ok());
    }

    #[test]
    fn bounds_are_checked_inclusively_and_named_in_the_descriptions() {
        let p = plan(&[("CUTOVER_LOCK_LEASE", "1s"), ("CUTOVER_SMOKE_TIMEOUT", "0s"), ("CUTOVER_EDGE_CACHE", "3600")]);
        let p = p.unwrap();
        assert_eq!((p.lock_lease, p.smoke.timeout, p.edge_cache), (Duration::from_secs(1), Duration::ZERO, HOUR));
        assert_eq!(plan(&[("CUTOVER_KEEP", "100000"), ("CUTOVER_CONCURRENCY", "1024")]).unwrap().keep, Some(100_000));
        let err = plan(&[("CUTOVER_LOCK_LEASE", "100000000y")]).unwrap_err();
        assert_eq!(err.to_string(), "input `lock-lease`: \"100000000y\" is out of range: use 1s to 1h");
        let ranges = [SMOKE_TIMEOUT, INVALIDATION_WAIT, LOCK_LEASE, EDGE_CACHE, PREVIEW_TTL, SKEW_WINDOW]
            .map(|b| (b.input, b.range()));
        for (input, range) in ranges.into_iter().chain([CONCURRENCY, KEEP].map(|b| (b.input, b.range()))) {
            let spec = INPUTS.iter().find(|s| s.name() == input).unwrap();
            assert!(spec.description.contains(&range), "{input}: {:?} must say {range}", spec.description);
        }
    }

    mod properties {
        use super::*;
        use proptest::prelude::*;

        /// Any text, and the texts most likely to break a parser: huge numbers and durations, pointers.
        fn value() -> impl Strategy<Value = String> {
            prop_oneof![
                any::<String>(),
                "[0-9]{1,30}",
                "-?[0-9]{1,25}(ns|us|ms|s|m|h|d|w|M|y)( [0-9]{1,25}[a-z]{1,2})?",
                "(ssm|cloudfront|file|http|https):[/a-zA-Z0-9.@:%_-]{0,40}",
            ]
        }

        /// Resolves a plan: a refusal is fine; a plan that resolves holds only durations and counts
        /// within their bounds.
        fn resolve(env: &Env, flags: &RawInputs) -> Result<(), TestCaseError> {
            let Ok(plan) = Plan::resolve(&RawInputs::layered(env, flags), env) else {
                return Ok(());
            };
            let wait = match &plan.backend {
                Backend::Aws(AwsBackend { pointer: AwsPointer::CloudFront { invalidation: Some(i), .. }, .. }) => {
                    i.wait
                }
                _ => None,
            };
            let durations = [(SMOKE_TIMEOUT, Some(plan.smoke.timeout)), (INVALIDATION_WAIT, wait)]
                .into_iter()
                .chain([(LOCK_LEASE, Some(plan.lock_lease)), (EDGE_CACHE, Some(plan.edge_cache))]);
            for (bounds, duration) in durations {
                prop_assert!(duration.is_none_or(|d| (bounds.min..=bounds.max).contains(&d)), "{}", bounds.input);
            }
            prop_assert!((CONCURRENCY.min..=CONCURRENCY.max).contains(&plan.concurrency));
            prop_assert!(plan.keep.is_none_or(|k| k <= KEEP.max));
            Ok(())
        }

        proptest! {
            #![proptest_config(ProptestConfig::with_cases(64))]

            #[test]
            fn no_value_of_any_input_panics(value in value()) {
                for spec in INPUTS {
                    let upper = spec.field.to_ascii_uppercase();
                    for name in [format!("CUTOVER_{upper}"), format!("INPUT_{}", spec.name().to_ascii_uppercase())] {
                        let env: Env = [(name, value.clone())].into_iter().collect();
                        resolve(&env, &RawInputs::default())?;
                    }
                    let mut flags = RawInputs::default();
                    *(spec.slot)(&mut flags) = Some(value.clone());
                    let on_aws: Env = [("CUTOVER_BUCKET", "bkt"), ("CUTOVER_POINTER", "cloudfront:E2QWRUHAPOMQZL")].into_iter().collect();
                    resolve(&on_aws, &flags)?;
                }
            }

            #[test]
            fn no_mix_of_input_values_panics(values in proptest::collection::vec(value(), INPUTS.len())) {
                let env: Env = INPUTS
                    .iter()
                    .zip(values)
                    .map(|(spec, value)| (format!("CUTOVER_{}", spec.field.to_ascii_uppercase()), value))
                    .collect();
                resolve(&env, &RawInputs::default())?;
            }
        }
    }
}
