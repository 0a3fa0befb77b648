//! The input layers from the environment, their merge with the flags, and the warnings about
//! variables that look like inputs but are not read: one matcher decides both.

use super::{INPUTS, InputSpec, RawInputs};
use crate::env::Env;

/// Where an env layer comes from; a lower source gives way to a higher one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Source {
    /// GitHub's `INPUT_<NAME>`, the name as the runner spells it (`INPUT_DIST-DIR`) or with `_`.
    GitHub,
    /// `CUTOVER_<NAME>`, for every CI system and for people.
    Cutover,
}

impl Source {
    const ALL: [Source; 2] = [Source::Cutover, Source::GitHub];

    fn prefix(self) -> &'static str {
        match self {
            Source::GitHub => "INPUT_",
            Source::Cutover => "CUTOVER_",
        }
    }

    /// The source and the rest of a variable's name, if it has one of the prefixes.
    fn of(name: &str) -> Option<(Source, &str)> {
        Source::ALL.into_iter().find_map(|source| Some((source, name.strip_prefix(source.prefix())?)))
    }
}

/// `DIST-DIR`, `dist_dir` or `DIST DIR` -> `dist_dir`, the form an input's field has.
fn field_of(rest: &str) -> String {
    rest.replace(['-', ' '], "_").to_ascii_lowercase()
}

/// The input a variable names, with its source.
fn input_named(name: &str) -> Option<(Source, &'static InputSpec)> {
    let (source, rest) = Source::of(name)?;
    let field = field_of(rest);
    Some((source, INPUTS.iter().find(|spec| spec.field == field)?))
}

/// For each input, its non-empty variables from one source, the one used first. GitHub writes
/// `INPUT_DIST-DIR`; a workflow may set `INPUT_DIST_DIR` too. The runner's own spelling wins, then
/// the name in capitals, then the first name in order.
fn spellings(env: &Env, source: Source) -> impl Iterator<Item = (&'static InputSpec, Vec<(&str, &str)>)> {
    INPUTS.iter().map(move |spec| {
        let mut names: Vec<(&str, &str)> = env
            .all()
            .filter(|(name, value)| {
                !value.is_empty()
                    && input_named(name).is_some_and(|(s, named)| s == source && named.field == spec.field)
            })
            .collect();
        let hyphenated = spec.name();
        names.sort_by_key(|(name, _)| {
            let rest = name.strip_prefix(source.prefix()).unwrap_or(name);
            (!rest.eq_ignore_ascii_case(&hyphenated), rest != hyphenated.to_ascii_uppercase(), *name)
        });
        (spec, names)
    })
}

impl RawInputs {
    /// The inputs of this run: `flags` over `CUTOVER_` variables over GitHub's `INPUT_` ones.
    pub fn layered(env: &Env, flags: &RawInputs) -> RawInputs {
        flags.clone().over(Self::from_env(env, Source::Cutover)).over(Self::from_env(env, Source::GitHub))
    }

    fn from_env(env: &Env, source: Source) -> RawInputs {
        let mut layer = RawInputs::default();
        for (spec, names) in spellings(env, source) {
            *(spec.slot)(&mut layer) = names.first().map(|(_, value)| (*value).to_owned());
        }
        layer
    }
}

/// Variables with cutover's prefixes that are read on purpose but are not inputs: the action's
/// and recipes' `command`, TeamCity's tag ref, and the outputs of an earlier cutover step.
const NOT_INPUTS: [&str; 3] = ["COMMAND", "GIT_REF", "OUTPUT_"];

