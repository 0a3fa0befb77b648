//! How each CI system hears about a run: phases, warnings, failures and step outputs, each in the
//! system's own format. Human logs go to stderr; CI commands go to stdout unless `--json` owns it.

use std::fs::OpenOptions;
use std::future::Future;
use std::io::{self, Write};
use std::path::PathBuf;
use std::time::Instant;

use crate::inputs::Env;

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

/// Speaks to the CI system and to people.
pub struct Reporter {
    ci: CiSystem,
    json: bool,
}

impl Reporter {
    pub fn new(ci: CiSystem, json: bool) -> Self {
        Self { ci, json }
    }

    /// Writes a CI command line where the CI system reads it.
    fn command(&self, line: &str) {
        if self.json {
            eprintln!("{line}");
        } else {
            println!("{line}");
        }
    }

    /// Runs one phase of a command, marking it in the log with its duration.
    pub async fn phase<T>(&self, name: &str, work: impl Future<Output = T>) -> T {
        let started = Instant::now();
        match &self.ci {
            CiSystem::GitHub { .. } => self.command(&format!("::group::{name}")),
            CiSystem::TeamCity => self.command(&format!("##teamcity[blockOpened name='{}']", teamcity_escape(name))),
            _ => eprintln!("== {name}"),
        }
        let result = work.await;
        let took = format!("{name} took {:.1}s", started.elapsed().as_secs_f64());
        match &self.ci {
            CiSystem::GitHub { .. } => {
                eprintln!("{took}");
                self.command("::endgroup::");
            }
            CiSystem::TeamCity => {
                eprintln!("{took}");
                self.command(&format!("##teamcity[blockClosed name='{}']", teamcity_escape(name)));
            }
            _ => eprintln!("{took}"),
        }
        result
    }

    pub fn warn(&self, message: &str) {
        match &self.ci {
            CiSystem::GitHub { .. } => self.command(&format!("::warning::{}", github_escape(message))),
            CiSystem::TeamCity => {
                self.command(&format!("##teamcity[message text='{}' status='WARNING']", teamcity_escape(message)))
            }
            _ => eprintln!("warning: {message}"),
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
                teamcity_escape(message)
            )),
            _ => {}
        }
    }

    /// Hands the step outputs to later steps and writes the summary.
    pub fn publish(&self, outputs: &[(&str, String)], summary: &str) -> io::Result<()> {
        match &self.ci {
            CiSystem::GitHub { output, summary: summary_file } => {
                if let Some(path) = output {
                    append(path, &github_outputs(outputs))?;
                }
                if let Some(path) = summary_file {
                    append(path, summary)?;
                }
            }
            CiSystem::TeamCity => {
                for (name, value) in outputs {
                    self.command(&format!(
                        "##teamcity[setParameter name='env.{}' value='{}']",
                        env_name(name),
                        teamcity_escape(value)
                    ));
                }
            }
            CiSystem::CircleCi { bash_env: Some(path) } => {
                let lines: String = outputs
                    .iter()
                    .map(|(name, value)| format!("export {}={}\n", env_name(name), shell_quote(value)))
                    .collect();
                append(path, &lines)?;
            }
            CiSystem::CircleCi { bash_env: None } | CiSystem::Plain => {}
        }
        Ok(())
    }
}

fn append(path: &PathBuf, text: &str) -> io::Result<()> {
    let mut file = OpenOptions::new().create(true).append(true).open(path)?;
    file.write_all(text.as_bytes())
}

/// `bytes-uploaded` -> `CUTOVER_BYTES_UPLOADED`.
pub fn env_name(output: &str) -> String {
    format!("CUTOVER_{}", output.to_ascii_uppercase().replace('-', "_"))
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
    use super::*;

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
    fn github_outputs_use_heredocs_for_multiline_values() {
        let text = github_outputs(&[("version", "42".into()), ("note", "a\nb".into())]);
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines[0], "version=42");
        let delimiter = lines[1].strip_prefix("note<<").unwrap();
        assert_eq!(&lines[2..], ["a", "b", delimiter]);
        assert_eq!(github_escape("50% a\r\nb"), "50%25 a%0D%0Ab");
    }

    #[test]
    fn teamcity_and_shell_escaping() {
        assert_eq!(teamcity_escape("it's [a|b]\n\r"), "it|'s |[a||b|]|n|r");
        assert_eq!(teamcity_escape("é😀"), "|0x00E9|0xD83D|0xDE00");
        assert_eq!(shell_quote("it's"), r"'it'\''s'");
        assert_eq!(env_name("bytes-uploaded"), "CUTOVER_BYTES_UPLOADED");
    }
}
