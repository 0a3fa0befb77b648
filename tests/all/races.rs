//! Runs that race: two runs of one version with different builds, and every pair of writing
//! commands at once, each followed by the check that every recorded release is intact.

use std::process::{Child, Stdio};

use bytes::Bytes;
use cutover::release::read_record;
use cutover::store::{Condition, json_meta};

use crate::harness::{Fixture, on_both_backends};

/// A build of `pages` files plus an `index.html` naming `tag`, so every build differs.
fn build(f: &Fixture, tag: &str, pages: usize) -> String {
    let files: Vec<(String, String)> = (0..pages).map(|i| (format!("p/{i}.html"), format!("{tag} {i}"))).collect();
    let mut borrowed: Vec<(&str, &str)> = files.iter().map(|(p, b)| (p.as_str(), b.as_str())).collect();
    let index = format!("<h1>{tag}</h1>");
    borrowed.push(("index.html", &index));
    f.site(tag, &borrowed).display().to_string()
}

fn spawn(f: &Fixture, args: &[&str], env: &[(&str, &str)]) -> Child {
    f.command(args, env).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().expect("starting cutover")
}

/// Waits for a child (failing on a panic); returns its exit code and stderr.
fn finish(child: Child) -> (i32, String) {
    let run = crate::harness::finish(child);
    (run.code(), run.stderr())
}

on_both_backends!(
    two_runs_of_one_version_never_mix_their_files,
    a_run_paused_past_its_lease_writes_nothing_into_the_recorded_release,
    a_release_changed_after_recording_is_never_promoted,
    two_sites_racing_at_nesting_prefixes_never_mix,
    previous_version_is_the_version_the_flip_replaced,
    stored_text_never_writes_lines_into_the_log,
    an_unreadable_lock_is_taken_over_only_after_a_lease,
);

/// A re-run of a tag build while the first still runs, with a build that is not reproducible:
/// one build is recorded whole, the other run writes nothing and exits 4.
fn two_runs_of_one_version_never_mix_their_files(mut f: Fixture) {
    let edge = f.start_edge();
    let small = build(&f, "small", 0);
    let big = build(&f, "big", 300);
    // The big build starts first and writes slowly, so the small one records while it writes.
    let b =
        spawn(&f, &["deploy"], &[("CUTOVER_DIST_DIR", &big), ("CUTOVER_VERSION", "5"), ("CUTOVER_CONCURRENCY", "2")]);
    let a = spawn(&f, &["deploy"], &[("CUTOVER_DIST_DIR", &small), ("CUTOVER_VERSION", "5")]);
    let (a, b) = (finish(a), finish(b));
    let mut codes = [a.0, b.0];
    codes.sort_unstable();
    assert_eq!(codes, [0, 4], "one build wins, the other is refused\nA: {}\nB: {}", a.1, b.1);
    let refused = if a.0 == 4 { &a.1 } else { &b.1 };
    assert!(refused.contains("already released with different content"), "{refused}");
    f.assert_releases_intact();
    let winner = if a.0 == 0 { "small" } else { "big" };
    edge.wait_for_active("5");
    assert_eq!(edge.get("/", None).body, format!("<h1>{winner}</h1>"), "the live site is the recorded build");
}

fn signal(child: &Child, signal: &str) {
    let sent = std::process::Command::new("kill").arg(format!("-{signal}")).arg(child.id().to_string()).status();
    assert!(sent.expect("running kill").success(), "kill -{signal}");
}

/// Stops a run at a moment it holds none of the local store's lock files (`/proc/locks`): a run
/// stopped inside the microseconds a conditional write holds one would block every other run
/// of the test on that lock until it resumed, which the test only does after those runs finish.
fn stop_outside_file_locks(child: &Child) {
    let holder = format!(" {} ", child.id());
    for _ in 0..1000 {
        signal(child, "STOP");
        let locks = std::fs::read_to_string("/proc/locks").expect("reading /proc/locks");
        if !locks.lines().any(|line| line.contains(&holder)) {
            return;
        }
        signal(child, "CONT");
        std::thread::sleep(std::time::Duration::from_millis(1));
    }
    panic!("the run held a lock file at each of 1000 stops");
}

