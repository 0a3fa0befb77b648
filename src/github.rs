//! The optional GitHub side of a preview (input `github-token`): one comment on the pull request
//! with the link, found again by a hidden marker so pushes update it instead of piling up, and a
//! deployment of environment `preview/pr-<n>` with the link as its URL, marked inactive when the
//! pull request closes. The preview exists
//! whatever GitHub answers, so every failure here is a warning (a fork's pull request gets a token
//! that may not write); the token is sent only as the Authorization header and never printed.

use std::time::Duration;

use serde_json::{Value, json};

use crate::env::Env;

/// What finds the comment cutover wrote on a pull request for `site` (its store and prefix) again:
/// two sites previewing one pull request keep a comment each. Every byte but letters, digits and
/// `./:@` is written `_XX` (hex), `_` included: nothing can end the HTML comment, and two sites
/// never share a marker.
pub fn marker(site: &str) -> String {
    let mut escaped = String::with_capacity(site.len());
    for byte in site.bytes() {
        if byte.is_ascii_alphanumeric() || b"./:@".contains(&byte) {
            escaped.push(char::from(byte));
        } else {
            escaped.push_str(&format!("_{byte:02X}"));
        }
    }
    format!("<!-- cutover-preview {escaped} -->")
}
/// Pages of comments looked through for the marker (100 each).
const COMMENT_PAGES: u32 = 10;
/// Pages of a pull request's deployments looked through when it closes (100 each).
const DEPLOYMENT_PAGES: u32 = 10;
/// How the description of a deployment cutover recorded begins (then the preview's version).
const DEPLOYMENT: &str = "cutover preview";
const TIMEOUT: Duration = Duration::from_secs(20);

/// The `github-token` input; never printed.
#[derive(Clone, PartialEq, Eq)]
pub struct Token(String);

impl Token {
    /// Without the whitespace around it: a token saved with a trailing newline (`echo` into a
    /// secret) is sent as the token it is.
    pub fn new(token: String) -> Token {
        Token(token.trim().to_owned())
    }
}

impl std::fmt::Debug for Token {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Token(***)")
    }
}

/// Where the calls go: the API (`GITHUB_API_URL`, else github.com's), the repository
/// (`GITHUB_REPOSITORY`) and the commit deployed (`GITHUB_SHA`), read when the run starts.
#[derive(Debug, Clone)]
pub struct GitHub {
    token: Token,
    api: String,
    repository: Option<String>,
    sha: Option<String>,
}

/// What the comment and the deployment say about one push's preview.
#[derive(Debug, Clone)]
pub struct Preview<'a> {
    /// The site previewed (its store and prefix), named in the marker.
    pub site: &'a str,
    pub pull_request: u64,
    pub version: &'a str,
    pub url: Option<&'a str>,
    pub files: usize,
    pub uploaded: usize,
    pub copied: usize,
    pub run_url: Option<&'a str>,
}

impl GitHub {
    pub fn new(token: Token, env: &Env) -> GitHub {
        GitHub {
            token,
            api: env.get("GITHUB_API_URL").unwrap_or("https://api.github.com").trim_end_matches('/').to_owned(),
            repository: env.get("GITHUB_REPOSITORY").map(str::to_owned),
            sha: env.get("GITHUB_SHA").map(str::to_owned),
        }
    }

    /// The client and the repository every call needs; else the one warning to give.
    fn connect(&self) -> Result<(reqwest::Client, &str), String> {
        let repository = self.repository.as_deref().filter(|r| is_repository(r)).ok_or_else(|| {
            "github-token is set but GITHUB_REPOSITORY is not owner/name: no GitHub call is made".to_owned()
        })?;
        let client = reqwest::Client::builder().timeout(TIMEOUT).build().map_err(|e| format!("github: {e}"))?;
        Ok((client, repository))
    }

    /// Comments the preview and records its deployment; returns the warnings, one per failure.
    pub async fn announce(&self, preview: &Preview<'_>) -> Vec<String> {
        let (client, repository) = match self.connect() {
            Ok(connected) => connected,
            Err(warning) => return vec![warning],
        };
        let call = Caller { github: self, client: &client, repository };
        let mut warnings = Vec::new();
        if let Err(e) = call.comment(preview).await {
            warnings.push(format!("the pull request comment was not written: {e}"));
        }
        if let Err(e) = call.deploy(preview, self.sha.as_deref()).await {
            warnings.push(format!("the GitHub deployment was not recorded: {e}"));
        }
        warnings
    }

    /// The pull request closed: marks `inactive` each deployment of its environment
    /// `preview/pr-<n>` that cutover recorded, so GitHub stops linking a deleted preview; returns
    /// the warnings (none when every call succeeded).
    pub async fn retire(&self, pull_request: u64) -> Vec<String> {
        let (client, repository) = match self.connect() {
            Ok(connected) => connected,
            Err(warning) => return vec![warning],
        };
        let call = Caller { github: self, client: &client, repository };
        match call.deactivate(pull_request).await {
            Ok(()) => Vec::new(),
            Err(e) => {
                vec![format!("the GitHub deployments of {} were not marked inactive: {e}", environment(pull_request))]
            }
        }
    }
}

