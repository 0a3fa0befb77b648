//! Checks that turn one input's text into its value: names by AWS's own rules, bounded durations
//! and counts, paths, flags. Each error names the input it is about.

use std::net::SocketAddr;
use std::time::Duration;

use super::InputError;

/// A prefix without its trailing `/`; the bucket root (`""`) only when asked for as `/`.
pub(super) fn parse_prefix(text: &str) -> Result<String, InputError> {
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
pub(super) fn validate_bucket(bucket: &str) -> Result<(), InputError> {
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

/// A CloudFront distribution ID: CloudFront's are `E` and 13 more capitals and digits
/// (`E2QWRUHAPOMQZL`); moto's are 13 long and start with any capital; AWS's documentation uses the
/// 15-long `EDFDVBD6EXAMPLE`. A capital, then 12 to 14 capitals or digits.
pub(super) fn parse_distribution_id(input: &str, id: &str) -> Result<String, InputError> {
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
pub(super) fn parameter_name_problem(name: &str, region: Option<&str>) -> Option<String> {
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

/// Paths separated by commas or newlines, blanks left out.
fn path_list(text: &str) -> Vec<String> {
    text.split([',', '\n']).map(str::trim).filter(|p| !p.is_empty()).map(str::to_owned).collect()
}

pub(super) fn parse_smoke_paths(text: &str) -> Result<Vec<String>, InputError> {
    let paths = path_list(text);
    if paths.is_empty() {
        return Err(InputError::new("smoke-paths", "no path given"));
    }
    match paths.iter().find(|p| !p.starts_with('/') || p.chars().any(char::is_whitespace)) {
        Some(bad) => Err(InputError::new("smoke-paths", format!("{bad:?} must start with '/' and hold no spaces"))),
        None => Ok(paths),
    }
}

pub(super) fn parse_invalidation_paths(text: &str) -> Result<Vec<String>, InputError> {
    let paths = path_list(text);
    if paths.is_empty() || paths.iter().any(|p| !p.starts_with('/') || p.chars().any(char::is_control)) {
        return Err(InputError::new("invalidation-paths", format!("{text:?} must list paths starting with '/'")));
    }
    Ok(paths)
}

pub(super) fn parse_listen(text: &str) -> Result<SocketAddr, InputError> {
    text.parse().map_err(|_| InputError::new("listen", format!("{text:?} is not an address like 127.0.0.1:8080")))
}

pub(super) fn parse_status(text: &str) -> Result<u16, InputError> {
    match text.trim().parse::<u16>() {
        Ok(status) if (100..=599).contains(&status) => Ok(status),
        _ => Err(InputError::new("smoke-status", format!("{text:?} is not an HTTP status"))),
    }
}

/// The values a numeric input accepts. Every duration and count is bounded up front, so no later
/// arithmetic on it (deadlines, lock expiry) can overflow; each input's description names its range.
pub(super) struct Bounds<T> {
    pub(super) input: &'static str,
    pub(super) min: T,
    pub(super) max: T,
}

pub(super) const HOUR: Duration = Duration::from_secs(3600);
/// `0s` tries once; an hour is as long as a CI job should wait for an edge.
pub(super) const SMOKE_TIMEOUT: Bounds<Duration> = Bounds { input: "smoke-timeout", min: Duration::ZERO, max: HOUR };
/// CloudFront invalidations finish in minutes; past an hour the edges catch up without us.
pub(super) const INVALIDATION_WAIT: Bounds<Duration> =
    Bounds { input: "invalidation-wait", min: Duration::ZERO, max: HOUR };
/// A crashed run's lock blocks every other run for a lease: an hour at most.
pub(super) const LOCK_LEASE: Bounds<Duration> = Bounds { input: "lock-lease", min: Duration::from_secs(1), max: HOUR };
/// A promotion reaches visitors within this: more than an hour makes a rollback useless.
pub(super) const EDGE_CACHE: Bounds<Duration> = Bounds { input: "edge-cache", min: Duration::ZERO, max: HOUR };
/// A preview outlives a review cycle; past a month an open pull request gets a fresh one by a push.
pub(super) const PREVIEW_TTL: Bounds<Duration> =
    Bounds { input: "preview-ttl", min: HOUR, max: Duration::from_secs(30 * 24 * 3600) };
/// A tab kept open past a month has reloaded anyway (a browser update, a restart); 0s turns the window off.
pub(super) const SKEW_WINDOW: Bounds<Duration> =
    Bounds { input: "skew-window", min: Duration::ZERO, max: Duration::from_secs(30 * 24 * 3600) };
/// Uploads stop getting faster far below 1024 at once (README, Performance: at 32 on two cores).
pub(super) const CONCURRENCY: Bounds<usize> = Bounds { input: "concurrency", min: 1, max: 1024 };
/// More releases than any site keeps; a larger number means "keep all" anyway.
pub(super) const KEEP: Bounds<usize> = Bounds { input: "keep", min: 0, max: 100_000 };

impl Bounds<Duration> {
    pub(super) fn range(&self) -> String {
        format!("{} to {}", humantime::format_duration(self.min), humantime::format_duration(self.max))
    }
}

impl Bounds<usize> {
    pub(super) fn range(&self) -> String {
        format!("{} to {}", self.min, self.max)
    }
}

pub(super) fn parse_duration(bounds: &Bounds<Duration>, text: &str) -> Result<Duration, InputError> {
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

/// `preview-domain`: a lowercase DNS name of two or more labels, short enough that
/// `pr-<n>.<domain>` is one too (253 characters).
pub(super) fn parse_preview_domain(text: &str) -> Result<String, InputError> {
    let label_ok = |l: &str| {
        (1..=63).contains(&l.len())
            && l.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
            && !l.starts_with('-')
            && !l.ends_with('-')
    };
    let labels: Vec<&str> = text.split('.').collect();
    if labels.len() >= 2 && labels.iter().all(|l| label_ok(l)) && text.len() + "pr-999999999.".len() <= 253 {
        Ok(text.to_owned())
    } else {
        Err(InputError::new(
            "preview-domain",
            format!(
                "{text:?} is not a domain like preview.example.com: lowercase labels of letters, digits and '-', no port, no trailing dot"
            ),
        ))
    }
}

/// A query parameter or cookie name: a non-empty token.
pub(super) fn parse_name(input: &str, text: &str) -> Result<String, InputError> {
    let ok =
        !text.is_empty() && text.len() <= 64 && text.chars().all(|c| c.is_ascii_alphanumeric() || "_-.".contains(c));
    if ok {
        Ok(text.to_owned())
    } else {
        Err(InputError::new(input, format!("{text:?} is not a name of letters, digits, '_', '-' or '.'")))
    }
}

pub(super) fn parse_count(bounds: &Bounds<usize>, text: &str) -> Result<usize, InputError> {
    match text.trim().parse() {
        Ok(count) if (bounds.min..=bounds.max).contains(&count) => Ok(count),
        _ => Err(InputError::new(bounds.input, format!("{text:?} is not a whole number from {}", bounds.range()))),
    }
}

pub(super) fn parse_bool(input: &str, text: &str) -> Result<bool, InputError> {
    match text.trim().to_ascii_lowercase().as_str() {
        "true" | "1" | "yes" => Ok(true),
        "false" | "0" | "no" => Ok(false),
        _ => Err(InputError::new(input, format!("{text:?} is not true or false"))),
    }
}
