//! Preview names: which pull request a run builds (from the `pull-request` input or the CI
//! system), the version a preview release gets (`pr-<n>-<run>`), and the alias (`pr-<n>`) that
//! names a pull request's newest preview. A leaf, so the plan, the guards, prune and the edge all
//! tell a preview from a release the same way.

use chrono::{DateTime, Utc};

use crate::env::Env;

/// The largest pull request number accepted: GitHub's, CircleCI's and TeamCity's are far below.
pub const MAX_NUMBER: u64 = 999_999_999;

/// A pull request number, 1 to [`MAX_NUMBER`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PullRequest(u64);

impl PullRequest {
    /// Digits only, no sign, no leading zero, 1 to [`MAX_NUMBER`]; else the problem.
    pub fn parse(text: &str) -> Result<PullRequest, String> {
        let digits = !text.is_empty() && text.len() <= 9 && text.bytes().all(|b| b.is_ascii_digit());
        match text.parse::<u64>() {
            Ok(n) if digits && !text.starts_with('0') && (1..=MAX_NUMBER).contains(&n) => Ok(PullRequest(n)),
            _ => Err(format!("{text:?} is not a pull request number: use 1 to {MAX_NUMBER}, digits only")),
        }
    }

    pub fn number(self) -> u64 {
        self.0
    }

    /// `pr-<n>`: the alias of the pull request's newest preview, as links and the edge name it.
    pub fn alias(self) -> String {
        format!("{ALIAS_PREFIX}{}", self.0)
    }

    /// `pr-<n>-<run>`: the version of this pull request's preview built by `run`.
    pub fn version(self, run: &str) -> String {
        format!("{}-{run}", self.alias())
    }
}

impl std::fmt::Display for PullRequest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.0)
    }
}

const ALIAS_PREFIX: &str = "pr-";

/// The pull request an alias (`pr-<n>`, exactly) names; `None` for anything else.
pub fn alias_of(name: &str) -> Option<PullRequest> {
    name.strip_prefix(ALIAS_PREFIX).and_then(|n| PullRequest::parse(n).ok())
}

/// The pull request whose preview `version` is (`pr-<n>-<run>`); `None` for a release.
pub fn preview_of(version: &str) -> Option<PullRequest> {
    let (number, run) = version.strip_prefix(ALIAS_PREFIX)?.split_once('-')?;
    let pr = PullRequest::parse(number).ok()?;
    (!run.is_empty()).then_some(pr)
}

/// Whether `version` names a preview release, which never goes live and never counts as a release.
pub fn is_preview(version: &str) -> bool {
    preview_of(version).is_some()
}

/// Whether `version` may never go live: a preview, or an alias's name (the edge reads a pin of
/// `pr-<n>` as the alias, so a release of that name could never be looked at before going live).
pub fn never_live(version: &str) -> bool {
    is_preview(version) || alias_of(version).is_some()
}

/// The pull request this run builds: the `pull-request` input, else what the CI system says
/// (GitHub on a `pull_request*` event: `GITHUB_REF` `refs/pull/<n>/merge`, else the event payload
/// at `GITHUB_EVENT_PATH`; CircleCI: the `CIRCLE_PULL_REQUEST` URL). `Ok(None)`: none found. A
/// value that is there but is no pull request number is an error naming where it came from.
pub fn detect(input: Option<&str>, env: &Env) -> Result<Option<PullRequest>, (&'static str, String)> {
    if let Some(given) = input {
        return PullRequest::parse(given).map(Some).map_err(|p| ("pull-request", p));
    }
    if env.get("GITHUB_EVENT_NAME").is_some_and(|e| e.starts_with("pull_request")) {
        if let Some(number) = env.get("GITHUB_REF").and_then(|r| r.strip_prefix("refs/pull/")) {
            let number = number.strip_suffix("/merge").or_else(|| number.strip_suffix("/head")).unwrap_or(number);
            return PullRequest::parse(number).map(Some).map_err(|p| ("GITHUB_REF", p));
        }
        if let Some(path) = env.get("GITHUB_EVENT_PATH") {
            return from_event(path).map(Some).map_err(|p| ("GITHUB_EVENT_PATH", p));
        }
    }
    if let Some(url) = env.get("CIRCLE_PULL_REQUEST") {
        // Several URLs (a commit on several pull requests): any one may be the wrong link.
        if url.contains(',') {
            let problem =
                format!("{url:?} names several pull requests: set the `pull-request` input to the one to preview");
            return Err(("CIRCLE_PULL_REQUEST", problem));
        }
        let number = url.rsplit_once("/pull/").map(|(_, n)| n.trim_end_matches('/'));
        return match number {
            Some(n) => PullRequest::parse(n).map(Some).map_err(|p| ("CIRCLE_PULL_REQUEST", p)),
            None => Err(("CIRCLE_PULL_REQUEST", format!("{url:?} is not a pull request URL (…/pull/<n>)"))),
        };
    }
    Ok(None)
}