/// The GitHub environment of a pull request's previews.
fn environment(pull_request: u64) -> String {
    format!("preview/pr-{pull_request}")
}

/// `owner/name` as GitHub spells them: nothing that could leave the repository's API path.
fn is_repository(text: &str) -> bool {
    let part = |p: &str| {
        !p.is_empty() && p != "." && p != ".." && p.bytes().all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b))
    };
    text.split_once('/').is_some_and(|(owner, name)| part(owner) && part(name))
}

struct Caller<'a> {
    github: &'a GitHub,
    client: &'a reqwest::Client,
    repository: &'a str,
}

impl Caller<'_> {
    /// One API call; a status that is not 2xx is an error naming the call, never the token.
    async fn send(&self, method: reqwest::Method, path: &str, body: Option<&Value>) -> Result<Value, CallError> {
        let url = format!("{}/repos/{}/{path}", self.github.api, self.repository);
        let mut request = self
            .client
            .request(method.clone(), &url)
            .bearer_auth(&self.github.token.0)
            .header("accept", "application/vnd.github+json")
            .header("x-github-api-version", "2022-11-28")
            .header("user-agent", "cutover");
        if let Some(body) = body {
            request = request.header("content-type", "application/json").body(body.to_string());
        }
        let what = format!("{method} /repos/{}/{}", self.repository, path.split('?').next().unwrap_or(path));
        let failed = |message: String| CallError { status: None, message };
        let response = request.send().await.map_err(|e| failed(format!("{what}: {}", e.without_url())))?;
        let status = response.status();
        if !status.is_success() {
            let hint = match status.as_u16() {
                401 | 403 | 404 => {
                    ": the token may not write here (a fork's pull request gets a read-only token; give the job `pull-requests: write` and `deployments: write`)"
                }
                _ => "",
            };
            return Err(CallError {
                status: Some(status.as_u16()),
                message: format!("{what} answered {status}{hint}"),
            });
        }
        if status == reqwest::StatusCode::NO_CONTENT {
            return Ok(Value::Null);
        }
        let bytes = response.bytes().await.map_err(|e| failed(format!("{what}: {}", e.without_url())))?;
        serde_json::from_slice(&bytes).map_err(|e| failed(format!("{what}: the answer is not JSON: {e}")))
    }

    /// Updates the newest comment holding this site's [`marker`] that a bot wrote and this token may
    /// edit, else creates one: another app's comment carrying the marker answers 403 and is passed
    /// over, so cutover's own comment is written (and, being newest, updated from then on).
    async fn comment(&self, preview: &Preview<'_>) -> Result<(), String> {
        let body = json!({ "body": comment_body(preview) });
        let marker = marker(preview.site);
        let number = preview.pull_request;
        let mut ours = Vec::new();
        for page in 1..=COMMENT_PAGES {
            let path = format!("issues/{number}/comments?per_page=100&page={page}");
            let comments = self.send(reqwest::Method::GET, &path, None).await?;
            let comments = comments.as_array().cloned().unwrap_or_default();
            ours.extend(comments.iter().filter(|c| is_ours(c, &marker)).filter_map(|c| c["id"].as_u64()));
            if comments.len() < 100 {
                break;
            }
        }
        ours.sort_unstable_by(|a, b| b.cmp(a));
        for id in ours {
            match self.send(reqwest::Method::PATCH, &format!("issues/comments/{id}"), Some(&body)).await {
                Ok(_) => return Ok(()),
                Err(CallError { status: Some(403 | 404), .. }) => {}
                Err(e) => return Err(e.into()),
            }
        }
        self.send(reqwest::Method::POST, &format!("issues/{number}/comments"), Some(&body)).await?;
        Ok(())
    }

    /// A deployment of `preview/pr-<n>` at the pushed commit, with the link and `success`.
    async fn deploy(&self, preview: &Preview<'_>, sha: Option<&str>) -> Result<(), String> {
        let Some(sha) = sha else { return Err("GITHUB_SHA is not set".into()) };
        let deployment = json!({
            "ref": sha,
            "environment": environment(preview.pull_request),
            "auto_merge": false,
            "required_contexts": [],
            "transient_environment": true,
            "production_environment": false,
            "description": format!("{DEPLOYMENT} {}", preview.version),
        });
        let created = self.send(reqwest::Method::POST, "deployments", Some(&deployment)).await?;
        let id = created["id"].as_u64().ok_or("POST deployments answered without an id")?;
        let mut status = json!({ "state": "success", "description": format!("preview {}", preview.version) });
        if let Some(url) = preview.url {
            status["environment_url"] = url.into();
        }
        if let Some(run) = preview.run_url {
            status["log_url"] = run.into();
        }
        self.send(reqwest::Method::POST, &format!("deployments/{id}/statuses"), Some(&status)).await?;
        Ok(())
    }

    /// Posts `inactive` on each deployment of `preview/pr-<n>` that [`Caller::deploy`] recorded
    /// (its description names it); another tool's deployments there are left alone.
    async fn deactivate(&self, pull_request: u64) -> Result<(), String> {
        let environment = environment(pull_request);
        let query =
            url::form_urlencoded::Serializer::new(String::new()).append_pair("environment", &environment).finish();
        let inactive = json!({ "state": "inactive", "description": "the pull request was closed" });
        for page in 1..=DEPLOYMENT_PAGES {
            let path = format!("deployments?{query}&per_page=100&page={page}");
            let listed = self.send(reqwest::Method::GET, &path, None).await?;
            let listed = listed.as_array().cloned().unwrap_or_default();
            let ours = listed.iter().filter(|d| {
                d["environment"] == environment.as_str()
                    && d["description"].as_str().is_some_and(|t| t.starts_with(&format!("{DEPLOYMENT} ")))
            });
            for id in ours.filter_map(|d| d["id"].as_u64()) {
                self.send(reqwest::Method::POST, &format!("deployments/{id}/statuses"), Some(&inactive)).await?;
            }
            if listed.len() < 100 {
                break;
            }
        }
        Ok(())
    }
}

