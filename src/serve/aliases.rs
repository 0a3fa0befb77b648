//! Preview links at the local edge: an override naming an alias (`?override_build_number=pr-123`,
//! or its cookie) and a host `pr-<n>.localhost` (browsers send `*.localhost` to loopback) serve the
//! pull request's newest preview. Aliases are read from beside the pointer and trusted as long as
//! the active version is ([`super::ACTIVE_CACHE`]).

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Instant;

use crate::backend::Site;
use crate::pull_request::{PullRequest, alias_of, preview_host, preview_of};
use crate::routing::{Ask, EdgeNames, NoPreview, Source, UNKNOWN_VERSION};

/// `cutover serve`'s preview domain: every host under it is a preview host.
const PREVIEW_DOMAIN: &str = "localhost";

/// Aliases remembered at once, the one read longest ago let go first (a client cannot grow the
/// edge's memory, nor make it forget every alias at once).
const KEPT: usize = 256;

/// The aliases last read, by pull request number: when, and the preview named (`None`: none).
#[derive(Default)]
pub(super) struct AliasCache {
    read: Mutex<HashMap<u64, (Instant, Option<String>)>>,
}

impl AliasCache {
    /// What a request asks for once aliases are resolved: a host link (honoured only without an
    /// override secret, which only signed links pass), else a pin naming an alias, pinned to the
    /// preview the alias names; the cookie keeps the alias, so the pin follows later pushes.
    pub(super) async fn resolve(&self, site: &Site, names: &EdgeNames, asked: Ask, host: Option<&str>) -> Ask {
        resolve_with(names, asked, host, |pr| self.target(site, pr)).await
    }

    /// The preview the alias of `pr` names, cached; a failed read keeps the last good answer.
    async fn target(&self, site: &Site, pr: PullRequest) -> Option<String> {
        let cached = self.read.lock().unwrap_or_else(|e| e.into_inner()).get(&pr.number()).cloned();
        if let Some((at, target)) = &cached
            && at.elapsed() < super::ACTIVE_CACHE
        {
            return target.clone();
        }
        let target = match site.aliases.read(pr).await {
            Ok(target) => preview_named(pr, target),
            Err(e) => {
                crate::say!("local edge: reading the alias {}: {e:#}", pr.alias());
                cached.and_then(|(_, target)| target)
            }
        };
        keep(&mut self.read.lock().unwrap_or_else(|e| e.into_inner()), pr.number(), (Instant::now(), target.clone()));
        target
    }
}

/// [`AliasCache::resolve`] with `target` telling what an alias names (the shared vectors' unit
/// test gives their aliases; `cutover serve` reads the store).
pub(crate) async fn resolve_with<F: Future<Output = Option<String>>>(
    names: &EdgeNames,
    asked: Ask,
    host: Option<&str>,
    target: impl Fn(PullRequest) -> F,
) -> Ask {
    if let Some(alias) = host.and_then(|h| preview_host(h, PREVIEW_DOMAIN)) {
        return match alias {
            _ if asked == Ask::Clear => Ask::NoPreview(NoPreview::Cleared),
            _ if names.secret.is_some() => Ask::NoPreview(NoPreview::Signed),
            None => Ask::NoPreview(NoPreview::Host),
            Some(pr) => match target(pr).await {
                Some(version) => Ask::Pin { version, source: Source::Host, value: pr.alias() },
                None => Ask::NoPreview(NoPreview::Missing(pr.number())),
            },
        };
    }
    // An alias naming no preview is answered without a lookup: no release is ever named `pr-<n>`.
    match asked {
        Ask::Pin { version, source, value } => match alias_of(&version) {
            Some(pr) => match target(pr).await {
                Some(version) => Ask::Pin { version, source, value },
                None => Ask::Refused(UNKNOWN_VERSION),
            },
            None => Ask::Pin { version, source, value },
        },
        other => other,
    }
}

/// The preview an alias's value names: only a preview of its own pull request; a hand-written
/// release, another's preview or a malformed value is no link.
pub(crate) fn preview_named(pr: PullRequest, value: Option<String>) -> Option<String> {
    value.filter(|v| crate::version::is_valid(v) && preview_of(v) == Some(pr))
}

/// Remembers what an alias named, letting go of the one read longest ago when [`KEPT`] are.
fn keep(read: &mut HashMap<u64, (Instant, Option<String>)>, number: u64, entry: (Instant, Option<String>)) {
    if !read.contains_key(&number)
        && read.len() >= KEPT
        && let Some(oldest) = read.iter().min_by_key(|(_, (at, _))| *at).map(|(n, _)| *n)
    {
        read.remove(&oldest);
    }
    read.insert(number, entry);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_alias_read_longest_ago_is_let_go_first_never_all_at_once() {
        let mut read = HashMap::new();
        let start = Instant::now();
        for number in 0..=KEPT as u64 {
            keep(&mut read, number, (start + std::time::Duration::from_millis(number), None));
        }
        assert_eq!(read.len(), KEPT);
        assert!(!read.contains_key(&0) && read.contains_key(&1) && read.contains_key(&(KEPT as u64)));
    }

    #[test]
    fn only_pr_n_dot_localhost_names_an_alias() {
        let host_alias = |host| preview_host(host, PREVIEW_DOMAIN).flatten();
        for (host, number) in [("pr-1.localhost", 1), ("pr-123.localhost:8080", 123)] {
            assert_eq!(host_alias(host).map(PullRequest::number), Some(number), "{host}");
        }
        for hostile in [
            "pr-1.evil.com",
            "PR-1.localhost",
            "pr-1.localhost.",
            "pr-1.localhost:",
            "pr-1.localhost:99999",
            "pr-1.localhost:80:80",
            "pr-1..localhost",
            "..localhost",
            "pr-..localhost",
            "pr-0.localhost",
            "pr-1.2.localhost",
            "pr-1-2.localhost",
            "a.pr-1.localhost",
            "pr-1.localhost.evil.com",
            "localhost",
            "",
        ] {
            assert_eq!(host_alias(hostile), None, "{hostile:?}");
        }
    }

    #[test]
    fn every_name_under_localhost_is_a_preview_host_and_localhost_itself_is_none() {
        for host in ["www.localhost", "PR-1.localhost", "pr-1.localhost.", "pr-1.localhost:+80", "a.LOCALHOST:1"] {
            assert_eq!(preview_host(host, PREVIEW_DOMAIN), Some(None), "{host:?}");
        }
        for host in ["localhost", "localhost:8080", "127.0.0.1:8080", "[::1]:8080", "pr-1.evil.com", "xlocalhost", ""] {
            assert_eq!(preview_host(host, PREVIEW_DOMAIN), None, "{host:?}");
        }
    }
}
