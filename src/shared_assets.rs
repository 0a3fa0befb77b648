//! Which files are fingerprinted (input `shared-assets`): the one rule that decides both which files
//! live in the site's shared pool, served to every release, and which are cached `immutable`.
//!
//! A rule is a list of globs over release-relative paths, with hash placeholders for the shapes
//! bundlers write: `<base64url:N>` (N characters of `A-Z a-z 0-9 _ -`, Rollup's and Vite's
//! default) and `<hex:N>` (N of `0-9 a-f`, webpack's), each taking only what looks like a hash, not
//! a word or a date (see `hash` below). Each glob compiles to a regular expression
//! that Rust (`regex-lite`) and JavaScript (`new RegExp(source, 'u')`) read alike: the CloudFront
//! router gets the very same expression baked into its configuration by `cutover edge bundle`.

use regex_lite::Regex;

/// The value that turns sharing off (an empty value counts as unset, like every input).
pub const OFF: &str = "none";

/// Longest hash a placeholder may ask for.
const MAX_HASH: usize = 64;

/// The characters the regular expressions of both languages treat as syntax outside a class.
const SYNTAX: &str = r"\^$.|?*+()[]{}";

/// The compiled `shared-assets` rule; empty when sharing is off.
#[derive(Debug, Clone, Default)]
pub struct SharedAssets {
    globs: Vec<(String, Regex)>,
}

impl PartialEq for SharedAssets {
    fn eq(&self, other: &Self) -> bool {
        self.globs().eq(other.globs())
    }
}

impl Eq for SharedAssets {}

impl SharedAssets {
    /// Parses globs separated by newlines or commas (a comma inside `{...}` is an alternative);
    /// `none` turns sharing off.
    pub fn parse(text: &str) -> Result<Self, String> {
        if text.trim() == OFF {
            return Ok(Self::default());
        }
        let globs = split_list(text);
        if globs.is_empty() {
            return Err(format!("no glob given; write `{OFF}` to turn sharing off"));
        }
        let compiled = globs
            .into_iter()
            .map(|glob| {
                let source = translate(&glob).map_err(|problem| format!("glob {glob:?}: {problem}"))?;
                let regex = Regex::new(&format!("^(?:{source})$")).map_err(|e| format!("glob {glob:?}: {e}"))?;
                Ok((glob, regex))
            })
            .collect::<Result<_, String>>()?;
        Ok(Self { globs: compiled })
    }

    /// The globs, as given.
    pub fn globs(&self) -> impl Iterator<Item = &str> {
        self.globs.iter().map(|(glob, _)| glob.as_str())
    }

    /// The glob that makes `path` (release-relative) fingerprinted, if one does.
    pub fn rule_for(&self, path: &str) -> Option<&str> {
        self.globs.iter().find(|(_, regex)| regex.is_match(path)).map(|(glob, _)| glob.as_str())
    }

    /// Whether `path` is fingerprinted: shared through the pool and cached `immutable`.
    pub fn matches(&self, path: &str) -> bool {
        self.rule_for(path).is_some()
    }

    /// The whole rule as one expression for the router (`None` when sharing is off).
    pub fn pattern(&self) -> Option<String> {
        if self.globs.is_empty() {
            return None;
        }
        let alternatives: Vec<&str> =
            self.globs.iter().map(|(_, regex)| regex.as_str().trim_start_matches('^').trim_end_matches('$')).collect();
        Some(format!("^(?:{})$", alternatives.join("|")))
    }
}

/// Items separated by newlines or by commas outside braces, trimmed, empty ones dropped.
fn split_list(text: &str) -> Vec<String> {
    let mut items = Vec::new();
    let mut current = String::new();
    let mut depth = 0usize;
    for c in text.chars() {
        match c {
            '{' => depth += 1,
            '}' => depth = depth.saturating_sub(1),
            _ => {}
        }
        if c == '\n' || (c == ',' && depth == 0) {
            items.push(std::mem::take(&mut current));
            if c == '\n' {
                depth = 0;
            }
        } else {
            current.push(c);
        }
    }
    items.push(current);
    items.into_iter().map(|i| i.trim().to_owned()).filter(|i| !i.is_empty()).collect()
}

