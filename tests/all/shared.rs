//! The shared pool of fingerprinted files (`shared-assets`): an open tab of an earlier release
//! still gets its chunks after a newer release goes live, a name whose content changed is refused,
//! racing stages share one object, odd names round-trip, prune keeps what the skew window needs
//! and sweeps what no kept release uses, and a killed stage leaves the pool whole; on both
//! backends, through `cutover serve`.

use percent_encoding::{NON_ALPHANUMERIC, utf8_percent_encode};

use cutover::release::read_record;
use cutover::rules::{IMMUTABLE, REVALIDATE};

use std::process::Stdio;
use std::time::{Duration, Instant};

use crate::harness::{Fixture, finish, http_send, kill, on_both_backends};

on_both_backends!(
    a_page_of_an_earlier_release_still_gets_its_chunk,
    without_sharing_the_earlier_chunk_is_gone,
    a_fingerprinted_name_with_changed_content_is_refused,
    a_name_that_only_looks_hashed_is_revalidated_and_may_change,
    two_racing_stages_of_one_new_pooled_file_both_succeed,
    a_release_whose_pool_object_is_gone_is_refused_at_promote,
    hostile_names_round_trip_through_the_pool,
    a_stage_killed_mid_upload_then_run_again_leaves_the_pool_whole,
    a_framework_pin_gets_a_page_its_own_data_never_an_old_page,
    a_pool_miss_for_a_path_no_index_lists_is_a_plain_404_that_drops_no_index,
);

/// Prune on the local store, whose pool files are aged by hand, and on moto whose S3 clock runs
/// two hours behind.
mod prune_keeps_the_skew_window_and_sweeps_what_no_kept_release_uses {
    use crate::harness::Fixture;

    #[test]
    fn local() {
        super::prune_keeps_the_skew_window_and_sweeps_what_no_kept_release_uses(Fixture::local(), super::age_pool);
    }

    #[test]
    fn moto() {
        super::prune_keeps_the_skew_window_and_sweeps_what_no_kept_release_uses(Fixture::moto_aged(), |_| {});
    }
}

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
    // Pages and a new chunk besides: the pool listing decides the refusal before any of them is
    // written (they were, and stayed forever under a version number no record names).
    let pages: Vec<(String, &str)> = (0..10).map(|i| (format!("page{i}.html"), "page")).collect();
    let files: Vec<(&str, &str)> = pages
        .iter()
        .map(|(p, b)| (p.as_str(), *b))
        .chain([("index.html", "<h1>new</h1>"), (CHUNK_1, "other bytes, same name"), (CHUNK_2, "new chunk")])
        .collect();
    let changed = f.site("changed", &files);
    let run = f.run(&["deploy"], &[("CUTOVER_DIST_DIR", &changed.display().to_string()), ("CUTOVER_VERSION", "2")]);
    run.assert_code(4);
    for said in [CHUNK_1, "`assets/**/*-<base64url:8>.*`", "rename the file", "narrow `shared-assets`"] {
        assert!(run.stderr().contains(said), "{said}: {}", run.stderr());
    }
    let (recorded, in_version) = f.with_site(async |site| {
        let recorded = read_record(&site, &site.layout.record_key("2")).await.unwrap();
        (recorded, site.store.list(&site.layout.version_dir("2")).await.unwrap())
    });
    assert!(recorded.is_none(), "no record");
    assert!(in_version.is_empty(), "nothing written under the version: {in_version:?}");
    assert_eq!(pool(&f), [CHUNK_1], "no new pool object");
    assert_eq!(f.active().as_deref(), Some("1"));
    assert_eq!(edge.get(&format!("/{CHUNK_1}"), None).body, "chunk of one", "the pool still holds release 1's bytes");
}

