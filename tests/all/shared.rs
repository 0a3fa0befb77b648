//! The shared pool of fingerprinted files (`shared-assets`): an open tab of an earlier release
//! still gets its chunks after a newer release goes live, a name whose content changed is refused,
//! racing stages share one object, and odd names round-trip; on both backends, through `cutover serve`.

use percent_encoding::{NON_ALPHANUMERIC, utf8_percent_encode};

use cutover::release::read_record;
use cutover::rules::{IMMUTABLE, REVALIDATE};

use crate::harness::{Fixture, finish, on_both_backends};

on_both_backends!(
    a_page_of_an_earlier_release_still_gets_its_chunk,
    without_sharing_the_earlier_chunk_is_gone,
    a_fingerprinted_name_with_changed_content_is_refused,
    two_racing_stages_of_one_new_pooled_file_both_succeed,
    a_release_whose_pool_object_is_gone_is_refused_at_promote,
    hostile_names_round_trip_through_the_pool,
);

const CHUNK_1: &str = "assets/lazy-BxK3a9Qz.js";
const CHUNK_2: &str = "assets/lazy-Cq1x_3y-.js";

/// Two builds as a bundler writes them: each page names its own lazily loaded chunk.
fn two_builds(f: &Fixture) -> (std::path::PathBuf, std::path::PathBuf) {
    let v1 = f.site("v1", &[("index.html", "<script src=/assets/lazy-BxK3a9Qz.js>"), (CHUNK_1, "chunk of one")]);
    let v2 = f.site("v2", &[("index.html", "<script src=/assets/lazy-Cq1x_3y-.js>"), (CHUNK_2, "chunk of two")]);
    (v1, v2)
}

fn a_page_of_an_earlier_release_still_gets_its_chunk(mut f: Fixture) {
    let edge = f.start_edge();
    let (v1, v2) = two_builds(&f);
    f.deploy(&v1, "1");
    f.deploy(&v2, "2");
    edge.wait_for_active("2");
    let old = edge.get(&format!("/{CHUNK_1}"), None);
    assert_eq!((old.status, old.body.as_str()), (200, "chunk of one"), "the open tab of release 1 gets its chunk");
    assert_eq!(old.header("cache-control"), Some(IMMUTABLE));
    assert_eq!(old.header("x-cutover-version"), Some("2"));
    assert_eq!(edge.get("/", None).header("cache-control"), Some(REVALIDATE));
    // A pinned response must carry noindex and private, which a 404 from the pool would lose in
    // CloudFront: only a response with nothing beyond its version falls back to the pool.
    let pinned = edge.get(&format!("/{CHUNK_2}"), Some("Build-Number=1; Override=true"));
    assert_eq!((pinned.status, pinned.header("x-cutover-version")), (404, Some("1")));
    assert_eq!(pinned.header("x-robots-tag"), Some("noindex"));
    assert_eq!(edge.get(&format!("/{CHUNK_1}"), Some("Build-Number=1; Override=true")).body, "chunk of one");
    assert_eq!(edge.get("/assets/never-AbCd1234.js", None).status, 404);
    let (pool, in_version, record) = f.with_site(async |site| {
        let pool: Vec<String> =
            site.store.list(&site.layout.shared_dir()).await.unwrap().into_iter().map(|l| l.key).collect();
        let in_version = site.store.list(&site.layout.version_dir("2")).await.unwrap().len();
        let record = read_record(&site, &site.layout.record_key("2")).await.unwrap().unwrap();
        (pool, in_version, record)
    });
    assert_eq!(pool, ["site/_shared/assets/lazy-BxK3a9Qz.js", "site/_shared/assets/lazy-Cq1x_3y-.js"]);
    assert_eq!(in_version, 1, "only index.html lives in the version's directory");
    assert_eq!(record.layout, cutover::release::LAYOUT);
    assert_eq!(record.pooled().collect::<Vec<_>>(), [CHUNK_2]);
    // The same build again as version 3: its chunk is in the pool already and is not sent again.
    f.deploy(&v2, "3");
    assert_eq!(f.outputs()["uploaded"], "1");
}

/// The 404 sharing prevents: with `shared-assets: none` every release holds its own copy.
fn without_sharing_the_earlier_chunk_is_gone(mut f: Fixture) {
    f.set("CUTOVER_SHARED_ASSETS", "none");
    let edge = f.start_edge();
    let (v1, v2) = two_builds(&f);
    f.deploy(&v1, "1");
    f.deploy(&v2, "2");
    edge.wait_for_active("2");
    assert_eq!(edge.get(&format!("/{CHUNK_1}"), None).status, 404);
    assert_eq!(edge.get(&format!("/{CHUNK_2}"), None).header("cache-control"), Some(REVALIDATE));
}

