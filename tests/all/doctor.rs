//! `cutover doctor` against moto: a correct and a broken setup. Moto drops Lambda associations from
//! distribution configs and has no cache policy API, so those two checks fail on moto whatever the
//! setup; their logic is unit-tested in src/doctor.rs.

use crate::harness::{Fixture, free_port};
use crate::proxy::{Fault, Proxy};

fn checks(run: &crate::harness::Run) -> Vec<(String, bool)> {
    let report = run.json();
    report["checks"]
        .as_array()
        .expect("a list of checks")
        .iter()
        .map(|c| (c["name"].as_str().unwrap().to_owned(), c["passed"].as_bool().unwrap()))
        .collect()
}

#[test]
fn a_correct_setup_passes_what_moto_can_hold() {
    let mut f = Fixture::moto();
    let distribution = f.moto_server().create_distribution("site-bucket");
    f.moto_server().block_public_access("site-bucket");
    f.set("CUTOVER_DISTRIBUTION_ID", &distribution);
    let edge = f.start_edge();
    let dist = f.site("v1", &[("index.html", "1")]);
    f.deploy(&dist, "1");
    edge.wait_for_active("1");
    let run = f.run(&["doctor", "--json"], &[]);
    run.assert_code(1);
    let expected = [
        ("bucket", true),
        ("bucket private", true),
        ("parameter", true),
        ("distribution", true),
        ("router", false),
        ("cache policy", false),
        ("site", true),
    ];
    assert_eq!(checks(&run), expected.map(|(n, p)| (n.to_owned(), p)), "{}", run.stdout());
    assert!(run.stderr().contains("2 of 7 checks failed"), "{}", run.stderr());
    assert_eq!(
        (run.json()["error"].as_str(), run.json()["exit-code"].as_u64()),
        (Some("2 of 7 checks failed"), Some(1))
    );
    assert_eq!(f.active().as_deref(), Some("1"), "doctor changes nothing");
    assert!(run.stderr().contains("warning: no `override-secret`: anyone can send a link"), "{}", run.stderr());
    let run = f.run(&["doctor", "--json"], &[("CUTOVER_OVERRIDE_SECRET", "s3cret")]);
    assert!(!run.stderr().contains("override-secret"), "{}", run.stderr());
}

#[test]
fn a_broken_setup_fails_every_check_with_a_fix() {
    let mut f = Fixture::moto();
    f.set("CUTOVER_BUCKET", "no-such-bucket").set("CUTOVER_DISTRIBUTION_ID", "E0000000000000");
    f.set("CUTOVER_SITE_URL", &format!("http://127.0.0.1:{}", free_port()));
    let run = f.run(&["doctor"], &[]);
    run.assert_code(1);
    let report = run.stdout();
    for name in ["bucket", "bucket private", "parameter", "distribution", "site"] {
        assert!(report.lines().any(|l| l.starts_with("FAIL") && l[5..].starts_with(name)), "{name} fails:\n{report}");
    }
    assert_eq!(report.matches("fix: ").count(), 5, "{report}");
    assert!(!report.lines().any(|l| l.starts_with("ok")), "{report}");
}

#[test]
fn doctor_needs_an_aws_setup() {
    let f = Fixture::local();
    let run = f.run(&["doctor"], &[]);
    run.assert_code(2);
    assert!(run.stderr().contains("input `bucket`"), "{}", run.stderr());
}

/// The checks as (name, passed, detail, fix), for finer assertions.
fn details(run: &crate::harness::Run) -> Vec<(String, bool, String, String)> {
    let report = run.json();
    let checks = report["checks"].as_array().expect("a list of checks");
    let text = |c: &serde_json::Value, k: &str| c[k].as_str().unwrap_or_default().to_owned();
    checks
        .iter()
        .map(|c| (text(c, "name"), c["passed"].as_bool().unwrap(), text(c, "detail"), text(c, "fix")))
        .collect()
}

