//! A bad day changes nothing that is live: faults between cutover and AWS, runs killed at seeded
//! points, and racing pipelines. Every run here goes through the fault proxy to moto.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use bytes::Bytes;
use chrono::Utc;
use cutover::site::hash_file;
use cutover::store::{Condition, json_meta};
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};

use crate::harness::{self, Fixture};
use crate::proxy::{Fault, Proxy};

/// A site of `count` small pages, and one file large enough to go multipart when `large`.
fn site(f: &Fixture, name: &str, count: usize, large: bool) -> PathBuf {
    let files: Vec<(String, String)> =
        (0..count).map(|i| (format!("pages/p{i}.html"), format!("<p>{name} page {i}</p>"))).collect();
    let mut borrowed: Vec<(&str, &str)> = files.iter().map(|(p, b)| (p.as_str(), b.as_str())).collect();
    let big = if large { "z".repeat(17 * 1024 * 1024) } else { String::new() };
    if large {
        borrowed.push(("media/big.bin", &big));
    }
    borrowed.push(("index.html", name));
    f.site(name, &borrowed)
}

/// Every file of `dist` is stored under `version` with the same bytes (by MD5 or multipart ETag).
fn assert_release_matches(f: &Fixture, dist: &Path, version: &str) {
    let (dir, stored) = f.with_site(async |site| {
        let dir = site.layout.version_dir(version);
        let stored = site.store.list(&dir).await.unwrap();
        (dir, stored)
    });
    let files = cutover::site::walk(dist, &Default::default()).unwrap().files;
    assert_eq!(stored.len(), files.len(), "every file of {version} is stored");
    for file in files {
        let key = format!("{dir}{}", file.path);
        let object = stored.iter().find(|o| o.key == key).unwrap_or_else(|| panic!("{key} is missing"));
        let digest = hash_file(&dist.join(&file.path), file.size).unwrap();
        assert!(digest.matches_etag(&object.etag), "{key}: stored {} is not the file's bytes", object.etag);
    }
}

fn deploy_through(
    f: &Fixture,
    proxy: &Proxy,
    dist: &Path,
    version: &str,
    extra: &[(&str, &str)],
) -> crate::harness::Run {
    let dist = dist.display().to_string();
    let mut env = vec![
        ("AWS_ENDPOINT_URL", proxy.url.as_str()),
        ("CUTOVER_DIST_DIR", dist.as_str()),
        ("CUTOVER_VERSION", version),
    ];
    env.extend_from_slice(extra);
    f.run(&["deploy"], &env)
}

#[test]
fn a_deploy_rides_out_a_fifth_of_requests_faulted() {
    let f = Fixture::moto();
    let rng = Mutex::new(StdRng::seed_from_u64(20));
    let proxy = Proxy::start(&f.moto_server().endpoint, move |request| {
        let mut rng = rng.lock().unwrap();
        if !rng.random_bool(0.2) {
            return None;
        }
        if request.ssm_action().is_some() {
            return Some(Fault::Throttle);
        }
        Some(
            [Fault::SlowDown, Fault::InternalError, Fault::Reset, Fault::Stall(Duration::from_millis(1500))]
                [rng.random_range(0..4)],
        )
    });
    let dist = site(&f, "v1", 60, true);
    let run = deploy_through(&f, &proxy, &dist, "1", &[]);
    run.assert_code(0);
    let faults = proxy.faults();
    assert!(faults.len() >= 5, "a fifth of {} requests should be faulted, got {faults:?}", proxy.requests());
    for kind in [Fault::SlowDown, Fault::InternalError, Fault::Reset] {
        assert!(faults.iter().any(|(_, f)| *f == kind), "{kind:?} was injected: {faults:?}");
    }
    assert_release_matches(&f, &dist, "1");
    let history = f.with_site(async |site| site.pointer.history().await.unwrap());
    assert_eq!(history.iter().map(|p| p.version.as_str()).collect::<Vec<_>>(), ["1"], "promoted exactly once");
}

#[test]
fn ssm_throttling_is_retried() {
    let f = Fixture::moto();
    let ssm_requests = std::sync::atomic::AtomicUsize::new(0);
    let proxy = Proxy::start(&f.moto_server().endpoint, move |request| {
        request.ssm_action()?;
        // The first attempt of every SSM call is throttled; its retry goes through.
        let nth = ssm_requests.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        nth.is_multiple_of(2).then_some(Fault::Throttle)
    });
    let dist = site(&f, "v1", 3, false);
    deploy_through(&f, &proxy, &dist, "1", &[]).assert_code(0);
    assert!(proxy.faults().iter().filter(|(_, f)| *f == Fault::Throttle).count() >= 2, "{:?}", proxy.faults());
    assert_eq!(f.active().as_deref(), Some("1"));
}

