//! The release flow end to end, run as a CI step runs it, through `cutover serve` as the edge,
//! on the embedded local store and on S3 + SSM (moto).

use std::collections::BTreeMap;
use std::time::Duration;

use bytes::Bytes;
use chrono::Utc;
use cutover::release::{ReleaseRecord, RunInfo, read_record};
use cutover::rules::REVALIDATE;
use cutover::stage::COPY_MIN_BYTES;
use cutover::store::{Condition, json_meta};

use crate::harness::{Fixture, finish, kill, on_both_backends, versions};

on_both_backends!(
    first_deploy_uploads_and_the_next_copies_what_did_not_change,
    smoke_failure_blocks_promotion,
    older_versions_are_refused_unless_rolled_back,
    a_recorded_version_is_never_restaged_with_other_content,
    an_interrupted_stage_resumes_without_resending,
    a_killed_stage_resumes,
    concurrent_deploys_are_serialised_by_the_lock,
    a_stale_lock_is_taken_over_and_said_so,
    prune_keeps_the_live_the_previous_and_the_recent,
    dry_run_writes_nothing,
    large_files_go_in_parts_and_resume_by_their_etag,
    rollbacks_walk_back_through_the_history,
    a_pointer_value_cutover_did_not_write_is_refused,
    prefixes_of_two_sites_never_nest,
    status_marks_what_never_went_live_and_where_rollback_goes,
    a_store_of_every_version_style_lists_prunes_and_deploys,
);

fn first_deploy_uploads_and_the_next_copies_what_did_not_change(mut f: Fixture) {
    let edge = f.start_edge();
    let hero = "h".repeat(usize::try_from(COPY_MIN_BYTES).unwrap());
    let files = [
        ("index.html", "<h1>one</h1>"),
        ("assets/app.3f9a2c1b.js", "console.log(1)"),
        ("about/team.html", "team"),
        (".well-known/security.txt", "Contact: x"),
        ("files/a b+c%d.txt", "odd name"),
        ("media/hero.png", hero.as_str()),
    ];
    let v1 = f.site("v1", &files);
    f.deploy(&v1, "1");
    let out = f.outputs();
    assert_eq!(
        [&out["version"], &out["promoted"], &out["files"], &out["uploaded"], &out["copied"], &out["previous-version"]],
        ["1", "true", "6", "6", "0", ""]
    );
    assert_eq!(out["bytes-uploaded"], files.iter().map(|(_, b)| b.len()).sum::<usize>().to_string());

    let page = edge.wait_for_active("1");
    assert_eq!((page.status, page.body.as_str()), (200, "<h1>one</h1>"));
    assert_eq!(page.header("content-type"), Some("text/html; charset=utf-8"));
    assert_eq!(page.header("cache-control"), Some(REVALIDATE));
    // `name.hash.js` under `assets/` is no bundler's shape there (Vite writes `name-hash.js`), so
    // it is not fingerprinted: revalidated, and kept in the release (`shared-assets`, shared.rs).
    let script = edge.get("/assets/app.3f9a2c1b.js", None);
    assert_eq!(script.header("cache-control"), Some(REVALIDATE));
    assert_eq!(script.header("content-type"), Some("text/javascript; charset=utf-8"));
    assert_eq!(edge.get("/some/client/route", None).body, "<h1>one</h1>", "SPA fallback");
    assert_eq!(edge.get("/.well-known/security.txt", None).body, "Contact: x");
    assert_eq!(edge.get("/files/a%20b%2Bc%25d.txt", None).body, "odd name", "keys round-trip");

    let v2 = f.site("v2", &[("index.html", "<h1>two</h1>")]);
    for (path, body) in &files[1..] {
        f.site("v2", &[(path, body)]);
    }
    f.deploy(&v2, "2");
    let out = f.outputs();
    // Unchanged files below the copy threshold are sent again; the large one is copied.
    assert_eq!([&out["promoted"], &out["uploaded"], &out["copied"], &out["previous-version"]], ["true", "5", "1", "1"]);
    assert_eq!(out["bytes-uploaded"], files[..5].iter().map(|(_, b)| b.len()).sum::<usize>().to_string());
    assert_eq!(edge.get("/media/hero.png", Some("Build-Number=2; Override=true")).body, hero);
    assert_eq!(edge.wait_for_active("2").body, "<h1>two</h1>");
    let pinned = edge.get("/", Some("Build-Number=1; Override=true"));
    assert_eq!((pinned.header("x-cutover-version"), pinned.body.as_str()), (Some("1"), "<h1>one</h1>"));
    let preview = edge.get("/?override_build_number=1", None);
    assert_eq!(preview.body, "<h1>one</h1>");
    assert!(
        preview.headers.iter().any(|(k, v)| k.eq_ignore_ascii_case("set-cookie") && v.starts_with("Build-Number=1"))
    );
    assert!(!edge.get("/", None).headers.iter().any(|(k, _)| k.eq_ignore_ascii_case("set-cookie")));
    let summary = std::fs::read_to_string(f.dir.path().join("step_summary")).expect("step summary");
    assert!(summary.contains("### cutover: 2") && summary.contains("cutover rollback --to 1"), "{summary}");
}

