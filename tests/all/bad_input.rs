//! Bad input stops a run before anything is written: a message naming the input, exit code 2.

use crate::harness::Fixture;

/// One bad run: the arguments, the env vars that make it bad, and the input the message must name.
type Case = (&'static [&'static str], &'static [(&'static str, &'static str)], &'static str);

const CASES: &[Case] = &[
    (&["deploy"], &[("CUTOVER_DIST_DIR", "missing")], "dist-dir"),
    (&["deploy"], &[("CUTOVER_DIST_DIR", "a-file")], "dist-dir"),
    (&["deploy"], &[("CUTOVER_DIST_DIR", "empty")], "dist-dir"),
    (&["deploy"], &[("CUTOVER_DIST_DIR", "leaky")], "dist-dir"),
    (&["deploy"], &[("CUTOVER_VERSION", "a/b")], "version"),
    (&["deploy"], &[("CUTOVER_VERSION", "_cutover")], "version"),
    (&["deploy"], &[("CUTOVER_VERSION", "..")], "version"),
    (&["deploy"], &[("CUTOVER_VERSION", "")], "version"),
    (&["deploy"], &[("CUTOVER_VERSION", "1\nextra=line")], "version"),
    (&["deploy"], &[("CUTOVER_PREFIX", "site/../other")], "prefix"),
    (&["deploy"], &[("CUTOVER_PREFIX", "/site")], "prefix"),
    (&["deploy"], &[("CUTOVER_POINTER", "redis:active")], "pointer"),
    (&["deploy"], &[("CUTOVER_POINTER", "ssm:/needs/a/bucket")], "pointer"),
    (&["deploy"], &[("CUTOVER_SITE_URL", "htp:/not a url")], "site-url"),
    (&["deploy"], &[("CUTOVER_CONCURRENCY", "0")], "concurrency"),
    (&["deploy"], &[("CUTOVER_BUCKET", "Bad_Bucket")], "bucket"),
    (&["deploy"], &[("CUTOVER_CACHE_CONTROL", "*.html")], "cache-control"),
    (&["deploy"], &[("CUTOVER_SMOKE_TIMEOUT", "forever")], "smoke-timeout"),
    (&["deploy"], &[("CUTOVER_SMOKE_TIMEOUT", "100000000y")], "smoke-timeout"),
    (&["deploy"], &[("CUTOVER_LOCK_LEASE", "100000000y")], "lock-lease"),
    (&["deploy"], &[("CUTOVER_EDGE_CACHE", "100000000y")], "edge-cache"),
    (
        &["deploy"],
        &[
            ("CUTOVER_BUCKET", "site-bucket"),
            ("CUTOVER_POINTER", "cloudfront:E2QWRUHAPOMQZL"),
            ("CUTOVER_INVALIDATION_WAIT", "100000000y"),
        ],
        "invalidation-wait",
    ),
    (&["deploy"], &[("CUTOVER_KEEP", "99999999999999999999999")], "keep"),
    (&["deploy"], &[("CUTOVER_CONCURRENCY", "99999999999999999999999")], "concurrency"),
    (&["deploy"], &[("INPUT_DRY-RUN", "perhaps")], "dry-run"),
    (&["prune"], &[("CUTOVER_KEEP", "-1")], "keep"),
    (&["promote", "../etc"], &[], "version"),
    (&["rollback", "--to", "a b"], &[], "to"),
];

#[test]
fn bad_input_names_the_input_exits_2_and_writes_nothing() {
    let f = Fixture::local();
    let good = f.site("dist", &[("index.html", "ok")]);
    f.site("a-file-parent", &[("x", "")]);
    std::fs::write(f.dir.path().join("a-file"), "not a dir").unwrap();
    std::fs::create_dir_all(f.dir.path().join("empty/sub")).unwrap();
    let leaky = f.site("leaky", &[("index.html", "ok")]);
    std::os::unix::fs::symlink("/etc/hostname", leaky.join("hostname")).unwrap();
    let store = f.dir.path().join("store");
    let good = good.display().to_string();
    assert!(CASES.len() >= 12);
    for (args, vars, input) in CASES {
        let mut env = vec![("CUTOVER_DIST_DIR", good.as_str()), ("CUTOVER_VERSION", "1")];
        env.retain(|(name, _)| !vars.iter().any(|(n, _)| n == name));
        env.extend_from_slice(vars);
        let run = f.run(args, &env);
        let context = format!("{args:?} {vars:?}\nstderr: {}", run.stderr());
        assert_eq!(run.code(), 2, "{context}");
        assert!(run.stderr().contains(&format!("input `{input}`")), "message must name `{input}`: {context}");
        assert!(!store.exists(), "nothing may be written: {context}");
        assert!(f.outputs().is_empty(), "no outputs on bad input: {context}");
    }
}

#[test]
fn unknown_flags_and_missing_commands_exit_2() {
    let f = Fixture::local();
    f.run(&["deploy", "--no-such-flag"], &[]).assert_code(2);
    f.run(&[], &[]).assert_code(2);
    let version = f.run(&["--version"], &[]);
    assert_eq!(version.assert_code(0).stdout().trim(), format!("cutover {}", env!("CARGO_PKG_VERSION")));
}