#[test]
fn a_call_the_credentials_may_not_make_is_reported_as_an_access_error_naming_the_action() {
    let mut f = Fixture::moto();
    let distribution = f.moto_server().create_distribution("site-bucket");
    f.moto_server().block_public_access("site-bucket");
    f.set("CUTOVER_DISTRIBUTION_ID", &distribution);
    f.deploy(&f.site("v1", &[("index.html", "1")]), "1");
    // Everything but the distribution's config is refused, so the cache policy is asked for too.
    let proxy = Proxy::start(&f.moto_server().endpoint, |r| (!r.target.ends_with("/config")).then_some(Fault::Denied));
    let run = f.run(&["doctor", "--json"], &[("AWS_ENDPOINT_URL", &proxy.url)]);
    run.assert_code(1);
    let expected = [
        ("bucket", "s3:ListBucket"),
        ("bucket private", "s3:GetBucketPublicAccessBlock"),
        ("parameter", "ssm:GetParameter"),
        ("cache policy", "cloudfront:GetCachePolicy"),
    ];
    let checks = details(&run);
    for (name, action) in expected {
        let check = checks.iter().find(|c| c.0 == name).unwrap_or_else(|| panic!("{name} is checked"));
        assert_access_denied(check, action, &format!("allow {action}"));
    }
}

/// A failed check that says the credentials may not call `action`, with a fix starting `fix_start`.
fn assert_access_denied(check: &(String, bool, String, String), action: &str, fix_start: &str) {
    let (name, passed, detail, fix) = check;
    assert!(
        !passed && detail.starts_with(&format!("access denied: the credentials may not call {action}")),
        "{name}: {detail}"
    );
    assert!(fix.starts_with(fix_start), "{name}: {fix}");
}

#[test]
fn the_live_release_check_reports_a_refused_call_as_an_access_error_naming_the_action() {
    let mut f = Fixture::moto();
    let distribution = f.moto_server().create_distribution("site-bucket");
    f.set("CUTOVER_POINTER", &format!("cloudfront:{distribution}"));
    f.deploy(&f.site("v1", &[("index.html", "1")]), "1");
    let live = |run: &crate::harness::Run| details(run).into_iter().find(|c| c.0 == "live release").expect("checked");
    // The origin path is read (GetDistributionConfig), the promotion log is refused (S3 GetObject).
    let s3_refused =
        Proxy::start(&f.moto_server().endpoint, |r| (!r.target.starts_with("/2020-05-31/")).then_some(Fault::Denied));
    // Nothing answers: the origin path cannot be read either.
    let all_refused = Proxy::start(&f.moto_server().endpoint, |_| Some(Fault::Denied));
    let expected = [
        (&s3_refused, "s3:GetObject", "arn:aws:s3:::site-bucket/site/_cutover/promotions.json"),
        (&all_refused, "cloudfront:GetDistributionConfig", &*format!("distribution {distribution}")),
    ];
    for (proxy, action, arn) in expected {
        let run = f.run(&["doctor", "--json"], &[("AWS_ENDPOINT_URL", &proxy.url)]);
        run.assert_code(1);
        assert_access_denied(&live(&run), action, &format!("allow {action} on {arn}"));
    }
}

#[test]
fn a_stack_update_that_moved_the_origin_path_is_found_and_promote_repairs_it() {
    let mut f = Fixture::moto();
    let distribution = f.moto_server().create_distribution("site-bucket");
    f.set("CUTOVER_POINTER", &format!("cloudfront:{distribution}"));
    f.deploy(&f.site("v1", &[("index.html", "1")]), "1");
    let live = |run: &crate::harness::Run| details(run).into_iter().find(|c| c.0 == "live release").expect("checked");
    let (_, passed, detail, _) = live(&f.run(&["doctor", "--json"], &[]));
    assert!(passed, "{detail}");

    // What a stack update without LiveVersion sends: the template's placeholder.
    f.moto_server().set_origin_path(&distribution, "/site/-");
    let (_, passed, detail, fix) = live(&f.run(&["doctor", "--json"], &[]));
    assert!(!passed && detail.contains("serves no release, but the last promotion made 1 live"), "{detail}");
    assert!(fix.contains("`cutover promote 1`") && fix.contains("LiveVersion=1"), "{fix}");

    f.run(&["promote", "1"], &[]).assert_code(0);
    assert_eq!(f.moto_server().origin_path(&distribution), "/site/1");
    let (_, passed, detail, _) = live(&f.run(&["doctor", "--json"], &[]));
    assert!(passed, "{detail}");
}