fn smoke_failure_blocks_promotion(mut f: Fixture) {
    let _edge = f.start_edge();
    let v1 = f.site("v1", &[("index.html", "Welcome, one")]);
    f.deploy(&v1, "1");
    f.outputs();
    let v2 = f.site("v2", &[("index.html", "oops")]);
    let run = f.run(
        &["deploy"],
        &[
            ("CUTOVER_DIST_DIR", &v2.display().to_string()),
            ("CUTOVER_VERSION", "2"),
            ("CUTOVER_SMOKE_EXPECT_TEXT", "Welcome"),
            ("CUTOVER_SMOKE_PATHS", "/,/health"),
            ("CUTOVER_SMOKE_TIMEOUT", "1s"),
        ],
    );
    run.assert_code(3);
    assert!(run.stderr().contains("/: body does not contain \"Welcome\""), "{}", run.stderr());
    assert!(run.stderr().contains("/health: body does not contain"), "{}", run.stderr());
    assert!(run.stdout().contains("::error title=cutover failed (exit 3)::"), "{}", run.stdout());
    assert_eq!(f.active().as_deref(), Some("1"));
    assert!(f.outputs().is_empty(), "a failed run publishes no outputs");
}

fn older_versions_are_refused_unless_rolled_back(mut f: Fixture) {
    let edge = f.start_edge();
    for version in ["9", "10"] {
        let dist = f.site(&format!("v{version}"), &[("index.html", version)]);
        f.deploy(&dist, version);
    }
    let v8 = f.site("v8", &[("index.html", "8")]);
    let run = f.run(&["deploy"], &[("CUTOVER_DIST_DIR", &v8.display().to_string()), ("CUTOVER_VERSION", "8")]);
    run.assert_code(4);
    assert!(run.stderr().contains("8 is older than the active 10"), "{}", run.stderr());
    assert_eq!(f.active().as_deref(), Some("10"));
    f.run(&["promote", "8"], &[]).assert_code(4);
    f.run(&["promote", "404"], &[]).assert_code(4);
    assert_eq!(f.active().as_deref(), Some("10"));

    f.run(&["rollback"], &[]).assert_code(0);
    assert_eq!(f.active().as_deref(), Some("9"));
    assert_eq!(edge.wait_for_active("9").body, "9");
    f.run(&["rollback", "--to", "8"], &[]).assert_code(0);
    assert_eq!(f.active().as_deref(), Some("8"));
    f.run(&["promote", "10"], &[]).assert_code(0);
    assert_eq!(f.active().as_deref(), Some("10"));

    let status = f.run(&["status", "--json"], &[]);
    let status = status.assert_code(0).json();
    assert_eq!(status["active"], "10");
    assert_eq!(versions(&status["releases"]), ["8", "9", "10"]);
    assert_eq!(versions(&status["promotions"]), ["9", "10", "9", "8", "10"]);
    let human = f.run(&["status"], &[]);
    assert!(human.stdout().contains("* 10"), "{}", human.stdout());
}

