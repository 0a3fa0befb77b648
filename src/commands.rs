//! The commands: each one resolves the plan, connects the site and runs the steps in order.

use std::net::SocketAddr;
use std::time::Instant;

use anyhow::Context;
use serde::Serialize;
use url::Url;

use crate::backend::Site;
use crate::ci::{CiSystem, Reporter};
use crate::cli::{Cli, Command, EdgeCommand};
use crate::edge_bundle::{RouterConfig, bundle};
use crate::inputs::{Backend, Env, InputError, Plan, RawInputs};
use crate::outcome::{self, Refusal};
use crate::pointer::rollback_target;
use crate::promote::{Active, Direction, PromoteRequest, promote};
use crate::prune::prune;
use crate::release::Verdict;
use crate::report::Outputs;
use crate::smoke::{SmokeCheck, preview_url, smoke};
use crate::stage::stage;
use crate::{doctor, serve, status};

/// Runs a command to its end and returns the exit code; failures are printed with their causes.
pub async fn run(cli: Cli, env: Env) -> u8 {
    let Some(command) = &cli.command else {
        if cli.wants_own_version() {
            println!("cutover {}", env!("CARGO_PKG_VERSION"));
            return outcome::EXIT_OK;
        }
        eprintln!("error: no command given; see `cutover --help`");
        return outcome::EXIT_BAD_INPUT;
    };
    let plan = RawInputs::layered(&env, &cli.inputs).and_then(|raw| Plan::resolve(&raw, &env));
    let reporter = Reporter::new(CiSystem::detect(&env), plan.as_ref().is_ok_and(|p| p.json));
    reporter.mask_secrets(&env);
    for warning in crate::inputs::variable_warnings(&env) {
        reporter.warn(&warning);
    }
    let result = match plan {
        Ok(plan) => execute(command, &plan, &reporter).await,
        Err(e) => Err(e.into()),
    };
    match result {
        Ok(()) => outcome::EXIT_OK,
        Err(err) => {
            let code = outcome::exit_code(&err);
            eprintln!("error: {err:#}");
            reporter.fail(&format!("{err:#}"), code);
            code
        }
    }
}

/// Tells the CI system that the command line could not be parsed; returns the exit code.
pub fn refuse_arguments(env: &Env, message: &str) -> u8 {
    let reporter = Reporter::new(CiSystem::detect(env), false);
    let first_line = message.lines().next().unwrap_or(message).trim_start_matches("error: ");
    reporter.fail(&format!("command line: {first_line}"), outcome::EXIT_BAD_INPUT);
    outcome::EXIT_BAD_INPUT
}

async fn execute(command: &Command, plan: &Plan, reporter: &Reporter) -> anyhow::Result<()> {
    let plan = plan.clone();
    let started = Instant::now();
    match command {
        Command::Deploy => finish(reporter, &plan, deploy(&plan, reporter).await?, started),
        Command::Stage => finish(reporter, &plan, stage_only(&plan, reporter).await?, started),
        Command::Smoke => finish(reporter, &plan, smoke_only(&plan, reporter).await?, started),
        Command::Promote { version } => {
            let version = match version {
                Some(given) => crate::version::validate(given).map_err(|p| InputError::new("version", p))?,
                None => plan.require_version()?.to_owned(),
            };
            let site = Site::connect(&plan).await;
            finish(reporter, &plan, flip(&plan, &site, &version, Direction::Forward).await?, started)
        }
        Command::Rollback => finish(reporter, &plan, rollback(&plan, &Site::connect(&plan).await).await?, started),
        Command::Status => {
            let site = Site::connect(&plan).await;
            let status = status::status(&site).await?;
            print_result(&plan, &status, || status.render())
        }
        Command::Prune => {
            let keep = plan
                .keep
                .ok_or_else(|| InputError::new("keep", "prune needs `keep`, the number of releases to keep"))?;
            let site = Site::connect(&plan).await;
            let report = prune(&site, keep, plan.lock_lease, plan.run.run_url.as_deref(), plan.dry_run).await?;
            print_result(&plan, &report, || format!("deleted: {:?}\nkept: {:?}\n", report.deleted, report.kept))
        }
        Command::Edge { action: EdgeCommand::Bundle { out } } => {
            let config = RouterConfig::from_plan(&plan)?;
            if !plan.dry_run {
                bundle(&config, out)?;
            }
            print_result(&plan, &config, || format!("wrote {} ({} mode)\n", out.display(), config.mode))
        }
        Command::Doctor => {
            let checks = doctor::doctor(&plan).await?;
            print_result(&plan, &checks, || doctor::render(&checks))?;
            let failed = checks.iter().filter(|c| !c.passed).count();
            anyhow::ensure!(failed == 0, "{failed} of {} checks failed", checks.len());
            Ok(())
        }
        Command::Serve => serve::serve(Site::connect(&plan).await, plan.listen, plan.edge.clone()).await,
    }
}