/// A warning for each `CUTOVER_*` or `INPUT_*` variable that names no input, with the closest
/// input (a misspelt input is otherwise silently left at its default), and for two spellings of
/// one input set to different values.
pub fn variable_warnings(env: &Env) -> Vec<String> {
    let mut warnings = Vec::new();
    for source in Source::ALL {
        for (_, names) in spellings(env, source) {
            if names.windows(2).any(|w| w[0].1 != w[1].1) {
                let mut listed: Vec<&str> = names.iter().map(|(name, _)| *name).collect();
                listed.sort_unstable();
                warnings.push(format!(
                    "{} are all set, to different values; {} is used",
                    listed.join(" and "),
                    names[0].0
                ));
            }
        }
    }
    for (name, _) in env.all() {
        let Some((source, rest)) = Source::of(name) else { continue };
        let not_input = NOT_INPUTS.iter().any(|n| if n.ends_with('_') { rest.starts_with(n) } else { rest == *n });
        if input_named(name).is_some() || not_input {
            continue;
        }
        let field = field_of(rest);
        let closest = INPUTS.iter().map(|i| (edit_distance(&field, i.field), i)).min_by_key(|(d, _)| *d);
        let hint = match closest {
            Some((distance, input)) if distance <= 2.max(field.len() / 4) => format!(
                "; did you mean {}{} (input `{}`)?",
                source.prefix(),
                input.field.to_ascii_uppercase(),
                input.name()
            ),
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::inputs::Inputs;

    fn layered(vars: &[(&str, &str)], flags: &RawInputs) -> Inputs {
        let env: Env = vars.iter().copied().collect();
        RawInputs::layered(&env, flags).with_defaults()
    }

    #[test]
    fn github_inputs_are_read_in_both_spellings() {
        let inputs =
            layered(&[("INPUT_DIST-DIR", "out"), ("INPUT_SITE_URL", "https://example.com")], &RawInputs::default());
        assert_eq!(inputs.dist_dir, "out");
        assert_eq!(inputs.site_url.as_deref(), Some("https://example.com"));
    }

    #[test]
    fn cutover_vars_beat_github_inputs_and_flags_beat_both() {
        let vars = [("INPUT_PREFIX", "a"), ("CUTOVER_PREFIX", "b")];
        assert_eq!(layered(&vars, &RawInputs::default()).prefix, "b");
        let flags = RawInputs { prefix: Some("c".into()), ..Default::default() };
        assert_eq!(layered(&vars, &flags).prefix, "c");
    }

    #[test]
    fn empty_values_count_as_unset() {
        let flags = RawInputs { keep: Some(String::new()), ..Default::default() };
        let inputs = layered(&[("INPUT_PREFIX", ""), ("INPUT_BUCKET", ""), ("CUTOVER_KEEP", "3")], &flags);
        assert_eq!((inputs.prefix.as_str(), inputs.bucket, inputs.keep.as_deref()), ("site", None, Some("3")));
        let flags = RawInputs { prefix: Some(String::new()), ..Default::default() };
        assert_eq!(layered(&[("CUTOVER_PREFIX", "")], &flags).prefix, "site");
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
        let vars = [("INPUT_DIST-DIR", "out"), ("INPUT_DIST_DIR", "other")];
        assert_eq!(layered(&vars, &RawInputs::default()).dist_dir, "out");
        let env: Env = vars.into_iter().collect();
        let warnings = variable_warnings(&env);
        assert_eq!(warnings.len(), 1, "{warnings:?}");
        assert!(warnings[0].contains("INPUT_DIST-DIR") && warnings[0].contains("INPUT_DIST_DIR"), "{warnings:?}");
        assert!(warnings[0].ends_with("INPUT_DIST-DIR is used"), "{warnings:?}");
        let same: Env = [("INPUT_DIST-DIR", "out"), ("INPUT_DIST_DIR", "out")].into_iter().collect();
        assert!(variable_warnings(&same).is_empty());
    }

    #[test]
    fn of_several_spellings_the_runners_is_used_and_named() {
        let warning = |vars: &[(&str, &str)]| variable_warnings(&vars.iter().copied().collect());
        let all = [("INPUT_dist_dir", "a"), ("INPUT_DIST_DIR", "b"), ("INPUT_dist-dir", "c"), ("INPUT_DIST-DIR", "d")];
        assert_eq!(layered(&all, &RawInputs::default()).dist_dir, "d");
        assert_eq!(
            warning(&all),
            [
                "INPUT_DIST-DIR and INPUT_DIST_DIR and INPUT_dist-dir and INPUT_dist_dir are all set, to different values; INPUT_DIST-DIR is used"
            ]
        );
        let no_capitals = [("INPUT_DIST_DIR", "b"), ("INPUT_dist-dir", "c")];
        assert_eq!(layered(&no_capitals, &RawInputs::default()).dist_dir, "c");
        assert!(warning(&no_capitals)[0].ends_with("; INPUT_dist-dir is used"));
        let cutover = [("CUTOVER_DIST_DIR", "a"), ("CUTOVER_DIST-DIR", "b")];
        assert_eq!(layered(&cutover, &RawInputs::default()).dist_dir, "b");
        assert!(warning(&cutover)[0].ends_with("; CUTOVER_DIST-DIR is used"));
    }
}