fn a_recorded_version_is_never_restaged_with_other_content(mut f: Fixture) {
    let _edge = f.start_edge();
    let a = f.site("a", &[("index.html", "a")]);
    f.deploy(&a, "1");
    let b = f.site("b", &[("index.html", "b")]);
    let run = f.run(&["stage"], &[("CUTOVER_DIST_DIR", &b.display().to_string()), ("CUTOVER_VERSION", "1")]);
    run.assert_code(4);
    assert!(run.stderr().contains("already released with different content"), "{}", run.stderr());
    let again = f.deploy(&a, "1");
    assert!(again.stderr().contains("already staged with this content"), "{}", again.stderr());
    let out = f.outputs();
    assert_eq!(
        [&out["uploaded"], &out["copied"], &out["files"]],
        ["0", "0", "1"],
        "a recorded release is not sent again"
    );
    let record = f.with_site(async |site| read_record(&site, &site.layout.record_key("1")).await.unwrap().unwrap());
    assert_eq!(record.files["index.html"].md5, hex::encode(<md5::Md5 as md5::Digest>::digest(b"a")));
}

fn an_interrupted_stage_resumes_without_resending(f: Fixture) {
    let files: Vec<(String, String)> = (0..40).map(|i| (format!("page{i}.html"), format!("body {i}"))).collect();
    let borrowed: Vec<(&str, &str)> = files.iter().map(|(p, b)| (p.as_str(), b.as_str())).collect();
    let dist = f.site("v1", &borrowed);
    let dist_arg = dist.display().to_string();
    f.run(&["stage"], &[("CUTOVER_DIST_DIR", &dist_arg), ("CUTOVER_VERSION", "1")]).assert_code(0);
    f.outputs();
    // What a run killed before its last steps leaves: some files stored, no record.
    f.with_site(async |site| {
        let mut lost: Vec<String> = (0..10).map(|i| site.layout.object_key("1", &format!("page{i}.html"))).collect();
        lost.push(site.layout.record_key("1"));
        site.store.delete(&lost).await.unwrap();
    });
    let run = f.run(&["stage"], &[("CUTOVER_DIST_DIR", &dist_arg), ("CUTOVER_VERSION", "1")]);
    run.assert_code(0);
    assert!(run.stderr().contains("resumed: 30 files"), "{}", run.stderr());
    let out = f.outputs();
    assert_eq!([&out["uploaded"], &out["copied"], &out["files"]], ["10", "0", "40"]);
    f.run(&["promote", "1"], &[]).assert_code(0);
}

fn a_killed_stage_resumes(f: Fixture) {
    let files: Vec<(String, String)> = (0..600).map(|i| (format!("d{}/f{i}.txt", i % 7), "x".repeat(i))).collect();
    let borrowed: Vec<(&str, &str)> = files.iter().map(|(p, b)| (p.as_str(), b.as_str())).collect();
    let dist = f.site("v1", &borrowed).display().to_string();
    // The killed run's staging claim lapses after the lease; the re-run then takes it over.
    let env = [
        ("CUTOVER_DIST_DIR", dist.as_str()),
        ("CUTOVER_VERSION", "1"),
        ("CUTOVER_CONCURRENCY", "1"),
        ("CUTOVER_LOCK_LEASE", "3s"),
    ];
    let child = f
        .command(&["stage"], &env)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while f.with_site(async |site| site.store.list(&site.layout.version_dir("1")).await.unwrap().len()) < 5 {
        assert!(std::time::Instant::now() < deadline, "the stage never started storing files");
        std::thread::sleep(Duration::from_millis(5));
    }
    kill(child);
    let stored = f.with_site(async |site| site.store.list(&site.layout.version_dir("1")).await.unwrap().len());
    f.run(&["promote", "1"], &[]).assert_code(4);
    let run = f.run(&["stage"], &env);
    run.assert_code(0);
    let out = f.outputs();
    let uploaded: usize = out["uploaded"].parse().unwrap();
    assert!(uploaded <= 600 - stored, "{uploaded} uploaded, though {stored} of 600 were already stored");
    assert!(stored == 600 || run.stderr().contains("resumed:"), "{}", run.stderr());
    assert!(run.stderr().contains("taking over the stale staging claim on version 1"), "{}", run.stderr());
    f.run(&["promote", "1"], &[]).assert_code(0);
}

