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
    (&["deploy"], &[("INPUT_DRY-RUN", "perhaps")], "dry-run"),
    (&["prune"], &[], "keep"),
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