/// What GitHub's `pull_request` event says about the pull request opening or closing, in GitHub's
/// own clock: a close is recorded at its `closed_at`, and only a run for a `reopened` event that
/// GitHub sent after that links the pull request's previews again (a re-run keeps its event).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Event {
    /// The `reopened` event's `pull_request.updated_at`: when it was reopened.
    pub reopened_at: Option<DateTime<Utc>>,
    /// The `closed` event's `pull_request.closed_at`.
    pub closed_at: Option<DateTime<Utc>>,
}

/// The [`Event`] of this run: none off GitHub's `pull_request*` events, or when the payload at
/// `GITHUB_EVENT_PATH` cannot be read (the close record then stands; `take-over-pointer` lifts it).
pub fn event(env: &Env) -> Event {
    let payload = env
        .get("GITHUB_EVENT_NAME")
        .filter(|e| e.starts_with("pull_request"))
        .and(env.get("GITHUB_EVENT_PATH"))
        .and_then(|path| payload(path).ok());
    let Some(payload) = payload else { return Event::default() };
    let at = |field: &str| {
        payload["pull_request"][field]
            .as_str()
            .and_then(|t| DateTime::parse_from_rfc3339(t).ok())
            .map(|t| t.with_timezone(&Utc))
    };
    match payload["action"].as_str() {
        Some("reopened") => Event { reopened_at: at("updated_at"), closed_at: None },
        Some("closed") => Event { reopened_at: None, closed_at: at("closed_at") },
        _ => Event::default(),
    }
}

/// The pull request number in a GitHub event payload: `number`, else `pull_request.number`.
fn from_event(path: &str) -> Result<PullRequest, String> {
    let event = payload(path)?;
    let number = event.get("number").or_else(|| event.get("pull_request").and_then(|p| p.get("number")));
    match number.and_then(serde_json::Value::as_u64) {
        Some(n) => PullRequest::parse(&n.to_string()),
        None => Err(format!("the event payload {path} has no pull request number")),
    }
}

/// The GitHub event payload at `path`, as JSON.
fn payload(path: &str) -> Result<serde_json::Value, String> {
    let text = std::fs::read(path).map_err(|e| format!("reading the event payload {path}: {e}"))?;
    serde_json::from_slice(&text).map_err(|e| format!("the event payload {path} is not JSON: {e}"))
}

