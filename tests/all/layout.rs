//! Where things live: what a release takes from the build directory (never the store, secret
//! files only when asked), where `prefix` puts it, and a store looked for where it is not.

use std::path::Path;

use cutover::release::read_record;

use crate::harness::{Fixture, Run, on_both_backends};

on_both_backends!(
    dist_dir_dot_releases_neither_the_store_nor_secret_files,
    an_empty_prefix_is_the_default_and_slash_the_bucket_root,
);

/// Runs the binary from `dir`, as a CI step run in the checkout does.
fn run_in(f: &Fixture, dir: &Path, args: &[&str], extra: &[(&str, &str)]) -> Run {
    Run::new(f.command(args, extra).current_dir(dir).output().expect("running cutover"))
}

/// The files `version`'s record lists, checked to be exactly the files stored for it.
fn released(f: &Fixture, version: &str) -> Vec<String> {
    f.with_site(async |site| {
        let record = read_record(&site, &site.layout.record_key(version)).await.unwrap().expect("a release record");
        let stored = site.store.list(&site.layout.version_dir(version)).await.unwrap();
        let stored: Vec<_> = stored.iter().map(|o| &o.key[site.layout.version_dir(version).len()..]).collect();
        let recorded: Vec<_> = record.files.into_keys().collect();
        assert_eq!(stored, recorded, "release {version} stores exactly what its record lists");
        recorded
    })
}

fn dist_dir_dot_releases_neither_the_store_nor_secret_files(mut f: Fixture) {
    let project = f.site(
        "project",
        &[
            ("index.html", "1"),
            (".well-known/security.txt", "Contact: x"),
            (".gitignore", ".env\n"),
            (".git/HEAD", "ref: refs/heads/main\n"),
            (".git/config", "[remote \"origin\"]\n"),
            (".env", "API_TOKEN=s3cr3t\n"),
        ],
    );
    if f.env.contains_key("CUTOVER_STORE_DIR") {
        // The embedded store where it is by default: `.cutover` in the directory being released.
        f.set("CUTOVER_STORE_DIR", &project.join(".cutover").display().to_string());
    }
    let deploy = |version: &str, extra: &[(&str, &str)]| {
        let mut env = vec![("CUTOVER_VERSION", version)];
        env.extend_from_slice(extra);
        let run = run_in(&f, &project, &["deploy", "--dist-dir", "."], &env);
        run.assert_code(0);
        run
    };
    deploy("1", &[]);
    std::fs::write(project.join("index.html"), "2").unwrap();
    let run = deploy("2", &[]);
    assert_eq!(released(&f, "2"), [".gitignore", ".well-known/security.txt", "index.html"]);
    let warning = "warning: not released, as they may hold secrets: \".env\", \".git/\" (set release-secret-files to true to release them)";
    assert_eq!(run.stderr().matches("may hold secrets").count(), 1, "{}", run.stderr());
    assert!(run.stderr().contains(warning), "{}", run.stderr());

    std::fs::write(project.join("index.html"), "3").unwrap();
    let run = deploy("3", &[("INPUT_RELEASE-SECRET-FILES", "true")]);
    assert!(!run.stderr().contains("may hold secrets"), "{}", run.stderr());
    assert_eq!(
        released(&f, "3"),
        [".env", ".git/HEAD", ".git/config", ".gitignore", ".well-known/security.txt", "index.html"]
    );
}

fn an_empty_prefix_is_the_default_and_slash_the_bucket_root(mut f: Fixture) {
    f.env.remove("CUTOVER_POINTER");
    let dist = f.site("v1", &[("index.html", "1")]).display().to_string();
    let stage = |prefix: &str, version: &str| {
        f.run(&["deploy", "--prefix", prefix], &[("CUTOVER_DIST_DIR", &dist), ("CUTOVER_VERSION", version)])
            .assert_code(0);
    };
    stage("", "1");
    stage("/", "2");
    let keys =
        f.with_site(async |site| site.store.list("").await.unwrap().into_iter().map(|o| o.key).collect::<Vec<_>>());
    assert_eq!(
        keys,
        [
            "2/index.html",
            "_cutover/releases/2.json",
            "_cutover/routes/2.json",
            "site/1/index.html",
            "site/_cutover/releases/1.json",
            "site/_cutover/routes/1.json"
        ]
    );
    f.set("CUTOVER_PREFIX", "/");
    assert_eq!(f.active().as_deref(), Some("2"), "the bucket root has its own pointer");
    f.set("CUTOVER_PREFIX", "");
    assert_eq!(f.active().as_deref(), Some("1"));
}

#[test]
fn status_without_a_store_says_there_is_none_there() {
    let f = Fixture::local();
    let store = f.dir.path().join("store");
    let said = format!("input `store-dir`: there is no store at {}", store.display());
    for command in [&["status"][..], &["prune", "--keep", "1"], &["rollback"], &["promote", "1"]] {
        let run = f.run(command, &[]);
        run.assert_code(2);
        assert!(run.stderr().contains(&said), "{command:?}: {}", run.stderr());
        assert!(!store.exists(), "{command:?} creates nothing");
    }
    let dist = f.site("v1", &[("index.html", "1")]);
    f.deploy(&dist, "1");
    let status = f.run(&["status", "--json"], &[]);
    assert_eq!(status.assert_code(0).json()["active"], "1");
}