fn a_fingerprinted_name_with_changed_content_is_refused(mut f: Fixture) {
    let edge = f.start_edge();
    let (v1, _) = two_builds(&f);
    f.deploy(&v1, "1");
    edge.wait_for_active("1");
    let changed = f.site("changed", &[("index.html", "<h1>new</h1>"), (CHUNK_1, "other bytes, same name")]);
    let run = f.run(&["deploy"], &[("CUTOVER_DIST_DIR", &changed.display().to_string()), ("CUTOVER_VERSION", "2")]);
    run.assert_code(4);
    for said in [CHUNK_1, "`assets/**/*-<base64url:8>.*`", "rename the file", "narrow `shared-assets`"] {
        assert!(run.stderr().contains(said), "{said}: {}", run.stderr());
    }
    let recorded = f.with_site(async |site| read_record(&site, &site.layout.record_key("2")).await.unwrap());
    assert!(recorded.is_none(), "no record");
    assert_eq!(f.active().as_deref(), Some("1"));
    assert_eq!(edge.get(&format!("/{CHUNK_1}"), None).body, "chunk of one", "the pool still holds release 1's bytes");
}

fn two_racing_stages_of_one_new_pooled_file_both_succeed(f: Fixture) {
    let body = "x".repeat(200_000);
    let dist = f.site("v", &[("index.html", "<h1>race</h1>"), (CHUNK_1, body.as_str())]);
    let dist = dist.display().to_string();
    let stages: Vec<_> = ["1", "2"]
        .map(|version| {
            let extra = [("CUTOVER_DIST_DIR", dist.as_str()), ("CUTOVER_VERSION", version)];
            f.command(&["stage"], &extra)
                .stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::piped())
                .spawn()
                .unwrap()
        })
        .into_iter()
        .collect();
    for stage in stages {
        finish(stage).assert_code(0);
    }
    let pool = f.with_site(async |site| site.store.list(&site.layout.shared_dir()).await.unwrap());
    assert_eq!(pool.len(), 1, "{pool:?}");
    f.run(&["promote", "1"], &[]).assert_code(0);
    f.run(&["promote", "2"], &[]).assert_code(0);
}

fn a_release_whose_pool_object_is_gone_is_refused_at_promote(f: Fixture) {
    let (v1, _) = two_builds(&f);
    let dist = v1.display().to_string();
    f.run(&["stage"], &[("CUTOVER_DIST_DIR", &dist), ("CUTOVER_VERSION", "1")]).assert_code(0);
    f.with_site(async |site| site.store.delete(&[site.layout.shared_key(CHUNK_1)]).await.unwrap());
    let run = f.run(&["promote", "1"], &[]);
    run.assert_code(4);
    assert!(run.stderr().contains(CHUNK_1), "{}", run.stderr());
    assert_eq!(f.active(), None);
    // A re-run of the stage puts the pool object back; then the release goes live.
    f.run(&["stage"], &[("CUTOVER_DIST_DIR", &dist), ("CUTOVER_VERSION", "1")]).assert_code(0);
    f.run(&["promote", "1"], &[]).assert_code(0);
}

fn hostile_names_round_trip_through_the_pool(mut f: Fixture) {
    let edge = f.start_edge();
    let names = [
        "assets/a b-AbCd1234.js",
        "assets/100%-AbCd1234.js",
        "assets/x#y-AbCd1234.js",
        "assets/q?-AbCd1234.js",
        "assets/c+d-AbCd1234.js",
        "assets/'q\"-AbCd1234.js",
        "assets/caf\u{e9}-AbCd1234.js",
        "assets/cafe\u{301}-AbCd1234.js",
        "assets/\u{1f389}-AbCd1234.js",
        "assets/deep/er/x-_-_-_-_-.js",
    ];
    let files: Vec<(&str, String)> = names.iter().map(|n| (*n, format!("body of {n}"))).collect();
    let files: Vec<(&str, &str)> = files.iter().map(|(n, b)| (*n, b.as_str())).chain([("index.html", "1")]).collect();
    f.deploy(&f.site("v1", &files), "1");
    f.deploy(&f.site("v2", &[("index.html", "2")]), "2");
    edge.wait_for_active("2");
    for name in names {
        let encoded: Vec<String> =
            name.split('/').map(|s| utf8_percent_encode(s, NON_ALPHANUMERIC).to_string()).collect();
        let served = edge.get(&format!("/{}", encoded.join("/")), None);
        assert_eq!((served.status, served.body), (200, format!("body of {name}")), "{name}");
    }
    let pooled = f.with_site(async |site| site.store.list(&site.layout.shared_dir()).await.unwrap().len());
    assert_eq!(pooled, names.len());
}
