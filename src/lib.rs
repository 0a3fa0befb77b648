//! cutover releases a static site through S3 and CloudFront: every build an immutable, recorded
//! release, smoke-tested through the real edge before one atomic pointer flip makes it live.
//!
//! The modules follow a release: inputs -> plan -> stage -> smoke -> promote -> prune -> report.

pub mod aws_error;
/// `eprintln!` that never panics: a closed stderr (`cutover deploy 2>&1 | head`) must not stop a
/// release between its flip and its outputs. Everything cutover says to people goes through it.
#[macro_export]
macro_rules! say {
    ($($arg:tt)*) => {{
        use ::std::io::Write as _;
        let _ = ::std::writeln!(::std::io::stderr(), $($arg)*);
    }};
}

/// `print!` that never panics, for results on stdout (`cutover status | head -1`).
#[macro_export]
macro_rules! show {
    ($($arg:tt)*) => {{
        use ::std::io::Write as _;
        let mut stdout = ::std::io::stdout();
        let _ = ::std::write!(stdout, $($arg)*).and_then(|()| stdout.flush());
    }};
}

pub mod backend;
pub mod ci;
pub mod cli;
pub mod commands;
pub mod doctor;
pub mod edge_bundle;
pub mod env;
pub mod github;
pub mod inputs;
pub mod interrupt;
pub mod lock;
pub mod outcome;
pub mod pointer;
pub mod preview;
pub mod printable;
pub mod progress;
pub mod promote;
pub mod prune;
pub mod pull_request;
pub mod release;
pub mod report;
pub mod route_index;
pub mod routing;
pub mod rules;
pub mod serve;
pub mod shared_assets;
pub mod site;
pub mod smoke;
pub mod stage;
pub mod status;
pub mod store;
pub mod version;
