//! The commands: each one resolves the plan, connects the site and runs the steps in order.

use std::net::SocketAddr;
use std::time::Instant;

use anyhow::Context;
use url::Url;

use crate::backend::Site;
use crate::ci::{CiSystem, Reporter};
use crate::cli::{Cli, Command, EdgeCommand};
use crate::edge_bundle::{RouterConfig, bundle};
use crate::env::Env;
use crate::inputs::{AwsPointer, Backend, InputError, Plan, RawInputs, SiteUrl};
use crate::outcome::{self, Guard, Refusal};
use crate::pointer::rollback_target;
use crate::printable::printable;
use crate::promote::{Active, Direction, PromoteError, PromoteRequest, promote};
use crate::prune::{PruneError, PruneRequest, Retention, prune};
use crate::release::{ReleaseRecord, Verdict};
use crate::report::Outputs;
use crate::site::WalkOptions;
use crate::smoke::{SmokeCheck, SmokeError, smoke};
use crate::stage::{Previous, StageError, StageRequest, stage};
use crate::{doctor, preview, serve, status};

/// Runs a command to its end and returns the exit code; failures are printed with their causes,
/// and with `--json` the result object on stdout says how the run ended, failure or not.
pub async fn run(cli: Cli, env: Env) -> u8 {
    if cli.wants_own_version() {
        crate::show!("cutover {}\n", env!("CARGO_PKG_VERSION"));
        return outcome::EXIT_OK;
    }
    let raw = RawInputs::layered(&env, &cli.inputs);
    let plan = Plan::resolve(&raw, &env);
    // `--json` holds even when other inputs are bad.
    let json = raw.json_asked();
    let reporter = Reporter::new(CiSystem::detect(&env), json);
    // The secrets as given, so that they are masked even when another input is bad.
    let site_url = plan.as_ref().ok().and_then(|p| p.site_url.as_ref());
    let token = raw.github_token.as_deref();
    reporter.mask_secrets(&env, site_url, &[raw.override_secret.as_deref(), token, token.map(str::trim)]);
    for warning in crate::inputs::variable_warnings(&env) {
        reporter.warn(&warning);
    }
    let result = match (&cli.command, plan) {
        (None, _) => Err(InputError::new("command", "no command given; see `cutover --help`").into()),
        (Some(command), Ok(plan)) => execute(command, &plan, &reporter).await,
        (Some(_), Err(e)) => Err(e.into()),
    };
    match result {
        Ok(()) => {
            reporter.end(None);
            outcome::EXIT_OK
        }
        Err(err) => {
            let code = outcome::exit_code(&err);
            crate::say!("error: {err:#}");
            reporter.fail(&format!("{err:#}"), code);
            reporter.end(Some((&err, code)));
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
            status::require_store(&plan)?;
            let site = Site::connect(&plan).await;
            finish(reporter, &plan, flip(&plan, &site, &version, Direction::Forward).await?, started)
        }
        Command::Preview { close: false } => finish(reporter, &plan, preview(&plan, reporter).await?, started),
        Command::Preview { close: true } | Command::PreviewClose => {
            let pr = plan.require_pull_request()?;
            status::require_store(&plan)?;
            let site = Site::connect(&plan).await;
            let run_url = plan.run.run_url.as_deref();
            let retire = async || {
                if let Some(github) = &plan.github {
                    for warning in github.retire(pr.number()).await {
                        reporter.warn(&warning);
                    }
                }
            };
            let event = &plan.pull_request_event;
            let report = preview::close(&site, pr, event, plan.lock_lease, run_url, plan.dry_run, retire)
                .await
                .map_err(prune_failed)?;
            if let Some(reopened) = &report.stale {
                reporter.warn(&format!(
                    "pull request {pr} was reopened at {reopened}, after this close (a re-run of an old close job?): its previews stay"
                ));
            } else if plan.dry_run {
                reporter.warn("dry run: nothing was deleted; the report says what the close would delete");
            }
            reporter.result(&report, || report.render())
        }
        Command::Rollback => {
            status::require_store(&plan)?;
            finish(reporter, &plan, rollback(&plan, &Site::connect(&plan).await).await?, started)
        }
        Command::Status => {
            status::require_store(&plan)?;
            let site = Site::connect(&plan).await;
            let status = status::status(&site, &retention(&plan)).await?;
            reporter.result(&status, || status.render())
        }
        Command::Prune => {
            // Without `keep` no release is pruned, only previews past `preview-ttl` (a scheduled cleanup).
            let keep = Some(plan.keep.unwrap_or(usize::MAX));
            status::require_store(&plan)?;
            let site = Site::connect(&plan).await;
            let request = PruneRequest {
                retention: Retention { keep, ..retention(&plan) },
                lock_lease: plan.lock_lease,
                run_url: plan.run.run_url.as_deref(),
                dry_run: plan.dry_run,
            };
            let report = prune(&site, &request).await.map_err(prune_failed)?;
            reporter.result(&report, || {
                format!(
                    "deleted: {:?}\nkept: {:?}\npool objects deleted: {:?}\n",
                    report.deleted, report.kept, report.pool_deleted
                )
            })
        }
        Command::Edge { action: EdgeCommand::Bundle { out } } => {
            let config = RouterConfig::from_plan(&plan)?;
            for warning in config.warnings() {
                reporter.warn(&warning);
            }
            if !plan.dry_run {
                bundle(&config, out)?;
            }
            let parameters = config.stack_parameters();
            reporter.result(&config, || {
                format!("wrote {} ({} mode)\nstack parameters: {parameters}\n", out.display(), config.mode)
            })
        }
        Command::Doctor => {
            let report = doctor::doctor(&plan).await?;
            reporter.result(&report, || report.render())?;
            let failed = report.checks.iter().filter(|c| !c.passed).count();
            anyhow::ensure!(failed == 0, "{failed} of {} checks failed", report.checks.len());
            Ok(())
        }
        Command::Serve => serve::serve(Site::connect(&plan).await, plan.listen, plan.edge.clone()).await,
    }
}

