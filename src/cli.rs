//! The command line: the commands, and the inputs as flags.

use clap::{Parser, Subcommand};

use crate::inputs::RawInputs;

#[derive(Debug, Parser)]
#[command(
    name = "cutover",
    about = "Release a static site through S3 and CloudFront: stage, smoke, promote, roll back.",
    disable_version_flag = true
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Option<Command>,
    #[command(flatten)]
    pub inputs: RawInputs,
}

impl Cli {
    /// `cutover --version` with no command and no value asks for cutover's own version.
    pub fn wants_own_version(&self) -> bool {
        self.command.is_none() && self.inputs.version.as_deref() == Some("")
    }
}

#[derive(Debug, Clone, Subcommand)]
pub enum Command {
    /// Stage, smoke-test, promote and (with `keep`) prune: the whole release.
    Deploy,
    /// Upload the build as an immutable release and record it.
    Stage,
    /// Request the staged version through the site URL with the override cookie.
    Smoke,
    /// Make a recorded version live (the argument, else the `version` input).
    Promote {
        /// The version to make live.
        version: Option<String>,
    },
    /// Stage the build as a pull request's preview (`pr-<n>-<run>`), smoke-test it through the edge
    /// and point the alias `pr-<n>` at it; a preview is never promoted.
    Preview {
        /// Delete the pull request's alias, its preview releases and the pool objects no release
        /// uses instead, and with `github-token` mark its deployments inactive (when it is closed).
        #[arg(long)]
        close: bool,
    },
    /// `preview --close` as one word, for the action's `command` input.
    PreviewClose,
    /// Go back to an earlier version: `--to`, else the one live before the current one.
    Rollback,
    /// List releases, the live one and the promotion history.
    Status,
    /// Delete releases beyond `keep`.
    Prune,
    /// Serve the store locally the way the CloudFront router does.
    Serve,
    /// Check an AWS setup (bucket, parameter, distribution, router, cache policy, site URL).
    Doctor,
    /// The CloudFront router for Lambda@Edge.
    Edge {
        #[command(subcommand)]
        action: EdgeCommand,
    },
}

#[derive(Debug, Clone, Subcommand)]
pub enum EdgeCommand {
    /// Write the router with its configuration baked in, as a zip Lambda@Edge runs.
    Bundle {
        /// Where to write the zip.
        #[arg(long, default_value = "router.zip")]
        out: std::path::PathBuf,
    },
}