/// One glob as a regular expression (without anchors): `**` whole segments, `*` and `?` within a
/// segment, `[...]` classes of letters, digits, `_`, `.` and `-` (`[!...]` negated), `{a,b}`
/// alternatives, `<hex:N>` and `<base64url:N>` hashes, `\` escaping the next character.
fn translate(glob: &str) -> Result<String, String> {
    if glob.starts_with('/') {
        return Err("paths are relative to the release: no leading '/'".into());
    }
    if glob.chars().any(char::is_control) {
        return Err("holds a control character".into());
    }
    let chars: Vec<char> = glob.chars().collect();
    let mut out = String::new();
    let mut depth = 0usize;
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        match c {
            '*' if chars.get(i + 1) == Some(&'*') => {
                let starts_segment = i == 0 || chars[i - 1] == '/';
                match chars.get(i + 2) {
                    Some('/') if starts_segment => {
                        out.push_str("(?:[^/]+/)*");
                        i += 3;
                    }
                    None if starts_segment => {
                        out.push_str("(?:[^/]+/)*[^/]+");
                        i += 2;
                    }
                    _ => return Err("`**` must be a whole path segment".into()),
                }
                continue;
            }
            '*' => out.push_str("[^/]*"),
            '?' => out.push_str("[^/]"),
            '[' => {
                let close = chars[i..].iter().position(|&c| c == ']').ok_or("`[` is never closed")? + i;
                let (negated, body) = match chars.get(i + 1) {
                    Some('!') => (true, &chars[i + 2..close]),
                    _ => (false, &chars[i + 1..close]),
                };
                if body.is_empty() || !body.iter().all(|c| c.is_ascii_alphanumeric() || "_.-".contains(*c)) {
                    return Err("a `[...]` class may hold only letters, digits, `_`, `.` and `-`".into());
                }
                out.push_str(if negated { "[^/" } else { "[" });
                out.extend(body);
                out.push(']');
                i = close + 1;
                continue;
            }
            '{' => {
                depth += 1;
                out.push_str("(?:");
            }
            ',' if depth > 0 => out.push('|'),
            '}' if depth > 0 => {
                depth -= 1;
                out.push(')');
            }
            '<' => {
                let close = chars[i..].iter().position(|&c| c == '>').ok_or("`<` is never closed")? + i;
                let token: String = chars[i + 1..close].iter().collect();
                out.push_str(&hash(&token)?);
                i = close + 1;
                continue;
            }
            '\\' => {
                let next = chars.get(i + 1).ok_or("`\\` escapes nothing")?;
                push_literal(&mut out, *next);
                i += 2;
                continue;
            }
            _ => push_literal(&mut out, c),
        }
        i += 1;
    }
    if depth > 0 {
        return Err("`{` is never closed".into());
    }
    Ok(out)
}

/// A hash placeholder's expression: `hex:N` or `base64url:N`, spelled out as alternatives so that
/// it only takes what looks like a hash (neither language's engine needs lookahead for it).
///
/// A `hex:N` hash holds at least one of `a-f`: eight digits are a date (`20241231`), not a hash.
/// A `base64url:N` hash holds at least one uppercase letter: a name's last word in lowercase,
/// joined by `-`/`_` or with a number (`portrait`, `arrow-up`, `member-1`, `v2-final`), and a
/// number or a date (`20241231`, `24-12-31`) have none. Real hashes fail this only rarely, and are
/// then not shared, the safe direction (README, "Fingerprinted files and the shared pool", gives
/// the rates).
fn hash(token: &str) -> Result<String, String> {
    let bad = || format!("`<{token}>` is not `<hex:N>` or `<base64url:N>` with N from 1 to {MAX_HASH}");
    let (kind, length) = token.split_once(':').ok_or_else(bad)?;
    let length: usize = length.parse().ok().filter(|n| (1..=MAX_HASH).contains(n)).ok_or_else(bad)?;
    let any = |class: &str, n: usize| match n {
        0 => String::new(),
        1 => class.to_owned(),
        n => format!("{class}{{{n}}}"),
    };
    let alternatives: Vec<String> = match kind {
        // By the position of the first letter.
        "hex" => (0..length).map(|i| any("[0-9]", i) + "[a-f]" + &any("[0-9a-f]", length - 1 - i)).collect(),
        // By the position of the first uppercase letter.
        "base64url" => {
            (0..length).map(|i| any("[a-z0-9_-]", i) + "[A-Z]" + &any("[A-Za-z0-9_-]", length - 1 - i)).collect()
        }
        _ => return Err(bad()),
    };
    Ok(format!("(?:{})", alternatives.join("|")))
}