fn concurrent_deploys_are_serialised_by_the_lock(mut f: Fixture) {
    let _edge = f.start_edge();
    let base = f.site("v1", &[("index.html", "1")]);
    f.deploy(&base, "1");
    let children: Vec<_> = ["2", "3", "4"]
        .iter()
        .map(|version| {
            let dist = f.site(&format!("v{version}"), &[("index.html", version)]).display().to_string();
            let mut command = f.command(&["deploy"], &[("CUTOVER_DIST_DIR", &dist), ("CUTOVER_VERSION", version)]);
            command.stdout(std::process::Stdio::piped()).stderr(std::process::Stdio::piped());
            (version.to_string(), command.spawn().unwrap())
        })
        .collect();
    let mut promoted = Vec::new();
    for (version, child) in children {
        let run = finish(child);
        let code = run.code();
        assert!(code == 0 || code == 4, "{version}: exit {code}: {}", run.stderr());
        if code == 0 {
            promoted.push(version);
        }
    }
    assert!(!promoted.is_empty(), "one of the racing deploys must win");
    let active = f.active().unwrap();
    assert!(promoted.contains(&active), "{active} is live but did not report promotion ({promoted:?})");
    let lock_left = f.with_site(async |site| site.store.get(&site.layout.lock_key()).await.unwrap());
    assert!(lock_left.is_none(), "no run may leave the lock behind");
}

fn a_stale_lock_is_taken_over_and_said_so(f: Fixture) {
    let dist = f.site("v1", &[("index.html", "1")]);
    f.run(&["stage"], &[("CUTOVER_DIST_DIR", &dist.display().to_string()), ("CUTOVER_VERSION", "1")]).assert_code(0);
    let now = Utc::now();
    let lock = serde_json::json!({
        "owner": "crashed-run", "run_url": null,
        "acquired_at": now, "expires_at": now + chrono::Duration::milliseconds(1500),
    });
    f.with_site(async |site| {
        let body = Bytes::from(lock.to_string());
        site.store.put(&site.layout.lock_key(), body, &json_meta(), Condition::IfAbsent).await.unwrap();
    });
    let run = f.run(&["promote", "1"], &[]);
    run.assert_code(0);
    assert!(run.stderr().contains("waiting for the deploy lock: held by crashed-run"), "{}", run.stderr());
    assert!(run.stderr().contains("taking over the stale deploy lock: held by crashed-run"), "{}", run.stderr());
    assert_eq!(f.active().as_deref(), Some("1"));
}

fn prune_keeps_the_live_the_previous_and_the_recent(mut f: Fixture) {
    let _edge = f.start_edge();
    for version in ["1", "2", "3", "4", "5"] {
        let dist = f.site(&format!("v{version}"), &[("index.html", version), ("a.txt", version)]);
        f.deploy(&dist, version);
    }
    for version in ["1", "2", "4"] {
        f.backdate(version, 2);
    }
    let bare = f.run(&["prune", "--json"], &[]).assert_code(0).json();
    assert_eq!(bare["deleted"], serde_json::json!([]), "without keep no release is pruned");
    let run = f.run(&["prune", "--json"], &[("CUTOVER_KEEP", "0")]);
    let report = run.assert_code(0).json();
    assert_eq!(report["deleted"], serde_json::json!(["2", "1"]));
    assert_eq!(report["kept"], serde_json::json!(["5", "4", "3"]));
    let left = f.with_site(async |site| {
        let mut left = Vec::new();
        for version in ["1", "2", "3", "4", "5"] {
            let files = site.store.list(&site.layout.version_dir(version)).await.unwrap().len();
            let recorded = read_record(&site, &site.layout.record_key(version)).await.unwrap().is_some();
            left.push((files, recorded));
        }
        left
    });
    assert_eq!(left, [(0, false), (0, false), (2, true), (2, true), (2, true)]);
    assert_eq!(f.active().as_deref(), Some("5"));
    if let Some(store) = f.env.get("CUTOVER_STORE_DIR") {
        for pruned in ["objects/site/1", "meta/site/2"] {
            assert!(!std::path::Path::new(store).join(pruned).exists(), "prune left the empty {pruned}");
        }
    }
}