async fn deploy(plan: &Plan, reporter: &Reporter) -> anyhow::Result<Outputs> {
    plan.require_dist_dir()?;
    let version = plan.require_version()?;
    if crate::pull_request::never_live(version) {
        return Err(Refusal(Guard::Preview { version: version.to_owned() }).into());
    }
    let site = Site::connect(plan).await;
    // A pointer holding a value cutover did not write is refused before anything is staged.
    let (active, live) = Active::read_with_record(&site).await?;
    let active = active.before_promotion(&site, plan.take_over_pointer)?;
    let mut outputs = staged(&site, plan, version, live, reporter).await?;
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
    let promoted = remember_verdict(
        &site,
        plan,
        version,
        reporter.phase("promote", promote(&site, &request)).await.map_err(promote_failed),
    )
    .await?;
    // The value the flip replaced, read under the lock: another run may have promoted since this
    // run started.
    outputs.previous_version = promoted.replaced;
    outputs.promoted = promoted.promoted;
    outputs.invalidation_id = promoted.invalidation_id;
    outputs.invalidation_failed = promoted.invalidation_failed;
    if plan.keep.is_some() {
        let request = PruneRequest {
            retention: retention(plan),
            lock_lease: plan.lock_lease,
            run_url: plan.run.run_url.as_deref(),
            dry_run: false,
        };
        let pruned = reporter.phase("prune", prune(&site, &request)).await.map_err(prune_failed)?;
        if !pruned.deleted.is_empty() {
            crate::say!("pruned releases: {}", pruned.deleted.join(", "));
        }
        if !pruned.pool_deleted.is_empty() {
            crate::say!("deleted {} pool objects no kept release uses", pruned.pool_deleted.len());
        }
    }
    Ok(outputs)
}

