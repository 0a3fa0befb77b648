//! Every input is defined once here; env vars and flags are layered and validated into one [`Plan`].
//!
//! Sources, lowest to highest: GitHub's `INPUT_<NAME>` (both `INPUT_DIST_DIR` and `INPUT_DIST-DIR`),
//! then `CUTOVER_<NAME>`, then command-line flags. An empty value counts as unset, because GitHub
//! passes every declared input, given or not.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use serde_json::{Map, Value};
use url::Url;

use crate::pointer::cloudfront::Invalidation;
use crate::routing::EdgeNames;
use crate::rules::CacheRules;
use crate::version;

/// One input as users see it: the name they write, what it does, and its default.
#[derive(Debug, Clone, Copy)]
pub struct InputSpec {
    pub field: &'static str,
    pub description: &'static str,
    pub default: Option<&'static str>,
}

impl InputSpec {
    /// The name as written in `action.yml` and as a flag: `dist-dir`.
    pub fn name(&self) -> String {
        self.field.replace('_', "-")
    }
}

macro_rules! define_inputs {
    ($( #[doc = $doc:literal] $(#[arg($($arg:tt)*)])? $field:ident = $default:expr; )*) => {
        /// Inputs as given, before validation: every value is text, as env vars are.
        #[derive(Debug, Default, Clone, clap::Args, serde::Deserialize, serde::Serialize)]
        #[serde(default)]
        pub struct RawInputs {
            $(
                #[doc = $doc]
                #[arg(long, global = true, $($($arg)*)?)]
                pub $field: Option<String>,
            )*
        }

        /// The one definition of the inputs, for manifests, docs and the tests that check them.
        pub const INPUTS: &[InputSpec] = &[
            $( InputSpec { field: stringify!($field), description: $doc.trim_ascii(), default: $default }, )*
        ];
    };
}

define_inputs! {
    /// Directory holding the built site to release.
    dist_dir = Some("dist");
    /// S3 bucket that holds the releases. Unset: the embedded local store (no AWS needed).
    bucket = None;
    /// Key prefix of the site inside the bucket: releases live at `<prefix>/<version>/`. `/` asks for the bucket root; empty, like every input, counts as unset (`site`).
    prefix = Some("site");
    /// AWS region. Unset: the standard AWS chain (AWS_REGION, profile).
    region = None;
    /// Version to release. Unset: the git tag, else the CI run number. Alone, `--version` prints cutover's version.
    #[arg(num_args = 0..=1, default_missing_value = "")]
    version = None;
    /// Where the active version lives: `ssm:<parameter-name>`, `cloudfront:<distribution-id>[/<origin-id>]` or `file`. Default: `file` on the embedded store, `ssm:/cutover/<bucket>/<prefix>/active` on S3.
    pointer = None;
    /// With `rollback`: the version to go back to. Unset: the version live before the current one.
    to = None;
    /// CloudFront distribution serving the site, for `cutover doctor` (a `cloudfront:` pointer names it itself).
    distribution_id = None;
    /// Public URL of the site, used for the smoke test and the preview link.
    site_url = None;
    /// Paths the smoke test requests, separated by commas or newlines.
    smoke_paths = Some("/");
    /// Text every smoke response must contain.
    smoke_expect_text = None;
    /// HTTP status every smoke response must have.
    smoke_status = Some("200");
    /// How long the smoke test keeps retrying, e.g. `90s` or `2m`.
    smoke_timeout = Some("60s");
    /// How many uploads run at once.
    concurrency = Some("32");
    /// Releases to keep when pruning; the active one, the one before it and any staged in the last hour are always kept. Unset: no pruning.
    keep = None;
    /// Cache-Control rules, `GLOB=VALUE` separated by newlines or `;`; the first match wins over the defaults.
    cache_control = None;
    /// With a `cloudfront:` pointer: invalidate cached copies after the flip.
    #[arg(num_args = 0..=1, default_missing_value = "true")]
    invalidate = Some("true");
    /// With a `cloudfront:` pointer: the paths to invalidate, separated by commas or newlines.
    invalidation_paths = Some("/*");
    /// With a `cloudfront:` pointer: wait at most this long for the invalidation to complete (`0s`: do not wait).
    invalidation_wait = Some("0s");
    /// Release `.git/`, `.env` files and the other secret files listed in the README instead of skipping them with a warning.
    #[arg(num_args = 0..=1, default_missing_value = "true")]
    release_secret_files = Some("false");
    /// Let a promotion replace a pointer value that is not a version cutover knows (refused with exit 4 otherwise).
    #[arg(num_args = 0..=1, default_missing_value = "true")]
    take_over_pointer = Some("false");
    /// How long a deploy lock is honoured before another run may take it over.
    lock_lease = Some("2m");
    /// Directory of the embedded local store (used when no bucket is set).
    store_dir = Some(".cutover");
    /// Query parameter that previews a version and pins it with the cookies below.
    override_query = Some("override_build_number");
    /// Cookie naming the pinned version.
    version_cookie = Some("Build-Number");
    /// Cookie that must be `true` for the version cookie to count.
    override_cookie = Some("Override");
    /// How long the CloudFront router trusts the active version it read from SSM.
    edge_cache = Some("5s");
    /// Address `cutover serve` listens on.
    listen = Some("127.0.0.1:8080");
    /// Force path-style S3 addressing. Default: true when an S3 endpoint is overridden.
    #[arg(num_args = 0..=1, default_missing_value = "true")]
    s3_path_style = None;
    /// Plan and report without writing anything.
    #[arg(num_args = 0..=1, default_missing_value = "true")]
    dry_run = Some("false");
    /// Print the result object as JSON on stdout.
    #[arg(num_args = 0..=1, default_missing_value = "true")]
    json = Some("false");
}

/// A snapshot of the process environment; the only place that reads `std::env`.
#[derive(Debug, Clone, Default)]
pub struct Env(HashMap<String, String>);

impl Env {
    pub fn from_process() -> Self {
        Self(std::env::vars().collect())
    }

    /// A non-empty variable.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.0.get(name).map(String::as_str).filter(|v| !v.is_empty())
    }

    pub fn is_set(&self, name: &str) -> bool {
        self.get(name).is_some()
    }
}

