//! Which version a run releases, what a version may look like, and how versions order.

use chrono::{DateTime, Utc};

use crate::env::Env;

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

/// A version's rank within its style, and when its release was recorded.
///
/// The derived order is the version order: other names, then run numbers, then semver; within a
/// style numbers by value, semver by precedence then build metadata, other names by record time;
/// then the text (`007` before `7`, `1.0.0` before `v1.0.0`); then the record time. It is total:
/// only the same text recorded at the same time compares equal.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
enum Key {
    Other { recorded: DateTime<Utc>, text: String },
    Number { digits: usize, value: String, text: String, recorded: DateTime<Utc> },
    Semver { version: semver::Version, text: String, recorded: DateTime<Utc> },
}

impl Key {
    fn new(text: &str, recorded: DateTime<Utc>) -> Key {
        let text = text.to_owned();
        if let Some(value) = as_number(&text) {
            return Key::Number { digits: value.len(), value: value.to_owned(), text, recorded };
        }
        match as_semver(&text) {
            Some(version) => Key::Semver { version, text, recorded },
            None => Key::Other { recorded, text },
        }
    }

    fn recorded(&self) -> DateTime<Utc> {
        match self {
            Key::Other { recorded, .. } | Key::Number { recorded, .. } | Key::Semver { recorded, .. } => *recorded,
        }
    }

    fn same_style(&self, other: &Key) -> bool {
        std::mem::discriminant(self) == std::mem::discriminant(other)
    }
}

/// Where a release stands in the release order; places compare as their releases order.
///
/// A release stands at the earliest record time among itself and the later versions of its style,
/// then by its version ([`Key`]). So each style keeps its version order, styles interleave by
/// record time, and a release recorded after a later version of its style (a slow run finishing
/// last) takes that version's time instead of jumping ahead of it.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Place {
    at: DateTime<Utc>,
    key: Key,
}

/// The place of each release, given as (version, record time), in the order given.
pub fn places<V: AsRef<str>>(releases: &[(V, DateTime<Utc>)]) -> Vec<Place> {
    let keys: Vec<Key> = releases.iter().map(|(version, recorded)| Key::new(version.as_ref(), *recorded)).collect();
    let mut newest_first: Vec<usize> = (0..keys.len()).collect();
    newest_first.sort_by(|&a, &b| keys[b].cmp(&keys[a]));
    let mut at = vec![DateTime::<Utc>::MIN_UTC; keys.len()];
    let mut later: Option<(&Key, DateTime<Utc>)> = None;
    for i in newest_first {
        let key = &keys[i];
        let earliest = match later {
            Some((previous, earliest)) if previous.same_style(key) => earliest.min(key.recorded()),
            _ => key.recorded(),
        };
        at[i] = earliest;
        later = Some((key, earliest));
    }
    keys.into_iter().zip(at).map(|(key, at)| Place { at, key }).collect()
}