/// A run paused past its lease (a stopped or starved runner) while another run takes the version
/// over: when it resumes it writes no more, and the recorded release is the other run's, byte for
/// byte (its writes in flight are conditional, so they replace nothing).
fn a_run_paused_past_its_lease_writes_nothing_into_the_recorded_release(mut f: Fixture) {
    let edge = f.start_edge();
    let big = build(&f, "big", 2000);
    // The run that takes over has the same pages (it finds the paused run's in place and keeps
    // them) and its own index.
    let small = build(&f, "small", 0);
    for entry in std::fs::read_dir(std::path::Path::new(&big).join("p")).unwrap() {
        let entry = entry.unwrap();
        std::fs::create_dir_all(std::path::Path::new(&small).join("p")).unwrap();
        std::fs::copy(entry.path(), std::path::Path::new(&small).join("p").join(entry.file_name())).unwrap();
    }
    let env = [("CUTOVER_VERSION", "5"), ("CUTOVER_LOCK_LEASE", "3s")];
    let paused = spawn(&f, &["deploy"], &[env[0], env[1], ("CUTOVER_DIST_DIR", &big), ("CUTOVER_CONCURRENCY", "2")]);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while f.with_site(async |site| site.store.list(&site.layout.version_dir("5")).await.unwrap().len()) < 10 {
        assert!(std::time::Instant::now() < deadline, "the paused run never stored a file");
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    stop_outside_file_locks(&paused);
    std::thread::sleep(std::time::Duration::from_millis(4000));
    let other = f.run(&["deploy"], &[env[0], env[1], ("CUTOVER_DIST_DIR", &small)]);
    signal(&paused, "CONT");
    other.assert_code(0);
    assert!(other.stderr().contains("taking over the stale staging claim on version 5"), "{}", other.stderr());
    let (code, stderr) = finish(paused);
    assert!(code == 1 || code == 4, "the resumed run fails: exit {code}\n{stderr}");
    f.assert_recorded_files_intact();
    edge.wait_for_active("5");
    assert_eq!(edge.get("/", None).body, "<h1>small</h1>", "the live site is the recorded build");
}

/// Two sites deployed at once where one prefix lies in the other's release (`site` version 2 and
/// `site/2`): one of them is refused, and every recorded release is byte for byte its record.
fn two_sites_racing_at_nesting_prefixes_never_mix(mut f: Fixture) {
    let on_moto = f.env.contains_key("CUTOVER_POINTER");
    let site_env = |prefix: &str| {
        let mut env = vec![("CUTOVER_PREFIX".to_owned(), prefix.to_owned())];
        if on_moto {
            env.push(("CUTOVER_POINTER".to_owned(), format!("ssm:/cutover/test/{prefix}")));
        }
        env
    };
    let outer = build(&f, "outer", 300);
    let inner = build(&f, "inner", 300);
    let start = |prefix: &str, dist: &str, version: &str| {
        let mut env: Vec<(String, String)> = site_env(prefix);
        env.extend([("CUTOVER_DIST_DIR".into(), dist.into()), ("CUTOVER_VERSION".into(), version.into())]);
        let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        spawn(&f, &["deploy"], &env)
    };
    let runs = [start("site", &outer, "2"), start("site/2", &inner, "1")];
    let codes: Vec<i32> = runs.into_iter().map(|run| finish(run).0).collect();
    assert!(codes.iter().all(|c| [0, 1, 2, 4].contains(c)), "{codes:?}");
    assert!(codes.contains(&2) || codes.contains(&4) || codes.contains(&1), "both cannot win: {codes:?}");
    for prefix in ["site", "site/2"] {
        for (name, value) in site_env(prefix) {
            f.set(&name, &value);
        }
        f.assert_recorded_files_intact();
    }
}

/// Completeness is checked by content: a recorded file replaced by other bytes of the same size
/// makes the release unpromotable.
fn a_release_changed_after_recording_is_never_promoted(mut f: Fixture) {
    let _edge = f.start_edge();
    let one = f.site("one", &[("index.html", "one!")]);
    let two = f.site("two", &[("index.html", "two!")]);
    f.deploy(&one, "1");
    f.deploy(&two, "2");
    f.with_site(async |site| {
        let key = site.layout.object_key("1", "index.html");
        site.store.put(&key, Bytes::from("evil"), &json_meta(), Condition::Always).await.unwrap();
    });
    let run = f.run(&["rollback"], &[]);
    run.assert_code(4);
    assert!(run.stderr().contains("release 1 is incomplete"), "{}", run.stderr());
    assert_eq!(f.active().as_deref(), Some("2"));
}

/// What one side of a race runs.
#[derive(Debug, Clone, Copy)]
enum Op {
    Stage,
    Deploy,
    Promote,
    Rollback,
    Prune,
}

const OPS: [Op; 5] = [Op::Stage, Op::Deploy, Op::Promote, Op::Rollback, Op::Prune];

fn start(f: &Fixture, op: Op, version: &str, tag: &str) -> Child {
    let dist = build(f, tag, 20);
    let env = [("CUTOVER_DIST_DIR", dist.as_str()), ("CUTOVER_VERSION", version)];
    match op {
        Op::Stage => spawn(f, &["stage"], &env),
        Op::Deploy => spawn(f, &["deploy"], &env),
        Op::Promote => spawn(f, &["promote", version], &[]),
        Op::Rollback => spawn(f, &["rollback"], &[]),
        Op::Prune => spawn(f, &["prune"], &[("CUTOVER_KEEP", "1")]),
    }
}

/// Every pair of writing commands at once, on one version and on two: after each pair every
/// recorded release is byte for byte what its record says and the live version is one of them.
#[test]
fn every_pair_of_commands_at_once_keeps_every_release_intact() {
    let mut round = 0;
    for same_version in [true, false] {
        for (i, first) in OPS.iter().enumerate() {
            for second in &OPS[i..] {
                round += 1;
                let mut f = Fixture::local();
                let _edge = f.start_edge();
                for version in ["1", "2", "3"] {
                    let dist = build(&f, &format!("setup{version}"), 2);
                    f.deploy(std::path::Path::new(&dist), version);
                }
                // Release 1 is old enough to prune.
                f.backdate("1", 2);
                let other = if same_version { "4" } else { "5" };
                let a = start(&f, *first, "4", &format!("a{round}"));
                let b = start(&f, *second, other, &format!("b{round}"));
                for (op, (code, stderr)) in [(first, finish(a)), (second, finish(b))] {
                    assert!(
                        code == 0 || code == 4,
                        "{first:?} + {second:?} (same version: {same_version}): {op:?} exited {code}\n{stderr}"
                    );
                }
                f.assert_releases_intact();
            }
        }
    }
}

/// A promotion whose pointer write lands late (SSM has no compare-and-swap): a run racing it waits
/// for the deploy lock, which the late run keeps renewing; and a flip that bypassed the lock (a
/// paused run's write landing) in between, a newer version or a rollback, is put back and the
/// late run refused.
#[test]
fn a_promotion_whose_write_lands_late_never_undoes_what_landed_in_between() {
    let f = Fixture::moto();
    for version in ["3", "4", "5", "6", "7", "8", "9"] {
        let dist = build(&f, &format!("v{version}"), 1);
        f.run(&["stage"], &[("CUTOVER_DIST_DIR", &dist), ("CUTOVER_VERSION", version)]).assert_code(0);
    }
    f.run(&["promote", "4"], &[]).assert_code(0);
    let stall = std::time::Duration::from_secs(3);
    let proxy = crate::proxy::Proxy::start(&f.moto_server().endpoint, move |request| {
        (request.ssm_action() == Some("PutParameter")).then_some(crate::proxy::Fault::Stall(stall))
    });
    let late = |version: &str| {
        let child = spawn(&f, &["promote", version], &[("AWS_ENDPOINT_URL", &proxy.url), ("CUTOVER_LOCK_LEASE", "3s")]);
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
        let stalled = proxy.faults().len();
        while proxy.faults().len() == stalled {
            assert!(std::time::Instant::now() < deadline, "promote {version} never wrote the pointer");
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        child
    };
    // A run racing the late one waits for its lock, then goes on top of it.
    let running = late("5");
    let newer = f.run(&["promote", "6"], &[("CUTOVER_LOCK_LEASE", "3s")]);
    newer.assert_code(0);
    assert!(newer.stderr().contains("waiting for the deploy lock"), "{}", newer.stderr());
    assert_eq!(finish(running).0, 0);
    assert_eq!(f.active().as_deref(), Some("6"));
    // A newer version, then a rollback, written past the lock while the late write is in flight.
    let cases = [
        (
            "7",
            "8",
            "promoted by a paused run from 6",
            "8 was promoted while this run waited to promote the older 7; 8 was put back",
        ),
        (
            "9",
            "3",
            "rolled back by an operator from 8",
            "a rollback to 3 was made while this run waited to promote 9; 3 was put back",
        ),
    ];
    for (version, between, note, said) in cases {
        let running = late(version);
        f.with_site(async |site| site.pointer.write(between, note).await.unwrap());
        let (code, stderr) = finish(running);
        assert_eq!(code, 4, "{stderr}");
        assert!(stderr.contains(said), "{stderr}");
        assert_eq!(f.active().as_deref(), Some(between));
    }
    // The put-back counts as undoing 9: a rollback goes where it went before 9 landed.
    let rollback = f.run(&["rollback", "--dry-run", "--json"], &[]);
    assert_eq!(rollback.assert_code(0).json()["version"], "8", "{}", rollback.stdout());
}

/// Waits until the proxy has stalled `count` requests.
fn wait_for_faults(proxy: &crate::proxy::Proxy, count: usize, what: &str) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while proxy.faults().len() < count {
        assert!(std::time::Instant::now() < deadline, "{what} never reached the proxy");
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
}

/// A lock owned by another run until an hour from now, as a run taking over a lapsed lock writes it.
fn next_holders_lock() -> Bytes {
    let now = chrono::Utc::now();
    let body = serde_json::json!({
        "owner": "next-holder",
        "run_url": null,
        "acquired_at": now,
        "expires_at": now + chrono::Duration::hours(1),
    });
    Bytes::from(body.to_string())
}

/// A lock release that lands late, after its lease lapsed and the next run took the lock over,
/// removes nothing: the delete is conditional on the ETag of the lock the releasing run read.
#[test]
fn a_late_lock_release_never_deletes_the_next_holders_lock() {
    let f = Fixture::moto();
    for version in ["1", "2"] {
        let dist = build(&f, &format!("v{version}"), 1);
        f.run(&["deploy"], &[("CUTOVER_DIST_DIR", &dist), ("CUTOVER_VERSION", version)]).assert_code(0);
    }
    // The lease must outlast the rollback's own work on a loaded machine (two cores shared with
    // other builds once took 1.9 s), and the stalled release must land after it lapsed.
    let stall = std::time::Duration::from_secs(9);
    let proxy = crate::proxy::Proxy::start(&f.moto_server().endpoint, move |request| {
        // DeleteObject, or the DeleteObjects a release sent before it was conditional.
        let deletes = request.method == "DELETE" || request.target.contains("?delete");
        deletes.then_some(crate::proxy::Fault::Stall(stall))
    });
    let run = spawn(&f, &["rollback"], &[("AWS_ENDPOINT_URL", &proxy.url), ("CUTOVER_LOCK_LEASE", "5s")]);
    wait_for_faults(&proxy, 1, "the lock release");
    std::thread::sleep(std::time::Duration::from_millis(5500));
    let lock_key = f.with_site(async |site| site.layout.lock_key());
    f.with_site(async |site| {
        site.store.put(&lock_key, next_holders_lock(), &json_meta(), Condition::Always).await.unwrap()
    });
    let (code, stderr) = finish(run);
    assert_eq!(code, 0, "{stderr}");
    let lock = f.with_site(async |site| site.store.get(&lock_key).await.unwrap());
    let lock = lock.expect("the next holder's lock was deleted by the late release");
    assert!(String::from_utf8_lossy(&lock.body).contains("next-holder"));
}

/// Counts the requests a test picks out, so a rule can stall only the `n`th.
struct Nth(std::sync::atomic::AtomicUsize);

impl Nth {
    fn new() -> Nth {
        Nth(std::sync::atomic::AtomicUsize::new(0))
    }

    /// Whether this matching request is the `n`th (from 1).
    fn is(&self, matches: bool, n: usize) -> bool {
        matches && self.0.fetch_add(1, std::sync::atomic::Ordering::SeqCst) + 1 == n
    }
}

/// Whether a request writes the deploy lock (taking it over or renewing it).
fn writes_lock(request: &crate::proxy::Request) -> bool {
    request.method == "PUT" && request.target.contains("_cutover/lock")
}

/// Deploys each version in turn on `f`, so the last is live and the one before the rollback target.
fn deploy_all(f: &Fixture, versions: &[&str]) {
    for version in versions {
        let dist = build(f, &format!("v{version}"), 2);
        f.run(&["deploy"], &[("CUTOVER_DIST_DIR", &dist), ("CUTOVER_VERSION", version)]).assert_code(0);
    }
}

/// A prune that took over the lock of a run whose pointer write was in flight deletes the release
/// that write makes live: the run reads its record back after the flip, finds it gone, puts back
/// what was live before under a fresh lock and is refused (exit 4), instead of leaving a live
/// release with no record and no files.
#[test]
fn a_flip_whose_release_was_pruned_meanwhile_is_put_back() {
    let f = Fixture::moto();
    deploy_all(&f, &["1", "2", "3"]);
    f.backdate("1", 2);
    let (lock_writes, pointer_writes) = (Nth::new(), Nth::new());
    let proxy = crate::proxy::Proxy::start(&f.moto_server().endpoint, move |request| {
        // The lock's first renewal stalls, so it lapses; the rollback's pointer write lands late.
        let stall = lock_writes.is(writes_lock(request), 2)
            || pointer_writes.is(request.ssm_action() == Some("PutParameter"), 1);
        stall.then_some(crate::proxy::Fault::Stall(std::time::Duration::from_secs(5)))
    });
    let late = spawn(&f, &["rollback", "--to", "1"], &[("AWS_ENDPOINT_URL", &proxy.url), ("CUTOVER_LOCK_LEASE", "1s")]);
    wait_for_faults(&proxy, 2, "the rollback's pointer write");
    std::thread::sleep(std::time::Duration::from_millis(1200));
    let prune = f.run(&["prune", "--json"], &[("CUTOVER_KEEP", "0"), ("CUTOVER_LOCK_LEASE", "1s")]);
    prune.assert_code(0);
    assert!(prune.stderr().contains("taking over the stale deploy lock"), "{}", prune.stderr());
    assert_eq!(prune.json()["deleted"], serde_json::json!(["1"]), "{}", prune.stdout());
    let (code, stderr) = finish(late);
    assert_eq!(code, 4, "{stderr}");
    assert!(stderr.contains("the record of 1 was deleted (pruned) while this run's write was in flight"), "{stderr}");
    assert!(stderr.contains("3 was put back"), "{stderr}");
    assert_eq!(f.active().as_deref(), Some("3"));
    f.assert_releases_intact();
}

/// A prune whose lease lapsed while its record deletion was in flight, while another run made that
/// release live: it puts the record back (its files are still whole) before it stops, exit 4.
#[test]
fn a_prune_past_its_lease_puts_back_the_record_it_deleted() {
    let f = Fixture::moto();
    deploy_all(&f, &["1", "2", "3", "4"]);
    f.backdate("1", 2);
    f.backdate("2", 2);
    let (lock_writes, deletes) = (Nth::new(), Nth::new());
    let proxy = crate::proxy::Proxy::start(&f.moto_server().endpoint, move |request| {
        // The lock's first renewal stalls, so it lapses; the first deletion (record 2) lands late.
        let stall = lock_writes.is(writes_lock(request), 2) || deletes.is(request.target.contains("?delete"), 1);
        stall.then_some(crate::proxy::Fault::Stall(std::time::Duration::from_secs(5)))
    });
    let prune =
        spawn(&f, &["prune"], &[("AWS_ENDPOINT_URL", &proxy.url), ("CUTOVER_KEEP", "0"), ("CUTOVER_LOCK_LEASE", "1s")]);
    wait_for_faults(&proxy, 2, "the prune's deletion");
    std::thread::sleep(std::time::Duration::from_millis(1200));
    let rollback = f.run(&["rollback", "--to", "2"], &[("CUTOVER_LOCK_LEASE", "1s")]);
    rollback.assert_code(0);
    let (code, stderr) = finish(prune);
    assert_eq!(code, 4, "{stderr}");
    assert!(stderr.contains("put the record of 2 back"), "{stderr}");
    assert_eq!(f.active().as_deref(), Some("2"));
    assert!(f.with_site(async |site| read_record(&site, &site.layout.record_key("2")).await.unwrap()).is_some());
    // The record went first and alone: what else is kept about the release waited for the check.
    let index = f.with_site(async |site| site.store.get(&cutover::route_index::key(&site.layout, "2")).await.unwrap());
    assert!(index.is_some(), "the routing index of the release put back is there");
    f.assert_releases_intact();
}

/// A read-back that fails after the flip landed: the run reports the flip (exit 0, `--json` with
/// the version and `promoted`) and warns that the check could not run, instead of exit 1, which
/// would say nothing live changed.
#[test]
fn a_failed_read_back_still_reports_the_flip_that_landed() {
    let f = Fixture::moto();
    deploy_all(&f, &["1"]);
    let dist = build(&f, "v2", 2);
    f.run(&["stage"], &[("CUTOVER_DIST_DIR", &dist), ("CUTOVER_VERSION", "2")]).assert_code(0);
    // The history read after the flip fails; the guards' read before it answers.
    let flipped = std::sync::atomic::AtomicBool::new(false);
    let proxy = crate::proxy::Proxy::start(&f.moto_server().endpoint, move |request| {
        let action = request.ssm_action();
        if action == Some("PutParameter") {
            flipped.store(true, std::sync::atomic::Ordering::SeqCst);
        }
        let read_back = action == Some("GetParameterHistory") && flipped.load(std::sync::atomic::Ordering::SeqCst);
        read_back.then_some(crate::proxy::Fault::InternalError)
    });
    let run = f.run(&["promote", "2", "--json"], &[("AWS_ENDPOINT_URL", &proxy.url)]);
    run.assert_code(0);
    assert!(
        run.stderr().contains("warning: 2 is live, but the check after the flip could not run"),
        "{}",
        run.stderr()
    );
    let json = run.json();
    assert_eq!((json["version"].as_str(), json["promoted"].as_bool()), (Some("2"), Some(true)), "{}", run.stdout());
    assert_eq!(f.active().as_deref(), Some("2"));
}

/// A deploy that another promotion overtook while it staged reports as `previous-version` the
/// version its flip replaced (read under the lock), not the one live when it started.
fn previous_version_is_the_version_the_flip_replaced(mut f: Fixture) {
    let _edge = f.start_edge();
    deploy_all(&f, &["3"]);
    let four = build(&f, "v4", 2);
    f.run(&["stage"], &[("CUTOVER_DIST_DIR", &four), ("CUTOVER_VERSION", "4")]).assert_code(0);
    let big = build(&f, "v6", 1000);
    let deploy = spawn(
        &f,
        &["deploy", "--json"],
        &[("CUTOVER_DIST_DIR", &big), ("CUTOVER_VERSION", "6"), ("CUTOVER_CONCURRENCY", "2")],
    );
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while f.with_site(async |site| site.store.list(&site.layout.version_dir("6")).await.unwrap().len()) < 10 {
        assert!(std::time::Instant::now() < deadline, "the deploy never stored a file");
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    stop_outside_file_locks(&deploy);
    let promoted = f.run(&["promote", "4"], &[]);
    signal(&deploy, "CONT");
    promoted.assert_code(0);
    let run = crate::harness::finish(deploy);
    run.assert_code(0);
    assert_eq!(run.json()["previous-version"], "4", "{}", run.stdout());
    assert!(run.stderr().contains("6 live (was 4)"), "{}", run.stderr());
}

/// Text read back from the store or the pointer (a lock's owner and run URL, a promotion's note)
/// never writes a line of its own into a CI log: its control characters are printed escaped.
fn stored_text_never_writes_lines_into_the_log(f: Fixture) {
    deploy_all(&f, &["1", "2"]);
    let now = chrono::Utc::now();
    let lock = serde_json::json!({
        "owner": "x\n::warning::owner-injected",
        "run_url": "https://evil\n::error::pwned",
        "acquired_at": now - chrono::Duration::hours(1),
        "expires_at": now - chrono::Duration::minutes(59),
    });
    f.with_site(async |site| {
        let key = site.layout.lock_key();
        site.store.put(&key, Bytes::from(lock.to_string()), &json_meta(), Condition::Always).await.unwrap();
        site.pointer.write("2", "promoted by x\n::error::note-injected").await.unwrap();
    });
    let rollback = f.run(&["rollback"], &[("GITHUB_ACTIONS", "true")]);
    rollback.assert_code(0);
    let status = f.run(&["status"], &[]);
    status.assert_code(0);
    let logs = format!("{}{}{}", rollback.stderr(), rollback.stdout(), status.stdout());
    assert!(logs.contains(r"x\n::warning::owner-injected"), "{logs}");
    assert!(logs.contains(r"x\n::error::note-injected"), "{logs}");
    for line in logs.lines() {
        assert!(!line.contains("-injected") || !line.starts_with("::"), "an injected line: {line}\n{logs}");
        assert!(!line.starts_with("::error::pwned"), "{logs}");
    }
}

/// A lock that cannot be read is honoured for a lease from its last write, then taken over.
fn an_unreadable_lock_is_taken_over_only_after_a_lease(f: Fixture) {
    deploy_all(&f, &["1", "2"]);
    f.with_site(async |site| {
        let key = site.layout.lock_key();
        site.store.put(&key, Bytes::from("not a lease"), &json_meta(), Condition::Always).await.unwrap();
    });
    let started = std::time::Instant::now();
    let run = f.run(&["rollback"], &[("CUTOVER_LOCK_LEASE", "2s")]);
    run.assert_code(0);
    assert!(run.stderr().contains("waiting for the deploy lock"), "{}", run.stderr());
    assert!(run.stderr().contains("taking over the stale deploy lock: an unreadable lease"), "{}", run.stderr());
    assert!(started.elapsed() >= std::time::Duration::from_secs(1), "taken over at once");
}

/// The read-back counts only what was logged after this run read the pointer: after deploys 1, 2
/// and a rollback to 1, the pointer was set to the placeholder `-` (a stack update, or by hand),
/// so the next deploy replaces no release; the rollback logged long before it is not one made
/// "while this run waited", and the deploy stays live.
fn a_deploy_after_the_placeholder_is_not_undone_by_an_older_rollback(origin_path: bool) {
    let mut f = Fixture::moto();
    let distribution = f.moto_server().create_distribution("site-bucket");
    if origin_path {
        f.set("CUTOVER_POINTER", &format!("cloudfront:{distribution}"));
    }
    deploy_all(&f, &["1", "2"]);
    f.run(&["rollback"], &[]).assert_code(0);
    assert_eq!(f.active().as_deref(), Some("1"));
    if origin_path {
        f.moto_server().set_origin_path(&distribution, "/site/-");
    } else {
        f.moto_server().put_parameter("/cutover/test/active", "-").expect("setting the parameter by hand");
    }
    assert_eq!(f.active(), None);
    let dist = build(&f, "v3", 2);
    let run = f.run(&["deploy"], &[("CUTOVER_DIST_DIR", &dist), ("CUTOVER_VERSION", "3")]);
    run.assert_code(0);
    assert!(!run.stderr().contains("put back"), "{}", run.stderr());
    assert_eq!(f.active().as_deref(), Some("3"));
    let status = f.run(&["status", "--json"], &[]);
    assert_eq!(status.json()["warnings"], serde_json::json!([]), "{}", status.stdout());
}

#[test]
fn a_deploy_after_the_ssm_placeholder_is_not_undone_by_an_older_rollback() {
    a_deploy_after_the_placeholder_is_not_undone_by_an_older_rollback(false);
}

#[test]
fn a_deploy_after_the_origin_path_placeholder_is_not_undone_by_an_older_rollback() {
    a_deploy_after_the_placeholder_is_not_undone_by_an_older_rollback(true);
}