async fn deploy(plan: &Plan, reporter: &Reporter) -> anyhow::Result<Outputs> {
    plan.require_dist_dir()?;
    let version = plan.require_version()?;
    let site = Site::connect(plan).await;
    // A pointer holding a value cutover did not write is refused before anything is staged.
    let active = Active::read(&site).await?.before_promotion(&site, plan.take_over_pointer)?;
    let mut outputs = staged(&site, plan, version, active.as_deref(), reporter).await?;
    outputs.previous_version = active.clone();
    if plan.dry_run {
        reporter.warn("dry run: nothing was written, so nothing is smoke-tested or promoted");
        return Ok(outputs);
    }
    let smoked = reporter.phase("smoke", smoke_release(&site, plan, version, reporter)).await;
    let (checks, preview) = remember_verdict(&site, plan, version, smoked).await?;
    outputs.smoke = checks;
    outputs.preview_url = preview;
    let request = PromoteRequest {
        version,
        direction: Direction::Forward,
        expected_active: Some(active),
        lock_lease: plan.lock_lease,
        run: &plan.run,
        take_over_pointer: plan.take_over_pointer,
        dry_run: false,
    };
    let promoted =
        remember_verdict(&site, plan, version, reporter.phase("promote", promote(&site, &request)).await).await?;
    outputs.promoted = promoted.promoted;
    outputs.invalidation_id = promoted.invalidation_id;
    if let Some(keep) = plan.keep {
        let pruned =
            reporter.phase("prune", prune(&site, keep, plan.lock_lease, plan.run.run_url.as_deref(), false)).await?;
        if !pruned.deleted.is_empty() {
            eprintln!("pruned releases: {}", pruned.deleted.join(", "));
        }
    }
    Ok(outputs)
}

async fn stage_only(plan: &Plan, reporter: &Reporter) -> anyhow::Result<Outputs> {
    plan.require_dist_dir()?;
    let version = plan.require_version()?;
    let site = Site::connect(plan).await;
    let active = Active::read(&site).await?;
    staged(&site, plan, version, active.known(), reporter).await
}

async fn staged(
    site: &Site,
    plan: &Plan,
    version: &str,
    active: Option<&str>,
    reporter: &Reporter,
) -> anyhow::Result<Outputs> {
    let report = reporter.phase("stage", stage(site, plan, version, active)).await?;
    if report.already_recorded {
        eprintln!("version {version} was already staged with this content");
    } else if report.resumed > 0 {
        eprintln!("resumed: {} files were already in place from an earlier run", report.resumed);
    }
    Ok(Outputs {
        version: version.to_owned(),
        site_url: plan.site_url.as_ref().map(Url::to_string),
        preview_url: plan.site_url.as_ref().map(|url| preview_url(url, version, &plan.edge)),
        files: report.files,
        uploaded: report.uploaded,
        copied: report.copied,
        bytes_uploaded: report.bytes_uploaded,
        ..Outputs::default()
    })
}

async fn smoke_only(plan: &Plan, reporter: &Reporter) -> anyhow::Result<Outputs> {
    let version = plan.require_version()?;
    let site = Site::connect(plan).await;
    let (smoke, preview_url) = reporter.phase("smoke", smoke_release(&site, plan, version, reporter)).await?;
    Ok(Outputs {
        version: version.to_owned(),
        site_url: plan.site_url.as_ref().map(Url::to_string),
        preview_url,
        smoke,
        ..Outputs::default()
    })
}

