//! The origin-path pointer against moto's CloudFront: promotion flips the origin path and
//! invalidates, rollback restores the previous path, and the guards refuse as with SSM.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use crate::harness::{Fixture, versions};
use crate::proxy::{Fault, Proxy};

fn cloudfront_fixture() -> (Fixture, String) {
    let mut f = Fixture::moto();
    let distribution = f.moto_server().create_distribution("site-bucket");
    f.set("CUTOVER_POINTER", &format!("cloudfront:{distribution}"));
    (f, distribution)
}

#[test]
fn promotion_flips_the_origin_path_and_invalidates() {
    let (mut f, distribution) = cloudfront_fixture();
    let edge = f.start_edge();
    for version in ["1", "2"] {
        let dist = f.site(&format!("v{version}"), &[("index.html", version)]);
        f.deploy(&dist, version);
        let out = f.outputs();
        assert_eq!(out["promoted"], "true");
        assert!(!out["invalidation-id"].is_empty(), "an invalidation follows the flip: {out:?}");
        assert_eq!(f.moto_server().origin_path(&distribution), format!("/site/{version}"));
    }
    assert_eq!(edge.wait_for_active("2").body, "2", "cutover serve reads the active version from the origin path");

    let older = f.site("v0", &[("index.html", "0")]);
    let run = f.run(&["deploy"], &[("CUTOVER_DIST_DIR", &older.display().to_string()), ("CUTOVER_VERSION", "0")]);
    run.assert_code(4);
    assert_eq!(f.moto_server().origin_path(&distribution), "/site/2", "a refusal changes nothing");

    f.run(&["rollback"], &[("CUTOVER_INVALIDATION_WAIT", "30s")]).assert_code(0);
    assert_eq!(f.moto_server().origin_path(&distribution), "/site/1");
    assert!(!f.outputs()["invalidation-id"].is_empty());
    let status = f.run(&["status", "--json"], &[]);
    let status = status.assert_code(0).json();
    assert_eq!(status["active"], "1");
    assert_eq!(versions(&status["promotions"]), ["1", "2", "1"]);
}

#[test]
fn invalidation_can_be_skipped() {
    let (f, distribution) = cloudfront_fixture();
    let dist = f.site("v1", &[("index.html", "1")]);
    let run = f.run(
        &["deploy"],
        &[("CUTOVER_DIST_DIR", &dist.display().to_string()), ("CUTOVER_VERSION", "1"), ("CUTOVER_INVALIDATE", "false")],
    );
    run.assert_code(0);
    let out = f.outputs();
    assert_eq!((out["promoted"].as_str(), out["invalidation-id"].as_str()), ("true", ""));
    assert_eq!(f.moto_server().origin_path(&distribution), "/site/1");
}

#[test]
fn an_unknown_distribution_fails_at_run_time_and_changes_nothing() {
    let mut f = Fixture::moto();
    f.set("CUTOVER_POINTER", "cloudfront:E0000000000000");
    let dist = f.site("v1", &[("index.html", "1")]);
    let run = f.run(&["deploy"], &[("CUTOVER_DIST_DIR", &dist.display().to_string()), ("CUTOVER_VERSION", "1")]);
    run.assert_code(1);
    assert!(run.stderr().contains("E0000000000000"), "{}", run.stderr());
}

/// moto answers a finished invalidation with `COMPLETED`, a spelling the SDK's waiter does not take
/// for CloudFront's `Completed`: on moto every invalidation is still in progress when
/// `invalidation-wait` runs out, which is the case this checks.
#[test]
fn an_invalidation_still_running_at_the_deadline_is_left_to_the_edges() {
    let (f, distribution) = cloudfront_fixture();
    let dist = f.site("v1", &[("index.html", "1")]);
    let started = std::time::Instant::now();
    let run = f.run(
        &["deploy"],
        &[
            ("CUTOVER_DIST_DIR", &dist.display().to_string()),
            ("CUTOVER_VERSION", "1"),
            ("CUTOVER_INVALIDATION_WAIT", "2s"),
        ],
    );
    run.assert_code(0);
    assert!(run.stderr().contains("is still in progress after 2s; edges will catch up"), "{}", run.stderr());
    assert!(started.elapsed() >= std::time::Duration::from_secs(2), "the run waited for the invalidation");
    assert_eq!(f.moto_server().origin_path(&distribution), "/site/1");
}

