//! Report: the result object every command ends with, as step outputs, a summary, one line and
//! the `--json` object.

use serde::Serialize;
use serde_json::{Map, Value};

use crate::inputs::SiteUrl;
use crate::progress::human_bytes;
use crate::smoke::{SmokeCheck, SmokeFailure};

/// Every output with what it holds, in the order CI systems receive them.
pub const OUTPUTS: &[(&str, &str)] = &[
    ("version", "The version this run released."),
    ("previous-version", "The version that was live before this run."),
    ("promoted", "Whether this run made the version live (true or false)."),
    ("preview-url", "The site URL with the override query, to look at the version before or after it is live."),
    ("site-url", "The site URL the smoke test used."),
    ("files", "Files in the release."),
    ("uploaded", "Files sent to the store."),
    ("copied", "Unchanged files copied server-side from the previous release."),
    ("bytes-uploaded", "Bytes sent to the store."),
    ("duration-ms", "How long the run took, in milliseconds."),
    ("invalidation-id", "The CloudFront invalidation this run created, if any."),
];

/// The step outputs, keyed as DESIGN.md names them, and the smoke results. URLs show no credentials.
#[derive(Debug, Clone, Default, Serialize, PartialEq, Eq)]
#[serde(rename_all = "kebab-case")]
pub struct Outputs {
    pub version: String,
    pub previous_version: Option<String>,
    pub promoted: bool,
    pub preview_url: Option<SiteUrl>,
    pub site_url: Option<SiteUrl>,
    pub files: usize,
    pub uploaded: usize,
    pub copied: usize,
    pub bytes_uploaded: u64,
    pub duration_ms: u64,
    pub invalidation_id: Option<String>,
    /// Each smoke path's result: in the summary and `--json`, not a step output.
    pub smoke: Vec<SmokeCheck>,
    /// A dry run: the counts are what a run would write, and the line says so.
    #[serde(skip)]
    pub dry_run: bool,
    /// The version is live but its invalidation failed: the run reports the outputs, then fails
    /// with this (exit 1). Not an output.
    #[serde(skip)]
    pub invalidation_failed: Option<String>,
}

impl Outputs {
    /// Name and text of every output, in DESIGN.md's order; unset ones are empty.
    pub fn pairs(&self) -> Vec<(&'static str, String)> {
        let text = |v: &Option<String>| v.clone().unwrap_or_default();
        let url = |v: &Option<SiteUrl>| v.as_ref().map(SiteUrl::to_string).unwrap_or_default();
        vec![
            ("version", self.version.clone()),
            ("previous-version", text(&self.previous_version)),
            ("promoted", self.promoted.to_string()),
            ("preview-url", url(&self.preview_url)),
            ("site-url", url(&self.site_url)),
            ("files", self.files.to_string()),
            ("uploaded", self.uploaded.to_string()),
            ("copied", self.copied.to_string()),
            ("bytes-uploaded", self.bytes_uploaded.to_string()),
            ("duration-ms", self.duration_ms.to_string()),
            ("invalidation-id", text(&self.invalidation_id)),
        ]
    }

    /// The one-line result.
    pub fn line(&self) -> String {
        let state = if self.promoted {
            format!("live (was {})", self.previous_version.as_deref().unwrap_or("nothing"))
        } else {
            "not promoted".to_owned()
        };
        let seconds = std::time::Duration::from_millis(self.duration_ms).as_secs_f64();
        if self.files == 0 {
            return format!("cutover: {} {state} in {seconds:.1}s", self.version);
        }
        if self.dry_run {
            return format!(
                "cutover: {} {state} (dry run): {} files, {} would upload, {} would copy, {} to send; nothing was written",
                self.version,
                self.files,
                self.uploaded,
                self.copied,
                human_bytes(self.bytes_uploaded),
            );
        }
        format!(
            "cutover: {} {state}: {} files, {} uploaded, {} copied, {} sent in {seconds:.1}s",
            self.version,
            self.files,
            self.uploaded,
            self.copied,
            human_bytes(self.bytes_uploaded),
        )
    }