impl<K: Into<String>, V: Into<String>> FromIterator<(K, V)> for Env {
    fn from_iter<T: IntoIterator<Item = (K, V)>>(iter: T) -> Self {
        Self(iter.into_iter().map(|(k, v)| (k.into(), v.into())).collect())
    }
}

/// Input that cannot be used; the message names the input.
#[derive(Debug, thiserror::Error)]
#[error("input `{input}`: {problem}")]
pub struct InputError {
    pub input: String,
    pub problem: String,
}

impl InputError {
    pub fn new(input: &str, problem: impl Into<String>) -> Self {
        Self { input: input.to_owned(), problem: problem.into() }
    }
}

impl RawInputs {
    /// Layers GitHub inputs, then `CUTOVER_` vars, then `flags`.
    pub fn layered(env: &Env, flags: &RawInputs) -> Result<RawInputs, InputError> {
        let github = Self::from_env_prefix(env, "INPUT_")?;
        let cutover = Self::from_env_prefix(env, "CUTOVER_")?;
        let mut merged = Map::new();
        for layer in [github, cutover, flags.clone()] {
            let Value::Object(fields) = to_value(&layer) else { continue };
            merged.extend(fields.into_iter().filter(|(_, v)| matches!(v, Value::String(s) if !s.is_empty())));
        }
        serde_json::from_value(Value::Object(merged)).map_err(|e| InputError::new("inputs", e.to_string()))
    }

    fn from_env_prefix(env: &Env, prefix: &str) -> Result<RawInputs, InputError> {
        let vars = env.0.iter().filter_map(|(name, value)| {
            let rest = name.strip_prefix(prefix)?;
            (!value.is_empty()).then(|| (rest.replace(['-', ' '], "_"), value.clone()))
        });
        envy::from_iter(vars).map_err(|e| InputError::new(prefix, e.to_string()))
    }

    /// The given value, else the input's default.
    fn value(&self, field: &str) -> Option<String> {
        let given = to_value(self).get(field).and_then(Value::as_str).map(str::to_owned);
        given.or_else(|| spec(field).default.map(str::to_owned))
    }
}

