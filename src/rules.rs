//! Content-Type and Cache-Control for each released file: user rules first, then safe defaults.

use globset::{Glob, GlobMatcher};

/// Fingerprinted assets never change under their name.
pub const IMMUTABLE: &str = "public, max-age=31536000, immutable";
/// Everything else (HTML, entry documents, unhashed assets) is revalidated on every request.
pub const REVALIDATE: &str = "public, max-age=0, must-revalidate";

/// User `GLOB=VALUE` rules, in the order given.
#[derive(Debug, Clone, Default)]
pub struct CacheRules(Vec<(GlobMatcher, String)>);

impl CacheRules {
    /// Parses rules separated by newlines or `;`.
    pub fn parse(text: &str) -> Result<Self, String> {
        let mut rules = Vec::new();
        for rule in text.split(['\n', ';']).map(str::trim).filter(|r| !r.is_empty()) {
            let Some((glob, value)) = rule.split_once('=') else {
                return Err(format!("rule {rule:?} is not GLOB=VALUE"));
            };
            let (glob, value) = (glob.trim(), value.trim());
            let matcher = Glob::new(glob).map_err(|e| format!("rule {rule:?}: {e}"))?.compile_matcher();
            if value.is_empty() || value.chars().any(|c| c.is_control()) {
                return Err(format!("rule {rule:?} has no usable Cache-Control value"));
            }
            rules.push((matcher, value.to_owned()));
        }
        Ok(Self(rules))
    }

    /// The Cache-Control for a release-relative path.
    pub fn cache_control(&self, path: &str) -> String {
        if let Some((_, value)) = self.0.iter().find(|(glob, _)| glob.is_match(path)) {
            return value.clone();
        }
        let name = path.rsplit('/').next().unwrap_or(path);
        if is_fingerprinted(name) && !is_entry_document(name) { IMMUTABLE } else { REVALIDATE }.to_owned()
    }
}

/// Documents users reach by a stable URL; they must never be cached as immutable.
fn is_entry_document(name: &str) -> bool {
    let lower = name.to_ascii_lowercase();
    lower.ends_with(".html") || lower.ends_with(".htm")
}

/// A name carrying a content hash, like `app.3f9a2c1b.js` or `index-BxK3d9aZ.js`.
fn is_fingerprinted(name: &str) -> bool {
    let stem = name.rsplit_once('.').map_or(name, |(stem, _)| stem);
    stem.split(['.', '-']).skip(1).any(|part| {
        (8..=64).contains(&part.len())
            && part.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
            && part.chars().any(|c| c.is_ascii_digit())
            && part.chars().any(|c| c.is_ascii_alphabetic())
    })
}

/// Content-Type by extension, with `charset=utf-8` for text.
pub fn content_type(path: &str) -> String {
    let lower = path.to_ascii_lowercase();
    let mime = match lower.rsplit_once('.').map(|(_, ext)| ext) {
        Some("webmanifest") => "application/manifest+json".to_owned(),
        Some("js" | "mjs" | "cjs") => "text/javascript".to_owned(),
        Some("map") => "application/json".to_owned(),
        _ => mime_guess::from_path(&lower).first_or_octet_stream().essence_str().to_owned(),
    };
    let textual = mime.starts_with("text/")
        || mime.ends_with("+json")
        || mime.ends_with("+xml")
        || matches!(mime.as_str(), "application/json" | "application/xml" | "application/javascript");
    if textual { format!("{mime}; charset=utf-8") } else { mime }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn content_types() {
        assert_eq!(content_type("index.html"), "text/html; charset=utf-8");
        assert_eq!(content_type("assets/app.JS"), "text/javascript; charset=utf-8");
        assert_eq!(content_type("a.css"), "text/css; charset=utf-8");
        assert_eq!(content_type("data.json"), "application/json; charset=utf-8");
        assert_eq!(content_type("logo.svg"), "image/svg+xml; charset=utf-8");
        assert_eq!(content_type("photo.png"), "image/png");
        assert_eq!(content_type("font.woff2"), "font/woff2");
        assert_eq!(content_type("site.webmanifest"), "application/manifest+json; charset=utf-8");
        assert_eq!(content_type("blob.unknownext"), "application/octet-stream");
        assert_eq!(content_type("LICENSE"), "application/octet-stream");
    }

    #[test]
    fn default_cache_rules() {
        let rules = CacheRules::default();
        assert_eq!(rules.cache_control("index.html"), REVALIDATE);
        assert_eq!(rules.cache_control("assets/app.3f9a2c1b.js"), IMMUTABLE);
        assert_eq!(rules.cache_control("assets/index-BxK3d9aZ.css"), IMMUTABLE);
        assert_eq!(rules.cache_control("main.a1b2c3d4e5f6.html"), REVALIDATE);
        assert_eq!(rules.cache_control("favicon.ico"), REVALIDATE);
        assert_eq!(rules.cache_control("chunk-vendors.js"), REVALIDATE);
        assert_eq!(rules.cache_control("report-20240101.pdf"), REVALIDATE);
    }

    #[test]
    fn user_rules_win_in_order() {
        let rules = CacheRules::parse("*.json=no-store; assets/**=public, max-age=60\n*=private").unwrap();
        assert_eq!(rules.cache_control("a/b.json"), "no-store");
        assert_eq!(rules.cache_control("assets/app.3f9a2c1b.js"), "public, max-age=60");
        assert_eq!(rules.cache_control("index.html"), "private");
    }

    #[test]
    fn bad_rules_are_refused() {
        assert!(CacheRules::parse("*.html").is_err());
        assert!(CacheRules::parse("[=x").is_err());
        assert!(CacheRules::parse("*.html=").is_err());
    }
}