fn push_literal(out: &mut String, c: char) {
    if SYNTAX.contains(c) {
        out.push('\\');
    }
    out.push(c);
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The `shared-assets` default, as the inputs define it.
    fn default_rule() -> SharedAssets {
        let spec = crate::inputs::INPUTS.iter().find(|i| i.field == "shared_assets").unwrap();
        SharedAssets::parse(spec.default.unwrap()).unwrap()
    }

    /// The vectors the router's tests run too (`edge/shared-assets.json`), against the default rule.
    #[test]
    fn shared_vectors() {
        let doc: serde_json::Value = serde_json::from_str(include_str!("../edge/shared-assets.json")).unwrap();
        let rule = default_rule();
        assert_eq!(doc["pattern"].as_str(), rule.pattern().as_deref(), "the vectors' pattern is the default rule's");
        let (shared, not) = (doc["shared"].as_array().unwrap(), doc["not_shared"].as_array().unwrap());
        assert!(shared.len() + not.len() >= 20);
        for path in shared.iter().map(|p| p.as_str().unwrap()) {
            assert!(rule.matches(path), "{path} is fingerprinted");
        }
        for path in not.iter().map(|p| p.as_str().unwrap()) {
            assert_eq!(rule.rule_for(path), None, "{path} is not fingerprinted");
        }
    }

    #[test]
    fn globs_translate_and_bad_ones_are_refused() {
        let rule = SharedAssets::parse("js/*.<hex:4>.js, {a,b}/[!x]?.css\nlit/a+b(1).\\*").unwrap();
        assert!(rule.matches("js/app.0a1f.js"));
        assert!(!rule.matches("js/app.0A1F.js"));
        assert!(!rule.matches("js/sub/app.0a1f.js"));
        assert!(rule.matches("b/yz.css") && !rule.matches("a/xz.css") && !rule.matches("c/yz.css"));
        assert!(rule.matches("lit/a+b(1).*") && !rule.matches("lit/a+b(1).x"));
        assert_eq!(rule.rule_for("a/yz.css"), Some("{a,b}/[!x]?.css"));
        assert_eq!(SharedAssets::parse("none").unwrap().pattern(), None);
        assert!(!SharedAssets::parse(" none ").unwrap().matches("assets/index-BxK3a9Qz.js"));
        for bad in
            ["", " , ", "/abs/*", "a**", "a/**b", "[", "[a/b]", "{a,b", "<hex:0>", "<hex:65>", "<md5:8>", "<hex", "x\\"]
        {
            assert!(SharedAssets::parse(bad).is_err(), "{bad:?}");
        }
        let deep = SharedAssets::parse("a/**/*.js, b/**").unwrap();
        assert!(deep.matches("a/x.js") && deep.matches("a/b/c/x.js") && !deep.matches("ab/x.js"));
        assert!(deep.matches("b/c") && deep.matches("b/c/d") && !deep.matches("b/") && !deep.matches("b//c"));
    }

    /// What the hash placeholders mean, said directly: the spelled-out alternatives take exactly
    /// these, over every string of a few lengths (from characters standing for each class).
    #[test]
    fn a_hash_must_look_like_a_hash() {
        fn hex(s: &str) -> bool {
            s.chars().all(|c| c.is_ascii_digit() || ('a'..='f').contains(&c))
                && s.chars().any(|c| c.is_ascii_lowercase())
        }
        fn base64url(s: &str) -> bool {
            s.chars().all(|c| c.is_ascii_alphanumeric() || "_-".contains(c))
                && s.chars().any(|c| c.is_ascii_uppercase())
        }
        for (kind, means, alphabet) in [("hex", hex as fn(&str) -> bool, "0a9fg"), ("base64url", base64url, "aZ0_-z.")]
        {
            let mut strings = vec![String::new()];
            for length in 1..=5 {
                strings = strings.iter().flat_map(|s| alphabet.chars().map(move |c| format!("{s}{c}"))).collect();
                let rule = SharedAssets::parse(&format!("<{kind}:{length}>")).unwrap();
                for s in &strings {
                    assert_eq!(rule.matches(s), means(s), "<{kind}:{length}> on {s:?}");
                }
            }
        }
        let rule = default_rule();
        let words = [
            "assets/team-portrait.jpg",
            "assets/invoice-20241231.pdf",
            "static/media/report.20241231.pdf",
            "assets/icon-arrow-up.svg",
            "assets/icon-close-sm.svg",
            "assets/team-member-1.jpg",
            "assets/banner-summer-2.jpg",
            "assets/photo-image_01.jpg",
            "assets/guide-v2-final.pdf",
            "assets/logo-white_v2.svg",
        ];
        for word in words {
            assert_eq!(rule.rule_for(word), None, "{word}");
        }
    }

    #[test]
    fn the_default_names_its_rule() {
        let rule = default_rule();
        assert_eq!(rule.rule_for("assets/index-BxK3a9Qz.js"), Some("assets/**/*-<base64url:8>.*"));
        assert_eq!(rule.rule_for("static/js/main.3f9a2c1b.chunk.js"), Some("static/{js,css,media}/*.<hex:8>.*"));
    }
}