/// A misspelt `bucket` in a CI run is refused and named, in each CI system's own way, and the
/// embedded store is not touched; asked for explicitly, the embedded store works in CI.
#[test]
fn a_ci_run_without_a_bucket_is_refused_and_the_misspelling_named() {
    let mut f = Fixture::local();
    let dist = f.site("dist", &[("index.html", "ok")]).display().to_string();
    f.env.remove("CUTOVER_STORE_DIR");
    f.env.remove("GITHUB_ACTIONS");
    let systems: [&[(&str, &str)]; 4] =
        [&[("GITHUB_ACTIONS", "true")], &[("TEAMCITY_VERSION", "2025.03")], &[("CIRCLECI", "true")], &[("CI", "true")]];
    for system in systems {
        let mut env =
            vec![("CUTOVER_BUCKT", "my-site-bucket"), ("CUTOVER_DIST_DIR", dist.as_str()), ("CUTOVER_VERSION", "17")];
        env.extend_from_slice(system);
        let run = f.run(&["deploy"], &env);
        let context = format!("{system:?}\nstdout: {}\nstderr: {}", run.stdout(), run.stderr());
        assert_eq!(run.code(), 2, "{context}");
        assert!(run.stderr().contains("input `bucket`: not set, and this run is in"), "{context}");
        assert!(run.stderr().contains("set `store-dir` to use the embedded store on purpose"), "{context}");
        let all = run.stdout() + &run.stderr();
        assert!(
            all.contains("CUTOVER_BUCKT is not an input of cutover and is ignored; did you mean CUTOVER_BUCKET"),
            "{context}"
        );
        assert!(!f.dir.path().join(".cutover").exists(), "nothing may be written: {context}");
        match system[0].0 {
            "GITHUB_ACTIONS" => assert!(run.stdout().contains("::error title=cutover failed (exit 2)::"), "{context}"),
            "TEAMCITY_VERSION" => assert!(run.stdout().contains("##teamcity[buildProblem"), "{context}"),
            _ => {}
        }
    }
    let explicit = f.run(
        &["deploy"],
        &[
            ("TEAMCITY_VERSION", "2025.03"),
            ("CUTOVER_STORE_DIR", ".cutover"),
            ("CUTOVER_DIST_DIR", &dist),
            ("CUTOVER_VERSION", "17"),
        ],
    );
    explicit.assert_code(0);
    assert!(f.dir.path().join(".cutover").exists());
}

/// Every command's arguments come from inputs too, and a command line cutover cannot parse is
/// still reported to the CI system.
#[test]
fn promote_and_rollback_take_their_versions_from_inputs() {
    let f = Fixture::local();
    for version in ["1", "2", "3"] {
        let dist = f.site(&format!("v{version}"), &[("index.html", version)]);
        f.run(&["stage"], &[("CUTOVER_DIST_DIR", &dist.display().to_string()), ("CUTOVER_VERSION", version)])
            .assert_code(0);
    }
    f.run(&["promote"], &[("INPUT_VERSION", "3")]).assert_code(0);
    assert_eq!(f.active().as_deref(), Some("3"));
    f.run(&["rollback"], &[("CUTOVER_TO", "1")]).assert_code(0);
    assert_eq!(f.active().as_deref(), Some("1"));
    f.run(&["rollback"], &[("INPUT_TO", "2")]).assert_code(0);
    assert_eq!(f.active().as_deref(), Some("2"));
    let unparsable = f.run(&["promote", "3", "4"], &[]);
    unparsable.assert_code(2);
    assert!(
        unparsable.stdout().contains("::error title=cutover failed (exit 2)::command line:"),
        "{}",
        unparsable.stdout()
    );
}

/// `/Level-1/L2/.../L15/parameter-name`: AWS's own example of a name one level too deep.
const SIXTEEN_LEVELS: &str = "ssm:/Level-1/L2/L3/L4/L5/L6/L7/L8/L9/L10/L11/L12/L13/L14/L15/parameter-name";

/// Names AWS refuses, each with the input the message must name.
const AWS_NAMES: &[(&str, &str, &str)] = &[
    ("CUTOVER_POINTER", "ssm:/aws/reserved", "pointer"),
    ("CUTOVER_POINTER", "ssm:/ssm/x", "pointer"),
    ("CUTOVER_POINTER", "ssm:SSM-testparameter", "pointer"),
    ("CUTOVER_POINTER", "ssm:relative/name", "pointer"),
    ("CUTOVER_POINTER", SIXTEEN_LEVELS, "pointer"),
    ("CUTOVER_POINTER", "cloudfront:E1", "pointer"),
    ("CUTOVER_DISTRIBUTION_ID", "E1", "distribution-id"),
    ("CUTOVER_BUCKET", "site..bucket", "bucket"),
    ("CUTOVER_BUCKET", "192.168.5.4", "bucket"),
    ("CUTOVER_BUCKET", "xn--site-bucket", "bucket"),
    ("CUTOVER_BUCKET", "site-bucket--x-s3", "bucket"),
];

#[test]
fn names_aws_refuses_exit_2_before_anything_is_written_to_moto() {
    let f = Fixture::moto();
    let dist = f.site("dist", &[("index.html", "ok")]).display().to_string();
    for (name, value, input) in AWS_NAMES {
        let run = f.run(&["deploy"], &[("CUTOVER_DIST_DIR", &dist), ("CUTOVER_VERSION", "1"), (name, value)]);
        let context = format!("{name}={value}\nstderr: {}", run.stderr());
        assert_eq!(run.code(), 2, "{context}");
        assert!(run.stderr().contains(&format!("input `{input}`")), "message must name `{input}`: {context}");
        assert!(f.outputs().is_empty(), "no outputs on bad input: {context}");
    }
    let objects = f.with_site(async |site| site.store.list("").await.expect("listing the bucket"));
    assert!(objects.is_empty(), "nothing may be staged: {objects:?}");
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    let parameters = runtime.block_on(f.moto_server().ssm().describe_parameters().send()).expect("listing parameters");
    assert!(parameters.parameters().is_empty(), "no parameter may be written: {:?}", parameters.parameters());
}