/// Stages a pull request's preview, smoke-tests it, then points its alias at it; never promotes.
async fn preview(plan: &Plan, reporter: &Reporter) -> anyhow::Result<Outputs> {
    let pr = plan.require_pull_request()?;
    plan.require_dist_dir()?;
    let version = crate::version::validate(&pr.version(plan.require_version()?))
        .map_err(|p| InputError::new("version", format!("as a preview version: {p}")))?;
    let site = Site::connect(plan).await;
    let (_, live) = Active::read_with_record(&site).await?;
    let mut outputs = staged(&site, plan, &version, live, reporter).await?;
    if plan.dry_run {
        reporter.warn("dry run: nothing was written, so nothing is smoke-tested or linked");
        return Ok(outputs);
    }
    let smoked = reporter.phase("smoke", smoke_release(&site, plan, &version, reporter)).await;
    let (checks, _) = remember_verdict(&site, plan, &version, smoked).await?;
    outputs.smoke = checks;
    // A re-run whose smoke test passed: `status` must not keep an earlier failure's verdict.
    if let Err(e) = crate::release::Verdict::clear(&site, &version).await {
        reporter.warn(&format!("could not drop an earlier verdict of {version}: {:#}", anyhow::Error::new(e)));
    }
    let run_url = plan.run.run_url.as_deref();
    let (take_over, reopened_at) = (plan.take_over_pointer, plan.pull_request_event.reopened_at);
    let newer = preview::point_alias(&site, pr, &version, plan.lock_lease, run_url, take_over, reopened_at)
        .await
        .map_err(prune_failed)
        .with_context(|| format!("pointing {} at {version}", pr.alias()))?;
    let ssm = matches!(&plan.backend, Backend::Aws(aws) if matches!(aws.pointer, AwsPointer::Ssm { .. }));
    outputs.preview_url = match (&plan.preview_domain, &plan.edge.secret, &plan.site_url, &plan.backend) {
        // Host links carry no signature, so with a secret only the signed query link works; and
        // only the SSM style's router honours them (README, Previews).
        (Some(domain), None, _, _) if ssm => Some(SiteUrl::parse(&format!("https://{}.{domain}/", pr.alias()))?),
        (_, _, Some(url), _) => Some(url.preview(&pr.alias(), &plan.edge)),
        (_, _, None, Backend::Local { .. }) => Some(local_url(plan.listen)?.preview(&pr.alias(), &plan.edge)),
        (_, _, None, Backend::Aws(_)) => None,
    };
    if let Some(newer) = newer {
        // An older push finishing last (a re-run, a race) must not take the link back.
        reporter.warn(&format!(
            "{} stays on the newer {newer}: {version} is staged and smoke-tested, reachable by its version",
            pr.alias()
        ));
        return Ok(outputs);
    }
    crate::say!("{} now shows {version}", pr.alias());
    if let Some(github) = &plan.github {
        let url = outputs.preview_url.as_ref().map(ToString::to_string);
        let site_name = format!("{} {}", site.store.describe(), site.layout.prefix());
        let announced = crate::github::Preview {
            site: &site_name,
            pull_request: pr.number(),
            version: &version,
            url: url.as_deref(),
            files: outputs.files,
            uploaded: outputs.uploaded,
            copied: outputs.copied,
            run_url: plan.run.run_url.as_deref(),
        };
        // Under the deploy lock and only while the link still shows this run's preview: an older
        // run finishing its calls after a newer one, or a push's calls after the close, would
        // name the wrong preview or leave a deployment active.
        let announce = async || github.announce(&announced).await;
        match preview::while_linked(&site, pr, &version, plan.lock_lease, run_url, announce).await {
            Ok(Some(warnings)) => warnings.iter().for_each(|w| reporter.warn(w)),
            Ok(None) => reporter.warn(&format!(
                "{} no longer shows {version} (a newer push or the close came first): no GitHub call is made",
                pr.alias()
            )),
            Err(e) => reporter.warn(&format!("no GitHub call is made: {:#}", anyhow::Error::new(e))),
        }
    }
    Ok(outputs)
}

async fn stage_only(plan: &Plan, reporter: &Reporter) -> anyhow::Result<Outputs> {
    plan.require_dist_dir()?;
    let version = plan.require_version()?;
    // Only `cutover preview` stages a preview: one staged otherwise would have had no smoke test,
    // and a release named `pr-<n>` would be read where the alias is meant.
    if crate::pull_request::never_live(version) {
        return Err(Refusal(Guard::Preview { version: version.to_owned() }).into());
    }
    let site = Site::connect(plan).await;
    let (_, live) = Active::read_with_record(&site).await?;
    staged(&site, plan, version, live, reporter).await
}