/// Keeps why a recorded release did not go live (a failed smoke test or a refusal) for `status`;
/// the run's own error is returned as it was.
async fn remember_verdict<T>(site: &Site, plan: &Plan, version: &str, result: anyhow::Result<T>) -> anyhow::Result<T> {
    let Err(err) = &result else { return result };
    let outcome = match outcome::exit_code(err) {
        outcome::EXIT_SMOKE_FAILED => "smoke failed",
        outcome::EXIT_REFUSED => "refused",
        _ => return result,
    };
    let verdict = Verdict {
        outcome: outcome.to_owned(),
        reason: format!("{err:#}"),
        at: chrono::Utc::now(),
        run_url: plan.run.run_url.clone(),
    };
    if let Err(e) = verdict.write(site, version).await {
        eprintln!("warning: could not keep why {version} did not go live: {e:#}");
    }
    result
}

/// Smoke-tests through `site-url`, or through a local edge on the embedded store.
async fn smoke_release(
    site: &Site,
    plan: &Plan,
    version: &str,
    reporter: &Reporter,
) -> anyhow::Result<(Vec<SmokeCheck>, Option<String>)> {
    if let Some(url) = &plan.site_url {
        return Ok((smoke(url, version, &plan.smoke, &plan.edge).await?, Some(preview_url(url, version, &plan.edge))));
    }
    if !matches!(plan.backend, Backend::Local { .. }) {
        reporter.warn("no site-url given: the smoke test is skipped");
        return Ok((Vec::new(), None));
    }
    let edge = serve::start(site.clone(), SocketAddr::from(([127, 0, 0, 1], 0)), plan.edge.clone()).await?;
    let url = Url::parse(&format!("http://{}/", edge.addr)).context("local edge address")?;
    eprintln!("smoke-testing through the local edge at {url}");
    let checks = smoke(&url, version, &plan.smoke, &plan.edge).await?;
    // The edge above stops with this run; the preview lives where `cutover serve` listens.
    let served = Url::parse(&format!("http://{}/", plan.listen)).context("listen address")?;
    Ok((checks, Some(preview_url(&served, version, &plan.edge))))
}

async fn flip(plan: &Plan, site: &Site, version: &str, direction: Direction) -> anyhow::Result<Outputs> {
    let request = PromoteRequest {
        version,
        direction,
        expected_active: None,
        lock_lease: plan.lock_lease,
        run: &plan.run,
        take_over_pointer: plan.take_over_pointer,
        dry_run: plan.dry_run,
    };
    let report = promote(site, &request).await?;
    if !report.promoted && report.previous.as_deref() == Some(version) {
        eprintln!("{version} is already live: nothing to do");
    }
    Ok(Outputs {
        version: report.version,
        previous_version: report.previous,
        promoted: report.promoted,
        invalidation_id: report.invalidation_id,
        site_url: plan.site_url.as_ref().map(Url::to_string),
        ..Outputs::default()
    })
}

async fn rollback(plan: &Plan, site: &Site) -> anyhow::Result<Outputs> {
    let target = match &plan.rollback_to {
        Some(version) => version.to_owned(),
        None => rollback_target(&site.pointer.history().await?).map(str::to_owned).ok_or_else(|| {
            Refusal::new("no earlier version in the promotion history to roll back to; use `to` to name one")
        })?,
    };
    let outputs = flip(plan, site, &target, Direction::Rollback).await?;
    if outputs.promoted {
        eprintln!("rolled back from {} to {target}", outputs.previous_version.as_deref().unwrap_or("nothing"));
    }
    Ok(outputs)
}

/// Publishes a command's outputs and prints its result.
fn finish(reporter: &Reporter, plan: &Plan, mut outputs: Outputs, started: Instant) -> anyhow::Result<()> {
    outputs.duration_ms = started.elapsed().as_millis() as u64;
    if !plan.dry_run {
        reporter.publish(&outputs).context("writing step outputs")?;
    }
    eprintln!("{}", outputs.line());
    print_result(plan, &outputs, String::new)
}

fn print_result<T: Serialize>(plan: &Plan, result: &T, human: impl FnOnce() -> String) -> anyhow::Result<()> {
    if plan.json {
        println!("{}", serde_json::to_string_pretty(result)?);
    } else {
        print!("{}", human());
    }
    Ok(())
}
