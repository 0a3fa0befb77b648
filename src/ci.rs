//! How each CI system hears about a run: phases, warnings, failures and step outputs, each in the
//! system's own format. Human logs go to stderr; CI commands go to stdout unless `--json` owns it,
//! and then the run ends with one JSON object there: its result, or its failure.

use std::fs::OpenOptions;
use std::future::Future;
use std::io::{self, Write};
use std::path::PathBuf;
use std::sync::Mutex;
use std::time::Instant;

use serde::Serialize;
use serde_json::{Map, Value};

use crate::env::Env;
use crate::inputs::SiteUrl;
use crate::report::{self, Outputs};

/// The CI system a run is in, detected from its environment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CiSystem {
    GitHub { output: Option<PathBuf>, summary: Option<PathBuf> },
    TeamCity,
    CircleCi { bash_env: Option<PathBuf> },
    Plain,
}

impl CiSystem {
    pub fn detect(env: &Env) -> Self {
        let path = |name: &str| env.get(name).map(PathBuf::from);
        if env.get("GITHUB_ACTIONS") == Some("true") {
            CiSystem::GitHub { output: path("GITHUB_OUTPUT"), summary: path("GITHUB_STEP_SUMMARY") }
        } else if env.is_set("TEAMCITY_VERSION") {
            CiSystem::TeamCity
        } else if env.get("CIRCLECI") == Some("true") {
            CiSystem::CircleCi { bash_env: path("BASH_ENV") }
        } else {
            CiSystem::Plain
        }
    }
}