    /// A Markdown summary for the CI run page.
    pub fn summary(&self) -> String {
        let mut md = format!("### cutover: {}\n\n| | |\n|---|---|\n", self.version);
        for (name, value) in self.pairs() {
            if !value.is_empty() {
                md.push_str(&format!("| {name} | {} |\n", value.replace('|', "\\|")));
            }
        }
        if let Some(preview) = &self.preview_url {
            md.push_str(&format!("\nPreview: [{preview}]({preview})\n"));
        }
        if !self.smoke.is_empty() {
            md.push_str("\n| smoke path | result | attempts |\n|---|---|---|\n");
            for check in &self.smoke {
                md.push_str(&format!(
                    "| `{}` | {} | {} |\n",
                    check.path,
                    check.detail.replace('|', "\\|"),
                    check.attempts
                ));
            }
        }
        if let Some(previous) = self.previous_version.as_deref().filter(|_| self.promoted) {
            md.push_str(&format!("\nTo go back: `cutover rollback --to {previous}`\n"));
        }
        md
    }
}

/// The `--json` object a run ends with: the command's result, and when it failed `error` (the
/// message with its causes), `exit-code` and, when the smoke test failed, `smoke`.
pub fn json_result(result: Option<Map<String, Value>>, failure: Option<(&anyhow::Error, u8)>) -> Option<Value> {
    let Some((err, code)) = failure else { return result.map(Value::Object) };
    let mut object = result.unwrap_or_default();
    if let Some(smoke) = err.chain().find_map(|cause| cause.downcast_ref::<SmokeFailure>()) {
        object.insert("smoke".into(), serde_json::to_value(&smoke.checks).unwrap_or_default());
    }
    object.insert("error".into(), format!("{err:#}").into());
    object.insert("exit-code".into(), code.into());
    Some(Value::Object(object))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pairs_follow_the_output_definitions() {
        let names: Vec<&str> = Outputs::default().pairs().iter().map(|(n, _)| *n).collect();
        let defined: Vec<&str> = OUTPUTS.iter().map(|(n, _)| *n).collect();
        assert_eq!(names, defined);
    }

    #[test]
    fn a_dry_run_says_what_it_would_upload() {
        let outputs =
            Outputs { version: "pr-7-1".into(), files: 301, uploaded: 301, dry_run: true, ..Outputs::default() };
        let line = outputs.line();
        assert!(line.contains("301 would upload") && line.contains("nothing was written"), "{line}");
        assert!(!line.contains(" uploaded"), "{line}");
    }

    #[test]
    fn json_keys_are_the_output_names_and_the_smoke_results() {
        let outputs = Outputs { version: "42".into(), promoted: true, ..Default::default() };
        let json = serde_json::to_value(&outputs).unwrap();
        let keys: Vec<&str> = json.as_object().unwrap().keys().map(String::as_str).collect();
        let mut names: Vec<&str> = outputs.pairs().iter().map(|(n, _)| *n).collect();
        names.push("smoke");
        names.sort_unstable();
        assert_eq!(keys, names);
        assert_eq!(json["promoted"], true);
    }

    #[test]
    fn a_failure_adds_the_error_the_exit_code_and_the_smoke_results() {
        let check = SmokeCheck { path: "/".into(), passed: false, attempts: 3, detail: "status 500".into() };
        let smoke = SmokeFailure { message: "version 4: /: status 500".into(), checks: vec![check] };
        let err = anyhow::Error::new(smoke).context("smoke-testing 4");
        let result: Map<String, Value> = [("checks".to_owned(), Value::from(1))].into_iter().collect();
        let json = json_result(Some(result.clone()), Some((&err, 3))).unwrap();
        let expected = serde_json::json!({
            "checks": 1,
            "smoke": [{ "path": "/", "passed": false, "attempts": 3, "detail": "status 500" }],
            "error": "smoke-testing 4: smoke test failed: version 4: /: status 500",
            "exit-code": 3,
        });
        assert_eq!(json, expected);
        let bad = anyhow::anyhow!("bad");
        assert_eq!(json_result(None, Some((&bad, 2))).unwrap(), serde_json::json!({ "error": "bad", "exit-code": 2 }));
        assert_eq!(json_result(Some(result), None).unwrap(), serde_json::json!({ "checks": 1 }));
        assert_eq!(json_result(None, None), None);
    }
}
