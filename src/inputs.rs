//! Every input is defined once here; env vars and flags are layered and validated into one [`Plan`].
//!
//! Sources, lowest to highest: GitHub's `INPUT_<NAME>` (both `INPUT_DIST_DIR` and `INPUT_DIST-DIR`),
//! then `CUTOVER_<NAME>`, then command-line flags. An empty value counts as unset, because GitHub
//! passes every declared input, given or not.

use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use serde_json::{Map, Value};

use crate::pointer::cloudfront::Invalidation;
use crate::routing::EdgeNames;
use crate::rules::CacheRules;
use crate::smoke::SiteUrl;
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
        field_name(self.field)
    }
}

/// `DIST_DIR` or `dist_dir` -> `dist-dir`.
fn field_name(field: &str) -> String {
    field.to_ascii_lowercase().replace('_', "-")
}

/// Variables with cutover's prefixes that are read on purpose but are not inputs: the action's
/// and recipes' `command`, TeamCity's tag ref, and the outputs of an earlier cutover step.
const NOT_INPUTS: [&str; 3] = ["COMMAND", "GIT_REF", "OUTPUT_"];

/// A warning for each `CUTOVER_*` or `INPUT_*` variable that names no input, with the closest
/// input (a misspelt input is otherwise silently left at its default), and for two spellings of
/// one input set to different values.
pub fn variable_warnings(env: &Env) -> Vec<String> {
    let mut warnings = Vec::new();
    let mut spellings: BTreeMap<String, Vec<&str>> = BTreeMap::new();
    for (name, value) in &env.0 {
        if let Some(rest) = name.strip_prefix("INPUT_").filter(|_| !value.is_empty()) {
            spellings.entry(rest.replace(['-', ' '], "_")).or_default().push(name);
        }
    }
    for names in spellings.values().filter(|names| names.len() > 1) {
        let values: Vec<&str> = names.iter().filter_map(|n| env.get(n)).collect();
        if values.windows(2).any(|w| w[0] != w[1]) {
            warnings.push(format!(
                "{} are all set, to different values; {} is used",
                names.join(" and "),
                names.iter().find(|n| n.contains('-')).unwrap_or(&names[0])
            ));
        }
    }
    for name in env.0.keys() {
        let Some((prefix, rest)) = ["CUTOVER_", "INPUT_"].iter().find_map(|p| Some((*p, name.strip_prefix(p)?))) else {
            continue;
        };
        let field = rest.replace(['-', ' '], "_").to_ascii_lowercase();
        let known = INPUTS.iter().any(|i| i.field == field)
            || NOT_INPUTS.iter().any(|n| if n.ends_with('_') { rest.starts_with(n) } else { rest == *n });
        if known {
            continue;
        }
        let closest = INPUTS.iter().map(|i| (edit_distance(&field, i.field), i)).min_by_key(|(d, _)| *d);
        let hint = match closest {
            Some((distance, input)) if distance <= 2.max(field.len() / 4) => {
                format!("; did you mean {prefix}{} (input `{}`)?", input.field.to_ascii_uppercase(), input.name())
            }
            _ => "; see the inputs in cutover's README".to_owned(),
        };
        warnings.push(format!("{name} is not an input of cutover and is ignored{hint}"));
    }
    warnings
}

