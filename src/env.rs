//! The process environment, read once: everything else asks this snapshot, so a test can hand a
//! run any environment it likes and no module reads `std::env` behind the plan's back.

use std::collections::HashMap;

/// A snapshot of the process environment; the only place that reads `std::env` (`clippy.toml`).
#[derive(Debug, Clone, Default)]
pub struct Env(HashMap<String, String>);

impl Env {
    /// The variables of this process. A name or value that is not UTF-8 is read lossily (its bad
    /// bytes become U+FFFD), so such an input is refused by its own checks instead of stopping the run.
    // The one read of the process environment that `clippy.toml` allows: everything else gets `Env`.
    #[allow(clippy::disallowed_methods, reason = "the one place that reads the process environment")]
    pub fn from_process() -> Self {
        let lossy = |text: std::ffi::OsString| text.to_string_lossy().into_owned();
        Self(std::env::vars_os().map(|(name, value)| (lossy(name), lossy(value))).collect())
    }

    /// A non-empty variable.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.0.get(name).map(String::as_str).filter(|v| !v.is_empty())
    }

    pub fn is_set(&self, name: &str) -> bool {
        self.get(name).is_some()
    }

    /// Every variable, empty ones included, in no particular order.
    pub fn all(&self) -> impl Iterator<Item = (&str, &str)> {
        self.0.iter().map(|(name, value)| (name.as_str(), value.as_str()))
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