async fn staged(
    site: &Site,
    plan: &Plan,
    version: &str,
    live: Option<ReleaseRecord>,
    reporter: &Reporter,
) -> anyhow::Result<Outputs> {
    let request = StageRequest {
        version,
        previous: live.map(Previous::of),
        dist_dir: &plan.dist_dir,
        walk: WalkOptions {
            store_dir: match &plan.backend {
                Backend::Local { dir } => Some(dir.clone()),
                Backend::Aws(_) => None,
            },
            release_secret_files: plan.release_secret_files,
        },
        cache_rules: &plan.cache_rules,
        shared: &plan.edge.shared,
        concurrency: plan.concurrency,
        lock_lease: plan.lock_lease,
        run: &plan.run,
        dry_run: plan.dry_run,
    };
    let report = reporter.phase("stage", stage(site, &request)).await.map_err(stage_failed)?;
    if report.already_recorded && report.uploaded > 0 {
        let put_back = if plan.dry_run { "would be put back" } else { "were put back" };
        crate::say!(
            "version {version} was already staged with this content; {} of its fingerprinted files were missing from the shared pool and {put_back}",
            report.uploaded
        );
    } else if report.already_recorded {
        crate::say!("version {version} was already staged with this content");
    } else if report.resumed > 0 {
        crate::say!("resumed: {} files were already in place from an earlier run", report.resumed);
    }
    if report.shared > 0 && !report.already_recorded {
        crate::say!("{} fingerprinted files were already in the shared pool", report.shared);
    }
    Ok(Outputs {
        version: version.to_owned(),
        site_url: plan.site_url.clone(),
        preview_url: plan.site_url.as_ref().map(|url| url.preview(version, &plan.edge)),
        files: report.files,
        uploaded: report.uploaded,
        copied: report.copied,
        bytes_uploaded: report.bytes_uploaded,
        dry_run: plan.dry_run,
        ..Outputs::default()
    })
}