/// Whether a comment may be the one cutover wrote: it holds `marker` and a bot wrote it (the
/// workflow's `GITHUB_TOKEN` writes as `github-actions[bot]`, an app's token as its bot). Anyone
/// can paste the marker into a comment of their own; cutover never edits a person's comment, and
/// another bot's refuses the edit ([`Caller::comment`] then goes on).
fn is_ours(comment: &Value, marker: &str) -> bool {
    comment["body"].as_str().is_some_and(|b| b.contains(marker)) && comment["user"]["type"] == "Bot"
}

/// A failed API call: its HTTP status, if it got one, and the message to warn with.
struct CallError {
    status: Option<u16>,
    message: String,
}

impl From<CallError> for String {
    fn from(e: CallError) -> String {
        e.message
    }
}

/// The comment: the marker, the link, the version and the counts.
fn comment_body(preview: &Preview<'_>) -> String {
    let link = preview.url.map_or_else(|| "(no site-url: no link)".to_owned(), |url| format!("[{url}]({url})"));
    format!(
        "{}\n**Preview** of this pull request: {link}\n\nversion `{}`: {} files, {} uploaded, {} copied. The link always shows the newest push.\n",
        marker(preview.site),
        preview.version,
        preview.files,
        preview.uploaded,
        preview.copied
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_owner_slash_name_is_a_repository() {
        assert!(is_repository("cutover-dev/cutover") && is_repository("a.b/c_d"));
        for bad in ["", "a", "a/", "/b", "a/b/c", "../b", "a/..", "a/b?x", "a b/c", "a/b#"] {
            assert!(!is_repository(bad), "{bad}");
        }
    }

    #[test]
    fn only_a_bots_comment_with_the_marker_is_ours() {
        let comment = |body: &str, kind: &str| json!({ "id": 1, "body": body, "user": { "login": "x", "type": kind } });
        let ours = marker("s3://bucket site");
        assert!(is_ours(&comment(&ours, "Bot"), &ours));
        assert!(!is_ours(&comment(&ours, "User"), &ours), "a person's comment quoting the marker");
        assert!(!is_ours(&comment("hello", "Bot"), &ours));
        assert!(!is_ours(&json!({ "id": 1, "body": ours }), &ours), "no author");
        let other = marker("s3://bucket other");
        assert!(!is_ours(&comment(&other, "Bot"), &ours), "another site's comment");
        assert_eq!(marker("x --> <b>"), "<!-- cutover-preview x_20_2D_2D_3E_20_3Cb_3E -->");
        // Sites whose names differ only where an escape once flattened them keep a marker each.
        let sites = ["s3://site-bkt p", "s3://site bkt_p", "local site-a", "local site_a", "local site/a", "local x--"];
        let markers: std::collections::HashSet<String> = sites.iter().map(|s| marker(s)).collect();
        assert_eq!(markers.len(), sites.len(), "{markers:?}");
    }

    #[test]
    fn the_comment_carries_the_marker_link_version_and_counts() {
        let preview = Preview {
            site: "s3://bucket site",
            pull_request: 7,
            version: "pr-7-3",
            url: Some("https://pr-7.preview.example.com/"),
            files: 4,
            uploaded: 2,
            copied: 1,
            run_url: None,
        };
        let body = comment_body(&preview);
        assert!(body.starts_with(&marker("s3://bucket site")), "{body}");
        for part in ["https://pr-7.preview.example.com/", "`pr-7-3`", "4 files, 2 uploaded, 1 copied"] {
            assert!(body.contains(part), "{part}: {body}");
        }
        assert_eq!(format!("{:?}", Token::new("ghs_x".into())), "Token(***)");
    }
}
