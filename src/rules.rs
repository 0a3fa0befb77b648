//! Content-Type and Cache-Control for each released file: user rules first, then safe defaults.

use globset::{Glob, GlobMatcher};

/// Fingerprinted files (`shared-assets`) never change under their name.
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

    /// The Cache-Control for a release-relative path that is not fingerprinted (those are always
    /// [`IMMUTABLE`]: see [`crate::shared_assets`]).
    pub fn cache_control(&self, path: &str) -> String {
        self.0.iter().find(|(glob, _)| glob.is_match(path)).map_or(REVALIDATE, |(_, value)| value).to_owned()
    }
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
        // Whether a name carries a hash is `shared-assets`' question, not guessed here: these were
        // all cached immutable for a year by the guess before it.
        for path in ["index.html", "og-image-1200x630.png", "hero-1920x1080.jpg", "manual-2024edition.pdf"] {
            assert_eq!(rules.cache_control(path), REVALIDATE, "{path}");
        }
        assert_eq!(rules.cache_control("Inter-SemiBold2.woff2"), REVALIDATE);
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