/// What a `Host` header is to the preview hosts under `domain` (`previewHost` in edge/router.js
/// decides alike): `None` when it is not under the domain (the domain itself neither); else the
/// pull request it names, only as exactly `pr-<n>.<domain>` with no port or a valid one (1 to 5
/// digits, at most 65535). Under the domain is told from the name before the first `:`, in any
/// case, trailing dots ignored; so capitals, trailing dots, a bad port or any other label make
/// a preview host that names no pull request, never the live site.
pub fn preview_host(host: &str, domain: &str) -> Option<Option<PullRequest>> {
    let (name, port) = match host.split_once(':') {
        Some((name, port)) => (name, Some(port)),
        None => (host, None),
    };
    let folded = name.trim_end_matches('.').to_ascii_lowercase();
    if !folded.ends_with(&format!(".{}", domain.to_ascii_lowercase())) {
        return None;
    }
    let valid_port = |p: &str| {
        (1..=5).contains(&p.len())
            && p.bytes().all(|b| b.is_ascii_digit())
            && p.parse::<u32>().is_ok_and(|n| n <= 65535)
    };
    Some(port.is_none_or(valid_port).then(|| name.strip_suffix(&format!(".{domain}")).and_then(alias_of)).flatten())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(vars: &[(&str, &str)]) -> Env {
        vars.iter().copied().collect()
    }

    #[test]
    fn numbers_are_digits_from_one_up() {
        for ok in ["1", "42", "999999999"] {
            assert_eq!(PullRequest::parse(ok).unwrap().to_string(), ok);
        }
        for bad in ["", "0", "01", "-1", "+1", "1.0", "1e3", " 1", "1 ", "1000000000", "١٢", "1/../2", "PR-1", "x"] {
            assert!(PullRequest::parse(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn previews_and_aliases_are_told_from_releases() {
        let pr = PullRequest::parse("123").unwrap();
        assert_eq!((pr.alias(), pr.version("7")), ("pr-123".to_owned(), "pr-123-7".to_owned()));
        assert_eq!(preview_of("pr-123-7"), Some(pr));
        assert_eq!(alias_of("pr-123"), Some(pr));
        for release in ["1", "v1.2.3", "pr-123", "pr-0-1", "pr-01-1", "pr--1", "pr-1-", "PR-1-2", "pre-1-2"] {
            assert!(!is_preview(release), "{release}");
        }
        assert!(never_live("pr-123") && never_live("pr-123-7") && !never_live("pr-0") && !never_live("7"));
        for not_alias in ["pr-123-7", "pr-0", "PR-1", "pr-1.evil.com", "pr-", "pr-1 "] {
            assert_eq!(alias_of(not_alias), None, "{not_alias}");
        }
    }

    #[test]
    fn the_pull_request_comes_from_the_input_then_the_ci_system() {
        let number = |vars: &[(&str, &str)], input| detect(input, &env(vars)).map(|pr| pr.map(PullRequest::number));
        assert_eq!(number(&[], Some("5")), Ok(Some(5)));
        let github = [("GITHUB_EVENT_NAME", "pull_request"), ("GITHUB_REF", "refs/pull/77/merge")];
        assert_eq!(number(&github, None), Ok(Some(77)));
        assert_eq!(number(&github, Some("5")), Ok(Some(5)), "the input wins");
        let target = [("GITHUB_EVENT_NAME", "pull_request_target"), ("GITHUB_REF", "refs/pull/8/head")];
        assert_eq!(number(&target, None), Ok(Some(8)));
        assert_eq!(number(&[("GITHUB_EVENT_NAME", "push"), ("GITHUB_REF", "refs/pull/9/merge")], None), Ok(None));
        let circle = [("CIRCLE_PULL_REQUEST", "https://github.com/o/r/pull/31")];
        assert_eq!(number(&circle, None), Ok(Some(31)));
        assert_eq!(number(&[], None), Ok(None));

        let dir = tempfile::tempdir().unwrap();
        let payload = dir.path().join("event.json");
        std::fs::write(&payload, r#"{"action":"synchronize","number":12,"pull_request":{"number":12}}"#).unwrap();
        let path = payload.display().to_string();
        let event = [("GITHUB_EVENT_NAME", "pull_request"), ("GITHUB_EVENT_PATH", path.as_str())];
        assert_eq!(number(&event, None), Ok(Some(12)));

        let source = |vars: &[(&str, &str)], input| detect(input, &env(vars)).unwrap_err().0;
        assert_eq!(source(&[], Some("1/../2")), "pull-request");
        assert_eq!(
            source(&[("GITHUB_EVENT_NAME", "pull_request"), ("GITHUB_REF", "refs/pull/x/merge")], None),
            "GITHUB_REF"
        );
        assert_eq!(source(&[("CIRCLE_PULL_REQUEST", "https://github.com/o/r/pull/0")], None), "CIRCLE_PULL_REQUEST");
        assert_eq!(source(&[("CIRCLE_PULL_REQUEST", "https://evil/")], None), "CIRCLE_PULL_REQUEST");
        let several = [("CIRCLE_PULL_REQUEST", "https://github.com/o/r/pull/1,https://github.com/o/r/pull/2")];
        assert_eq!(source(&several, None), "CIRCLE_PULL_REQUEST", "several pull requests are refused");
        assert_eq!(number(&several, Some("2")), Ok(Some(2)), "the input decides");
        std::fs::write(&payload, r#"{"number":-3}"#).unwrap();
        assert_eq!(source(&event, None), "GITHUB_EVENT_PATH");
    }

    #[test]
    fn only_a_reopened_or_closed_event_says_when() {
        let dir = tempfile::tempdir().unwrap();
        let payload = dir.path().join("event.json");
        let path = payload.display().to_string();
        let on = |name: &str, body: &str| {
            std::fs::write(&payload, body).unwrap();
            event(&env(&[("GITHUB_EVENT_NAME", name), ("GITHUB_EVENT_PATH", path.as_str())]))
        };
        let times = r#""updated_at":"2026-01-02T03:04:05Z","closed_at":"2026-01-01T00:00:00+01:00""#;
        let reopened = on("pull_request", &format!(r#"{{"action":"reopened","pull_request":{{{times}}}}}"#));
        assert_eq!(reopened.reopened_at.map(|t| t.to_rfc3339()).as_deref(), Some("2026-01-02T03:04:05+00:00"));
        assert_eq!(reopened.closed_at, None);
        let closed = on("pull_request_target", &format!(r#"{{"action":"closed","pull_request":{{{times}}}}}"#));
        assert_eq!(closed.closed_at.map(|t| t.to_rfc3339()).as_deref(), Some("2025-12-31T23:00:00+00:00"));
        for (name, body) in [
            ("pull_request", format!(r#"{{"action":"synchronize","pull_request":{{{times}}}}}"#)),
            ("push", format!(r#"{{"action":"reopened","pull_request":{{{times}}}}}"#)),
            ("pull_request", r#"{"action":"reopened","pull_request":{"updated_at":"yesterday"}}"#.to_owned()),
            ("pull_request", "not json".to_owned()),
        ] {
            assert_eq!(on(name, &body), Event::default(), "{name} {body}");
        }
        assert_eq!(event(&env(&[("GITHUB_EVENT_NAME", "pull_request")])), Event::default(), "no payload");
    }
}