fn large_files_go_in_parts_and_resume_by_their_etag(mut f: Fixture) {
    let edge = f.start_edge();
    let big: String = ('a'..='z').cycle().take(17 * 1024 * 1024 + 321).collect();
    let dist = f.site("v1", &[("index.html", "1"), ("media/big.bin", &big)]);
    let dist_arg = dist.display().to_string();
    f.run(&["stage"], &[("CUTOVER_DIST_DIR", &dist_arg), ("CUTOVER_VERSION", "1")]).assert_code(0);
    f.outputs();
    f.with_site(async |site| site.store.delete(&[site.layout.record_key("1")]).await.unwrap());
    let run = f.run(&["deploy"], &[("CUTOVER_DIST_DIR", &dist_arg), ("CUTOVER_VERSION", "1")]);
    run.assert_code(0);
    assert!(run.stderr().contains("resumed: 2 files"), "{}", run.stderr());
    assert_eq!(f.outputs()["uploaded"], "0");
    edge.wait_for_active("1");
    let served = edge.get("/media/big.bin", None);
    assert_eq!(served.status, 200);
    assert!(served.body == big, "the edge serves the large file whole ({} bytes)", served.body.len());
    f.deploy(&dist, "2");
    let out = f.outputs();
    assert_eq!([&out["copied"], &out["uploaded"]], ["1", "1"]);
    assert!(edge.get("/media/big.bin", Some("Build-Number=2; Override=true")).body == big);
}

/// The store that made `status`, `prune` and `deploy --keep` panic: run numbers 1..60, `v2.N.0` tags
/// and `v1.9.N` hotfix tags, recorded interleaved over days.
fn a_store_of_every_version_style_lists_prunes_and_deploys(f: Fixture) {
    let hour = |h: i64| Utc::now() - chrono::Duration::days(10) + chrono::Duration::hours(h);
    let mut store: Vec<(String, _)> = (1..=60).map(|n| (n.to_string(), hour(2 * n))).collect();
    store.extend((0..10).map(|n| (format!("v2.{n}.0"), hour(12 * n + 1))));
    // Recorded after v2.0.0, so they stand before it, where the 1.9 line stood.
    store.extend((1..=8).map(|n| (format!("v1.9.{n}"), hour(10 * n + 70))));
    f.with_site(async |site| {
        for (version, created_at) in &store {
            let record = ReleaseRecord {
                layout: cutover::release::LAYOUT,
                version: version.clone(),
                created_at: *created_at,
                cutover_version: "test".into(),
                run: RunInfo::default(),
                files: BTreeMap::new(),
            };
            let key = site.layout.record_key(version);
            site.store.put(&key, Bytes::from(record.to_json()), &json_meta(), Condition::IfAbsent).await.unwrap();
        }
        site.pointer.write("v1.9.8", "promoted by the test from nothing").await.unwrap();
        site.pointer.write("60", "promoted by the test from v1.9.8").await.unwrap();
    });
    let no_lock_left = || f.with_site(async |site| site.store.get(&site.layout.lock_key()).await.unwrap()).is_none();

    let status = f.run(&["status", "--json"], &[]).assert_code(0).json();
    let listed = versions(&status["releases"]);
    let hotfixes: Vec<String> = (1..=8).map(|n| format!("v1.9.{n}")).collect();
    assert_eq!(listed[..8], hotfixes);
    assert_eq!(listed[8..12], ["v2.0.0", "1", "2", "3"]);
    assert_eq!(listed[71..], ["v2.9.0", "55", "56", "57", "58", "59", "60"]);

    let newest = ["60", "59", "58", "57", "56", "55", "v2.9.0", "54", "53", "52", "51", "50", "49", "v2.8.0"];
    let newest: Vec<&str> = newest.into_iter().chain(["48", "47", "46", "45", "44", "43"]).collect();
    let planned = f.run(&["prune", "--keep", "20", "--dry-run", "--json"], &[]).assert_code(0).json();
    let kept: Vec<&str> = newest.iter().copied().chain(["v1.9.8"]).collect();
    assert_eq!(planned["kept"], serde_json::json!(kept), "the newest 20 and the previous live version");
    assert_eq!(planned["deleted"].as_array().unwrap().len(), 57);

    let dist = f.site("v61", &[("index.html", "61")]);
    let dist = dist.display().to_string();
    f.run(&["deploy", "--keep", "20"], &[("CUTOVER_DIST_DIR", &dist), ("CUTOVER_VERSION", "61")]).assert_code(0);
    assert_eq!(f.active().as_deref(), Some("61"));
    assert!(no_lock_left(), "deploy left the lock");

    let pruned = f.run(&["prune", "--keep", "20", "--json"], &[]).assert_code(0).json();
    let kept: Vec<&str> = ["61"].into_iter().chain(newest[..19].iter().copied()).collect();
    assert_eq!(pruned["kept"], serde_json::json!(kept));
    assert_eq!(pruned["deleted"], serde_json::json!([]), "deploy --keep 20 pruned already");
    assert!(no_lock_left(), "prune left the lock");
    let status = f.run(&["status", "--json"], &[]).assert_code(0).json();
    let oldest_first: Vec<&str> = kept.into_iter().rev().collect();
    assert_eq!(versions(&status["releases"]), oldest_first);
}

