//! The `cutover` binary: parse, run, exit with the documented code.

use clap::Parser;

fn main() -> std::process::ExitCode {
    let env = cutover::env::Env::from_process();
    let cli = match cutover::cli::Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) if !e.use_stderr() => e.exit(),
        Err(e) => {
            let _ = e.print();
            return std::process::ExitCode::from(cutover::commands::refuse_arguments(&env, &e.to_string()));
        }
    };
    // One thread drives every request: staging is bound by round trips, not by this process's CPU,
    // and a single-threaded runtime spends less of it (no cross-thread wake-ups) than a pool does.
    // File reads and hashing still run on tokio's blocking threads.
    let runtime = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
        Ok(runtime) => runtime,
        Err(e) => {
            cutover::say!("error: starting the async runtime: {e}");
            return std::process::ExitCode::from(cutover::outcome::EXIT_FAILED);
        }
    };
    let run = cutover::commands::run(cli, env);
    let code = runtime.block_on(cutover::interrupt::until_signal(run));
    // Blocking work a signal left running (a file being hashed or copied) is not waited for: the
    // temp file it writes is removed already, and it can create no other.
    runtime.shutdown_background();
    std::process::ExitCode::from(code)
}