async fn smoke_only(plan: &Plan, reporter: &Reporter) -> anyhow::Result<Outputs> {
    let version = plan.require_version()?;
    let site = Site::connect(plan).await;
    let (smoke, preview_url) = reporter.phase("smoke", smoke_release(&site, plan, version, reporter)).await?;
    Ok(Outputs {
        version: version.to_owned(),
        site_url: plan.site_url.clone(),
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
        crate::say!("warning: could not keep why {version} did not go live: {:#}", anyhow::Error::new(e));
    }
    result
}

/// Smoke-tests through `site-url`, or through a local edge on the embedded store.
async fn smoke_release(
    site: &Site,
    plan: &Plan,
    version: &str,
    reporter: &Reporter,
) -> anyhow::Result<(Vec<SmokeCheck>, Option<SiteUrl>)> {
    if let Some(url) = &plan.site_url {
        let checks = smoke(url, version, &plan.smoke, &plan.edge).await.map_err(smoke_failed)?;
        return Ok((checks, Some(url.preview(version, &plan.edge))));
    }
    if !matches!(plan.backend, Backend::Local { .. }) {
        reporter.warn("no site-url given: the smoke test is skipped");
        return Ok((Vec::new(), None));
    }
    let edge = serve::start(site.clone(), SocketAddr::from(([127, 0, 0, 1], 0)), plan.edge.clone()).await?;
    let url = local_url(edge.addr)?;
    crate::say!("smoke-testing through the local edge at {url}");
    let checks = smoke(&url, version, &plan.smoke, &plan.edge).await.map_err(smoke_failed)?;
    // The edge above stops with this run; the preview lives where `cutover serve` listens.
    let served = local_url(plan.listen)?;
    Ok((checks, Some(served.preview(version, &plan.edge))))
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
    let report = promote(site, &request).await.map_err(promote_failed)?;
    let finished = report.invalidation_id.is_some() || report.invalidation_failed.is_some();
    if !report.promoted && report.previous.as_deref() == Some(version) && !finished {
        crate::say!("{version} is already live: nothing to do");
    }
    Ok(Outputs {
        version: report.version,
        previous_version: report.replaced,
        promoted: report.promoted,
        invalidation_id: report.invalidation_id,
        invalidation_failed: report.invalidation_failed,
        site_url: plan.site_url.clone(),
        ..Outputs::default()
    })
}

async fn rollback(plan: &Plan, site: &Site) -> anyhow::Result<Outputs> {
    let target = match &plan.rollback_to {
        Some(version) => version.to_owned(),
        None => {
            let target = rollback_target(&site.pointer.history().await?)
                .map(str::to_owned)
                .ok_or(Refusal(Guard::NoRollbackTarget))?;
            // A value taken over is in the history too: name it rather than ask to stage it.
            if let Active::Foreign(value) = Active::of(site, Some(target.clone())).await? {
                return Err(Refusal(Guard::ForeignRollbackTarget { value }).into());
            }
            target
        }
    };
    let outputs = flip(plan, site, &target, Direction::Rollback).await?;
    if outputs.promoted {
        // Both versions may come from the pointer's history.
        let from = printable(outputs.previous_version.as_deref().unwrap_or("nothing"));
        crate::say!("rolled back from {from} to {}", printable(&target));
    }
    Ok(outputs)
}

/// A stage failure as the run reports it: bad input and refusals stay what the exit code is
/// chosen by.
fn stage_failed(err: StageError) -> anyhow::Error {
    match err {
        StageError::Input(e) => e.into(),
        StageError::Refused(e) => e.into(),
        other => other.into(),
    }
}

/// A promotion's failure as the run reports it: a refusal stays what the exit code is chosen by.
fn promote_failed(err: PromoteError) -> anyhow::Error {
    match err {
        PromoteError::Refused(e) => e.into(),
        other => other.into(),
    }
}

/// Pruning's failure as the run reports it: a refusal stays what the exit code is chosen by.
fn prune_failed(err: PruneError) -> anyhow::Error {
    match err {
        PruneError::Refused(e) => e.into(),
        other => other.into(),
    }
}

/// A smoke test's failure as the run reports it: a failed path stays what the exit code is chosen by.
fn smoke_failed(err: SmokeError) -> anyhow::Error {
    match err {
        SmokeError::Failed(e) => e.into(),
        other => other.into(),
    }
}

/// The site URL of a local edge.
fn local_url(addr: SocketAddr) -> anyhow::Result<SiteUrl> {
    let url = Url::parse(&format!("http://{addr}/")).context("local edge address")?;
    Ok(SiteUrl::try_from(url)?)
}

/// Reports a command's result and publishes its outputs; `--json` shows the result even when
/// publishing fails.
fn finish(reporter: &Reporter, plan: &Plan, mut outputs: Outputs, started: Instant) -> anyhow::Result<()> {
    outputs.duration_ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
    reporter.result(&outputs, String::new)?;
    if !plan.dry_run {
        reporter.publish(&outputs).context("writing step outputs")?;
    }
    crate::say!("{}", outputs.line());
    if let Some(failed) = &outputs.invalidation_failed {
        let version = &outputs.version;
        anyhow::bail!(
            "{version} is live, but the invalidation failed: re-run `cutover promote {version}` to invalidate: {failed}"
        );
    }
    Ok(())
}

/// What prune keeps, and status explains, from the plan's inputs.
fn retention(plan: &Plan) -> Retention {
    Retention { keep: plan.keep, skew_window: plan.skew_window, preview_ttl: plan.preview_ttl }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::outcome::Guard;

    #[test]
    fn stage_failures_keep_their_exit_codes() {
        let bad = StageError::Input(InputError::new("prefix", "nested"));
        assert_eq!(outcome::exit_code(&stage_failed(bad)), outcome::EXIT_BAD_INPUT);
        let refused = StageError::Refused(Guard::Recorded { version: "1".into(), changed: 1, removed: 0 }.into());
        assert_eq!(outcome::exit_code(&stage_failed(refused)), outcome::EXIT_REFUSED);
        assert_eq!(outcome::exit_code(&stage_failed(StageError::Vanished("reading it"))), outcome::EXIT_FAILED);
    }

    #[test]
    fn refusals_and_failed_smoke_tests_keep_their_exit_codes() {
        let held = || crate::lock::LockError::from(Refusal(Guard::LockHeld { holder: "run 7".into() }));
        let promoted = promote_failed(held().into());
        assert_eq!(outcome::exit_code(&promoted), outcome::EXIT_REFUSED);
        assert_eq!(promoted.to_string(), "refused: the deploy lock is still held: run 7");
        assert_eq!(outcome::exit_code(&prune_failed(held().into())), outcome::EXIT_REFUSED);
        let smoked = smoke_failed(crate::smoke::SmokeFailure { message: "/".into(), checks: Vec::new() }.into());
        assert_eq!(outcome::exit_code(&smoked), outcome::EXIT_SMOKE_FAILED);
        let lost = promote_failed(crate::lock::LockError::Lost.into());
        assert_eq!(outcome::exit_code(&lost), outcome::EXIT_FAILED);
    }
}
