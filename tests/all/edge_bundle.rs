//! `cutover edge bundle` writes a zip whose router runs under Node with the baked configuration.

use std::io::Read;
use std::path::Path;
use std::process::Command;

use crate::harness::Fixture;

fn unzip(zip: &Path, into: &Path) -> Vec<String> {
    let mut archive = zip::ZipArchive::new(std::fs::File::open(zip).expect("the zip")).expect("a zip archive");
    let mut names = Vec::new();
    for i in 0..archive.len() {
        let mut entry = archive.by_index(i).expect("an entry");
        let name = entry.name().expect("an entry name").into_owned();
        let mut body = Vec::new();
        entry.read_to_end(&mut body).expect("reading an entry");
        std::fs::write(into.join(&name), body).expect("extracting");
        names.push(name);
    }
    names
}

/// Runs the bundled router's viewer-request on one event (every version a release holding
/// `docs/intro/index.html`) and returns the URI it rewrote to, or why it refused the override.
fn rewrite(dir: &Path, uri: &str, query: &str) -> String {
    let script = format!(
        "const r = require('./index.js'); r.setIndexReader(async () => ['docs/intro/index.html']);\
         r.handler({{Records:[{{cf:{{config:{{eventType:'viewer-request'}},\
         request:{{uri:{uri:?},querystring:{query:?},headers:{{}}}}}}}}]}}).then(r => process.stdout.write(r.uri ?? r.headers['x-cutover-override'][0].value))"
    );
    let out = Command::new("node").arg("-e").arg(script).current_dir(dir).output().expect("running node");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).unwrap()
}

/// The default `shared-assets` rule as the router gets it, from the vectors both sides run.
fn shared_pattern() -> String {
    let vectors: serde_json::Value =
        serde_json::from_str(include_str!("../../edge/shared-assets.json")).expect("the shared vectors parse");
    vectors["pattern"].as_str().expect("a pattern").to_owned()
}

#[test]
fn the_bundle_runs_with_its_baked_configuration() {
    let mut f = Fixture::local();
    f.set("CUTOVER_BUCKET", "site-bucket").set("CUTOVER_POINTER", "ssm:/sites/www/active").set("CUTOVER_PREFIX", "www");
    f.set("CUTOVER_OVERRIDE_QUERY", "preview").set("CUTOVER_REGION", "eu-west-1").set("CUTOVER_NOT_FOUND", "spa");
    let zip = f.dir.path().join("router.zip");
    let run = f.run(&["edge", "bundle", "--out", &zip.display().to_string()], &[]);
    run.assert_code(0);
    let dir = tempfile::tempdir().unwrap();
    assert_eq!(unzip(&zip, dir.path()), ["index.js", "config.json"]);
    let config: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.path().join("config.json")).unwrap()).unwrap();
    assert_eq!(
        config,
        serde_json::json!({
            "mode": "ssm", "parameterName": "/sites/www/active", "region": "eu-west-1", "bucket": "site-bucket",
            "prefix": "www", "overrideQuery": "preview", "versionCookie": "Build-Number", "overrideCookie": "Override",
            "cacheSeconds": 5, "notFound": "spa", "sharedAssets": shared_pattern(),
        })
    );
    assert_eq!(rewrite(dir.path(), "/docs/intro/", "preview=7"), "/www/7/docs/intro/index.html");
}

/// The override secret reaches the router and nothing that is printed, in any output format and
/// on any CI system: on GitHub only the `::add-mask::` line that comes before anything else names it.
#[test]
fn the_override_secret_is_baked_in_and_shown_nowhere() {
    let cases: [(&str, &[&str], Option<&str>); 5] = [
        ("github", &[], Some("GITHUB_ACTIONS")),
        ("github --json", &["--json"], Some("GITHUB_ACTIONS")),
        ("github --json --dry-run", &["--json", "--dry-run"], Some("GITHUB_ACTIONS")),
        ("circleci --json", &["--json"], Some("CIRCLECI")),
        ("plain --json --dry-run", &["--json", "--dry-run"], None),
    ];
    for (case, flags, ci) in cases {
        let mut f = Fixture::local();
        f.env.remove("GITHUB_ACTIONS");
        f.set("CUTOVER_BUCKET", "site-bucket").set("CUTOVER_POINTER", "ssm:/sites/www/active");
        f.set("CUTOVER_OVERRIDE_SECRET", "hunter2-very-secret");
        if let Some(ci) = ci {
            f.set(ci, "true");
        }
        let zip = f.dir.path().join("router.zip");
        let out = zip.display().to_string();
        let args: Vec<&str> = ["edge", "bundle", "--out", &out].into_iter().chain(flags.iter().copied()).collect();
        let run = f.run(&args, &[]);
        run.assert_code(0);
        let printed = format!("{}{}", run.stdout(), run.stderr());
        let written: String = ["github_output", "step_summary"]
            .iter()
            .filter_map(|name| std::fs::read_to_string(f.dir.path().join(name)).ok())
            .collect();
        let lines: Vec<&str> = printed.lines().chain(written.lines()).filter(|l| l.contains("hunter2")).collect();
        if ci == Some("GITHUB_ACTIONS") {
            let console = if flags.contains(&"--json") { run.stderr() } else { run.stdout() };
            let masks: Vec<&str> = console.lines().take_while(|l| l.starts_with("::add-mask::")).collect();
            assert!(masks.contains(&"::add-mask::hunter2-very-secret"), "{case}: {console}");
            assert_eq!(lines, ["::add-mask::hunter2-very-secret"], "{case}: {printed}");
        } else {
            assert!(lines.is_empty(), "{case}: {printed}");
        }
        if flags.contains(&"--json") {
            assert!(run.json().get("overrideSecret").is_none(), "{case}: {}", run.stdout());
        }
        if flags.contains(&"--dry-run") {
            continue;
        }
        let dir = tempfile::tempdir().unwrap();
        unzip(&zip, dir.path());
        let config: serde_json::Value =
            serde_json::from_slice(&std::fs::read(dir.path().join("config.json")).unwrap()).unwrap();
        assert_eq!(config["overrideSecret"], "hunter2-very-secret");
        assert_eq!(rewrite(dir.path(), "/docs/intro/", "override_build_number=7"), "unsigned");
    }
}