#[test]
fn a_pointer_write_that_always_fails_changes_nothing_live() {
    let f = Fixture::moto();
    let v1 = site(&f, "v1", 3, false);
    f.deploy(&v1, "1");
    let proxy = Proxy::start(&f.moto_server().endpoint, |request| {
        (request.ssm_action() == Some("PutParameter")).then_some(Fault::InternalError)
    });
    let v2 = site(&f, "v2", 3, false);
    let run = deploy_through(&f, &proxy, &v2, "2", &[]);
    run.assert_code(1);
    assert!(run.stderr().contains("flipping SSM parameter"), "{}", run.stderr());
    assert!(proxy.faults().len() >= 3, "the write was retried: {:?}", proxy.faults());
    assert_eq!(f.active().as_deref(), Some("1"));
    let lock = f.with_site(async |site| site.store.get(&site.layout.lock_key()).await.unwrap());
    assert!(lock.is_none(), "a failed promotion releases the lock");
}

/// Kills `cutover deploy` while one request is held, at ten seeded points across stage and
/// promote; after each kill the live version is the old one or the new one whole, and a re-run
/// finishes the job without sending again what is already stored.
#[test]
fn killed_at_seeded_points_the_live_site_is_old_or_new_whole() {
    let mut f = Fixture::moto();
    // A deploy of this site makes about 26 requests: reads, 13 uploads, the record, then the lock,
    // the guards' reads, the pointer write and the lock's release.
    let mut points: Vec<usize> = (1..=24).collect();
    points.shuffle(&mut StdRng::seed_from_u64(11));
    points.truncate(10);
    points.sort_unstable();
    let mut promoted_before_kill = 0;
    for point in points {
        let prefix = format!("kill{point}");
        f.set("CUTOVER_PREFIX", &prefix).set("CUTOVER_POINTER", &format!("ssm:/cutover/kill/{point}"));
        let v1 = site(&f, &format!("{prefix}-v1"), 12, false);
        f.deploy(&v1, "1");
        f.outputs();
        let v2 = site(&f, &format!("{prefix}-v2"), 12, false);
        let proxy =
            Proxy::start(&f.moto_server().endpoint, move |request| (request.number == point).then_some(Fault::Hold));
        let dist = v2.display().to_string();
        let env = [
            ("AWS_ENDPOINT_URL", proxy.url.as_str()),
            ("CUTOVER_DIST_DIR", dist.as_str()),
            ("CUTOVER_VERSION", "2"),
            ("CUTOVER_CONCURRENCY", "1"),
            ("CUTOVER_LOCK_LEASE", "3s"),
        ];
        let child = f.command(&["deploy"], &env).stdout(Stdio::null()).stderr(Stdio::null()).spawn().unwrap();
        let held = proxy.wait_for_hold(Duration::from_secs(60));
        harness::kill(child);
        drop(proxy);
        assert!(held.is_some(), "point {point}: the deploy never made request {point}");

        let live = f.active().unwrap();
        assert!(live == "1" || live == "2", "point {point}: live is {live}");
        if live == "2" {
            promoted_before_kill += 1;
            assert_release_matches(&f, &v2, "2");
        }
        let stored = f.with_site(async |site| site.store.list(&site.layout.version_dir("2")).await.unwrap().len());
        let lock_left = f.with_site(async |site| site.store.get(&site.layout.lock_key()).await.unwrap().is_some());

        let rerun =
            f.run(&["deploy"], &[("CUTOVER_DIST_DIR", &dist), ("CUTOVER_VERSION", "2"), ("CUTOVER_LOCK_LEASE", "3s")]);
        rerun.assert_code(0);
        assert_eq!(f.active().as_deref(), Some("2"), "point {point}: the re-run finishes the job");
        assert_release_matches(&f, &v2, "2");
        if lock_left {
            assert!(rerun.stderr().contains("taking over the stale deploy lock"), "point {point}: {}", rerun.stderr());
        }
        let uploaded: usize = f.outputs()["uploaded"].parse().unwrap();
        assert!(uploaded <= 13 - stored.min(13), "point {point}: {uploaded} sent again though {stored} were stored");
    }
    assert!(promoted_before_kill < 10, "some kills must land before the flip");
}

/// Holds the deploy lock, as a run busy promoting would, until the test lets go.
fn hold_lock(f: &Fixture) {
    let now = Utc::now();
    let lock = serde_json::json!({
        "owner": "other-run", "run_url": null, "acquired_at": now, "expires_at": now + chrono::Duration::minutes(5),
    });
    f.with_site(async |site| {
        site.store
            .put(&site.layout.lock_key(), Bytes::from(lock.to_string()), &json_meta(), Condition::IfAbsent)
            .await
            .unwrap();
    });
}