/// Levenshtein distance, for suggesting the input a misspelt variable meant.
fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut diagonal = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let above = row[j + 1];
            row[j + 1] = (diagonal + usize::from(ca != *cb)).min(row[j] + 1).min(above + 1);
            diagonal = above;
        }
    }
    row[b.len()]
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
    /// Public URL of the site, used for the smoke test and the preview link. Credentials in it (`https://user:password@host/`) are sent as Basic auth and shown nowhere.
    site_url = None;
    /// Paths the smoke test requests, separated by commas or newlines.
    smoke_paths = Some("/");
    /// Text every smoke response must contain.
    smoke_expect_text = None;
    /// HTTP status every smoke response must have.
    smoke_status = Some("200");
    /// How long the smoke test keeps retrying, e.g. `90s` or `2m`; 0s to 1h (`0s`: one try).
    smoke_timeout = Some("60s");
    /// How many uploads run at once, 1 to 1024.
    concurrency = Some("32");
    /// Releases to keep when pruning; the active one, the one before it and any staged in the last hour are always kept; 0 to 100000. Unset: no pruning.
    keep = None;
    /// Cache-Control rules, `GLOB=VALUE` separated by newlines or `;`; the first match wins over the defaults.
    cache_control = None;
    /// With a `cloudfront:` pointer: invalidate cached copies after the flip.
    #[arg(num_args = 0..=1, default_missing_value = "true")]
    invalidate = Some("true");
    /// With a `cloudfront:` pointer: the paths to invalidate, separated by commas or newlines.
    invalidation_paths = Some("/*");
    /// With a `cloudfront:` pointer: wait at most this long for the invalidation to complete, 0s to 1h (`0s`: do not wait).
    invalidation_wait = Some("0s");
    /// Release `.git/`, `.env` files and the other secret files listed in the README instead of skipping them with a warning.
    #[arg(num_args = 0..=1, default_missing_value = "true")]
    release_secret_files = Some("false");
    /// Let a promotion replace a pointer value that is not a version cutover knows (refused with exit 4 otherwise).
    #[arg(num_args = 0..=1, default_missing_value = "true")]
    take_over_pointer = Some("false");
    /// How long a deploy lock is honoured before another run may take it over, 1s to 1h.
    lock_lease = Some("2m");
    /// Directory of the embedded local store (used when no bucket is set).
    store_dir = Some(".cutover");
    /// Query parameter that previews a version and pins it with the cookies below.
    override_query = Some("override_build_number");
    /// Cookie naming the pinned version.
    version_cookie = Some("Build-Number");
    /// Cookie that must be `true` for the version cookie to count.
    override_cookie = Some("Override");
    /// How long the CloudFront router trusts the active version it read from SSM, 0s to 1h.
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

    /// The CI system this run is in, by name, if any.
    pub fn ci_name(&self) -> Option<&'static str> {
        let truthy = |name: &str| self.get(name).is_some_and(|v| v.eq_ignore_ascii_case("true") || v == "1");
        if truthy("GITHUB_ACTIONS") {
            Some("GitHub Actions")
        } else if self.is_set("TEAMCITY_VERSION") {
            Some("TeamCity")
        } else if truthy("CIRCLECI") {
            Some("CircleCI")
        } else if self.is_set("JENKINS_URL") {
            Some("Jenkins")
        } else if truthy("TF_BUILD") {
            Some("Azure Pipelines")
        } else if truthy("CI") {
            Some("a CI system (CI is set)")
        } else {
            None
        }
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
        let mut vars: BTreeMap<String, (&str, &str)> = BTreeMap::new();
        for (name, value) in &env.0 {
            let Some(rest) = name.strip_prefix(prefix).filter(|_| !value.is_empty()) else { continue };
            let field = rest.replace(['-', ' '], "_");
            // GitHub writes `INPUT_DIST-DIR`; a workflow may set `INPUT_DIST_DIR` too. The runner's
            // own spelling wins ([`variable_warnings`] tells of a disagreement).
            let runner_spelling = rest.to_ascii_lowercase() == field_name(&field);
            if runner_spelling || !vars.contains_key(&field) {
                vars.insert(field, (name, value));
            }
        }
        let vars = vars.into_iter().map(|(field, (_, value))| (field, value.to_owned()));
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
    pub site_url: Option<SiteUrl>,
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
                Backend::Local { dir: PathBuf::from(text("store_dir").unwrap_or_default()) }
            }
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
        let mut pointer = parse_pointer(text("pointer").as_deref(), &backend, &prefix, env)?;
        if let PointerSpec::CloudFront { invalidation, .. } = &mut pointer {
            *invalidation = parse_invalidation(&text)?;
        }
        let version = match text("version") {
            Some(v) => Some(version::validate(&v).map_err(|p| InputError::new("version", p))?),
            None => version::from_ci(env)
                .map(|(v, source)| version::validate(&v).map_err(|p| InputError::new(source, p)))
                .transpose()?,
        };
        let site_url = text("site_url").map(|u| SiteUrl::parse(&u)).transpose()?;
        let smoke = SmokePlan {
            paths: parse_smoke_paths(&text("smoke_paths").unwrap_or_default())?,
            expect_text: text("smoke_expect_text"),
            expect_status: parse_status(&text("smoke_status").unwrap_or_default())?,
            timeout: parse_duration(&SMOKE_TIMEOUT, &text("smoke_timeout").unwrap_or_default())?,
        };
        let concurrency = parse_count(&CONCURRENCY, &text("concurrency").unwrap_or_default())?;
        let keep = text("keep").map(|k| parse_count(&KEEP, &k)).transpose()?;
        let rollback_to =
            text("to").map(|v| version::validate(&v).map_err(|p| InputError::new("to", p))).transpose()?;
        let cache_rules = CacheRules::parse(text("cache_control").as_deref().unwrap_or(""))
            .map_err(|p| InputError::new("cache-control", p))?;
        let lock_lease = parse_duration(&LOCK_LEASE, &text("lock_lease").unwrap_or_default())?;
        let listen_text = text("listen").unwrap_or_default();
        let listen = listen_text
            .parse()
            .map_err(|_| InputError::new("listen", format!("{listen_text:?} is not an address like 127.0.0.1:8080")))?;
        let edge = EdgeNames {
            query: parse_name("override-query", &text("override_query").unwrap_or_default())?,
            version_cookie: parse_name("version-cookie", &text("version_cookie").unwrap_or_default())?,
            override_cookie: parse_name("override-cookie", &text("override_cookie").unwrap_or_default())?,
        };
        let edge_cache = parse_duration(&EDGE_CACHE, &text("edge_cache").unwrap_or_default())?;
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