/// Whether the record time of `other` can move `version`'s place: it is `version` itself or a later
/// number or semver version of the same style (other names stand at their own record time).
pub fn can_move(other: &str, version: &str) -> bool {
    let (other_key, key) = (Key::new(other, DateTime::<Utc>::MIN_UTC), Key::new(version, DateTime::<Utc>::MIN_UTC));
    other == version || (other_key.same_style(&key) && !matches!(key, Key::Other { .. }) && other_key >= key)
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

    fn at(seconds: i64) -> DateTime<Utc> {
        Utc.timestamp_opt(1_767_225_600 + seconds, 0).unwrap()
    }

    /// The versions of `releases` as the release order lists them.
    fn listed(releases: &[(&str, i64)]) -> Vec<String> {
        let releases: Vec<(&str, DateTime<Utc>)> = releases.iter().map(|&(v, t)| (v, at(t))).collect();
        let mut placed: Vec<_> = places(&releases).into_iter().zip(&releases).collect();
        placed.sort_by(|a, b| a.0.cmp(&b.0));
        placed.into_iter().map(|(_, (v, _))| (*v).to_owned()).collect()
    }

    #[test]
    fn numbers_order_as_numbers_and_semver_as_semver() {
        assert_eq!(listed(&[("10", 1), ("9", 2)]), ["9", "10"]);
        assert_eq!(
            listed(&[("123456789012345678901234567890", 1), ("99", 2)]),
            ["99", "123456789012345678901234567890"]
        );
        assert_eq!(listed(&[("v1.2.10", 1), ("v1.2.9", 2)]), ["v1.2.9", "v1.2.10"]);
        assert_eq!(listed(&[("v1.0.0", 1), ("1.0.0-rc.1", 2)]), ["1.0.0-rc.1", "v1.0.0"]);
    }

    #[test]
    fn ties_order_by_text_then_time() {
        assert_eq!(listed(&[("7", 1), ("007", 1)]), ["007", "7"]);
        assert_eq!(listed(&[("1.0.0+b", 1), ("1.0.0+a", 1)]), ["1.0.0+a", "1.0.0+b"]);
        assert_eq!(listed(&[("v1.0.0", 1), ("1.0.0", 1)]), ["1.0.0", "v1.0.0"]);
        assert_eq!(listed(&[("main-b", 1), ("main-a", 1)]), ["main-a", "main-b"]);
        assert_eq!(listed(&[("v1.0.0", 1), ("1", 1), ("main", 1)]), ["main", "1", "v1.0.0"]);
    }

    #[test]
    fn other_versions_order_by_record_time() {
        assert_eq!(listed(&[("alpha", 2), ("zeta", 1)]), ["zeta", "alpha"]);
    }

    #[test]
    fn styles_interleave_by_record_time_and_a_late_release_keeps_its_version_place() {
        let store = [("1", 1), ("v2.0.0", 2), ("2", 3), ("main-x", 4), ("v2.1.0", 5), ("3", 6)];
        assert_eq!(listed(&store), ["1", "v2.0.0", "2", "main-x", "v2.1.0", "3"]);
        // A hotfix of an older line, and a run of an older number finishing last.
        let store = [("5", 1), ("v2.0.0", 2), ("6", 3), ("v2.1.0", 4), ("4", 5), ("v1.9.1", 6), ("7", 7)];
        assert_eq!(listed(&store), ["4", "5", "v1.9.1", "v2.0.0", "6", "v2.1.0", "7"]);
    }

    #[test]
    fn a_mixed_store_sorts_without_a_panic() {
        // The store from the issue: run numbers, v2.N.0 tags and v1.9.N hotfix tags, interleaved.
        let mut releases: Vec<(String, DateTime<Utc>)> = (1..=60).map(|n| (n.to_string(), at(n * 10))).collect();
        releases.extend((0..10).map(|n| (format!("v2.{n}.0"), at(n * 60 + 5))));
        releases.extend((1..=8).map(|n| (format!("v1.9.{n}"), at(n * 70 + 3))));
        let mut placed = places(&releases);
        placed.sort();
        assert_eq!(placed.len(), 78);
        assert!(placed.windows(2).all(|w| w[0] < w[1]));
    }

    #[test]
    fn what_can_move_a_place() {
        assert!(can_move("12", "9") && can_move("9", "9") && !can_move("8", "9") && !can_move("v10.0.0", "9"));
        assert!(can_move("v2.0.0", "v1.9.1") && !can_move("v1.9.0", "v1.9.1") && !can_move("10", "v1.9.1"));
        assert!(can_move("main", "main") && !can_move("zz", "main"));
    }

    mod properties {
        use super::super::*;
        use super::at;
        use proptest::prelude::*;

        /// Versions of every style, with ties: leading zeros, `v`, pre-releases and build metadata.
        fn version() -> impl Strategy<Value = String> {
            prop_oneof!["0{0,2}[0-9]{1,2}", "[vV]?[0-2][.][0-2][.][0-2](-rc[.][0-2])?([+][ab])?", "[a-c]{1,2}(-[0-9])?",]
        }

        /// A store's releases: one per version, few distinct times so that equal times are common.
        fn releases() -> impl Strategy<Value = Vec<(String, DateTime<Utc>)>> {
            proptest::collection::btree_map(version(), (0i64..6).prop_map(at), 0..16)
                .prop_map(|store| store.into_iter().collect())
        }

        proptest! {
            #[test]
            fn the_version_order_is_total(
                (a, t) in (version(), 0i64..3), (b, u) in (version(), 0i64..3), (c, w) in (version(), 0i64..3)
            ) {
                let same = (&a, t) == (&b, u);
                let (a, b, c) = (Key::new(&a, at(t)), Key::new(&b, at(u)), Key::new(&c, at(w)));
                prop_assert_eq!(a.cmp(&b), b.cmp(&a).reverse());
                prop_assert_eq!(a == b, same);
                if a <= b && b <= c {
                    prop_assert!(a <= c);
                }
            }

            #[test]
            fn the_release_order_is_total(releases in releases()) {
                let placed = places(&releases);
                for (i, p) in placed.iter().enumerate() {
                    for (j, q) in placed.iter().enumerate() {
                        prop_assert_eq!(p.cmp(q), q.cmp(p).reverse());
                        prop_assert_eq!(p == q, releases[i] == releases[j]);
                        for r in &placed {
                            if p <= q && q <= r {
                                prop_assert!(p <= r);
                            }
                        }
                    }
                }
            }

            #[test]
            fn a_place_is_the_earliest_time_of_its_version_and_the_later_ones_of_its_style(releases in releases()) {
                let keys: Vec<Key> = releases.iter().map(|(v, t)| Key::new(v, *t)).collect();
                for (key, place) in keys.iter().zip(places(&releases)) {
                    let earliest = keys.iter().filter(|k| k.same_style(key) && *k >= key).map(Key::recorded).min();
                    prop_assert_eq!(Some(place.at), earliest);
                    prop_assert_eq!(&place.key, key);
                }
            }

            #[test]
            fn places_do_not_depend_on_the_listing_order(
                (releases, shuffled) in releases().prop_flat_map(|r| (Just(r.clone()), Just(r).prop_shuffle()))
            ) {
                let mut listed = places(&releases);
                let mut relisted = places(&shuffled);
                listed.sort();
                relisted.sort();
                prop_assert_eq!(listed, relisted);
            }

            #[test]
            fn the_records_that_can_move_two_places_order_them_as_the_whole_store_does(
                releases in releases(), i in any::<prop::sample::Index>(), j in any::<prop::sample::Index>()
            ) {
                prop_assume!(!releases.is_empty());
                let (a, b) = (i.index(releases.len()), j.index(releases.len()));
                let whole = places(&releases);
                let (va, vb) = (&releases[a].0, &releases[b].0);
                let subset: Vec<_> = releases.iter().filter(|(v, _)| can_move(v, va) || can_move(v, vb)).cloned().collect();
                let part = places(&subset);
                let place = |version: &String| &part[subset.iter().position(|(v, _)| v == version).unwrap()];
                prop_assert_eq!(whole[a].cmp(&whole[b]), place(va).cmp(place(vb)));
            }
        }
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