fn dry_run_writes_nothing(f: Fixture) {
    let dist = f.site("v1", &[("index.html", "1")]);
    let run =
        f.run(&["deploy", "--dry-run"], &[("CUTOVER_DIST_DIR", &dist.display().to_string()), ("CUTOVER_VERSION", "1")]);
    run.assert_code(0);
    assert!(run.stdout().contains("::warning::dry run: nothing was written"), "{}", run.stdout());
    let written = f.with_site(async |site| site.store.list("").await.unwrap());
    assert!(written.is_empty(), "{written:?}");
    assert_eq!(f.active(), None);
}

#[test]
fn the_embedded_default_smokes_through_its_own_edge() {
    let f = Fixture::local();
    let dist = f.site("v1", &[("index.html", "<h1>Hello</h1>")]);
    let dist_arg = dist.display().to_string();
    let run = f.run(
        &["deploy"],
        &[("CUTOVER_DIST_DIR", &dist_arg), ("CUTOVER_VERSION", "1"), ("CUTOVER_SMOKE_EXPECT_TEXT", "Hello")],
    );
    run.assert_code(0);
    assert!(run.stderr().contains("smoke-testing through the local edge"), "{}", run.stderr());
    for phase in ["stage", "smoke", "promote"] {
        assert!(run.stderr().contains(&format!("{phase} took ")), "per-phase timing for {phase}: {}", run.stderr());
    }
    assert!(!run.stderr().contains('\x1b') && !run.stdout().contains('\x1b'), "no terminal codes in a CI log");
    let dist = f.site("v2", &[("index.html", "<h1>Bye</h1>")]);
    let run = f.run(
        &["deploy"],
        &[
            ("CUTOVER_DIST_DIR", &dist.display().to_string()),
            ("CUTOVER_VERSION", "2"),
            ("CUTOVER_SMOKE_EXPECT_TEXT", "Hello"),
            ("CUTOVER_SMOKE_TIMEOUT", "1s"),
        ],
    );
    run.assert_code(3);
    assert_eq!(f.active().as_deref(), Some("1"));
}

#[test]
fn on_s3_without_a_site_url_the_smoke_test_is_skipped_with_a_warning() {
    let f = Fixture::moto();
    let dist = f.site("v1", &[("index.html", "1")]);
    let run = f.deploy(&dist, "1");
    assert!(run.stdout().contains("::warning::no site-url given: the smoke test is skipped"), "{}", run.stdout());
    assert_eq!(f.active().as_deref(), Some("1"));
}

fn rollbacks_walk_back_through_the_history(mut f: Fixture) {
    let _edge = f.start_edge();
    for version in ["1", "2", "3"] {
        f.deploy(&f.site(&format!("v{version}"), &[("index.html", version)]), version);
    }
    f.outputs();
    let first = f.run(&["rollback"], &[]);
    first.assert_code(0);
    assert!(first.stderr().contains("rolled back from 3 to 2"), "{}", first.stderr());
    let second = f.run(&["rollback"], &[]);
    second.assert_code(0);
    assert!(second.stderr().contains("rolled back from 2 to 1"), "{}", second.stderr());
    assert_eq!(f.active().as_deref(), Some("1"));
    let out = f.outputs();
    assert_eq!([&out["version"], &out["previous-version"]], ["1", "2"]);
    let none_left = f.run(&["rollback"], &[]);
    none_left.assert_code(4);
    assert!(none_left.stderr().contains("no earlier version"), "{}", none_left.stderr());
    f.run(&["promote", "3"], &[]).assert_code(0);
    let again = f.run(&["promote", "3"], &[]);
    again.assert_code(0);
    assert!(again.stderr().contains("3 is already live"), "{}", again.stderr());
    assert_eq!(f.active().as_deref(), Some("3"));
}