/// Words and dates in a bundler's folder are not hashes: such a file stays in its release, is
/// revalidated, and a new build may change it (once it was pooled, cached `immutable` for a year,
/// and its changed content refused, or, after prune swept its pool object, served stale).
fn a_name_that_only_looks_hashed_is_revalidated_and_may_change(mut f: Fixture) {
    let edge = f.start_edge();
    let names = [
        "assets/team-portrait.jpg",
        "assets/icon-facebook.svg",
        "assets/company-overview.pdf",
        "assets/invoice-20241231.pdf",
        "static/media/report.20241231.pdf",
    ];
    for (version, body) in [("1", "old"), ("2", "new")] {
        let files: Vec<(&str, &str)> = names.iter().map(|n| (*n, body)).chain([("index.html", version)]).collect();
        f.deploy(&f.site(&format!("v{version}"), &files), version);
    }
    edge.wait_for_active("2");
    for name in names {
        let served = edge.get(&format!("/{name}"), None);
        assert_eq!((served.status, served.body.as_str()), (200, "new"), "{name}");
        assert_eq!(served.header("cache-control"), Some(REVALIDATE), "{name}");
    }
    assert!(pool(&f).is_empty(), "nothing pooled: {:?}", pool(&f));
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
    // A re-run of the stage puts the pool object back, and says so (it said nothing was sent);
    // then the release goes live.
    let env = [("CUTOVER_DIST_DIR", dist.as_str()), ("CUTOVER_VERSION", "1")];
    let dry = f.run(&["stage", "--json", "--dry-run"], &env).assert_code(0).json();
    assert_eq!(dry["uploaded"], 1);
    let repaired = f.run(&["stage", "--json"], &env);
    let json = repaired.assert_code(0).json();
    assert_eq!((&json["uploaded"], &json["bytes-uploaded"]), (&serde_json::json!(1), &serde_json::json!(12)));
    let said = "1 of its fingerprinted files were missing from the shared pool and were put back";
    assert!(repaired.stderr().contains(said), "{}", repaired.stderr());
    assert!(repaired.stderr().contains("1 uploaded, 0 copied, 12 B sent"), "{}", repaired.stderr());
    assert_eq!(f.run(&["stage", "--json"], &env).assert_code(0).json()["uploaded"], 0, "nothing missing any more");
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
        "assets/deep/er/x-_-_-_-Z-.js",
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

/// Makes every file in the local store's pool two hours old.
pub(crate) fn age_pool(f: &Fixture) {
    let pool = f.dir.path().join("store/objects/site/_shared");
    let then = std::time::SystemTime::now() - std::time::Duration::from_secs(2 * 3600);
    let mut dirs = vec![pool];
    while let Some(dir) = dirs.pop() {
        for entry in std::fs::read_dir(&dir).unwrap().map(Result::unwrap) {
            if entry.file_type().unwrap().is_dir() {
                dirs.push(entry.path());
            } else {
                std::fs::File::options().write(true).open(entry.path()).unwrap().set_modified(then).unwrap();
            }
        }
    }
}

/// The paths in the site's pool.
pub(crate) fn pool(f: &Fixture) -> Vec<String> {
    f.with_site(async |site| {
        let shared = site.layout.shared_dir();
        let listed = site.store.list(&shared).await.unwrap();
        listed.into_iter().map(|l| l.key[shared.len()..].to_owned()).collect()
    })
}

const COMMON: &str = "assets/vendor-Zz9_Yy8-.js";

fn prune_keeps_the_skew_window_and_sweeps_what_no_kept_release_uses(f: Fixture, age_pool: fn(&Fixture)) {
    let chunks = ["assets/one-AAAAaaaa.js", "assets/two-BBBBbbbb.js", "assets/six-CCCCcccc.js"];
    for (n, chunk) in chunks.iter().enumerate() {
        let version = (n + 1).to_string();
        f.deploy(&f.site(&version, &[("index.html", &version), (chunk, chunk), (COMMON, "vendor")]), &version);
        f.backdate(&version, 2);
    }
    let window = [("CUTOVER_KEEP", "1"), ("CUTOVER_SKEW_WINDOW", "1h")];
    // Every release was live a moment ago: the window keeps them all, and says so.
    let status = f.run(&["status", "--json"], &window).assert_code(0).json();
    let kept: Vec<&serde_json::Value> = status["releases"].as_array().unwrap().iter().map(|r| &r["kept"]).collect();
    let expected = [
        serde_json::json!(["skew-window"]),
        serde_json::json!(["previous", "skew-window"]),
        serde_json::json!(["live", "skew-window", "keep"]),
    ];
    assert_eq!(kept, expected.iter().collect::<Vec<_>>());
    let text = f.run(&["status"], &window).assert_code(0).stdout();
    assert!(text.contains("kept: live, skew window, keep"), "{text}");
    let report = f.run(&["prune", "--json"], &window).assert_code(0).json();
    assert_eq!(report["deleted"], serde_json::json!([]));
    assert_eq!(report["kept"], serde_json::json!(["3", "2", "1"]));
    // Past the window, release 1 goes, and with it the one pool object only it used.
    age_pool(&f);
    let past = [("CUTOVER_KEEP", "1"), ("CUTOVER_SKEW_WINDOW", "0s")];
    let planned = f.run(&["prune", "--json", "--dry-run"], &past).assert_code(0).json();
    assert_eq!(planned["pool_deleted"], serde_json::json!([chunks[0]]));
    assert_eq!(pool(&f).len(), 4, "a dry run deletes nothing");
    let report = f.run(&["prune", "--json"], &past).assert_code(0).json();
    assert_eq!(report["deleted"], serde_json::json!(["1"]));
    assert_eq!(report["kept"], serde_json::json!(["3", "2"]));
    assert_eq!(report["pool_deleted"], serde_json::json!([chunks[0]]));
    assert_eq!(pool(&f), [chunks[2], chunks[1], COMMON], "sorted by name");
    f.assert_releases_intact();
    f.run(&["rollback"], &[]).assert_code(0);
    assert_eq!(f.active().as_deref(), Some("2"), "release 2 still has every file");
}

/// A stage in flight writes pool objects before its record: prune spares those an hour.
#[test]
fn a_pool_object_written_in_the_last_hour_is_spared() {
    let f = Fixture::local();
    f.deploy(&f.site("v1", &[("index.html", "1")]), "1");
    let dist = f.site("v2", &[("index.html", "2"), (CHUNK_1, "in flight")]).display().to_string();
    f.run(&["stage"], &[("CUTOVER_DIST_DIR", &dist), ("CUTOVER_VERSION", "2")]).assert_code(0);
    // As a stage leaves the pool before its record is written.
    f.with_site(async |site| site.store.delete(&[site.layout.record_key("2")]).await.unwrap());
    let keep = [("CUTOVER_KEEP", "1")];
    assert_eq!(f.run(&["prune", "--json"], &keep).assert_code(0).json()["pool_deleted"], serde_json::json!([]));
    assert_eq!(pool(&f), [CHUNK_1]);
    age_pool(&f);
    let report = f.run(&["prune", "--json"], &keep).assert_code(0).json();
    assert_eq!(report["pool_deleted"], serde_json::json!([CHUNK_1]));
    assert!(pool(&f).is_empty());
}

fn a_stage_killed_mid_upload_then_run_again_leaves_the_pool_whole(mut f: Fixture) {
    // A killed run keeps its staging claim: the re-run takes it over once its lease lapses.
    f.set("CUTOVER_LOCK_LEASE", "2s");
    let big = "k".repeat(12 << 20);
    let mut files: Vec<(String, String)> =
        (0..40).map(|i| (format!("assets/part{i}-Pt{i:0>6}.js"), format!("chunk {i}"))).collect();
    files.extend((0..3).map(|i| (format!("assets/big{i}-BIGbig{i}_.bin"), format!("{i}{big}"))));
    let listed: Vec<(&str, &str)> =
        files.iter().map(|(p, b)| (p.as_str(), b.as_str())).chain([("index.html", "killed")]).collect();
    let dist = f.site("v", &listed).display().to_string();
    let env = [("CUTOVER_DIST_DIR", dist.as_str()), ("CUTOVER_VERSION", "1")];
    let mut child = f.command(&["stage"], &env).stdout(Stdio::null()).stderr(Stdio::null()).spawn().unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    while pool(&f).is_empty() {
        assert!(child.try_wait().unwrap().is_none(), "the stage ended before the pool was written");
        assert!(Instant::now() < deadline, "nothing reached the pool");
        std::thread::sleep(Duration::from_millis(2));
    }
    kill(child);
    let partial = pool(&f).len();
    assert!(partial < files.len(), "the stage was killed after writing the whole pool");
    f.run(&["stage"], &env).assert_code(0);
    let mut expected: Vec<&str> = files.iter().map(|(p, _)| p.as_str()).collect();
    expected.sort_unstable();
    assert_eq!(pool(&f), expected, "the re-run wrote what the killed run had not");
    f.assert_recorded_files_intact();
    f.run(&["promote", "1"], &[]).assert_code(0);
}

/// A Next.js page of release 1 (`deploymentId` set to cutover's version) fetches its unhashed data
/// after release 2 went live: its own, by `dpl` or `x-deployment-id`; a page never, and an
/// unknown or malformed pin gets the live release's.
fn a_framework_pin_gets_a_page_its_own_data_never_an_old_page(mut f: Fixture) {
    let edge = f.start_edge();
    for version in ["1", "2"] {
        let files = [("index.html", format!("page {version}")), ("data/feed.json", format!("feed {version}"))];
        let files: Vec<(&str, &str)> = files.iter().map(|(p, b)| (*p, b.as_str())).collect();
        f.deploy(&f.site(&format!("v{version}"), &files), version);
    }
    edge.wait_for_active("2");
    let get = |target: &str, headers: &[(&str, &str)]| {
        let r = http_send(&edge.url, "GET", target, headers, "").unwrap();
        (r.status, r.body.clone(), r.header("x-cutover-version").map(str::to_owned))
    };
    let one = (200, "feed 1".to_owned(), Some("1".to_owned()));
    let live = (200, "feed 2".to_owned(), Some("2".to_owned()));
    assert_eq!(get("/data/feed.json?dpl=1", &[]), one);
    assert_eq!(get("/data/feed.json", &[("x-deployment-id", "1"), ("sec-fetch-dest", "empty")]), one);
    assert_eq!(get("/data/feed.json?dpl=7", &[]), live, "an unknown version");
    assert_eq!(get("/data/feed.json?dpl=..%2F1", &[]), live, "a malformed one");
    assert_eq!(get("/data/feed.json?dpl=1", &[("sec-fetch-dest", "document")]), live, "a navigation");
    assert_eq!(get("/?dpl=1", &[]).1, "page 2", "a page");
}

/// `cutover serve` has no per-second cap (README, "What a named version may cost"): a request
/// whose pin names a version never seen costs at most two reads of small objects (its index, else
/// its record) besides the file, however many such values arrive. On moto, where reads are counted.
#[test]
fn a_never_seen_pin_costs_serve_at_most_two_reads_per_request() {
    let mut f = Fixture::moto();
    let files = [("index.html", "page 1"), ("data/feed.json", "feed 1")];
    f.deploy(&f.site("v1", &files), "1");
    let gets = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let proxy = {
        let gets = gets.clone();
        crate::proxy::Proxy::start(&f.moto_server().endpoint, move |request| {
            if request.method == "GET" {
                gets.lock().unwrap().push(request.target.clone());
            }
            None
        })
    };
    f.set("AWS_ENDPOINT_URL", &proxy.url);
    let edge = f.start_edge();
    edge.wait_for_active("1");
    gets.lock().unwrap().clear();
    const REQUESTS: usize = 100;
    for n in 0..REQUESTS {
        let (target, header) = (format!("/data/feed.json?dpl=d{n}"), format!("h{n}"));
        let response = if n % 2 == 0 {
            http_send(&edge.url, "GET", &target, &[], "")
        } else {
            http_send(&edge.url, "GET", "/data/feed.json", &[("x-deployment-id", header.as_str())], "")
        };
        let response = response.unwrap();
        assert_eq!((response.status, response.body.as_str()), (200, "feed 1"), "an unknown pin gets the live release");
    }
    let gets = gets.lock().unwrap();
    let lookups = gets.iter().filter(|target| target.contains("/_cutover/")).count();
    assert!(lookups > 0, "the edge reads through the proxy");
    assert!(lookups <= 2 * REQUESTS, "{lookups} index or record reads for {REQUESTS} requests");
    assert!(gets.len() <= 3 * REQUESTS, "{} S3 GETs for {REQUESTS} requests", gets.len());
}

/// A page asking for a chunk no release has (`/assets/r<i>-AAAAAAAA.js`) gets the pool's miss: a
/// plain `not found` that no cache keeps, as the router's origin-response answers it, and the
/// release's index is kept (only a missing file it lists says the release was pruned), pinned or not.
fn a_pool_miss_for_a_path_no_index_lists_is_a_plain_404_that_drops_no_index(mut f: Fixture) {
    let edge = f.start_edge();
    let (v1, v2) = two_builds(&f);
    f.deploy(&v1, "1");
    f.deploy(&v2, "2");
    edge.wait_for_active("2");
    for i in 0..40 {
        let target = format!("/assets/r{i}-AAAAAAAA.js{}", if i % 2 == 0 { "?dpl=1" } else { "" });
        let r = http_send(&edge.url, "GET", &target, &[], "").unwrap();
        assert_eq!((r.status, r.body.as_str()), (404, "not found\n"), "{target}");
        assert_eq!(r.header("cache-control"), Some("no-store"), "{target}");
        assert_eq!(r.header("x-cutover-version"), Some("2"), "{target}");
    }
    let log = std::fs::read_to_string(&edge.log).unwrap();
    assert!(!log.contains("reading its routing index again"), "a pool miss dropped an index:\n{log}");
    let pinned = edge.get(&format!("/{CHUNK_1}"), Some("Build-Number=1; Override=true"));
    assert_eq!((pinned.status, pinned.body.as_str()), (200, "chunk of one"));
}