/// Env vars whose values must never show in a log.
const SECRET_VARS: [&str; 5] =
    ["AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "INPUT_GITHUB-TOKEN", "INPUT_GITHUB_TOKEN", "CUTOVER_GITHUB_TOKEN"];

/// Outputs that are counts, reported to TeamCity as build statistics too.
const STATISTICS: [&str; 5] = ["files", "uploaded", "copied", "bytes-uploaded", "duration-ms"];

/// Speaks to the CI system (commands on its console), to people (stderr) and to programs (the
/// result on stdout).
pub struct Reporter {
    ci: CiSystem,
    console: Mutex<Box<dyn Write + Send>>,
    /// With `--json`: the result is kept here until the run ends, failure or not.
    json: Option<Mutex<Option<Map<String, Value>>>>,
}

impl Reporter {
    /// CI commands go to stdout, or to stderr when `--json` owns stdout.
    pub fn new(ci: CiSystem, json: bool) -> Self {
        let console: Box<dyn Write + Send> = if json { Box::new(io::stderr()) } else { Box::new(io::stdout()) };
        Self { json: json.then(Mutex::default), ..Self::with_console(ci, console) }
    }

    pub fn with_console(ci: CiSystem, console: Box<dyn Write + Send>) -> Self {
        Self { ci, console: Mutex::new(console), json: None }
    }

    /// Writes a CI command line where the CI system reads it.
    fn command(&self, line: &str) {
        let mut console = self.console.lock().unwrap_or_else(|e| e.into_inner());
        let _ = writeln!(console, "{line}").and_then(|()| console.flush());
    }

    /// Asks GitHub to hide secret values wherever they might show later: the AWS secrets, the
    /// credentials in the site URL and the secret inputs however given (`override-secret`,
    /// `github-token`, as variables or flags).
    pub fn mask_secrets(&self, env: &Env, site_url: Option<&SiteUrl>, inputs: &[Option<&str>]) {
        if matches!(self.ci, CiSystem::GitHub { .. }) {
            let vars = SECRET_VARS.iter().filter_map(|name| env.get(name)).map(str::to_owned);
            let given = site_url
                .map(SiteUrl::secrets)
                .unwrap_or_default()
                .into_iter()
                .chain(inputs.iter().flatten().map(|s| (*s).to_owned()));
            for value in vars.chain(given) {
                self.command(&format!("::add-mask::{}", github_escape(&value)));
            }
        }
    }

    /// The command's result: printed now for people, or kept for the JSON object the run ends with.
    /// A result is a JSON object.
    pub fn result<T: Serialize>(&self, result: &T, human: impl FnOnce() -> String) -> anyhow::Result<()> {
        let Some(kept) = &self.json else {
            crate::show!("{}", human());
            return Ok(());
        };
        let Value::Object(object) = serde_json::to_value(result)? else {
            anyhow::bail!("a command's result must be a JSON object");
        };
        *kept.lock().unwrap_or_else(|e| e.into_inner()) = Some(object);
        Ok(())
    }

    /// Ends the run: with `--json`, prints its one object on stdout, with the failure if it failed.
    pub fn end(&self, failure: Option<(&anyhow::Error, u8)>) {
        let Some(kept) = &self.json else { return };
        let result = kept.lock().unwrap_or_else(|e| e.into_inner()).take();
        if let Some(object) = report::json_result(result, failure) {
            crate::show!("{object:#}\n");
        }
    }

    /// Runs one phase of a command, marking it in the log with its duration.
    pub async fn phase<T>(&self, name: &str, work: impl Future<Output = T>) -> T {
        let started = Instant::now();
        let quoted = teamcity_escape(name);
        match &self.ci {
            CiSystem::GitHub { .. } => self.command(&format!("::group::{name}")),
            CiSystem::TeamCity => {
                self.command(&format!("##teamcity[blockOpened name='{quoted}']"));
                self.command(&format!("##teamcity[progressStart '{quoted}']"));
            }
            _ => crate::say!("== {name}"),
        }
        let result = work.await;
        crate::say!("{name} took {:.1}s", started.elapsed().as_secs_f64());
        match &self.ci {
            CiSystem::GitHub { .. } => self.command("::endgroup::"),
            CiSystem::TeamCity => {
                self.command(&format!("##teamcity[progressFinish '{quoted}']"));
                self.command(&format!("##teamcity[blockClosed name='{quoted}']"));
            }
            _ => {}
        }
        result
    }

    pub fn warn(&self, message: &str) {
        match &self.ci {
            CiSystem::GitHub { .. } => self.command(&format!("::warning::{}", github_escape(message))),
            CiSystem::TeamCity => {
                self.command(&format!("##teamcity[message text='{}' status='WARNING']", teamcity_escape(message)))
            }
            _ => crate::say!("warning: {message}"),
        }
    }

    /// Tells the CI system the step failed, and why.
    pub fn fail(&self, message: &str, exit_code: u8) {
        match &self.ci {
            CiSystem::GitHub { .. } => {
                self.command(&format!("::error title=cutover failed (exit {exit_code})::{}", github_escape(message)))
            }
            CiSystem::TeamCity => self.command(&format!(
                "##teamcity[buildProblem description='{}' identity='cutover-exit-{exit_code}']",
                teamcity_escape(&truncate(message, TEAMCITY_DESCRIPTION_LIMIT))
            )),
            _ => {}
        }
    }

    /// Hands the step outputs to later steps and reports the result.
    pub fn publish(&self, outputs: &Outputs) -> io::Result<()> {
        let pairs = outputs.pairs();
        match &self.ci {
            CiSystem::GitHub { output, summary } => {
                if let Some(path) = output {
                    append(path, &github_outputs(&pairs))?;
                }
                if let Some(path) = summary {
                    append(path, &outputs.summary())?;
                }
            }
            CiSystem::TeamCity => {
                for (name, value) in &pairs {
                    let (name, value) = (output_env_name(name), teamcity_escape(value));
                    self.command(&format!("##teamcity[setParameter name='env.{name}' value='{value}']"));
                }
                for (name, value) in pairs.iter().filter(|(name, _)| STATISTICS.contains(name)) {
                    self.command(&format!("##teamcity[buildStatisticValue key='cutover.{name}' value='{value}']"));
                }
                self.command(&format!("##teamcity[buildStatus text='{}']", teamcity_escape(&outputs.line())));
            }
            CiSystem::CircleCi { bash_env: Some(path) } => {
                let lines: String = pairs
                    .iter()
                    .map(|(name, value)| format!("export {}={}\n", output_env_name(name), shell_quote(value)))
                    .collect();
                append(path, &lines)?;
            }
            CiSystem::CircleCi { bash_env: None } | CiSystem::Plain => {}
        }
        Ok(())
    }
}

/// TeamCity shows at most this much of a build problem.
const TEAMCITY_DESCRIPTION_LIMIT: usize = 4000;

fn truncate(text: &str, limit: usize) -> String {
    text.chars().take(limit).collect()
}

fn append(path: &PathBuf, text: &str) -> io::Result<()> {
    let mut file = OpenOptions::new().create(true).append(true).open(path)?;
    file.write_all(text.as_bytes())
}

/// What output env vars (TeamCity, CircleCI) start with. Inputs are read from `CUTOVER_<NAME>` and
/// no input is named `output-*`, so one step's outputs never become the next step's inputs.
pub const OUTPUT_ENV_PREFIX: &str = "CUTOVER_OUTPUT_";

/// The env var an output reaches later steps as: `bytes-uploaded` -> `CUTOVER_OUTPUT_BYTES_UPLOADED`.
pub fn output_env_name(output: &str) -> String {
    format!("{OUTPUT_ENV_PREFIX}{}", output.to_ascii_uppercase().replace('-', "_"))
}

/// `name=value` lines; a multi-line value uses the heredoc form with a random delimiter.
pub fn github_outputs(outputs: &[(&str, String)]) -> String {
    let mut text = String::new();
    for (name, value) in outputs {
        if value.contains(['\n', '\r']) {
            let delimiter = loop {
                let candidate = format!("CUTOVER_EOF_{:016x}", rand::random::<u64>());
                if !value.contains(&candidate) {
                    break candidate;
                }
            };
            text.push_str(&format!("{name}<<{delimiter}\n{value}\n{delimiter}\n"));
        } else {
            text.push_str(&format!("{name}={value}\n"));
        }
    }
    text
}

/// Escapes a workflow command's message.
pub fn github_escape(message: &str) -> String {
    message.replace('%', "%25").replace('\r', "%0D").replace('\n', "%0A")
}

/// Escapes a TeamCity service message value.
pub fn teamcity_escape(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for c in value.chars() {
        match c {
            '|' => out.push_str("||"),
            '\'' => out.push_str("|'"),
            '\n' => out.push_str("|n"),
            '\r' => out.push_str("|r"),
            '[' => out.push_str("|["),
            ']' => out.push_str("|]"),
            c if c.is_ascii() => out.push(c),
            c => {
                let mut units = [0u16; 2];
                for unit in c.encode_utf16(&mut units) {
                    out.push_str(&format!("|0x{unit:04X}"));
                }
            }
        }
    }
    out
}

/// Single-quotes a value for `export` in bash.
pub fn shell_quote(value: &str) -> String {
    format!("'{}'", value.replace('\'', r"'\''"))
}

#[cfg(test)]
mod tests {
    //! The exact lines each CI system reads are snapshots (`expect-test`): a change shows as a diff,
    //! and `UPDATE_EXPECT=1 cargo test --lib ci::` rewrites them after a deliberate change.
    use super::*;
    use expect_test::expect;
    use std::sync::Arc;

    /// A console the tests can read back.
    #[derive(Clone, Default)]
    struct Captured(Arc<Mutex<Vec<u8>>>);

    impl Write for Captured {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            self.0.lock().unwrap().write(buf)
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    impl Captured {
        fn text(&self) -> String {
            String::from_utf8(self.0.lock().unwrap().clone()).unwrap()
        }
    }

    /// Outputs holding every character the CI formats must escape, and a URL with credentials.
    fn awkward() -> Outputs {
        let url = |text: &str| Some(SiteUrl::parse(text).unwrap());
        Outputs {
            version: "42".into(),
            previous_version: Some("41".into()),
            promoted: true,
            preview_url: url("https://example.com/?override_build_number=42"),
            site_url: url("https://deploy:S3cr3t@example.com/it's [a|b] 100% \"é\""),
            files: 3,
            uploaded: 2,
            copied: 1,
            bytes_uploaded: 1234,
            duration_ms: 5678,
            invalidation_id: Some("first line\nsecond".into()),
            ..Outputs::default()
        }
    }

    /// `awkward()`'s site URL as every output shows it: encoded by the URL parser, no credentials.
    const AWKWARD_URL: &str = "https://example.com/it's%20[a|b]%20100%%20%22%C3%A9%22";

    fn reporter(ci: CiSystem) -> (Reporter, Captured) {
        let console = Captured::default();
        (Reporter::with_console(ci, Box::new(console.clone())), console)
    }

    #[test]
    fn detection() {
        let env: Env = [("GITHUB_ACTIONS", "true"), ("GITHUB_OUTPUT", "/o")].into_iter().collect();
        assert_eq!(CiSystem::detect(&env), CiSystem::GitHub { output: Some("/o".into()), summary: None });
        assert_eq!(CiSystem::detect(&[("TEAMCITY_VERSION", "2025.03")].into_iter().collect()), CiSystem::TeamCity);
        let env: Env = [("CIRCLECI", "true"), ("BASH_ENV", "/b")].into_iter().collect();
        assert_eq!(CiSystem::detect(&env), CiSystem::CircleCi { bash_env: Some("/b".into()) });
        assert_eq!(CiSystem::detect(&Env::default()), CiSystem::Plain);
    }

    #[test]
    fn github_outputs_file_and_summary() {
        let dir = tempfile::tempdir().unwrap();
        let (output, summary) = (dir.path().join("out"), dir.path().join("summary"));
        let ci = CiSystem::GitHub { output: Some(output.clone()), summary: Some(summary.clone()) };
        let (reporter, console) = reporter(ci);
        reporter.publish(&awkward()).unwrap();
        let written = std::fs::read_to_string(&output).unwrap();
        let delimiter = written.lines().find_map(|l| l.strip_prefix("invalidation-id<<")).unwrap().to_owned();
        assert!(delimiter.starts_with("CUTOVER_EOF_") && delimiter.len() == 28, "{delimiter}");
        // The delimiter is random; the snapshot names it.
        expect![[r#"
            version=42
            previous-version=41
            promoted=true
            preview-url=https://example.com/?override_build_number=42
            site-url=https://example.com/it's%20[a|b]%20100%%20%22%C3%A9%22
            files=3
            uploaded=2
            copied=1
            bytes-uploaded=1234
            duration-ms=5678
            invalidation-id<<<delimiter>
            first line
            second
            <delimiter>
        "#]]
        .assert_eq(&written.replace(&delimiter, "<delimiter>"));
        let summary = std::fs::read_to_string(&summary).unwrap();
        expect![[r#"
            ### cutover: 42

            | | |
            |---|---|
            | version | 42 |
            | previous-version | 41 |
            | promoted | true |
            | preview-url | https://example.com/?override_build_number=42 |
            | site-url | https://example.com/it's%20[a\|b]%20100%%20%22%C3%A9%22 |
            | files | 3 |
            | uploaded | 2 |
            | copied | 1 |
            | bytes-uploaded | 1234 |
            | duration-ms | 5678 |
            | invalidation-id | first line
            second |

            Preview: [https://example.com/?override_build_number=42](https://example.com/?override_build_number=42)

            To go back: `cutover rollback --to 41`
        "#]]
        .assert_eq(&summary);
        assert!(!summary.contains("S3cr3t"), "{summary}");
        assert_eq!(console.text(), "");
    }

    #[test]
    fn github_commands_escape_their_messages() {
        let (reporter, console) = reporter(CiSystem::GitHub { output: None, summary: None });
        reporter.warn("50% done\nnext");
        reporter.fail("bad [input] 'x'\r\nsecond line", 2);
        let env: Env = [("AWS_SECRET_ACCESS_KEY", "s3cr%t"), ("AWS_SESSION_TOKEN", "tok")].into_iter().collect();
        let site = SiteUrl::parse("https://deploy:p%40ss@example.com/").unwrap();
        reporter.mask_secrets(&env, Some(&site), &[Some("sign%me"), None, Some("ghs_flag")]);
        expect![[r#"
            ::warning::50%25 done%0Anext
            ::error title=cutover failed (exit 2)::bad [input] 'x'%0D%0Asecond line
            ::add-mask::s3cr%25t
            ::add-mask::tok
            ::add-mask::deploy:p%2540ss
            ::add-mask::p%2540ss
            ::add-mask::p@ss
            ::add-mask::sign%25me
            ::add-mask::ghs_flag
        "#]]
        .assert_eq(&console.text());
    }

    #[tokio::test]
    async fn teamcity_messages_are_escaped_exactly() {
        let (reporter, console) = reporter(CiSystem::TeamCity);
        reporter.phase("stage", async {}).await;
        reporter.publish(&awkward()).unwrap();
        reporter.fail("it's broken | [really]\né", 3);
        expect![[r#"
            ##teamcity[blockOpened name='stage']
            ##teamcity[progressStart 'stage']
            ##teamcity[progressFinish 'stage']
            ##teamcity[blockClosed name='stage']
            ##teamcity[setParameter name='env.CUTOVER_OUTPUT_VERSION' value='42']
            ##teamcity[setParameter name='env.CUTOVER_OUTPUT_PREVIOUS_VERSION' value='41']
            ##teamcity[setParameter name='env.CUTOVER_OUTPUT_PROMOTED' value='true']
            ##teamcity[setParameter name='env.CUTOVER_OUTPUT_PREVIEW_URL' value='https://example.com/?override_build_number=42']
            ##teamcity[setParameter name='env.CUTOVER_OUTPUT_SITE_URL' value='https://example.com/it|'s%20|[a||b|]%20100%%20%22%C3%A9%22']
            ##teamcity[setParameter name='env.CUTOVER_OUTPUT_FILES' value='3']
            ##teamcity[setParameter name='env.CUTOVER_OUTPUT_UPLOADED' value='2']
            ##teamcity[setParameter name='env.CUTOVER_OUTPUT_COPIED' value='1']
            ##teamcity[setParameter name='env.CUTOVER_OUTPUT_BYTES_UPLOADED' value='1234']
            ##teamcity[setParameter name='env.CUTOVER_OUTPUT_DURATION_MS' value='5678']
            ##teamcity[setParameter name='env.CUTOVER_OUTPUT_INVALIDATION_ID' value='first line|nsecond']
            ##teamcity[buildStatisticValue key='cutover.files' value='3']
            ##teamcity[buildStatisticValue key='cutover.uploaded' value='2']
            ##teamcity[buildStatisticValue key='cutover.copied' value='1']
            ##teamcity[buildStatisticValue key='cutover.bytes-uploaded' value='1234']
            ##teamcity[buildStatisticValue key='cutover.duration-ms' value='5678']
            ##teamcity[buildStatus text='cutover: 42 live (was 41): 3 files, 2 uploaded, 1 copied, 1.2 kB sent in 5.7s']
            ##teamcity[buildProblem description='it|'s broken || |[really|]|n|0x00E9' identity='cutover-exit-3']
        "#]].assert_eq(&console.text());
    }

    #[test]
    fn circleci_exports_survive_bash() {
        let dir = tempfile::tempdir().unwrap();
        let bash_env = dir.path().join("bash_env");
        let (reporter, console) = reporter(CiSystem::CircleCi { bash_env: Some(bash_env.clone()) });
        reporter.publish(&awkward()).unwrap();
        let written = std::fs::read_to_string(&bash_env).unwrap();
        expect![[r#"
            export CUTOVER_OUTPUT_VERSION='42'
            export CUTOVER_OUTPUT_PREVIOUS_VERSION='41'
            export CUTOVER_OUTPUT_PROMOTED='true'
            export CUTOVER_OUTPUT_PREVIEW_URL='https://example.com/?override_build_number=42'
            export CUTOVER_OUTPUT_SITE_URL='https://example.com/it'\''s%20[a|b]%20100%%20%22%C3%A9%22'
            export CUTOVER_OUTPUT_FILES='3'
            export CUTOVER_OUTPUT_UPLOADED='2'
            export CUTOVER_OUTPUT_COPIED='1'
            export CUTOVER_OUTPUT_BYTES_UPLOADED='1234'
            export CUTOVER_OUTPUT_DURATION_MS='5678'
            export CUTOVER_OUTPUT_INVALIDATION_ID='first line
            second'
        "#]]
        .assert_eq(&written);
        let sourced = std::process::Command::new("bash")
            .arg("-c")
            .arg(format!(
                "source '{}' && printf '%s|%s' \"$CUTOVER_OUTPUT_SITE_URL\" \"$CUTOVER_OUTPUT_INVALIDATION_ID\"",
                bash_env.display()
            ))
            .output()
            .unwrap();
        assert_eq!(String::from_utf8(sourced.stdout).unwrap(), format!("{AWKWARD_URL}|first line\nsecond"));
        assert_eq!(console.text(), "");
    }

    #[test]
    fn escaping_helpers() {
        assert_eq!(teamcity_escape("it's [a|b]\n\r"), "it|'s |[a||b|]|n|r");
        assert_eq!(teamcity_escape("é😀"), "|0x00E9|0xD83D|0xDE00");
        assert_eq!(github_escape("50% a\r\nb"), "50%25 a%0D%0Ab");
        assert_eq!(shell_quote("it's"), r"'it'\''s'");
        assert_eq!(output_env_name("bytes-uploaded"), "CUTOVER_OUTPUT_BYTES_UPLOADED");
    }

    /// Inputs are read from `CUTOVER_<NAME>`: an input named `output-*` would read other steps' outputs.
    #[test]
    fn output_env_names_are_never_input_names() {
        for input in crate::inputs::INPUTS {
            assert!(!input.name().starts_with("output"), "input `{}` would collide with outputs", input.name());
        }
        let inputs: Vec<String> =
            crate::inputs::INPUTS.iter().map(|i| format!("CUTOVER_{}", i.field.to_ascii_uppercase())).collect();
        for (output, _) in crate::report::OUTPUTS {
            let name = output_env_name(output);
            assert!(name.starts_with(OUTPUT_ENV_PREFIX) && !inputs.contains(&name), "{name}");
        }
        // A later step sees an earlier step's outputs; they are not misspelt inputs.
        let env: Env = crate::report::OUTPUTS.iter().map(|(output, _)| (output_env_name(output), "x")).collect();
        assert_eq!(crate::inputs::variable_warnings(&env), Vec::<String>::new());
    }
}
