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
use crate::pointer::previous_active;
use crate::promote::{Direction, PromoteRequest, promote};
use crate::prune::prune;
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
            finish(reporter, &plan, flip(&plan, &version, Direction::Forward).await?, started)
        }
        Command::Rollback => finish(reporter, &plan, rollback(&plan, plan.rollback_to.as_deref()).await?, started),
        Command::Status => {
            status::require_store(&plan)?;
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
    let active = site.pointer.read().await?;
    let mut outputs = staged(&site, plan, version, active.as_deref(), reporter).await?;
    outputs.previous_version = active.clone();
    if plan.dry_run {
        reporter.warn("dry run: nothing was written, so nothing is smoke-tested or promoted");
        return Ok(outputs);
    }
    let (checks, preview) = reporter.phase("smoke", smoke_release(&site, plan, version, reporter)).await?;
    outputs.smoke = checks;
    outputs.preview_url = preview;
    let request = PromoteRequest {
        version,
        direction: Direction::Forward,
        expected_active: Some(active),
        lock_lease: plan.lock_lease,
        run: &plan.run,
        dry_run: false,
    };
    let promoted = reporter.phase("promote", promote(&site, &request)).await?;
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
    let active = site.pointer.read().await?;
    staged(&site, plan, version, active.as_deref(), reporter).await
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

async fn flip(plan: &Plan, version: &str, direction: Direction) -> anyhow::Result<Outputs> {
    let site = Site::connect(plan).await;
    let request = PromoteRequest {
        version,
        direction,
        expected_active: None,
        lock_lease: plan.lock_lease,
        run: &plan.run,
        dry_run: plan.dry_run,
    };
    let report = promote(&site, &request).await?;
    Ok(Outputs {
        version: report.version,
        previous_version: report.previous,
        promoted: report.promoted,
        invalidation_id: report.invalidation_id,
        site_url: plan.site_url.as_ref().map(Url::to_string),
        ..Outputs::default()
    })
}

async fn rollback(plan: &Plan, to: Option<&str>) -> anyhow::Result<Outputs> {
    let target = match to {
        Some(version) => version.to_owned(),
        None => {
            let site = Site::connect(plan).await;
            let history = site.pointer.history().await?;
            previous_active(&history)
                .map(str::to_owned)
                .ok_or_else(|| Refusal::new("no earlier version in the promotion history to roll back to; use --to"))?
        }
    };
    flip(plan, &target, Direction::Rollback).await
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