#[test]
fn a_cloudfront_pointer_bundles_the_origin_path_mode() {
    let mut f = Fixture::local();
    f.set("CUTOVER_BUCKET", "site-bucket").set("CUTOVER_POINTER", "cloudfront:E2QWRUHAPOMQZL");
    let zip = f.dir.path().join("router.zip");
    f.run(&["edge", "bundle", "--out", &zip.display().to_string()], &[]).assert_code(0);
    let dir = tempfile::tempdir().unwrap();
    unzip(&zip, dir.path());
    let config: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.path().join("config.json")).unwrap()).unwrap();
    assert_eq!((config["mode"].as_str(), config.get("parameterName")), (Some("origin-path"), None));
    assert_eq!(rewrite(dir.path(), "/docs/intro", ""), "/docs/intro", "origin-request routes in this mode");
}

/// Unset, `region` bakes the template's us-east-1 into the router whatever AWS_REGION says, and the
/// help says so (it said "the standard AWS chain" alone).
#[test]
fn without_region_the_bundle_bakes_us_east_1_as_its_help_says() {
    let mut f = Fixture::local();
    f.set("CUTOVER_BUCKET", "site-bucket");
    let zip = f.dir.path().join("router.zip");
    f.run(&["edge", "bundle", "--out", &zip.display().to_string()], &[("AWS_REGION", "eu-west-1")]).assert_code(0);
    let dir = tempfile::tempdir().unwrap();
    unzip(&zip, dir.path());
    let config: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.path().join("config.json")).unwrap()).unwrap();
    assert_eq!(config["region"], "us-east-1", "{config}");
    let help = f.run(&["edge", "bundle", "--help"], &[]);
    assert!(help.stdout().contains("`edge bundle` then bakes us-east-1"), "{}", help.stdout());
}

#[test]
fn the_embedded_store_has_no_router_to_bundle() {
    let f = Fixture::local();
    let zip = f.dir.path().join("router.zip");
    let run = f.run(&["edge", "bundle", "--out", &zip.display().to_string()], &[]);
    run.assert_code(2);
    assert!(run.stderr().contains("input `pointer`"), "{}", run.stderr());
    assert!(!zip.exists());
}

#[test]
fn the_bundle_never_replaces_anything_but_a_file() {
    let f = Fixture::moto();
    let dir = f.dir.path().join("not-a-file");
    std::fs::create_dir(&dir).unwrap();
    let run = f.run(&["edge", "bundle", "--out", &dir.display().to_string()], &[]);
    run.assert_code(2);
    assert!(run.stderr().contains("input `out`") && run.stderr().contains("is not a regular file"), "{}", run.stderr());
    assert!(dir.is_dir(), "the directory is left alone");
}

#[test]
fn the_bundle_names_the_stack_parameters_that_put_its_names_in_the_cache_key() {
    let mut f = Fixture::local();
    f.set("CUTOVER_BUCKET", "site-bucket").set("CUTOVER_POINTER", "cloudfront:E2QWRUHAPOMQZL");
    f.set("CUTOVER_VERSION_COOKIE", "V").set("CUTOVER_OVERRIDE_COOKIE", "O").set("CUTOVER_OVERRIDE_QUERY", "q");
    let zip = f.dir.path().join("router.zip");
    let run = f.run(&["edge", "bundle", "--out", &zip.display().to_string()], &[]);
    run.assert_code(0);
    assert!(
        run.stdout().contains("stack parameters: VersionCookie=V OverrideCookie=O OverrideQuery=q\n"),
        "{}",
        run.stdout()
    );
}