/// Beginnings S3 reserves for its own names (general purpose bucket naming rules).
const BUCKET_RESERVED_PREFIXES: &[&str] = &["xn--", "sthree-", "amzn-s3-demo-"];
/// Endings S3 reserves for access point aliases, Multi-Region Access Points, directory and table
/// buckets.
const BUCKET_RESERVED_SUFFIXES: &[&str] = &["-s3alias", "--ol-s3", ".mrap", "--x-s3", "--table-s3"];

/// A general purpose bucket name, by S3's naming rules. Names only us-east-1 allowed before March
/// 2018 (capitals, underscores, up to 255 characters) are refused.
fn validate_bucket(bucket: &str) -> Result<(), InputError> {
    let length = bucket.chars().count();
    let problem = if !(3..=63).contains(&length) {
        format!("has {length} characters; a bucket name has 3 to 63")
    } else if !bucket.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '.') {
        "may hold only lowercase letters, digits, '.' and '-'".to_owned()
    } else if !bucket.starts_with(|c: char| c.is_ascii_alphanumeric())
        || !bucket.ends_with(|c: char| c.is_ascii_alphanumeric())
    {
        "must begin and end with a letter or digit".to_owned()
    } else if bucket.contains("..") {
        "must not hold two adjacent periods".to_owned()
    } else if bucket.split('.').count() == 4 && bucket.split('.').all(|part| part.bytes().all(|b| b.is_ascii_digit())) {
        "must not be formatted as an IP address".to_owned()
    } else if let Some(prefix) = BUCKET_RESERVED_PREFIXES.iter().find(|p| bucket.starts_with(*p)) {
        format!("must not start with {prefix:?}, which S3 reserves")
    } else if let Some(suffix) = BUCKET_RESERVED_SUFFIXES.iter().find(|s| bucket.ends_with(*s)) {
        format!("must not end with {suffix:?}, which S3 reserves")
    } else {
        return Ok(());
    };
    Err(InputError::new("bucket", format!("{bucket:?} is not an S3 bucket name: it {problem}")))
}

