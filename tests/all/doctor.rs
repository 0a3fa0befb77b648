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
    // infra/cutover.yml's SSM style: the origin has no path, the router puts the version in the URI.
    f.moto_server().set_origin_path(&distribution, "");
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

/// With a wrong input (another parameter, prefix or region than the stack's) a refused call is
/// most often that input, not a missing grant: the fix says so first and names what the
/// DeployPolicy grants the action on.
#[test]
fn a_refused_call_under_a_wrong_input_names_the_inputs_and_what_the_policy_grants() {
    let f = Fixture::moto();
    let proxy = Proxy::start(&f.moto_server().endpoint, |_| Some(Fault::Denied));
    // Each case: the wrong input, the check, its action, what the policy grants it on, and what
    // the fix names of the wrong input itself.
    let cases: [(&[&str], &str, &str, &str, &str); 3] = [
        (
            &["--pointer", "ssm:/custom/active"],
            "parameter",
            "ssm:GetParameter",
            "only on the SSM parameter /cutover/<BucketName>/<Prefix>/active in us-east-1",
            "/custom/active",
        ),
        (
            &["--prefix", "wrong"],
            "bucket",
            "s3:ListBucket",
            "only on the stack's bucket, listing under `<Prefix>/`",
            "s3:prefix wrong/*",
        ),
        (
            &["--region", "eu-west-1"],
            "bucket private",
            "s3:GetBucketPublicAccessBlock",
            "only on the stack's bucket",
            "in region eu-west-1",
        ),
    ];
    for (flags, name, action, grants, named) in cases {
        let args: Vec<&str> = ["doctor", "--json"].into_iter().chain(flags.iter().copied()).collect();
        let run = f.run(&args, &[("AWS_ENDPOINT_URL", &proxy.url)]);
        let check = details(&run).into_iter().find(|c| c.0 == name).unwrap_or_else(|| panic!("{name} is checked"));
        assert!(check.3.contains(grants) && check.3.contains(named), "{flags:?}: {}", check.3);
        assert_access_denied(&check, action, &format!("allow {action}"));
    }
}

/// A failed check that says the credentials may not call `action`, with a fix that says to check
/// the inputs against the stack first and then `allow`s.
fn assert_access_denied(check: &(String, bool, String, String), action: &str, allow: &str) {
    let (name, passed, detail, fix) = check;
    assert!(
        !passed && detail.starts_with(&format!("access denied: the credentials may not call {action}")),
        "{name}: {detail}"
    );
    let inputs_first = "check first that `bucket`, `prefix`, `region` (us-east-1) and `pointer` (unset in the template's SSM style, `cloudfront:<DistributionId>` in its origin-path style) match the stack: the DeployPolicy in infra/cutover.yml grants";
    assert!(fix.starts_with(inputs_first) && fix.contains(&format!("if they do, {allow}")), "{name}: {fix}");
}