#[test]
fn a_moved_origin_path_after_a_rollback_is_repaired_by_the_command_doctor_names() {
    let mut f = Fixture::moto();
    let distribution = f.moto_server().create_distribution("site-bucket");
    f.set("CUTOVER_POINTER", &format!("cloudfront:{distribution}"));
    for version in ["1", "2", "3"] {
        f.deploy(&f.site(&format!("v{version}"), &[("index.html", version)]), version);
    }
    f.run(&["rollback", "--to", "1"], &[]).assert_code(0);
    // A stack update sent the origin path of an older LiveVersion.
    f.moto_server().set_origin_path(&distribution, "/site/3");
    let live = |run: &crate::harness::Run| details(run).into_iter().find(|c| c.0 == "live release").expect("checked");
    let (_, passed, detail, fix) = live(&f.run(&["doctor", "--json"], &[]));
    assert!(!passed && detail.contains("serves version 3, but the last promotion made 1 live"), "{detail}");
    assert!(fix.starts_with("`cutover rollback --to 1` puts it back"), "{fix}");
    let status = f.run(&["status"], &[]);
    status.assert_code(0);
    assert!(status.stdout().contains("serves version 3, but the last promotion made 1 live"), "{}", status.stdout());

    f.run(&["rollback", "--to", "1"], &[]).assert_code(0);
    assert_eq!(f.moto_server().origin_path(&distribution), "/site/1");
    let (_, passed, detail, _) = live(&f.run(&["doctor", "--json"], &[]));
    assert!(passed, "{detail}");
    let status = f.run(&["status", "--json"], &[]);
    assert_eq!(status.json()["warnings"], serde_json::json!([]), "{}", status.stdout());
}

#[test]
fn doctor_names_the_region_it_used_and_a_deploy_that_creates_the_parameter_says_where() {
    let mut f = Fixture::moto();
    let distribution = f.moto_server().create_distribution("site-bucket");
    f.set("CUTOVER_DISTRIBUTION_ID", &distribution);
    let first = f.deploy(&f.site("v1", &[("index.html", "1")]), "1");
    let created = "SSM parameter /cutover/test/active did not exist in region us-east-1, so this run created it";
    assert!(first.stderr().contains(created), "{}", first.stderr());
    let second = f.deploy(&f.site("v2", &[("index.html", "2")]), "2");
    assert!(!second.stderr().contains("did not exist"), "{}", second.stderr());

    // The setup is in us-east-1; doctor asked in another region, where the parameter is missing.
    let elsewhere = [("CUTOVER_REGION", "eu-west-1")];
    let text = f.run(&["doctor"], &elsewhere);
    assert!(text.stdout().lines().any(|l| l == "region: eu-west-1 (from `region`)"), "{}", text.stdout());
    let json = f.run(&["doctor", "--json"], &elsewhere);
    assert_eq!(json.json()["region"], "eu-west-1 (from `region`)");
    // A refused call's fix names the region it went to.
    let proxy = Proxy::start(&f.moto_server().endpoint, |r| r.ssm_action().is_some().then_some(Fault::Denied));
    let run = f.run(&["doctor", "--json"], &[elsewhere[0], ("AWS_ENDPOINT_URL", &proxy.url)]);
    let (_, passed, _, fix) = details(&run).into_iter().find(|c| c.0 == "parameter").expect("checked");
    assert!(!passed && fix.contains("in region eu-west-1") && fix.contains("set `region`"), "{fix}");
}
