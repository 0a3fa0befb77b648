//! Which version a run releases, what a version may look like, and how versions order.

use std::cmp::Ordering;

use chrono::{DateTime, Utc};

use crate::inputs::Env;

/// Checks a version against `[A-Za-z0-9][A-Za-z0-9._-]{0,127}`; returns it or the problem.
pub fn validate(version: &str) -> Result<String, String> {
    if is_valid(version) {
        Ok(version.to_owned())
    } else {
        Err(format!(
            "{version:?} is not a version: use 1 to 128 letters, digits, '.', '_' or '-', starting with a letter or digit"
        ))
    }
}

pub fn is_valid(version: &str) -> bool {
    let mut chars = version.chars();
    version.len() <= 128
        && chars.next().is_some_and(|c| c.is_ascii_alphanumeric())
        && chars.all(|c| c.is_ascii_alphanumeric() || "._-".contains(c))
}

/// The version the CI run implies: a git tag, else the run number; with the variable it came from.
///
/// TeamCity knows a build's tag only as a parameter: its recipe maps `%teamcity.build.branch%` to
/// `CUTOVER_GIT_REF`, which names a tag as `refs/tags/<tag>`.
pub fn from_ci(env: &Env) -> Option<(String, &'static str)> {
    let tag = match env.get("GITHUB_REF_TYPE") {
        Some("tag") => env.get("GITHUB_REF_NAME").map(|t| (t, "GITHUB_REF_NAME")),
        _ => None,
    };
    let tag = tag.or_else(|| env.get("CIRCLE_TAG").map(|t| (t, "CIRCLE_TAG"))).or_else(|| {
        env.get("CUTOVER_GIT_REF").and_then(|r| r.strip_prefix("refs/tags/")).map(|t| (t, "CUTOVER_GIT_REF"))
    });
    let run = || {
        ["GITHUB_RUN_NUMBER", "BUILD_NUMBER", "CIRCLE_BUILD_NUM"]
            .into_iter()
            .find_map(|name| env.get(name).map(|n| (n, name)))
    };
    tag.or_else(run).map(|(v, name)| (v.to_owned(), name))
}

/// Orders two versions by their text alone: both numbers, or both semver (an optional leading `v`).
pub fn compare_text(a: &str, b: &str) -> Option<Ordering> {
    if let (Some(x), Some(y)) = (as_number(a), as_number(b)) {
        return Some(x.len().cmp(&y.len()).then_with(|| x.cmp(y)));
    }
    match (as_semver(a), as_semver(b)) {
        (Some(x), Some(y)) => Some(x.cmp_precedence(&y)),
        _ => None,
    }
}

/// Orders two releases: by their versions where the text allows, else by when they were recorded.
pub fn compare(a: (&str, DateTime<Utc>), b: (&str, DateTime<Utc>)) -> Ordering {
    compare_text(a.0, b.0).unwrap_or_else(|| a.1.cmp(&b.1))
}

/// Digits without leading zeros, so that length then text orders them as numbers of any size.
fn as_number(v: &str) -> Option<&str> {
    if v.is_empty() || !v.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let trimmed = v.trim_start_matches('0');
    Some(if trimmed.is_empty() { "0" } else { trimmed })
}

fn as_semver(v: &str) -> Option<semver::Version> {
    semver::Version::parse(v.strip_prefix(['v', 'V']).unwrap_or(v)).ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn valid_versions() {
        for ok in ["1", "41", "v1.2.3", "2024-01-01_rc.1", &"a".repeat(128)] {
            assert!(is_valid(ok), "{ok}");
        }
        for bad in ["", "_cutover", ".hidden", "-x", "a/b", "..", "a b", "ä", &"a".repeat(129), "1\n2"] {
            assert!(!is_valid(bad), "{bad:?}");
        }
    }

    #[test]
    fn numbers_order_as_numbers_and_semver_as_semver() {
        assert_eq!(compare_text("10", "9"), Some(Ordering::Greater));
        assert_eq!(compare_text("007", "7"), Some(Ordering::Equal));
        assert_eq!(compare_text("123456789012345678901234567890", "99"), Some(Ordering::Greater));
        assert_eq!(compare_text("v1.2.10", "v1.2.9"), Some(Ordering::Greater));
        assert_eq!(compare_text("1.0.0-rc.1", "v1.0.0"), Some(Ordering::Less));
        assert_eq!(compare_text("main-abc", "main-abd"), None);
        assert_eq!(compare_text("12", "v1.0.0"), None);
    }

    #[test]
    fn other_versions_order_by_record_time() {
        let early = Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).unwrap();
        let late = Utc.with_ymd_and_hms(2026, 1, 2, 0, 0, 0).unwrap();
        assert_eq!(compare(("zeta", early), ("alpha", late)), Ordering::Less);
        assert_eq!(compare(("10", early), ("9", late)), Ordering::Greater);
    }

    #[test]
    fn ci_version_sources() {
        let env: Env = [("CIRCLE_TAG", "v2.0.0"), ("CIRCLE_BUILD_NUM", "5")].into_iter().collect();
        assert_eq!(from_ci(&env), Some(("v2.0.0".into(), "CIRCLE_TAG")));
        let env: Env = [("GITHUB_REF_TYPE", "branch"), ("GITHUB_REF_NAME", "main"), ("GITHUB_RUN_NUMBER", "12")]
            .into_iter()
            .collect();
        assert_eq!(from_ci(&env), Some(("12".into(), "GITHUB_RUN_NUMBER")));
        assert_eq!(from_ci(&Env::default()), None);
        let env: Env = [("CUTOVER_GIT_REF", "refs/tags/v3.1.0"), ("BUILD_NUMBER", "77")].into_iter().collect();
        assert_eq!(from_ci(&env), Some(("v3.1.0".into(), "CUTOVER_GIT_REF")));
        let env: Env = [("CUTOVER_GIT_REF", "main"), ("BUILD_NUMBER", "77")].into_iter().collect();
        assert_eq!(from_ci(&env), Some(("77".into(), "BUILD_NUMBER")));
    }
}