#[test]
fn the_live_release_check_reports_a_refused_call_as_an_access_error_naming_the_action() {
    let (f, distribution) = styled(true);
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
fn the_parameter_check_reports_a_refused_history_read_as_an_access_error_naming_the_action() {
    let f = Fixture::moto();
    f.deploy(&f.site("v1", &[("index.html", "1")]), "1");
    let proxy = Proxy::start(&f.moto_server().endpoint, |r| {
        (r.ssm_action() == Some("GetParameterHistory")).then_some(Fault::Denied)
    });
    let run = f.run(&["doctor", "--json"], &[("AWS_ENDPOINT_URL", &proxy.url)]);
    let check = details(&run).into_iter().find(|c| c.0 == "parameter").expect("checked");
    assert_access_denied(&check, "ssm:GetParameterHistory", "allow ssm:GetParameterHistory on /cutover/test/active");
}

#[test]
fn a_stack_update_that_moved_the_origin_path_is_found_and_promote_repairs_it() {
    let (f, distribution) = styled(true);
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
    let (f, distribution) = styled(true);
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
    // The parameter missing there is a wrong region first, a parameter to create last.
    let (_, passed, detail, fix) = details(&json).into_iter().find(|c| c.0 == "parameter").expect("checked");
    assert!(!passed && detail == "SSM parameter /cutover/test/active does not exist in region eu-west-1", "{detail}");
    assert!(fix.starts_with("check `region` first") && fix.contains("`pointer`"), "{fix}");
    // A refused call's fix names the region it went to.
    let proxy = Proxy::start(&f.moto_server().endpoint, |r| r.ssm_action().is_some().then_some(Fault::Denied));
    let run = f.run(&["doctor", "--json"], &[elsewhere[0], ("AWS_ENDPOINT_URL", &proxy.url)]);
    let (_, passed, _, fix) = details(&run).into_iter().find(|c| c.0 == "parameter").expect("checked");
    assert!(!passed && fix.contains("in region eu-west-1") && fix.contains("`region` (us-east-1)"), "{fix}");
}

/// A fixture on moto with a distribution, in the SSM style or the origin-path style.
fn styled(origin_path: bool) -> (Fixture, String) {
    let mut f = Fixture::moto();
    let distribution = f.moto_server().create_distribution("site-bucket");
    f.set("CUTOVER_DISTRIBUTION_ID", &distribution);
    if origin_path {
        f.set("CUTOVER_POINTER", &format!("cloudfront:{distribution}"));
    }
    (f, distribution)
}

/// Puts `value` in the pointer by hand: the SSM parameter, or the origin path `/site/<value>`.
fn set_by_hand(f: &Fixture, distribution: &str, origin_path: bool, value: &str) -> Result<(), String> {
    if origin_path {
        f.moto_server().set_origin_path(distribution, &format!("/site/{value}"));
        Ok(())
    } else {
        f.moto_server().put_parameter(f.env["CUTOVER_POINTER"].trim_start_matches("ssm:"), value)
    }
}

/// The check that reads what the pointer holds: `parameter` in the SSM style, `live release` in
/// the origin-path style.
fn pointer_check(run: &crate::harness::Run, origin_path: bool) -> (String, bool, String, String) {
    let name = if origin_path { "live release" } else { "parameter" };
    details(run).into_iter().find(|c| c.0 == name).unwrap_or_else(|| panic!("{name} is checked: {}", run.stdout()))
}

/// Runs the command a fix names (the first `cutover ...` in backticks), with `take-over-pointer`
/// when the fix says to set it.
fn run_the_named_fix(f: &Fixture, fix: &str) -> crate::harness::Run {
    let command =
        fix.split('`').find(|part| part.starts_with("cutover ")).unwrap_or_else(|| panic!("no command: {fix}"));
    let args: Vec<&str> = command.split_whitespace().skip(1).collect();
    let take_over: &[(&str, &str)] =
        if fix.contains("`take-over-pointer: true`") { &[("CUTOVER_TAKE_OVER_POINTER", "true")] } else { &[] };
    f.run(&args, take_over)
}

/// After deploys 1, 2 and a rollback to 1, the pointer set to `value` by hand (or by a stack
/// update): doctor fails the pointer's check naming the last promotion, 1, and a command; that
/// command, run as named, puts 1 back, and doctor then passes.
fn doctor_names_a_command_that_puts_the_last_promotion_back(origin_path: bool, value: &str) {
    let (f, distribution) = styled(origin_path);
    for version in ["1", "2"] {
        f.deploy(&f.site(&format!("v{version}"), &[("index.html", version)]), version);
    }
    f.run(&["rollback"], &[]).assert_code(0);
    set_by_hand(&f, &distribution, origin_path, value).expect("setting the pointer by hand");
    let (_, passed, detail, fix) = pointer_check(&f.run(&["doctor", "--json"], &[]), origin_path);
    assert!(!passed && detail.contains("but the last promotion made 1 live"), "{value}: {detail}");
    let repaired = run_the_named_fix(&f, &fix);
    assert_eq!(repaired.code(), 0, "{value}: `{fix}` failed:\n{}", repaired.stderr());
    assert_eq!(f.active().as_deref(), Some("1"), "{value}: {fix}");
    let (_, passed, detail, _) = pointer_check(&f.run(&["doctor", "--json"], &[]), origin_path);
    assert!(passed, "{value}: {detail}");
}

#[test]
fn the_ssm_placeholder_after_promotions_is_found_and_the_named_command_repairs_it() {
    doctor_names_a_command_that_puts_the_last_promotion_back(false, "-");
}

#[test]
fn the_origin_path_placeholder_after_a_rollback_is_found_and_the_named_command_repairs_it() {
    doctor_names_a_command_that_puts_the_last_promotion_back(true, "-");
}

#[test]
fn an_unrecorded_version_in_the_ssm_parameter_is_repaired_by_the_command_doctor_names() {
    doctor_names_a_command_that_puts_the_last_promotion_back(false, "9");
}

#[test]
fn an_unrecorded_version_in_the_origin_path_is_repaired_by_the_command_doctor_names() {
    doctor_names_a_command_that_puts_the_last_promotion_back(true, "9");
}

/// doctor passes exactly the pointer values promote takes: each value below, put in the pointer
/// by hand with releases 1 and 2 recorded and nothing promoted, gets doctor's verdict, and
/// `promote 2` (a dry run) its acceptance (exit 0) or refusal (exit 4); they must agree.
fn doctor_passes_exactly_what_promote_takes(origin_path: bool) {
    let (mut f, distribution) = styled(origin_path);
    for version in ["1", "2"] {
        let dist = f.site(&format!("v{version}"), &[("index.html", version)]);
        f.run(&["stage"], &[("CUTOVER_DIST_DIR", &dist.display().to_string()), ("CUTOVER_VERSION", version)])
            .assert_code(0);
    }
    let long = |n: usize| "a".repeat(n);
    let values =
        ["-", "1", "pr-3-1", "null", "None", "", " 1", "../x", "_cutover", "1 ", "v1/2", &long(128), &long(129)];
    let mut verdicts = Vec::new();
    for (i, value) in values.iter().enumerate() {
        if !origin_path {
            // A parameter of its own, so no value's history shows in another's check.
            f.set("CUTOVER_POINTER", &format!("ssm:/cutover/test/p{i}"));
        }
        if let Err(refused) = set_by_hand(&f, &distribution, origin_path, value) {
            // SSM takes no empty value: there is nothing to compare.
            assert!(value.is_empty() && refused.contains("Validation"), "{value:?}: {refused}");
            continue;
        }
        let (_, passed, detail, _) = pointer_check(&f.run(&["doctor", "--json"], &[]), origin_path);
        let promote = f.run(&["promote", "2", "--dry-run"], &[]);
        assert!([0, 4].contains(&promote.code()), "{value:?}: {}", promote.stderr());
        verdicts.push((value.to_string(), passed, promote.code() == 0, detail, promote.stderr()));
    }
    let differ: Vec<_> = verdicts.iter().filter(|(_, doctor, promote, _, _)| doctor != promote).collect();
    assert!(differ.is_empty(), "doctor's verdict differs from promote's for: {differ:#?}");
}

#[test]
fn doctor_passes_exactly_the_ssm_values_promote_takes() {
    doctor_passes_exactly_what_promote_takes(false);
}

#[test]
fn doctor_passes_exactly_the_origin_paths_promote_takes() {
    doctor_passes_exactly_what_promote_takes(true);
}

/// In the origin-path style doctor probes the right to flip (UpdateDistribution under an
/// `If-Match` that cannot match, with the config as read): moto ignores `If-Match` and applies it,
/// which changes nothing; refused, the check names the action, and what the flip also needs.
#[test]
fn doctor_probes_the_right_to_flip_the_origin_path_without_moving_it() {
    let (f, distribution) = styled(true);
    f.deploy(&f.site("v1", &[("index.html", "1")]), "1");
    let flip = |run: &crate::harness::Run| details(run).into_iter().find(|c| c.0 == "flip").expect("flip is checked");
    let run = f.run(&["doctor", "--json"], &[]);
    let (_, passed, detail, _) = flip(&run);
    assert!(passed && detail.contains("lambda:EnableReplication*"), "{detail}");
    assert_eq!(f.moto_server().origin_path(&distribution), "/site/1", "the probe moved nothing");
    let refused = Proxy::start(&f.moto_server().endpoint, |r| {
        (r.method == "PUT" && r.target.ends_with("/config")).then_some(Fault::Denied)
    });
    let run = f.run(&["doctor", "--json"], &[("AWS_ENDPOINT_URL", &refused.url)]);
    let check = flip(&run);
    assert_access_denied(
        &check,
        "cloudfront:UpdateDistribution",
        "allow cloudfront:UpdateDistribution on distribution",
    );
    assert!(check.3.contains("lambda:EnableReplication*"), "{}", check.3);
    assert_eq!(f.moto_server().origin_path(&distribution), "/site/1");
}

/// A site on 127.0.0.1 that answers its one request with `head` (status line and headers) and
/// closes; its URL.
fn answering_once(head: &'static str) -> String {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("a local port");
    let url = format!("http://{}", listener.local_addr().expect("its address"));
    std::thread::spawn(move || {
        if let Ok((mut stream, _)) = listener.accept() {
            use std::io::{Read, Write};
            let mut request = [0u8; 4096];
            let _ = stream.read(&mut request);
            let _ = stream.write_all(format!("{head}\r\ncontent-length: 0\r\nconnection: close\r\n\r\n").as_bytes());
        }
    });
    url
}

/// The site check compares what the URL serves with the live version, and tells a router that
/// cannot read the active version (503 with Retry-After) from no router at all.
#[test]
fn the_site_check_compares_the_served_version_with_the_live_one() {
    let f = Fixture::moto();
    f.deploy(&f.site("v1", &[("index.html", "1")]), "1");
    f.deploy(&f.site("v2", &[("index.html", "2")]), "2");
    let site = |run: &crate::harness::Run| details(run).into_iter().find(|c| c.0 == "site").expect("site is checked");
    let stale = answering_once("HTTP/1.1 200 OK\r\nx-cutover-version: 1");
    let (_, passed, detail, fix) = site(&f.run(&["doctor", "--json"], &[("CUTOVER_SITE_URL", &stale)]));
    assert!(!passed && detail.ends_with("serves version 1, but the live version is 2"), "{detail}");
    assert!(
        fix.contains("edge-cache") && fix.contains("SSM parameter /cutover/test/active in region us-east-1"),
        "{fix}"
    );
    let live = answering_once("HTTP/1.1 200 OK\r\nx-cutover-version: 2");
    assert!(site(&f.run(&["doctor", "--json"], &[("CUTOVER_SITE_URL", &live)])).1);
    let unreadable = answering_once("HTTP/1.1 503 Service Unavailable\r\nretry-after: 5");
    let (_, passed, detail, fix) = site(&f.run(&["doctor", "--json"], &[("CUTOVER_SITE_URL", &unreadable)]));
    assert!(!passed && detail.contains("the router could not read the active version"), "{detail}");
    assert!(
        fix.contains("SSM parameter /cutover/test/active in region us-east-1") && !fix.contains("not in front"),
        "{fix}"
    );
    // Names `edge bundle` would refuse leave the style as it is: the fix still names the parameter.
    let unreadable = answering_once("HTTP/1.1 503 Service Unavailable\r\nretry-after: 5");
    let colliding = [("CUTOVER_SITE_URL", unreadable.as_str()), ("CUTOVER_OVERRIDE_QUERY", "dpl")];
    let (_, _, _, fix) = site(&f.run(&["doctor", "--json"], &colliding));
    assert!(fix.contains("SSM parameter /cutover/test/active in region us-east-1"), "{fix}");
}

/// In the origin-path style the router reads no parameter: the site check's fixes say what
/// applies there (a router bundled for the SSM style, an invalidation), not a parameter or region.
#[test]
fn the_site_checks_fixes_in_the_origin_path_style_name_no_parameter() {
    let (f, _) = styled(true);
    f.deploy(&f.site("v1", &[("index.html", "1")]), "1");
    f.deploy(&f.site("v2", &[("index.html", "2")]), "2");
    let site = |run: &crate::harness::Run| details(run).into_iter().find(|c| c.0 == "site").expect("site is checked");
    let stale = answering_once("HTTP/1.1 200 OK\r\nx-cutover-version: 1");
    let (_, passed, _, fix) = site(&f.run(&["doctor", "--json"], &[("CUTOVER_SITE_URL", &stale)]));
    assert!(!passed && fix.contains("create an invalidation of `/*`") && !fix.contains("parameter"), "{fix}");
    let unreadable = answering_once("HTTP/1.1 503 Service Unavailable\r\nretry-after: 5");
    let (_, passed, _, fix) = site(&f.run(&["doctor", "--json"], &[("CUTOVER_SITE_URL", &unreadable)]));
    assert!(!passed && fix.contains("a router bundled for the SSM style"), "{fix}");
    assert!(!fix.contains("let the router's role read it"), "{fix}");
}

/// A distribution whose origin is another bucket fails the distribution check, naming both; in the
/// SSM style so does one whose origin has a path.
#[test]
fn a_distribution_serving_another_bucket_fails_its_check() {
    let mut f = Fixture::moto();
    let other = f.moto_server().create_distribution("other-bucket");
    f.set("CUTOVER_DISTRIBUTION_ID", &other);
    let run = f.run(&["doctor", "--json"], &[]);
    let (_, passed, detail, fix) = details(&run).into_iter().find(|c| c.0 == "distribution").expect("checked");
    assert!(
        !passed && detail.contains("serves \"other-bucket.s3.amazonaws.com\", not the bucket site-bucket"),
        "{detail}"
    );
    assert!(fix.contains("`bucket`"), "{fix}");
    let ours = f.moto_server().create_distribution("site-bucket");
    // An origin path in front of the SSM router's /<prefix>/<version>/ paths makes every request miss.
    let run = f.run(&["doctor", "--json"], &[("CUTOVER_DISTRIBUTION_ID", &ours)]);
    let (_, passed, detail, fix) = details(&run).into_iter().find(|c| c.0 == "distribution").expect("checked");
    assert!(!passed && detail.contains("under the origin path \"/site/-\""), "{detail}");
    assert!(fix.contains("empty the origin's path"), "{fix}");
    f.moto_server().set_origin_path(&ours, "");
    let run = f.run(&["doctor", "--json"], &[("CUTOVER_DISTRIBUTION_ID", &ours)]);
    let (_, passed, detail, _) = details(&run).into_iter().find(|c| c.0 == "distribution").expect("checked");
    assert!(passed && detail.ends_with("serves s3://site-bucket"), "{detail}");
}