fn a_pointer_value_cutover_did_not_write_is_refused(mut f: Fixture) {
    let _edge = f.start_edge();
    let foreign = "hello world; <b>not a version</b>";
    f.with_site(async |site| site.pointer.write(foreign, "set by hand").await.unwrap());
    let dist = f.site("v1", &[("index.html", "1")]);
    let run = f.run(&["deploy"], &[("CUTOVER_DIST_DIR", &dist.display().to_string()), ("CUTOVER_VERSION", "1")]);
    run.assert_code(4);
    assert!(run.stderr().contains("which is not a release of this site"), "{}", run.stderr());
    assert!(run.stderr().contains("take-over-pointer"), "{}", run.stderr());
    assert_eq!(f.active().as_deref(), Some(foreign), "the pointer is left alone");
    let staged = f.with_site(async |site| site.store.list(&site.layout.version_dir("1")).await.unwrap().len());
    assert_eq!(staged, 0, "nothing is staged before the refusal");
    let status = f.run(&["status"], &[]);
    assert!(status.stdout().contains("which is not a release of this site: promote refuses"), "{}", status.stdout());
    let taken = f.run(
        &["deploy"],
        &[
            ("CUTOVER_DIST_DIR", &dist.display().to_string()),
            ("CUTOVER_VERSION", "1"),
            ("CUTOVER_TAKE_OVER_POINTER", "true"),
        ],
    );
    taken.assert_code(0);
    assert!(taken.stderr().contains("taking over"), "{}", taken.stderr());
    assert_eq!(f.active().as_deref(), Some("1"));
    // The value the flip replaced is reported, not "nothing": in the output, the log and the history.
    assert_eq!(f.outputs()["previous-version"], foreign);
    let log = format!("{}{}", taken.stdout(), taken.stderr());
    assert!(log.contains(&format!("live (was {foreign})")), "{log}");
    // `promote` with `take-over-pointer` likewise.
    f.with_site(async |site| site.pointer.write("set-by-hand", "set by hand").await.unwrap());
    let promoted = f.run(&["promote", "1"], &[("CUTOVER_TAKE_OVER_POINTER", "true")]);
    promoted.assert_code(0);
    assert_eq!(f.outputs()["previous-version"], "set-by-hand");
    let log = format!("{}{}", promoted.stdout(), promoted.stderr());
    assert!(log.contains("live (was set-by-hand)") && !log.contains("was nothing"), "{log}");
    let history = f.with_site(async |site| site.pointer.history().await.unwrap());
    assert!(history.last().unwrap().note.ends_with("from set-by-hand"), "{history:?}");
    // A plain rollback would go back to the value taken over: it is named, with the way out.
    let back = f.run(&["rollback"], &[]);
    back.assert_code(4);
    assert!(back.stderr().contains("\"set-by-hand\", is not a recorded release"), "{}", back.stderr());
    assert!(back.stderr().contains("rollback --to <version>") && !back.stderr().contains("stage it first"));
    assert_eq!(f.active().as_deref(), Some("1"));
}