fn parse_pointer(text: Option<&str>, backend: &Backend, prefix: &str, env: &Env) -> Result<PointerSpec, InputError> {
    // The region sizes the parameter's ARN, which counts toward SSM's length limit.
    let region = match backend {
        Backend::Aws { region, .. } => region.as_deref().or(env.get("AWS_REGION")).or(env.get("AWS_DEFAULT_REGION")),
        Backend::Local { .. } => None,
    };
    match (text, backend) {
        (None, Backend::Local { .. }) | (Some("file"), Backend::Local { .. }) => Ok(PointerSpec::File),
        (Some("file"), Backend::Aws { .. }) => {
            Err(InputError::new("pointer", "file works only on the embedded store; use ssm:<parameter-name>"))
        }
        (None, Backend::Aws { bucket, .. }) => {
            let site = [bucket.as_str(), prefix].iter().filter(|s| !s.is_empty()).copied().collect::<Vec<_>>();
            let parameter = format!("/cutover/{}/active", site.join("/"));
            if let Some(problem) = parameter_name_problem(&parameter, region) {
                return Err(InputError::new(
                    "prefix",
                    format!(
                        "makes the default pointer ssm:{parameter} unusable: it {problem}; shorten `prefix` or set `pointer`"
                    ),
                ));
            }
            Ok(PointerSpec::Ssm { parameter })
        }
        (Some(spec), _) => match spec.split_once(':') {
            Some(("ssm", name)) => {
                if let Some(problem) = parameter_name_problem(name, region) {
                    return Err(InputError::new(
                        "pointer",
                        format!("{name:?} is not an SSM parameter name: it {problem}"),
                    ));
                }
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
                let distribution = parse_distribution_id("pointer", distribution)?;
                if origin.is_some_and(|o| o.is_empty() || o.chars().any(char::is_control)) {
                    return Err(InputError::new(
                        "pointer",
                        format!(
                            "{spec:?} is not cloudfront:<distribution-id>[/<origin-id>]: the origin ID is empty or has control characters"
                        ),
                    ));
                }
                Ok(PointerSpec::CloudFront { distribution, origin: origin.map(str::to_owned), invalidation: None })
            }
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
    let wait = parse_duration(&INVALIDATION_WAIT, &text("invalidation_wait").unwrap_or_default())?;
    Ok(Some(Invalidation { paths, wait: (!wait.is_zero()).then_some(wait) }))
}

/// A CloudFront distribution ID: CloudFront's are `E` and 13 more capitals and digits
/// (`E2QWRUHAPOMQZL`); moto's are 13 long and start with any capital; AWS's documentation uses the
/// 15-long `EDFDVBD6EXAMPLE`. A capital, then 12 to 14 capitals or digits.
fn parse_distribution_id(input: &str, id: &str) -> Result<String, InputError> {
    let ok = (13..=15).contains(&id.len())
        && id.starts_with(|c: char| c.is_ascii_uppercase())
        && id.chars().all(|c| c.is_ascii_uppercase() || c.is_ascii_digit());
    if ok {
        Ok(id.to_owned())
    } else {
        Err(InputError::new(
            input,
            format!(
                "{id:?} is not a CloudFront distribution ID: 13 to 15 capital letters and digits, a letter first, like E2QWRUHAPOMQZL"
            ),
        ))
    }
}

/// SSM's limit on a parameter name counted with the ARN before it (`arn:aws:ssm:<region>:<account>:parameter/`).
const PARAMETER_ARN_LIMIT: usize = 1011;
/// SSM's deepest parameter hierarchy.
const PARAMETER_LEVELS: usize = 15;

/// Why `name` cannot be a parameter cutover writes, by SSM's PutParameter naming rules; `None` when
/// it can. `region` sizes the ARN; unknown, the longest partition and region are assumed.
fn parameter_name_problem(name: &str, region: Option<&str>) -> Option<String> {
    if name.is_empty() {
        return Some("is empty".into());
    }
    if name.starts_with("arn:") {
        return Some("is an ARN; PutParameter takes the name itself, like /cutover/my-site/active".into());
    }
    if let Some(c) = name.chars().find(|c| !(c.is_ascii_alphanumeric() || "_.-/".contains(*c))) {
        return Some(format!("holds {c:?}; only letters, digits, '_', '.', '-' and '/' are allowed"));
    }
    if name.contains('/') && !name.starts_with('/') {
        return Some(
            "has a '/' but does not start with one; a name in a hierarchy is written in full, like /a/b".into(),
        );
    }
    let levels: Vec<&str> = name.strip_prefix('/').unwrap_or(name).split('/').collect();
    if levels.iter().any(|level| level.is_empty()) {
        return Some("has an empty level ('//' or a '/' at the end)".into());
    }
    if levels.len() > PARAMETER_LEVELS {
        return Some(format!("has {} levels; SSM allows at most {PARAMETER_LEVELS}", levels.len()));
    }
    let first = levels[0].to_ascii_lowercase();
    if first.starts_with("aws") || first.starts_with("ssm") {
        return Some("begins with \"aws\" or \"ssm\" (in any case), which AWS reserves".into());
    }
    let (partition, region) = match region {
        Some(region) if region.starts_with("cn-") => ("aws-cn", region),
        Some(region) if region.starts_with("us-gov-") => ("aws-us-gov", region),
        Some(region) if region.starts_with("eusc-") => ("aws-eusc", region),
        Some(region) => ("aws", region),
        None => ("aws-us-gov", "us-gov-west-1"),
    };
    let arn_prefix = format!("arn:{partition}:ssm:{region}:<account>:parameter/");
    // The account ID in an ARN is 12 digits.
    let length = arn_prefix.len() - "<account>".len() + 12 + levels.join("/").len();
    if length > PARAMETER_ARN_LIMIT {
        return Some(format!(
            "is {length} characters counted with its ARN {arn_prefix}...; SSM allows at most {PARAMETER_ARN_LIMIT}"
        ));
    }
    None
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

/// The values a numeric input accepts. Every duration and count is bounded up front, so no later
/// arithmetic on it (deadlines, lock expiry) can overflow; each input's description names its range.
struct Bounds<T> {
    input: &'static str,
    min: T,
    max: T,
}

const HOUR: Duration = Duration::from_secs(3600);
/// `0s` tries once; an hour is as long as a CI job should wait for an edge.
const SMOKE_TIMEOUT: Bounds<Duration> = Bounds { input: "smoke-timeout", min: Duration::ZERO, max: HOUR };
/// CloudFront invalidations finish in minutes; past an hour the edges catch up without us.
const INVALIDATION_WAIT: Bounds<Duration> = Bounds { input: "invalidation-wait", min: Duration::ZERO, max: HOUR };
/// A crashed run's lock blocks every other run for a lease: an hour at most.
const LOCK_LEASE: Bounds<Duration> = Bounds { input: "lock-lease", min: Duration::from_secs(1), max: HOUR };
/// A promotion reaches visitors within this: more than an hour makes a rollback useless.
const EDGE_CACHE: Bounds<Duration> = Bounds { input: "edge-cache", min: Duration::ZERO, max: HOUR };
/// Uploads stop getting faster far below 1024 at once (README, Performance: at 32 on two cores).
const CONCURRENCY: Bounds<usize> = Bounds { input: "concurrency", min: 1, max: 1024 };
/// More releases than any site keeps; a larger number means "keep all" anyway.
const KEEP: Bounds<usize> = Bounds { input: "keep", min: 0, max: 100_000 };

impl Bounds<Duration> {
    fn range(&self) -> String {
        format!("{} to {}", humantime::format_duration(self.min), humantime::format_duration(self.max))
    }
}

impl Bounds<usize> {
    fn range(&self) -> String {
        format!("{} to {}", self.min, self.max)
    }
}

fn parse_duration(bounds: &Bounds<Duration>, text: &str) -> Result<Duration, InputError> {
    let text = text.trim();
    let parsed = match text.parse::<u64>() {
        Ok(seconds) => Ok(Duration::from_secs(seconds)),
        Err(_) => humantime::parse_duration(text),
    };
    match parsed {
        Ok(duration) if (bounds.min..=bounds.max).contains(&duration) => Ok(duration),
        Ok(_) => Err(InputError::new(bounds.input, format!("{text:?} is out of range: use {}", bounds.range()))),
        Err(_) => Err(InputError::new(
            bounds.input,
            format!("{text:?} is not a duration like 90s or 2m ({})", bounds.range()),
        )),
    }
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

fn parse_count(bounds: &Bounds<usize>, text: &str) -> Result<usize, InputError> {
    match text.trim().parse() {
        Ok(count) if (bounds.min..=bounds.max).contains(&count) => Ok(count),
        _ => Err(InputError::new(bounds.input, format!("{text:?} is not a whole number from {}", bounds.range()))),
    }
}

pub(crate) fn parse_bool(input: &str, text: &str) -> Result<bool, InputError> {
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
        assert_eq!(p.site_url.unwrap().to_string(), "https://example.com/");
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
        let p = plan(&[
            ("CUTOVER_BUCKET", "bkt"),
            ("CUTOVER_POINTER", "cloudfront:E1ABCDEFGHIJKL"),
            ("CUTOVER_INVALIDATE", "false"),
        ])
        .unwrap();
        assert!(matches!(p.pointer, PointerSpec::CloudFront { invalidation: None, origin: None, .. }));
        let p = plan(&[
            ("CUTOVER_BUCKET", "bkt"),
            ("CUTOVER_POINTER", "cloudfront:E1ABCDEFGHIJKL"),
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
            assert_eq!(p.pointer, PointerSpec::Ssm { parameter: name.into() });
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
            assert!(matches!(p.pointer, PointerSpec::CloudFront { distribution, .. } if distribution == id));
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
        ];
        for (vars, input) in cases {
            let err = plan(vars).expect_err(&format!("{vars:?} should be refused"));
            assert_eq!(err.input, *input, "{vars:?}: {err}");
            assert!(err.to_string().starts_with(&format!("input `{input}`")), "{err}");
        }
    }

    #[test]
    fn misspelt_variables_are_named_with_the_input_they_meant() {
        let env: Env = [
            ("CUTOVER_BUCKT", "my-site"),
            ("CUTOVER_KEPE", "3"),
            ("INPUT_SITE-UR", "https://x"),
            ("CUTOVER_TOTALLY_UNRELATED_THING", "x"),
            ("CUTOVER_TO", "3"),
            ("CUTOVER_GIT_REF", "refs/tags/v1"),
            ("CUTOVER_COMMAND", "deploy"),
            ("INPUT_COMMAND", "deploy"),
            ("CUTOVER_OUTPUT_VERSION", "41"),
            ("INPUT_DIST-DIR", "out"),
        ]
        .into_iter()
        .collect();
        let mut warnings = variable_warnings(&env);
        warnings.sort();
        assert_eq!(
            warnings,
            [
                "CUTOVER_BUCKT is not an input of cutover and is ignored; did you mean CUTOVER_BUCKET (input `bucket`)?",
                "CUTOVER_KEPE is not an input of cutover and is ignored; did you mean CUTOVER_KEEP (input `keep`)?",
                "CUTOVER_TOTALLY_UNRELATED_THING is not an input of cutover and is ignored; see the inputs in cutover's README",
                "INPUT_SITE-UR is not an input of cutover and is ignored; did you mean INPUT_SITE_URL (input `site-url`)?",
            ]
        );
    }

    #[test]
    fn two_spellings_of_one_github_input_use_the_runners_and_say_so() {
        let p = plan(&[("INPUT_DIST-DIR", "out"), ("INPUT_DIST_DIR", "other")]).unwrap();
        assert_eq!(p.dist_dir, PathBuf::from("out"));
        let env: Env = [("INPUT_DIST-DIR", "out"), ("INPUT_DIST_DIR", "other")].into_iter().collect();
        let warnings = variable_warnings(&env);
        assert_eq!(warnings.len(), 1, "{warnings:?}");
        assert!(warnings[0].contains("INPUT_DIST-DIR") && warnings[0].contains("INPUT_DIST_DIR"), "{warnings:?}");
        assert!(warnings[0].ends_with("INPUT_DIST-DIR is used"), "{warnings:?}");
        let same: Env = [("INPUT_DIST-DIR", "out"), ("INPUT_DIST_DIR", "out")].into_iter().collect();
        assert!(variable_warnings(&same).is_empty());
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
        let ranges = [SMOKE_TIMEOUT, INVALIDATION_WAIT, LOCK_LEASE, EDGE_CACHE].map(|b| (b.input, b.range()));
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
            let Ok(plan) = RawInputs::layered(env, flags).and_then(|raw| Plan::resolve(&raw, env)) else {
                return Ok(());
            };
            let wait = match &plan.pointer {
                PointerSpec::CloudFront { invalidation: Some(i), .. } => i.wait,
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
                    let flags: RawInputs = serde_json::from_value(serde_json::json!({ spec.field: value })).unwrap();
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
