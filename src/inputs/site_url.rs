//! The `site-url` input as a type that keeps its credentials apart: sent as Basic auth, shown nowhere.

use std::fmt;

use percent_encoding::percent_decode_str;
use serde::Serialize;
use url::Url;

use super::InputError;
use crate::routing::EdgeNames;

/// The site's URL. Credentials in it (`https://user:password@host/`) go with every request made
/// through [`SiteUrl::get`] as Basic auth; Display, Debug and Serialize show the URL without them.
#[derive(Clone, PartialEq, Eq)]
pub struct SiteUrl {
    /// The URL without its credentials.
    url: Url,
    credentials: Option<Credentials>,
}

#[derive(Clone, PartialEq, Eq)]
struct Credentials {
    /// As written in the URL (percent-encoded), for masking.
    userinfo: String,
    user: String,
    password: Option<String>,
}

impl SiteUrl {
    /// Parses the `site-url` input; an error never repeats credentials.
    pub fn parse(text: &str) -> Result<SiteUrl, InputError> {
        // A value that did not parse as an http(s) URL with a host may hold credentials anywhere
        // (`user:password@host` without a scheme parses with `user` as the scheme): if it has an
        // `@`, none of it is shown.
        let shown = || {
            if text.contains('@') {
                "the value (not shown: it may hold credentials)".into()
            } else {
                format!("{text:?}")
            }
        };
        let url =
            Url::parse(text).map_err(|e| InputError::new("site-url", format!("{} is not a URL: {e}", shown())))?;
        if !matches!(url.scheme(), "http" | "https") || url.host().is_none() {
            return Err(InputError::new("site-url", format!("{} is not an http(s) URL with a host", shown())));
        }
        SiteUrl::try_from(url)
    }

    /// The site's host name (lowercase, as URLs are compared).
    pub fn host(&self) -> Option<&str> {
        self.url.host_str()
    }

    /// A GET of `path` under the site (the site itself for an empty path), with its credentials.
    pub fn get(&self, client: &reqwest::Client, path: &str) -> reqwest::RequestBuilder {
        let request = if path.is_empty() {
            client.get(self.url.clone())
        } else {
            client.get(format!("{}{path}", self.url.as_str().trim_end_matches('/')))
        };
        match &self.credentials {
            Some(c) => request.basic_auth(&c.user, c.password.as_ref()),
            None => request,
        }
    }

    /// What GitHub must mask: the userinfo, and the password (else the user name), as written and
    /// decoded.
    pub fn secrets(&self) -> Vec<String> {
        let Some(c) = &self.credentials else { return Vec::new() };
        let (written, decoded) = match c.userinfo.split_once(':') {
            Some((_, password)) => (password, c.password.clone().unwrap_or_default()),
            None => (c.userinfo.as_str(), c.user.clone()),
        };
        let mut secrets = vec![c.userinfo.clone(), written.to_owned(), decoded];
        secrets.retain(|s| !s.is_empty());
        secrets.dedup();
        secrets
    }

    /// The preview link for a version: the site URL with the override query, without credentials.
    pub fn preview(&self, version: &str, names: &EdgeNames) -> SiteUrl {
        let mut url = self.url.clone();
        url.query_pairs_mut()
            .append_pair(&names.query, &crate::routing::override_value(names, version, crate::routing::unix_now()));
        SiteUrl { url, credentials: None }
    }
}

impl TryFrom<Url> for SiteUrl {
    type Error = InputError;

    /// Takes the credentials out of the URL.
    fn try_from(mut url: Url) -> Result<SiteUrl, InputError> {
        let (user, password) = (url.username().to_owned(), url.password().map(str::to_owned));
        if user.is_empty() && password.is_none() {
            return Ok(SiteUrl { url, credentials: None });
        }
        let decode = |text: &str| {
            percent_decode_str(text).decode_utf8().map(|d| d.into_owned()).map_err(|_| {
                InputError::new("site-url", "the credentials in the URL are not UTF-8 once percent-decoded")
            })
        };
        let credentials = Credentials {
            userinfo: password.as_ref().map_or_else(|| user.clone(), |p| format!("{user}:{p}")),
            user: decode(&user)?,
            password: password.as_deref().map(decode).transpose()?,
        };
        if url.set_username("").and_then(|()| url.set_password(None)).is_err() {
            return Err(InputError::new("site-url", "the URL has credentials but no host"));
        }
        Ok(SiteUrl { url, credentials: Some(credentials) })
    }
}

impl fmt::Display for SiteUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.url.as_str())
    }
}

impl fmt::Debug for SiteUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("SiteUrl").field(&self.url.as_str()).finish()
    }
}

impl Serialize for SiteUrl {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_site_url_shows_no_credentials_but_sends_them() {
        let site = SiteUrl::parse("https://deploy:S3%2Fcr3t@staging.example.com/app/").unwrap();
        assert_eq!(site.to_string(), "https://staging.example.com/app/");
        assert_eq!(format!("{site:?}"), "SiteUrl(\"https://staging.example.com/app/\")");
        assert_eq!(serde_json::to_value(&site).unwrap(), "https://staging.example.com/app/");
        let preview = site.preview("4", &EdgeNames::default());
        assert_eq!(preview.to_string(), "https://staging.example.com/app/?override_build_number=4");
        assert_eq!(site.secrets(), ["deploy:S3%2Fcr3t", "S3%2Fcr3t", "S3/cr3t"]);
        let client = reqwest::Client::new();
        let request = site.get(&client, "/index.html").build().unwrap();
        assert_eq!(request.url().as_str(), "https://staging.example.com/app/index.html");
        // `deploy:S3/cr3t`, decoded, as Basic auth.
        assert_eq!(request.headers()["authorization"], "Basic ZGVwbG95OlMzL2NyM3Q=");
        let token = SiteUrl::parse("https://t0ken@example.com").unwrap();
        assert_eq!((token.to_string().as_str(), token.secrets()), ("https://example.com/", vec!["t0ken".to_owned()]));
        assert!(token.get(&client, "").build().unwrap().headers().contains_key("authorization"));
        let plain = SiteUrl::parse("http://127.0.0.1:8080").unwrap();
        assert!(plain.secrets().is_empty());
        assert!(!plain.get(&client, "/").build().unwrap().headers().contains_key("authorization"));
    }

    #[test]
    fn a_bad_site_url_never_repeats_its_credentials() {
        for text in [
            "https://deploy:S3cr3t@exa mple.com/",
            "deploy:S3cr3t@127.0.0.1:18080",
            "deploy:S3cr3t@example.com/",
            "ftp://deploy:S3cr3t@example.com/",
            "https://u:%FF@x.com/",
        ] {
            let err = SiteUrl::parse(text).unwrap_err();
            assert_eq!(err.input, "site-url");
            assert!(!err.to_string().contains("S3cr3t") && !err.to_string().contains("%FF"), "{err}");
        }
        assert!(SiteUrl::parse("not a url").unwrap_err().to_string().contains("\"not a url\""));
    }
}