fn to_value(raw: &RawInputs) -> Value {
    serde_json::to_value(raw).unwrap_or(Value::Null)
}

fn spec(field: &str) -> &'static InputSpec {
    INPUTS.iter().find(|s| s.field == field).unwrap_or_else(|| panic!("input {field} is not defined"))
}

/// Where releases and the pointer live.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Backend {
    /// The embedded default: a local directory.
    Local {
        dir: PathBuf,
    },
    Aws {
        bucket: String,
        region: Option<String>,
        path_style: bool,
    },
}

/// Where the active version is recorded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PointerSpec {
    File,
    Ssm { parameter: String },
    CloudFront { distribution: String, origin: Option<String>, invalidation: Option<Invalidation> },
}

#[derive(Debug, Clone)]
pub struct SmokePlan {
    pub paths: Vec<String>,
    pub expect_text: Option<String>,
    pub expect_status: u16,
    pub timeout: Duration,
}

/// Facts about the CI run, recorded with each release and promotion.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct RunInfo {
    pub git_sha: Option<String>,
    pub git_ref: Option<String>,
    pub run_url: Option<String>,
}

/// The validated plan every command runs from.
#[derive(Debug, Clone)]
pub struct Plan {
    pub dist_dir: PathBuf,
    pub backend: Backend,
    pub prefix: String,
    /// The version this run releases, if one could be resolved.
    pub version: Option<String>,
    pub pointer: PointerSpec,
    pub site_url: Option<Url>,
    pub distribution_id: Option<String>,
    pub smoke: SmokePlan,
    pub concurrency: usize,
    pub keep: Option<usize>,
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
        let text = |field: &str| raw.value(field);
        let prefix = parse_prefix(&text("prefix").unwrap_or_default())?;
        let backend = match text("bucket") {
            None => Backend::Local { dir: PathBuf::from(text("store_dir").unwrap_or_default()) },
            Some(bucket) => {
                validate_bucket(&bucket)?;
                let endpoint_overridden = env.is_set("AWS_ENDPOINT_URL") || env.is_set("AWS_ENDPOINT_URL_S3");
                let path_style = match text("s3_path_style") {
                    Some(v) => parse_bool("s3-path-style", &v)?,
                    None => endpoint_overridden,
                };
                Backend::Aws { bucket, region: text("region"), path_style }
            }
        };
        let mut pointer = parse_pointer(text("pointer").as_deref(), &backend, &prefix)?;
        if let PointerSpec::CloudFront { invalidation, .. } = &mut pointer {
            *invalidation = parse_invalidation(&text)?;
        }
        let version = match text("version") {
            Some(v) => Some(version::validate(&v).map_err(|p| InputError::new("version", p))?),
            None => version::from_ci(env)
                .map(|(v, source)| version::validate(&v).map_err(|p| InputError::new(source, p)))
                .transpose()?,
        };
        let site_url = text("site_url").map(|u| parse_url("site-url", &u)).transpose()?;
        let smoke = SmokePlan {
            paths: parse_smoke_paths(&text("smoke_paths").unwrap_or_default())?,
            expect_text: text("smoke_expect_text"),
            expect_status: parse_status(&text("smoke_status").unwrap_or_default())?,
            timeout: parse_duration("smoke-timeout", &text("smoke_timeout").unwrap_or_default())?,
        };
        let concurrency = parse_count("concurrency", &text("concurrency").unwrap_or_default())?;
        if concurrency == 0 || concurrency > 1024 {
            return Err(InputError::new("concurrency", format!("{concurrency} is not between 1 and 1024")));
        }
        let keep = text("keep").map(|k| parse_count("keep", &k)).transpose()?;
        let rollback_to =
            text("to").map(|v| version::validate(&v).map_err(|p| InputError::new("to", p))).transpose()?;
        let cache_rules = CacheRules::parse(text("cache_control").as_deref().unwrap_or(""))
            .map_err(|p| InputError::new("cache-control", p))?;
        let lock_lease = parse_duration("lock-lease", &text("lock_lease").unwrap_or_default())?;
        let listen_text = text("listen").unwrap_or_default();
        let listen = listen_text
            .parse()
            .map_err(|_| InputError::new("listen", format!("{listen_text:?} is not an address like 127.0.0.1:8080")))?;
        let edge = EdgeNames {
            query: parse_name("override-query", &text("override_query").unwrap_or_default())?,
            version_cookie: parse_name("version-cookie", &text("version_cookie").unwrap_or_default())?,
            override_cookie: parse_name("override-cookie", &text("override_cookie").unwrap_or_default())?,
        };
        let edge_cache = parse_duration("edge-cache", &text("edge_cache").unwrap_or_default())?;
        Ok(Plan {
            dist_dir: PathBuf::from(text("dist_dir").unwrap_or_default()),
            backend,
            prefix,
            version,
            pointer,
            site_url,
            distribution_id: text("distribution_id")
                .map(|d| parse_distribution_id("distribution-id", &d))
                .transpose()?,
            smoke,
            concurrency,
            keep,
            rollback_to,
            release_secret_files: parse_bool(
                "release-secret-files",
                &text("release_secret_files").unwrap_or_default(),
            )?,
            take_over_pointer: parse_bool("take-over-pointer", &text("take_over_pointer").unwrap_or_default())?,
            cache_rules,
            lock_lease,
            edge,
            edge_cache,
            listen,
            dry_run: parse_bool("dry-run", &text("dry_run").unwrap_or_default())?,
            json: parse_bool("json", &text("json").unwrap_or_default())?,
            run: run_info(env),
        })
    }

    /// The version this run releases, or a bad-input error saying how to give one.
    pub fn require_version(&self) -> Result<&str, InputError> {
        self.version.as_deref().ok_or_else(|| {
            InputError::new("version", "not given and no git tag or CI run number found in the environment")
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

/// A prefix without its trailing `/`; the bucket root (`""`) only when asked for as `/`.
fn parse_prefix(text: &str) -> Result<String, InputError> {
    let bad = |why: &str| InputError::new("prefix", format!("{text:?} {why}"));
    if text == "/" {
        return Ok(String::new());
    }
    let trimmed = text.strip_suffix('/').unwrap_or(text);
    if trimmed.is_empty() {
        return Err(bad("is empty: leave prefix unset for `site`, or give `/` for the bucket root"));
    }
    if trimmed.starts_with('/') {
        return Err(bad("must not start with '/'"));
    }
    for segment in trimmed.split('/') {
        if segment.is_empty() {
            return Err(bad("has an empty segment ('//')"));
        }
        if segment == "." || segment == ".." || segment.starts_with('_') {
            return Err(bad("has a segment that is '.', '..' or starts with '_'"));
        }
        if !segment.chars().all(|c| c.is_ascii_alphanumeric() || "._-".contains(c)) {
            return Err(bad("may hold only letters, digits, '.', '_', '-' and '/'"));
        }
    }
    Ok(trimmed.to_owned())
}

fn validate_bucket(bucket: &str) -> Result<(), InputError> {
    let ok = (3..=63).contains(&bucket.len())
        && bucket.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '.')
        && bucket.starts_with(|c: char| c.is_ascii_alphanumeric())
        && bucket.ends_with(|c: char| c.is_ascii_alphanumeric());
    if ok { Ok(()) } else { Err(InputError::new("bucket", format!("{bucket:?} is not a valid S3 bucket name"))) }
}

fn parse_pointer(text: Option<&str>, backend: &Backend, prefix: &str) -> Result<PointerSpec, InputError> {
    match (text, backend) {
        (None, Backend::Local { .. }) | (Some("file"), Backend::Local { .. }) => Ok(PointerSpec::File),
        (Some("file"), Backend::Aws { .. }) => {
            Err(InputError::new("pointer", "file works only on the embedded store; use ssm:<parameter-name>"))
        }
        (None, Backend::Aws { bucket, .. }) => {
            let site = [bucket.as_str(), prefix].iter().filter(|s| !s.is_empty()).copied().collect::<Vec<_>>();
            Ok(PointerSpec::Ssm { parameter: format!("/cutover/{}/active", site.join("/")) })
        }
        (Some(spec), _) => match spec.split_once(':') {
            Some(("ssm", name)) if valid_parameter_name(name) => {
                if matches!(backend, Backend::Local { .. }) {
                    return Err(InputError::new("pointer", "ssm needs a bucket; set `bucket` or use pointer file"));
                }
                Ok(PointerSpec::Ssm { parameter: name.to_owned() })
            }
            Some(("cloudfront", target)) => {
                if matches!(backend, Backend::Local { .. }) {
                    return Err(InputError::new(
                        "pointer",
                        "cloudfront needs a bucket; set `bucket` or use pointer file",
                    ));
                }
                let (distribution, origin) = match target.split_once('/') {
                    Some((distribution, origin)) => (distribution, Some(origin)),
                    None => (target, None),
                };
                let origin_ok = origin.is_none_or(|o| !o.is_empty() && !o.chars().any(char::is_control));
                if parse_distribution_id("pointer", distribution).is_err() || !origin_ok {
                    return Err(InputError::new(
                        "pointer",
                        format!(
                            "{spec:?} is not cloudfront:<distribution-id>[/<origin-id>] (an ID like E2QWRUHAPOMQZL)"
                        ),
                    ));
                }
                Ok(PointerSpec::CloudFront {
                    distribution: distribution.to_owned(),
                    origin: origin.map(str::to_owned),
                    invalidation: None,
                })
            }
            Some(("ssm", name)) => Err(InputError::new(
                "pointer",
                format!("{name:?} is not an SSM parameter name (letters, digits, _.-/, at most 1011 chars)"),
            )),
            _ => Err(InputError::new(
                "pointer",
                format!(
                    "{spec:?} is not a known pointer; use ssm:<parameter-name>, cloudfront:<distribution-id> or file"
                ),
            )),
        },
    }
}

/// What a `cloudfront:` flip invalidates, and how long it waits.
fn parse_invalidation(text: &impl Fn(&str) -> Option<String>) -> Result<Option<Invalidation>, InputError> {
    if !parse_bool("invalidate", &text("invalidate").unwrap_or_default())? {
        return Ok(None);
    }
    let raw = text("invalidation_paths").unwrap_or_default();
    let paths: Vec<String> =
        raw.split([',', '\n']).map(str::trim).filter(|p| !p.is_empty()).map(str::to_owned).collect();
    if paths.is_empty() || paths.iter().any(|p| !p.starts_with('/') || p.chars().any(char::is_control)) {
        return Err(InputError::new("invalidation-paths", format!("{raw:?} must list paths starting with '/'")));
    }
    let wait = parse_duration("invalidation-wait", &text("invalidation_wait").unwrap_or_default())?;
    Ok(Some(Invalidation { paths, wait: (!wait.is_zero()).then_some(wait) }))
}

/// A CloudFront distribution ID, like `E2QWRUHAPOMQZL`.
fn parse_distribution_id(input: &str, id: &str) -> Result<String, InputError> {
    let ok = !id.is_empty() && id.len() <= 64 && id.chars().all(|c| c.is_ascii_uppercase() || c.is_ascii_digit());
    if ok {
        Ok(id.to_owned())
    } else {
        Err(InputError::new(input, format!("{id:?} is not a distribution ID like E2QWRUHAPOMQZL")))
    }
}

fn valid_parameter_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 1011
        && name.chars().all(|c| c.is_ascii_alphanumeric() || "_.-/".contains(c))
        && !name.contains("//")
}

fn parse_url(input: &str, text: &str) -> Result<Url, InputError> {
    let url = Url::parse(text).map_err(|e| InputError::new(input, format!("{text:?} is not a URL: {e}")))?;
    if !matches!(url.scheme(), "http" | "https") || url.host().is_none() {
        return Err(InputError::new(input, format!("{text:?} is not an http(s) URL with a host")));
    }
    Ok(url)
}

fn parse_smoke_paths(text: &str) -> Result<Vec<String>, InputError> {
    let paths: Vec<String> =
        text.split([',', '\n']).map(str::trim).filter(|p| !p.is_empty()).map(str::to_owned).collect();
    if paths.is_empty() {
        return Err(InputError::new("smoke-paths", "no path given"));
    }
    match paths.iter().find(|p| !p.starts_with('/') || p.chars().any(char::is_whitespace)) {
        Some(bad) => Err(InputError::new("smoke-paths", format!("{bad:?} must start with '/' and hold no spaces"))),
        None => Ok(paths),
    }
}

fn parse_status(text: &str) -> Result<u16, InputError> {
    match text.trim().parse::<u16>() {
        Ok(status) if (100..=599).contains(&status) => Ok(status),
        _ => Err(InputError::new("smoke-status", format!("{text:?} is not an HTTP status"))),
    }
}

fn parse_duration(input: &str, text: &str) -> Result<Duration, InputError> {
    let text = text.trim();
    let parsed = match text.parse::<u64>() {
        Ok(seconds) => Ok(Duration::from_secs(seconds)),
        Err(_) => humantime::parse_duration(text),
    };
    parsed.map_err(|_| InputError::new(input, format!("{text:?} is not a duration like 90s or 2m")))
}

/// A query parameter or cookie name: a non-empty token.
fn parse_name(input: &str, text: &str) -> Result<String, InputError> {
    let ok =
        !text.is_empty() && text.len() <= 64 && text.chars().all(|c| c.is_ascii_alphanumeric() || "_-.".contains(c));
    if ok {
        Ok(text.to_owned())
    } else {
        Err(InputError::new(input, format!("{text:?} is not a name of letters, digits, '_', '-' or '.'")))
    }
}

fn parse_count(input: &str, text: &str) -> Result<usize, InputError> {
    text.trim().parse().map_err(|_| InputError::new(input, format!("{text:?} is not a whole number")))
}

fn parse_bool(input: &str, text: &str) -> Result<bool, InputError> {
    match text.trim().to_ascii_lowercase().as_str() {
        "true" | "1" | "yes" => Ok(true),
        "false" | "0" | "no" => Ok(false),
        _ => Err(InputError::new(input, format!("{text:?} is not true or false"))),
    }
}

fn run_info(env: &Env) -> RunInfo {
    let github_run = match (env.get("GITHUB_SERVER_URL"), env.get("GITHUB_REPOSITORY"), env.get("GITHUB_RUN_ID")) {
        (Some(server), Some(repo), Some(id)) => Some(format!("{server}/{repo}/actions/runs/{id}")),
        _ => None,
    };
    let first = |names: &[&str]| names.iter().find_map(|n| env.get(n)).map(str::to_owned);
    RunInfo {
        git_sha: first(&["GITHUB_SHA", "CIRCLE_SHA1", "BUILD_VCS_NUMBER"]),
        git_ref: first(&["GITHUB_REF", "CIRCLE_TAG", "CIRCLE_BRANCH", "CUTOVER_GIT_REF"]),
        run_url: github_run.or_else(|| first(&["CIRCLE_BUILD_URL", "BUILD_URL"])),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plan(vars: &[(&str, &str)]) -> Result<Plan, InputError> {
        let env: Env = vars.iter().copied().collect();
        Plan::resolve(&RawInputs::layered(&env, &RawInputs::default())?, &env)
    }

    #[test]
    fn github_inputs_are_read_in_both_spellings() {
        let p = plan(&[("INPUT_DIST-DIR", "out"), ("INPUT_SITE_URL", "https://example.com")]).unwrap();
        assert_eq!(p.dist_dir, PathBuf::from("out"));
        assert_eq!(p.site_url.unwrap().as_str(), "https://example.com/");
    }

    #[test]
    fn cutover_vars_beat_github_inputs_and_flags_beat_both() {
        let env: Env = [("INPUT_PREFIX", "a"), ("CUTOVER_PREFIX", "b")].into_iter().collect();
        let raw = RawInputs::layered(&env, &RawInputs::default()).unwrap();
        assert_eq!(Plan::resolve(&raw, &env).unwrap().prefix, "b");
        let flags = RawInputs { prefix: Some("c".into()), ..Default::default() };
        let raw = RawInputs::layered(&env, &flags).unwrap();
        assert_eq!(Plan::resolve(&raw, &env).unwrap().prefix, "c");
    }

    #[test]
    fn empty_values_count_as_unset() {
        let p = plan(&[("INPUT_PREFIX", ""), ("INPUT_BUCKET", "")]).unwrap();
        assert_eq!(p.prefix, "site");
        assert!(matches!(p.backend, Backend::Local { .. }));
    }

    #[test]
    fn prefix_empty_means_the_default_and_slash_the_bucket_root() {
        let flag = |prefix: &str| {
            let flags = RawInputs { prefix: Some(prefix.into()), ..Default::default() };
            Plan::resolve(&RawInputs::layered(&Env::default(), &flags).unwrap(), &Env::default()).map(|p| p.prefix)
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
        assert!(spec("prefix").description.contains("`/` asks for the bucket root"));
    }

    #[test]
    fn bucket_selects_aws_with_a_default_ssm_pointer_and_path_style_under_an_endpoint() {
        let p = plan(&[("CUTOVER_BUCKET", "my-site"), ("AWS_ENDPOINT_URL", "http://127.0.0.1:5000")]).unwrap();
        assert_eq!(p.backend, Backend::Aws { bucket: "my-site".into(), region: None, path_style: true });
        assert_eq!(p.pointer, PointerSpec::Ssm { parameter: "/cutover/my-site/site/active".into() });
        let p = plan(&[("CUTOVER_BUCKET", "my-site")]).unwrap();
        assert_eq!(p.backend, Backend::Aws { bucket: "my-site".into(), region: None, path_style: false });
    }

    #[test]
    fn cloudfront_pointers_carry_their_invalidation() {
        let p =
            plan(&[("CUTOVER_BUCKET", "bkt"), ("CUTOVER_POINTER", "cloudfront:E2QWRUHAPOMQZL/site-origin")]).unwrap();
        let invalidation = Some(Invalidation { paths: vec!["/*".into()], wait: None });
        let expected = PointerSpec::CloudFront {
            distribution: "E2QWRUHAPOMQZL".into(),
            origin: Some("site-origin".into()),
            invalidation,
        };
        assert_eq!(p.pointer, expected);
        let p =
            plan(&[("CUTOVER_BUCKET", "bkt"), ("CUTOVER_POINTER", "cloudfront:E1"), ("CUTOVER_INVALIDATE", "false")])
                .unwrap();
        assert!(matches!(p.pointer, PointerSpec::CloudFront { invalidation: None, origin: None, .. }));
        let p = plan(&[
            ("CUTOVER_BUCKET", "bkt"),
            ("CUTOVER_POINTER", "cloudfront:E1"),
            ("CUTOVER_INVALIDATION_PATHS", "/index.html, /assets/*"),
            ("CUTOVER_INVALIDATION_WAIT", "5m"),
        ])
        .unwrap();
        let PointerSpec::CloudFront { invalidation: Some(i), .. } = p.pointer else { panic!() };
        assert_eq!((i.paths, i.wait), (vec!["/index.html".into(), "/assets/*".into()], Some(Duration::from_secs(300))));
    }

    #[test]
    fn version_comes_from_tag_then_run_number() {
        let p = plan(&[("GITHUB_REF_TYPE", "tag"), ("GITHUB_REF_NAME", "v1.2.3"), ("GITHUB_RUN_NUMBER", "7")]).unwrap();
        assert_eq!(p.version.as_deref(), Some("v1.2.3"));
        assert_eq!(plan(&[("BUILD_NUMBER", "41")]).unwrap().version.as_deref(), Some("41"));
        assert_eq!(plan(&[("CUTOVER_VERSION", "x9"), ("BUILD_NUMBER", "41")]).unwrap().version.as_deref(), Some("x9"));
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
            (
                &[("CUTOVER_BUCKET", "bkt"), ("CUTOVER_POINTER", "cloudfront:E1"), ("CUTOVER_INVALIDATION_PATHS", "x")],
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
        ];
        for (vars, input) in cases {
            let err = plan(vars).expect_err(&format!("{vars:?} should be refused"));
            assert_eq!(err.input, *input, "{vars:?}: {err}");
            assert!(err.to_string().starts_with(&format!("input `{input}`")), "{err}");
        }
    }
}