fn prefixes_of_two_sites_never_nest(f: Fixture) {
    let dist = f.site("v", &[("index.html", "x")]).display().to_string();
    // Each site keeps its own pointer (on the local store the pointer follows the prefix).
    let on_moto = f.env.contains_key("CUTOVER_POINTER");
    let deploy = |prefix: &str, version: &str| {
        let pointer = format!("ssm:/cutover/test/{prefix}");
        let mut env = vec![
            ("CUTOVER_PREFIX", prefix),
            ("CUTOVER_DIST_DIR", dist.as_str()),
            ("CUTOVER_VERSION", version),
            ("CUTOVER_SMOKE_TIMEOUT", "1s"),
        ];
        if on_moto {
            env.push(("CUTOVER_POINTER", &pointer));
        }
        f.run(&["deploy"], &env)
    };
    let stored = |prefix: &str| {
        f.with_site(async |site| {
            site.store.list(&format!("{prefix}/")).await.unwrap().into_iter().map(|o| o.key).collect::<Vec<_>>()
        })
    };
    // A site inside one that holds releases.
    deploy("outer", "1").assert_code(0);
    let nested = deploy("outer/2", "1");
    nested.assert_code(2);
    assert!(
        nested.stderr().contains("input `prefix`: \"outer/2\" lies inside the site at \"outer\""),
        "{}",
        nested.stderr()
    );
    assert!(stored("outer/2").is_empty(), "nothing is written for the nested site");
    // A release written into a site that lives where its version's directory would be.
    deploy("inner/2", "1").assert_code(0);
    let around = deploy("inner", "2");
    around.assert_code(2);
    assert!(around.stderr().contains("would be written into the site at \"inner/2\""), "{}", around.stderr());
    // A store where both exist anyway (written before this check): prune deletes only what its
    // records list, so the site inside is untouched.
    for version in ["2", "3", "4"] {
        deploy("outer", version).assert_code(0);
    }
    f.with_site(async |site| {
        let inner = [("outer/2/7/index.html", "inner site"), ("outer/2/_cutover/releases/7.json", "{}")];
        for (key, body) in inner {
            site.store.put(key, Bytes::from(body), &json_meta(), Condition::Always).await.unwrap();
        }
        let outer = cutover::release::Layout::new("outer");
        for version in ["1", "2"] {
            let key = outer.record_key(version);
            let mut record: ReleaseRecord = read_record(&site, &key).await.unwrap().unwrap();
            record.created_at -= chrono::Duration::hours(2);
            site.store.put(&key, Bytes::from(record.to_json()), &json_meta(), Condition::Always).await.unwrap();
        }
    });
    let mut env = vec![("CUTOVER_PREFIX", "outer"), ("CUTOVER_KEEP", "0")];
    if on_moto {
        env.push(("CUTOVER_POINTER", "ssm:/cutover/test/outer"));
    }
    let pruned = f.run(&["prune", "--json"], &env);
    assert_eq!(pruned.assert_code(0).json()["deleted"], serde_json::json!(["2", "1"]));
    assert_eq!(stored("outer/2"), ["outer/2/7/index.html", "outer/2/_cutover/releases/7.json"]);
}

fn status_marks_what_never_went_live_and_where_rollback_goes(mut f: Fixture) {
    let _edge = f.start_edge();
    for version in ["1", "2"] {
        f.deploy(&f.site(&format!("v{version}"), &[("index.html", "Welcome")]), version);
    }
    let broken = f.site("v3", &[("index.html", "oops")]).display().to_string();
    let env = [
        ("CUTOVER_DIST_DIR", broken.as_str()),
        ("CUTOVER_VERSION", "3"),
        ("CUTOVER_SMOKE_EXPECT_TEXT", "Welcome"),
        ("CUTOVER_SMOKE_TIMEOUT", "1s"),
    ];
    f.run(&["deploy"], &env).assert_code(3);
    let old = f.site("v0", &[("index.html", "Welcome")]).display().to_string();
    f.run(&["deploy"], &[("CUTOVER_DIST_DIR", old.as_str()), ("CUTOVER_VERSION", "0")]).assert_code(4);
    let status = f.run(&["status", "--json"], &[]).assert_code(0).json();
    let release = |version: &str| {
        status["releases"].as_array().unwrap().iter().find(|r| r["version"] == version).unwrap().clone()
    };
    assert_eq!(release("3")["verdict"]["outcome"], "smoke failed");
    assert_eq!(release("0")["verdict"]["outcome"], "refused");
    assert!(release("0")["verdict"]["reason"].as_str().unwrap().contains("older than the active 2"));
    assert_eq!([&release("1")["rollback_target"], &release("2")["active"]], [true, true]);
    assert!(release("2")["verdict"].is_null() && release("1")["verdict"].is_null());
    let human = f.run(&["status"], &[]).assert_code(0).stdout();
    assert!(human.lines().any(|l| l.starts_with("< 1 ")), "{human}");
    assert!(human.lines().any(|l| l.starts_with("  3 ") && l.ends_with("[smoke failed, never live]")), "{human}");
    // Once it goes live, a release is no longer marked.
    f.run(&["rollback"], &[("CUTOVER_TO", "0")]).assert_code(0);
    let status = f.run(&["status", "--json"], &[]).assert_code(0).json();
    let zero = status["releases"].as_array().unwrap().iter().find(|r| r["version"] == "0").unwrap().clone();
    assert!(zero["verdict"].is_null(), "{zero}");
}