#[test]
fn an_origin_path_cutover_did_not_write_is_refused_unless_taken_over() {
    let (f, distribution) = cloudfront_fixture();
    let dist = f.site("v1", &[("index.html", "1")]).display().to_string();
    let deploy = [("CUTOVER_DIST_DIR", dist.as_str()), ("CUTOVER_VERSION", "1")];
    for foreign in ["/web/7", "/somethingelse", ""] {
        f.moto_server().set_origin_path(&distribution, foreign);
        let run = f.run(&["deploy"], &deploy);
        run.assert_code(4);
        assert!(
            run.stderr().contains(&format!("{foreign:?}, which is not a release of this site")),
            "{}",
            run.stderr()
        );
        assert_eq!(f.moto_server().origin_path(&distribution), foreign, "a refusal changes nothing");
        let status = f.run(&["status", "--json"], &[]);
        assert_eq!(status.json()["active"], foreign, "{}", status.stdout());
        let warnings = status.json()["warnings"].to_string();
        assert!(warnings.contains("not a release of this site"), "{warnings}");
        let doctor = f.run(&["doctor", "--json"], &[]);
        let checks = doctor.json()["checks"].as_array().expect("checks").clone();
        let live = checks.iter().find(|c| c["name"] == "live release").expect("checked");
        assert_eq!(live["passed"], false, "{live}");
        assert!(live["fix"].as_str().unwrap().contains("take-over-pointer"), "{live}");
    }
    // The empty origin path taken over is named, not reported as nothing live.
    let taken = f.run(&["deploy"], &[deploy[0], deploy[1], ("CUTOVER_TAKE_OVER_POINTER", "true")]);
    taken.assert_code(0);
    assert_eq!(f.moto_server().origin_path(&distribution), "/site/1");
    assert_eq!(f.outputs()["previous-version"], "(empty)");
    let log = format!("{}{}", taken.stdout(), taken.stderr());
    assert!(log.contains("1 live (was (empty))"), "{log}");
    let status = f.run(&["status", "--json"], &[]);
    let promotions = status.json()["promotions"].to_string();
    assert!(promotions.contains("from (empty)"), "{promotions}");
}

/// An invalidation refused after the origin path moved (too many in progress, a missing grant):
/// the flip stands, so the run reports it (outputs and line) and fails saying how to finish, and
/// promoting the live version again sends the invalidation once, then has nothing left to do.
#[test]
fn a_failed_invalidation_after_the_flip_reports_the_flip_and_a_re_run_sends_it() {
    let (mut f, distribution) = cloudfront_fixture();
    f.deploy(&f.site("v1", &[("index.html", "1")]), "1");
    f.outputs();
    let deny = Arc::new(AtomicBool::new(true));
    let sent = Arc::new(AtomicUsize::new(0));
    let proxy = {
        let (deny, sent) = (deny.clone(), sent.clone());
        Proxy::start(&f.moto_server().endpoint, move |r| {
            if r.method != "POST" || !r.target.ends_with("/invalidation") {
                return None;
            }
            if deny.load(Ordering::SeqCst) {
                return Some(Fault::Denied);
            }
            sent.fetch_add(1, Ordering::SeqCst);
            None
        })
    };
    f.set("AWS_ENDPOINT_URL", &proxy.url);
    let dist = f.site("v2", &[("index.html", "2")]).display().to_string();
    let run = f.run(&["deploy"], &[("CUTOVER_DIST_DIR", &dist), ("CUTOVER_VERSION", "2")]);
    run.assert_code(1);
    assert!(
        run.stderr().contains("2 is live, but the invalidation failed: re-run `cutover promote 2` to invalidate"),
        "{}",
        run.stderr()
    );
    assert!(run.stderr().contains("CreateInvalidation"), "{}", run.stderr());
    let out = f.outputs();
    let reported = ["version", "promoted", "previous-version", "invalidation-id"].map(|k| out[k].as_str());
    assert_eq!(reported, ["2", "true", "1", ""], "{out:?}");
    assert_eq!(f.moto_server().origin_path(&distribution), "/site/2");

    // Still refused: the re-run fails the same way and keeps the invalidation due.
    let again = f.run(&["promote", "2"], &[]);
    again.assert_code(1);
    assert!(again.stderr().contains("re-run `cutover promote 2` to invalidate"), "{}", again.stderr());
    f.outputs();

    deny.store(false, Ordering::SeqCst);
    let rerun = f.run(&["promote", "2"], &[]);
    rerun.assert_code(0);
    assert_eq!(sent.load(Ordering::SeqCst), 1, "the re-run sends exactly one invalidation");
    let out = f.outputs();
    assert_eq!((out["promoted"].as_str(), out["version"].as_str()), ("false", "2"), "{out:?}");
    assert!(!out["invalidation-id"].is_empty(), "{out:?}");

    let done = f.run(&["promote", "2"], &[]);
    done.assert_code(0);
    assert!(done.stderr().contains("2 is already live: nothing to do"), "{}", done.stderr());
    assert_eq!(sent.load(Ordering::SeqCst), 1, "nothing is due once it was sent");
}