/// With `preview-domain` the line also names `PreviewDomain` and the wildcard certificate's
/// parameter, which the template's rule requires with it.
#[test]
fn with_a_preview_domain_the_stack_parameters_name_it_and_its_certificate() {
    let mut f = Fixture::local();
    f.set("CUTOVER_BUCKET", "site-bucket").set("CUTOVER_POINTER", "ssm:/sites/www/active");
    f.set("CUTOVER_PREVIEW_DOMAIN", "preview.example.com");
    let zip = f.dir.path().join("router.zip");
    let run = f.run(&["edge", "bundle", "--out", &zip.display().to_string()], &[]);
    let expected = "stack parameters: VersionCookie=Build-Number OverrideCookie=Override OverrideQuery=override_build_number \
         PreviewDomain=preview.example.com PreviewCertificateArn=<arn-of-a-us-east-1-certificate-for-*.preview.example.com>\n";
    assert!(run.assert_code(0).stdout().contains(expected), "{}", run.stdout());
    assert!(!run.stdout().contains("::warning::"), "{}", run.stdout());
}

/// Host links that cannot work are warned about, and the stack parameters do not ask for them:
/// with `override-secret` a host carries no signature; in the origin-path style the router decides
/// after the cache lookup, whose key holds no host.
#[test]
fn a_preview_domain_that_cannot_show_previews_warns_that_host_links_are_off() {
    let cases = [
        (
            ("ssm:/sites/www/active", Some("0123456789abcdef0123456789abcdef")),
            "::warning::`preview-domain` with `override-secret`: host links are off",
            true,
        ),
        (
            ("cloudfront:E2QWRUHAPOMQZL", None),
            "::warning::`preview-domain` with a cloudfront: pointer: host links need an ssm: pointer",
            false,
        ),
    ];
    for ((pointer, secret), warning, stack_names_the_domain) in cases {
        let mut f = Fixture::local();
        f.set("CUTOVER_BUCKET", "site-bucket").set("CUTOVER_POINTER", pointer);
        f.set("CUTOVER_PREVIEW_DOMAIN", "preview.example.com");
        if let Some(secret) = secret {
            f.set("CUTOVER_OVERRIDE_SECRET", secret);
        }
        let zip = f.dir.path().join("router.zip");
        let run = f.run(&["edge", "bundle", "--out", &zip.display().to_string()], &[]);
        let out = run.assert_code(0).stdout();
        assert!(out.contains(warning) && out.contains("every host under preview.example.com answers 404"), "{out}");
        assert_eq!(out.contains("PreviewDomain="), stack_names_the_domain, "{out}");
    }
}

/// Names the router would confuse are refused before anything is written, naming the input; a
/// region the template does not deploy in is a warning (a stack of one's own may use it).
#[test]
fn names_that_break_the_setup_are_refused_and_another_region_or_a_short_secret_is_a_warning() {
    let cases = [
        ("CUTOVER_OVERRIDE_QUERY", "dpl", "override-query"),
        ("CUTOVER_OVERRIDE_QUERY", "DPL", "override-query"),
        ("CUTOVER_OVERRIDE_COOKIE", "Build-Number", "override-cookie"),
        ("CUTOVER_VERSION_COOKIE", "override", "override-cookie"),
    ];
    for (variable, value, input) in cases {
        let mut f = Fixture::local();
        f.set("CUTOVER_BUCKET", "site-bucket").set("CUTOVER_POINTER", "cloudfront:E2QWRUHAPOMQZL");
        f.set(variable, value);
        let zip = f.dir.path().join("router.zip");
        let run = f.run(&["edge", "bundle", "--out", &zip.display().to_string()], &[]);
        run.assert_code(2);
        assert!(run.stderr().contains(&format!("input `{input}`")), "{variable}={value}: {}", run.stderr());
        assert!(!zip.exists(), "{variable}={value}: nothing is written");
    }
    let mut f = Fixture::local();
    f.set("CUTOVER_BUCKET", "site-bucket").set("CUTOVER_POINTER", "ssm:/sites/www/active");
    let zip = f.dir.path().join("router.zip");
    let run = f.run(&["edge", "bundle", "--out", &zip.display().to_string(), "--region", "eu-west-1"], &[]);
    run.assert_code(0);
    assert!(
        run.stdout().contains(
            "::warning::the router reads from region eu-west-1, but infra/cutover.yml deploys only in us-east-1"
        ),
        "{}",
        run.stdout()
    );
    let run = f.run(&["edge", "bundle", "--out", &zip.display().to_string(), "--region", "us-east-1"], &[]);
    assert!(!run.assert_code(0).stdout().contains("::warning::"), "{}", run.stdout());
    // A short override secret can be guessed offline from the bundle's published hash.
    let short = "k7";
    let run = f.run(&["edge", "bundle", "--out", &zip.display().to_string()], &[("CUTOVER_OVERRIDE_SECRET", short)]);
    let out = run.assert_code(0).stdout();
    assert!(out.contains("::warning::`override-secret` is 2 characters"), "{out}");
    assert!(!out.replace("::add-mask::k7", "").contains(short), "the warning shows no secret: {out}");
    let strong = "0123456789abcdef0123456789abcdef";
    let run = f.run(&["edge", "bundle", "--out", &zip.display().to_string()], &[("CUTOVER_OVERRIDE_SECRET", strong)]);
    assert!(!run.assert_code(0).stdout().contains("::warning::"), "{}", run.stdout());
}