fn release_lock(f: &Fixture) {
    f.with_site(async |site| site.store.delete(&[site.layout.lock_key()]).await.unwrap());
}

/// Starts a deploy and waits until it has staged and waits for the lock.
fn deploy_waiting_for_lock(f: &Fixture, dist: &Path, version: &str) -> std::process::Child {
    let dist = dist.display().to_string();
    let child = f
        .command(&["deploy"], &[("CUTOVER_DIST_DIR", &dist), ("CUTOVER_VERSION", version)])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    let key = |site: &cutover::backend::Site| site.layout.record_key(version);
    while f.with_site(async |site| site.store.get(&key(&site)).await.unwrap().is_none()) {
        assert!(Instant::now() < deadline, "{version} never staged");
        std::thread::sleep(Duration::from_millis(50));
    }
    std::thread::sleep(Duration::from_millis(500));
    child
}

/// Deploys `version` while another run moves the live version to `moved_to` (noted `note`)
/// between its staging and its promotion; returns how the deploy ended.
fn deploy_while_the_live_version_moves(f: &Fixture, version: &str, moved_to: &str, note: &str) -> (i32, String) {
    // The other run promotes a release it recorded: a value cutover never recorded is refused.
    let recorded = f.with_site(async |site| site.store.get(&site.layout.record_key(moved_to)).await.unwrap().is_some());
    if !recorded {
        let other = site(f, &format!("other{moved_to}"), 2, false).display().to_string();
        f.run(&["stage"], &[("CUTOVER_DIST_DIR", &other), ("CUTOVER_VERSION", moved_to)]).assert_code(0);
    }
    hold_lock(f);
    let run = deploy_waiting_for_lock(f, &site(f, &format!("v{version}"), 2, false), version);
    f.with_site(async |site| site.pointer.write(moved_to, note).await.unwrap());
    release_lock(f);
    finish(run)
}

fn finish(child: std::process::Child) -> (i32, String) {
    let run = harness::finish(child);
    (run.code(), run.stderr())
}

#[test]
fn four_racing_deploys_leave_the_newest_live_and_overwrite_no_record() {
    let f = Fixture::moto();
    let base = site(&f, "v1", 2, false);
    f.deploy(&base, "1");
    let children: Vec<_> = ["2", "3", "4", "5"]
        .iter()
        .map(|version| {
            let dist = site(&f, &format!("v{version}"), 2, false).display().to_string();
            let mut command = f.command(&["deploy"], &[("CUTOVER_DIST_DIR", &dist), ("CUTOVER_VERSION", version)]);
            command.stdout(Stdio::null()).stderr(Stdio::piped());
            (version.to_string(), command.spawn().unwrap())
        })
        .collect();
    for (version, child) in children {
        let (code, stderr) = finish(child);
        assert!(code == 0 || code == 4, "{version}: exit {code}: {stderr}");
    }
    assert_eq!(f.active().as_deref(), Some("5"), "the newest is live");
    for version in ["2", "3", "4", "5"] {
        assert_release_matches(&f, &f.dir.path().join(format!("v{version}")), version);
    }
}

#[test]
fn a_slower_run_of_an_older_version_finishing_last_does_not_regress_the_site() {
    let f = Fixture::moto();
    let v1 = site(&f, "v1", 2, false);
    f.deploy(&v1, "1");
    let (code, stderr) = deploy_while_the_live_version_moves(&f, "2", "3", "promoted by a faster run from 1");
    assert_eq!(code, 4, "{stderr}");
    assert!(stderr.contains("2 is older than the active 3"), "{stderr}");
    assert_eq!(f.active().as_deref(), Some("3"));
}

#[test]
fn a_newer_run_supersedes_a_forward_deploy_that_raced_it() {
    let f = Fixture::moto();
    let v1 = site(&f, "v1", 2, false);
    f.deploy(&v1, "1");
    let (code, stderr) = deploy_while_the_live_version_moves(&f, "3", "2", "promoted by a racing run from 1");
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(f.active().as_deref(), Some("3"));
}

#[test]
fn a_rollback_made_during_a_run_is_not_undone() {
    let f = Fixture::moto();
    for version in ["1", "2"] {
        let dist = site(&f, &format!("v{version}"), 2, false);
        f.deploy(&dist, version);
    }
    let (code, stderr) = deploy_while_the_live_version_moves(&f, "3", "1", "rolled back by an operator from 2");
    assert_eq!(code, 4, "{stderr}");
    assert!(stderr.contains("rolled back from 2 to 1"), "{stderr}");
    assert_eq!(f.active().as_deref(), Some("1"));
}
