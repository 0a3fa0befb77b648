//! Preview releases of pull requests, run as CI steps run them, through `cutover serve` as the
//! edge, on the local store and on moto: each push a new preview, the alias `pr-<n>` following the
//! newest, the live release untouched, promotion refused, close and `preview-ttl` deleting them.

use cutover::pull_request::PullRequest;
use cutover::release::read_record;

use std::io::{Read, Write};

use crate::harness::{Edge, Fixture, on_both_backends};

on_both_backends!(
    each_push_is_a_new_preview_the_alias_follows_and_nothing_goes_live,
    previews_are_never_promoted_deployed_or_rolled_back_to,
    close_deletes_the_alias_and_the_previews_of_its_pull_request_only,
    prune_deletes_previews_past_their_ttl_and_never_counts_them_in_keep,
    hostile_pull_request_numbers_are_refused_before_anything_is_written,
    the_alias_only_moves_forward_and_never_over_a_value_it_did_not_write,
    a_push_finishing_after_the_close_makes_no_link,
    prune_with_only_a_preview_ttl_deletes_expired_previews_and_no_release,
    a_reopened_pull_request_previews_again,
    the_alias_follows_the_release_order_status_lists_and_an_expired_preview_hands_it_on,
    a_preview_whose_pool_object_went_before_its_link_is_refused_and_a_rerun_repairs_it,
    a_preview_set_live_by_hand_is_a_foreign_value_and_never_the_version_before,
    a_rerun_of_a_close_from_before_a_reopening_deletes_nothing,
);

/// On the local store, whose pool files are aged by hand, and on moto, whose S3 clock runs two
/// hours behind, so the pool objects are past the hour in which no sweep touches them.
mod close_and_preview_ttl_leave_nothing_of_their_previews_behind {
    use crate::harness::Fixture;

    #[test]
    fn local() {
        super::close_and_preview_ttl_leave_nothing_of_their_previews_behind(Fixture::local(), crate::shared::age_pool);
    }

    #[test]
    fn moto() {
        super::close_and_preview_ttl_leave_nothing_of_their_previews_behind(Fixture::moto_aged(), |_| {});
    }
}

/// What cutover keeps under `_cutover/` about a version (its record, its smoke verdict, its
/// routing index) goes with the preview, whether the close or `preview-ttl` deletes it; so do
/// the pool objects only the closed pull request's previews used (the close sweeps as prune does,
/// under the deploy lock, never an object written in the last hour), and a dry run says which.
fn close_and_preview_ttl_leave_nothing_of_their_previews_behind(mut f: Fixture, age_pool: fn(&Fixture)) {
    const COMMON: &str = "assets/vendor-Zz9_Yy8-.js";
    const SEVEN: &str = "assets/seven-AAAAaaaa.js";
    const EIGHT: &str = "assets/eight-BBBBbbbb.js";
    let _edge = f.start_edge();
    f.deploy(&f.site("v1", &[("index.html", "live"), (COMMON, "vendor")]), "1");
    let build = |name: &str, chunk: &str| f.site(name, &[("index.html", name), (COMMON, "vendor"), (chunk, chunk)]);
    let preview = |pr: &str, run: &str, dist: std::path::PathBuf, extra: &[(&str, &str)]| {
        let vars =
            [("CUTOVER_DIST_DIR", dist.to_str().unwrap()), ("CUTOVER_PULL_REQUEST", pr), ("GITHUB_RUN_NUMBER", run)];
        f.run(&["preview"], &[&vars[..], extra].concat())
    };
    preview("7", "1", build("seven", SEVEN), &[]).assert_code(0);
    preview("7", "2", build("seven", SEVEN), &FAILING_SMOKE).assert_code(3);
    preview("8", "1", build("eight", EIGHT), &[]).assert_code(0);
    let about = |f: &Fixture, version: &str| {
        let version = format!("/{version}.json");
        f.with_site(async |site| site.store.list(&site.layout.cutover_dir()).await.unwrap())
            .into_iter()
            .map(|o| o.key)
            .filter(|key| key.ends_with(&version))
            .collect::<Vec<_>>()
    };
    assert_eq!(about(&f, "pr-7-2").len(), 3, "record, routing index and verdict: {:?}", about(&f, "pr-7-2"));
    age_pool(&f);

    let closing = [("CUTOVER_PULL_REQUEST", "7")];
    let planned = f.run(&["preview-close", "--dry-run", "--json"], &closing).assert_code(0).json();
    assert_eq!(planned["pool_deleted"], serde_json::json!([SEVEN]), "{planned}");
    assert_eq!(crate::shared::pool(&f).len(), 3, "a dry run deletes nothing");
    let closed = f.run(&["preview-close", "--json"], &closing).assert_code(0).json();
    assert_eq!(closed["deleted"], serde_json::json!(["pr-7-1", "pr-7-2"]), "{closed}");
    assert_eq!(closed["pool_deleted"], serde_json::json!([SEVEN]), "{closed}");
    for version in ["pr-7-1", "pr-7-2"] {
        assert_eq!(about(&f, version), Vec::<String>::new(), "{version}");
    }
    assert_eq!(crate::shared::pool(&f), [EIGHT, COMMON]);

    f.backdate("pr-8-1", 3);
    let pruned = f.run(&["prune", "--preview-ttl", "1h", "--json"], &[]).assert_code(0).json();
    assert_eq!(
        (pruned["deleted"].clone(), pruned["pool_deleted"].clone()),
        (serde_json::json!(["pr-8-1"]), serde_json::json!([EIGHT]))
    );
    assert_eq!(about(&f, "pr-8-1"), Vec::<String>::new());
    assert_eq!(crate::shared::pool(&f), [COMMON], "release 1 still uses it");
    f.assert_releases_intact();
}

/// With a CloudFront pointer the alias is an object under `_cutover/aliases/`: the preview moves
/// it, the origin path (the live release) stays, `cutover serve` resolves it, close deletes it.
#[test]
fn with_an_origin_path_pointer_the_alias_is_an_object_beside_the_releases() {
    let mut f = Fixture::moto();
    let distribution = f.moto_server().create_distribution("site-bucket");
    f.set("CUTOVER_POINTER", &format!("cloudfront:{distribution}"));
    let edge = f.start_edge();
    f.deploy(&f.site("v1", &[("index.html", "live")]), "1");
    push(&f, "7", "1", "preview");
    let alias = f.with_site(async |site| {
        let key = format!("{}aliases/pr-7.json", site.layout.cutover_dir());
        site.store.get(&key).await.unwrap().map(|o| String::from_utf8_lossy(&o.body).into_owned())
    });
    assert_eq!(alias.as_deref(), Some(r#"{"version":"pr-7-1"}"#));
    assert_eq!(f.moto_server().origin_path(&distribution), "/site/1", "the live release stays");
    assert_eq!(wait_for_link(&edge, "/?override_build_number=pr-7", "pr-7-1").body, "preview");
    let closed = [("CUTOVER_PULL_REQUEST", "7")];
    let report = f.run(&["preview-close", "--json"], &closed).assert_code(0).json();
    assert_eq!(
        (report["deleted"].clone(), report["alias_deleted"].clone()),
        (serde_json::json!(["pr-7-1"]), true.into())
    );
    let gone = f.with_site(async |site| site.aliases.read(PullRequest::parse("7").unwrap()).await.unwrap());
    assert_eq!(gone, None);
    assert_eq!(f.moto_server().origin_path(&distribution), "/site/1");
}

/// A push of pull request `pr` built by run `run`, as `cutover preview` on GitHub's
/// `pull_request` event.
fn push(f: &Fixture, pr: &str, run: &str, body: &str) -> std::collections::BTreeMap<String, String> {
    let ran = push_with(f, pr, run, body, &[]);
    assert_eq!(ran.code(), 0, "{}", ran.stderr());
    f.outputs()
}

/// [`push`] with more variables, whatever its exit code.
fn push_with(f: &Fixture, pr: &str, run: &str, body: &str, extra: &[(&str, &str)]) -> crate::harness::Run {
    let dist = f.site(&format!("pr{pr}-{run}"), &[("index.html", body)]);
    let event = [
        ("CUTOVER_DIST_DIR", dist.to_str().unwrap()),
        ("GITHUB_EVENT_NAME", "pull_request"),
        ("GITHUB_REF", &format!("refs/pull/{pr}/merge")),
        ("GITHUB_RUN_NUMBER", run),
    ];
    f.run(&["preview"], &[&event[..], extra].concat())
}

/// Variables that make a preview's smoke test fail at once.
const FAILING_SMOKE: [(&str, &str); 2] =
    [("CUTOVER_SMOKE_EXPECT_TEXT", "not in the page"), ("CUTOVER_SMOKE_TIMEOUT", "0s")];

/// The alias of pull request `pr`, read from the store.
fn alias(f: &Fixture, pr: &str) -> Option<String> {
    let pr = PullRequest::parse(pr).unwrap();
    f.with_site(async |site| site.aliases.read(pr).await.unwrap())
}

/// The close leaves a record: a push still running when the pull request closed, or a re-run after,
/// is refused (exit 4, "was closed") before its alias is written; `take-over-pointer` (a reopened
/// pull request) links again and records the reopening, so the next push needs nothing.
fn a_push_finishing_after_the_close_makes_no_link(f: Fixture) {
    f.deploy(&f.site("v1", &[("index.html", "live")]), "1");
    push(&f, "7", "1", "first");
    f.run(&["preview-close"], &[("CUTOVER_PULL_REQUEST", "7")]).assert_code(0);
    let late = push_with(&f, "7", "2", "late", &[]);
    assert_eq!(late.code(), 4, "{}", late.stderr());
    assert!(late.stderr().contains("the pull request 7 was closed at"), "{}", late.stderr());
    assert_eq!(alias(&f, "7"), None, "no link after the close");
    push_with(&f, "7", "3", "reopened", &[("CUTOVER_TAKE_OVER_POINTER", "true")]).assert_code(0);
    assert_eq!(alias(&f, "7").as_deref(), Some("pr-7-3"));
    push(&f, "7", "4", "next");
    assert_eq!(alias(&f, "7").as_deref(), Some("pr-7-4"));
}

/// GitHub's `pull_request` event for pull request 7, as a payload file: `action`, and the pull
/// request's `updated_at` and `closed_at` that many minutes ago.
fn event_payload(f: &Fixture, name: &str, action: &str, updated: i64, closed: i64) -> String {
    let ago = |minutes| (chrono::Utc::now() - chrono::Duration::minutes(minutes)).to_rfc3339();
    let payload = serde_json::json!({
        "action": action, "number": 7,
        "pull_request": { "number": 7, "updated_at": ago(updated), "closed_at": ago(closed) },
    });
    let path = f.dir.path().join(name);
    std::fs::write(&path, payload.to_string()).unwrap();
    path.display().to_string()
}

/// GitHub's events in order: opened, closed (30 minutes ago), reopened (20), synchronize; then a
/// re-run of the close job, whose event is the old close: it warns and deletes nothing (the
/// reopening is recorded, GitHub's time), and the next push links.
fn a_rerun_of_a_close_from_before_a_reopening_deletes_nothing(f: Fixture) {
    f.deploy(&f.site("v1", &[("index.html", "live")]), "1");
    let run = |args: &[&str], path: &str, extra: &[(&str, &str)]| {
        let event =
            [("GITHUB_EVENT_NAME", "pull_request"), ("GITHUB_EVENT_PATH", path), ("GITHUB_REF", "refs/pull/7/merge")];
        f.run(args, &[&event[..], extra].concat())
    };
    let opened = event_payload(&f, "opened.json", "opened", 40, 40);
    let closed = event_payload(&f, "closed.json", "closed", 30, 30);
    let reopened = event_payload(&f, "reopened.json", "reopened", 20, 30);
    let pushed = event_payload(&f, "synchronize.json", "synchronize", 10, 30);
    let push = |path: &str, run_number: &str| {
        let dist = f.site(&format!("pr7-{run_number}"), &[("index.html", run_number)]);
        let extra = [("CUTOVER_DIST_DIR", dist.to_str().unwrap()), ("GITHUB_RUN_NUMBER", run_number)];
        run(&["preview"], path, &extra)
    };
    push(&opened, "1").assert_code(0);
    run(&["preview-close"], &closed, &[]).assert_code(0);
    push(&reopened, "2").assert_code(0);
    push(&pushed, "3").assert_code(0);
    assert_eq!(alias(&f, "7").as_deref(), Some("pr-7-3"));

    let rerun = run(&["preview-close", "--json"], &closed, &[]);
    assert_eq!(rerun.code(), 0, "{}", rerun.stderr());
    assert!(rerun.stderr().contains("after this close"), "{}", rerun.stderr());
    assert_eq!(alias(&f, "7").as_deref(), Some("pr-7-3"), "the alias stays");
    let versions: Vec<String> = f
        .with_site(async |site| cutover::release::all_records(&site).await.unwrap())
        .into_iter()
        .map(|r| r.version)
        .collect();
    assert_eq!(versions, ["1", "pr-7-2", "pr-7-3"], "the previews stay");
    push(&pushed, "4").assert_code(0);
    assert_eq!(alias(&f, "7").as_deref(), Some("pr-7-4"), "the next push links");
}

/// A reopened pull request previews again by itself: the close records GitHub's `closed_at`, a
/// run for the `reopened` event GitHub sent after it links and records the reopening, so the next push
/// links too; a push or a re-run of a reopening from before the close still makes no link.
fn a_reopened_pull_request_previews_again(f: Fixture) {
    f.deploy(&f.site("v1", &[("index.html", "live")]), "1");
    push(&f, "7", "1", "first");
    let closed = event_payload(&f, "closed.json", "closed", 10, 10);
    fn on(path: &str) -> [(&str, &str); 3] {
        [("GITHUB_EVENT_NAME", "pull_request"), ("GITHUB_EVENT_PATH", path), ("GITHUB_REF", "refs/pull/7/merge")]
    }
    f.run(&["preview-close"], &on(&closed)).assert_code(0);
    let recorded = f.with_site(async |site| {
        let key = cutover::preview::closed_key(&site.layout, PullRequest::parse("7").unwrap());
        serde_json::from_slice::<serde_json::Value>(&site.store.get(&key).await.unwrap().unwrap().body).unwrap()
    });
    let at = |v: &serde_json::Value| chrono::DateTime::parse_from_rfc3339(v.as_str().unwrap()).unwrap();
    let sent: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&closed).unwrap()).unwrap();
    assert_eq!(at(&recorded["closed_at"]), at(&sent["pull_request"]["closed_at"]), "GitHub's time of the close");

    let earlier = event_payload(&f, "earlier.json", "reopened", 20, 30);
    let rerun = push_with(&f, "7", "2", "re-run", &on(&earlier));
    assert_eq!(rerun.code(), 4, "a reopening from before the close: {}", rerun.stderr());
    assert!(rerun.stderr().contains("a run for GitHub's `reopened` event links again"), "{}", rerun.stderr());
    let late = event_payload(&f, "late.json", "synchronize", 5, 30);
    assert_eq!(push_with(&f, "7", "3", "late", &on(&late)).code(), 4, "a push is no reopening");
    assert_eq!(alias(&f, "7"), None);

    let reopened = event_payload(&f, "reopened.json", "reopened", 5, 30);
    push_with(&f, "7", "4", "reopened", &on(&reopened)).assert_code(0);
    assert_eq!(alias(&f, "7").as_deref(), Some("pr-7-4"));
    push_with(&f, "7", "5", "next", &on(&late)).assert_code(0);
    assert_eq!(alias(&f, "7").as_deref(), Some("pr-7-5"), "the reopening was recorded");
}

/// A re-run of an older push (its version keeps its record, so its place in the release order)
/// stages and smoke-tests its preview but leaves the alias on the newer one; a value that is no
/// preview of the pull request is refused (exit 4) unless `take-over-pointer`.
fn the_alias_only_moves_forward_and_never_over_a_value_it_did_not_write(mut f: Fixture) {
    let edge = f.start_edge();
    f.deploy(&f.site("v1", &[("index.html", "live")]), "1");
    push(&f, "7", "9", "older");
    push(&f, "7", "10", "newer");
    let older = push_with(&f, "7", "9", "older", &[]);
    assert_eq!(older.code(), 0, "{}", older.stderr());
    assert!(older.stdout().contains("pr-7 stays on the newer pr-7-10"), "{}", older.stdout());
    assert_eq!(alias(&f, "7").as_deref(), Some("pr-7-10"), "the older run left the alias");
    assert_eq!(f.outputs()["version"], "pr-7-9", "the older preview was staged");
    push(&f, "7", "11", "newest");
    assert_eq!(alias(&f, "7").as_deref(), Some("pr-7-11"));

    let pr = PullRequest::parse("8").unwrap();
    for foreign in ["pr-9-1", "1", "hand-written"] {
        f.with_site(async |site| site.aliases.write(pr, foreign).await.unwrap());
        let refused = push_with(&f, "8", "1", "eight", &[]);
        assert_eq!(refused.code(), 4, "{foreign}: {}", refused.stderr());
        assert!(refused.stderr().contains("the alias pr-8 holds"), "{}", refused.stderr());
        assert_eq!(alias(&f, "8").as_deref(), Some(foreign), "a value cutover did not write stays");
        // Nor does the edge follow it: the link pins nothing and the live page answers.
        std::thread::sleep(std::time::Duration::from_millis(1100));
        let page = edge.get("/?override_build_number=pr-8", None);
        assert_eq!((page.body.as_str(), page.header("set-cookie")), ("live", None), "{foreign}");
    }
    push_with(&f, "8", "1", "eight", &[("CUTOVER_TAKE_OVER_POINTER", "true")]).assert_code(0);
    assert_eq!(alias(&f, "8").as_deref(), Some("pr-8-1"));
}

/// The alias names the newest preview in the order `status` lists (previews by record time), whatever
/// the run parts look like: run numbers crossing a digit (9 -> 10, 99.1 -> 100.1) and run numbers
/// changing style (12 -> 13.1, v1.0.0 -> 16). A preview expiring under `preview-ttl` while its
/// alias names it (as an older cutover left it) hands the alias to the newest preview left whose
/// smoke test did not fail.
fn the_alias_follows_the_release_order_status_lists_and_an_expired_preview_hands_it_on(mut f: Fixture) {
    f.deploy(&f.site("v1", &[("index.html", "live")]), "1");
    for (pr, older, newer) in [("1", "9", "10"), ("2", "99.1", "100.1"), ("3", "12", "13.1"), ("4", "v1.0.0", "16")] {
        push(&f, pr, older, "older");
        let pushed = push_with(&f, pr, newer, "newer", &[]);
        assert_eq!(pushed.code(), 0, "{}", pushed.stderr());
        let newest = format!("pr-{pr}-{newer}");
        assert_eq!(alias(&f, pr), Some(newest.clone()), "{older} -> {newer}: {}", pushed.stdout());
        let status = f.run(&["status", "--json"], &[]).assert_code(0).json();
        let listed: Vec<&str> =
            status["releases"].as_array().unwrap().iter().filter_map(|r| r["version"].as_str()).collect();
        let older = format!("pr-{pr}-{older}");
        let at = |v: &str| listed.iter().position(|l| *l == v).unwrap_or_else(|| panic!("{v} in {listed:?}"));
        assert!(at(&older) < at(&newest), "status lists {newest} as the newer: {listed:?}");
    }
    let pr = PullRequest::parse("2").unwrap();
    f.with_site(async |site| site.aliases.write(pr, "pr-2-99.1").await.unwrap());
    f.backdate("pr-2-99.1", 3);
    let pruned = f.run(&["prune", "--preview-ttl", "2h", "--json"], &[]).assert_code(0).json();
    assert_eq!(pruned["deleted"], serde_json::json!(["pr-2-99.1"]), "{pruned}");
    assert_eq!(alias(&f, "2").as_deref(), Some("pr-2-100.1"), "the alias moves to the newest preview left");

    // A newer push whose smoke test failed is never linked, by its run or by the hand-on.
    let _edge = f.start_edge();
    push_with(&f, "2", "101.1", "broken", &FAILING_SMOKE).assert_code(3);
    assert_eq!(alias(&f, "2").as_deref(), Some("pr-2-100.1"));
    f.backdate("pr-2-100.1", 3);
    let pruned = f.run(&["prune", "--preview-ttl", "2h", "--json"], &[]).assert_code(0).json();
    assert_eq!(pruned["deleted"], serde_json::json!(["pr-2-100.1"]), "{pruned}");
    assert_eq!(alias(&f, "2"), None, "the link goes with the last preview that passed, never to pr-2-101.1");
}

/// A prune or close deleting a pool object the preview found in its listing (and so did not
/// upload) before the link: promote's completeness guard runs under the lock before the alias
/// moves, so the link never shows a release with a hole; exit 4 says a re-run repairs it, and the
/// re-run (whose stage puts the object back) links. The object is deleted while the run's smoke
/// test waits on a site URL answered by the test.
fn a_preview_whose_pool_object_went_before_its_link_is_refused_and_a_rerun_repairs_it(mut f: Fixture) {
    const CHUNK: &str = "assets/vendor-Zz9_Yy8-.js";
    let _edge = f.start_edge();
    f.deploy(&f.site("v1", &[("index.html", "live"), (CHUNK, "vendor")]), "1");
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let site_url = format!("http://{}/", listener.local_addr().unwrap());
    let dist = f.site("seven", &[("index.html", "seven"), (CHUNK, "vendor")]);
    let vars = [
        ("CUTOVER_DIST_DIR", dist.to_str().unwrap()),
        ("CUTOVER_PULL_REQUEST", "7"),
        ("GITHUB_RUN_NUMBER", "1"),
        ("CUTOVER_SITE_URL", site_url.as_str()),
    ];
    let child = f
        .command(&["preview"], &vars)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let (mut stream, _) = listener.accept().unwrap();
    f.with_site(async |site| site.store.delete(&[site.layout.shared_key(CHUNK)]).await.unwrap());
    let mut request = [0; 4096];
    let _ = stream.read(&mut request).unwrap();
    let reply = "HTTP/1.1 200 OK\r\nx-cutover-version: pr-7-1\r\ncontent-length: 5\r\nconnection: close\r\n\r\nseven";
    stream.write_all(reply.as_bytes()).unwrap();
    drop(stream);
    let refused = crate::harness::finish(child);
    assert_eq!(refused.code(), 4, "{}", refused.stderr());
    assert!(refused.stderr().contains(CHUNK) && refused.stderr().contains("a re-run"), "{}", refused.stderr());
    assert_eq!(alias(&f, "7"), None, "no link to a release with a hole");
    let rerun = f.run(&["preview"], &vars[..3]);
    assert_eq!(rerun.code(), 0, "{}", rerun.stderr());
    assert_eq!(alias(&f, "7").as_deref(), Some("pr-7-1"));
    assert!(crate::shared::pool(&f).contains(&CHUNK.to_owned()), "the re-run put the object back");
}

/// A preview set live by hand (cutover never does) is a value cutover did not write: `deploy`
/// refuses to replace it without `take-over-pointer` (exit 4, nothing staged) and `status` warns;
/// taken over, it is not "the previous version", nor where a rollback goes, nor kept by prune as
/// the one before.
fn a_preview_set_live_by_hand_is_a_foreign_value_and_never_the_version_before(mut f: Fixture) {
    let _edge = f.start_edge();
    f.deploy(&f.site("v1", &[("index.html", "one")]), "1");
    push(&f, "5", "6", "preview");
    f.with_site(async |site| site.pointer.write("pr-5-6", "set by hand").await.unwrap());
    let dist = f.site("v2", &[("index.html", "two")]);
    let deploy = [("CUTOVER_DIST_DIR", dist.to_str().unwrap()), ("CUTOVER_VERSION", "2")];
    let refused = f.run(&["deploy"], &deploy);
    assert_eq!(refused.code(), 4, "{}", refused.stderr());
    assert!(refused.stderr().contains("\"pr-5-6\", which is not a release of this site"), "{}", refused.stderr());
    assert_eq!(f.active().as_deref(), Some("pr-5-6"), "the pointer is left alone");
    let status = f.run(&["status"], &[]);
    status.assert_code(0);
    assert!(status.stdout().contains("which is not a release of this site"), "{}", status.stdout());

    f.run(&["deploy"], &[&deploy[..], &[("CUTOVER_TAKE_OVER_POINTER", "true")]].concat()).assert_code(0);
    // `previous-version` is the value the flip replaced, but the preview is no version to go back to.
    assert_eq!(f.outputs()["previous-version"], "pr-5-6");
    let history = f.with_site(async |site| site.pointer.history().await.unwrap());
    assert_eq!(cutover::pointer::rollback_target(&history), Some("1"), "{history:?}");
    f.backdate("pr-5-6", 3);
    let pruned = f.run(&["prune", "--preview-ttl", "2h", "--json"], &[]).assert_code(0).json();
    assert_eq!(pruned["deleted"], serde_json::json!(["pr-5-6"]), "{pruned}");
    assert_eq!(f.active().as_deref(), Some("2"));
}

/// The live pointer's state: its history, and on SSM the parameter's version number.
fn live_state(f: &Fixture) -> (Vec<String>, Option<i64>) {
    let history = f.with_site(async |site| site.pointer.history().await.unwrap());
    let parameter = f.env.get("CUTOVER_BUCKET").map(|_| {
        let ssm = f.moto_server().ssm();
        let runtime = tokio::runtime::Runtime::new().unwrap();
        runtime.block_on(ssm.get_parameter().name("/cutover/test/active").send()).unwrap().parameter.unwrap().version
    });
    (history.into_iter().map(|p| format!("{} {}", p.version, p.note)).collect(), parameter)
}

/// Waits past the edge's alias cache until the preview link serves `version`.
fn wait_for_link(edge: &Edge, link: &str, version: &str) -> crate::harness::Response {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let page = edge.get(link, None);
        if page.header("x-cutover-version") == Some(version) || std::time::Instant::now() > deadline {
            return page;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
}

fn each_push_is_a_new_preview_the_alias_follows_and_nothing_goes_live(mut f: Fixture) {
    let edge = f.start_edge();
    f.deploy(&f.site("v1", &[("index.html", "live")]), "1");
    let before = live_state(&f);

    let first = push(&f, "7", "11", "first push");
    assert_eq!(first["version"], "pr-7-11");
    assert_eq!(first["promoted"], "false");
    assert!(first["preview-url"].ends_with("/?override_build_number=pr-7"), "{}", first["preview-url"]);
    let summary = std::fs::read_to_string(f.dir.path().join("step_summary")).unwrap();
    assert!(summary.contains("override_build_number=pr-7"), "{summary}");
    let page = wait_for_link(&edge, "/?override_build_number=pr-7", "pr-7-11");
    assert_eq!((page.status, page.body.as_str()), (200, "first push"));
    assert_eq!(page.header("x-robots-tag"), Some("noindex"));

    let second = push(&f, "7", "12", "second push");
    assert_eq!(second["version"], "pr-7-12");
    let page = wait_for_link(&edge, "/?override_build_number=pr-7", "pr-7-12");
    assert_eq!(page.body, "second push", "the alias moved to the newest preview");
    // The cookie the link set keeps the alias, so it follows later pushes too.
    let pinned = edge.get("/", Some("Build-Number=pr-7; Override=true"));
    assert_eq!((pinned.body.as_str(), pinned.header("x-robots-tag")), ("second push", Some("noindex")));
    let older = edge.get("/?override_build_number=pr-7-11", None);
    assert_eq!(older.body, "first push", "the first preview stays reachable by its version");

    let host = format!("pr-7.localhost:{}", edge.url.rsplit(':').next().unwrap());
    let cleared = with_host_at(&edge, &host, "/?override_build_number=clear");
    assert!(
        cleared.starts_with("HTTP/1.1 404")
            && cleared.to_ascii_lowercase().contains("set-cookie: build-number=;")
            && cleared.contains("x-robots-tag: noindex")
            && cleared.ends_with("preview cookies cleared: a preview host shows only previews, never the live site\n"),
        "the clear link on a preview host clears the cookies and shows no copy of the live site: {cleared}"
    );
    for (hosts, what) in [
        (format!("Host: {host}\r\nHost: localhost").into_bytes(), "two Host headers"),
        ([b"Host: pr-7.localhost\xff".as_slice()].concat(), "a Host that is not ASCII"),
    ] {
        let answer =
            raw_at(&edge, &[b"GET / HTTP/1.1\r\n".as_slice(), &hosts, b"\r\nConnection: close\r\n\r\n"].concat());
        assert!(answer.starts_with("HTTP/1.1 400") && !answer.contains("push"), "{what}: {answer}");
    }
    let by_host = with_host(&edge, &host);
    assert!(by_host.ends_with("second push") && by_host.contains("x-robots-tag: noindex"), "{by_host}");
    for elsewhere in ["pr-7.evil.com", "localhost", &format!("localhost:{}", edge.url.rsplit(':').next().unwrap())] {
        let page = with_host(&edge, elsewhere);
        assert!(page.starts_with("HTTP/1.1 200") && page.ends_with("live"), "{elsewhere}: {page}");
        assert!(!page.to_ascii_lowercase().contains("x-robots-tag"), "{elsewhere}: {page}");
    }
    // Any other name under localhost is a preview host naming no pull request: never the live site.
    for hostile in ["PR-7.localhost", "pr-7.localhost.", "pr-7..localhost", "pr-7.localhost:x", "www.localhost"] {
        let page = with_host(&edge, hostile).to_ascii_lowercase();
        assert!(
            page.starts_with("http/1.1 404")
                && page.ends_with("no preview at this host: preview hosts are pr-<n> under the preview domain\n"),
            "{hostile}: {page}"
        );
        assert!(
            page.contains("x-robots-tag: noindex") && page.contains("cache-control: no-store"),
            "{hostile}: {page}"
        );
    }
    // A preview host of a pull request with no preview is no indexable copy of the live site.
    let port = edge.url.rsplit(':').next().unwrap().to_owned();
    let none = with_host(&edge, &format!("pr-12345.localhost:{port}")).to_ascii_lowercase();
    assert!(none.starts_with("http/1.1 404") && none.ends_with("no preview for pull request 12345\n"), "{none}");
    assert!(none.contains("x-robots-tag: noindex") && none.contains("cache-control: no-store"), "{none}");

    // With an override secret the link is signed, and unsigned links and host links pin nothing.
    f.set("CUTOVER_OVERRIDE_SECRET", "s3cret");
    let signed = f.spawn_edge(&[]);
    f.set("CUTOVER_SITE_URL", &signed.url);
    let third = push(&f, "7", "13", "third push");
    let link = third["preview-url"].strip_prefix(signed.url.as_str()).unwrap().to_owned();
    assert!(link.starts_with("/?override_build_number=pr-7%7E"), "{link}");
    assert_eq!(wait_for_link(&signed, &link, "pr-7-13").body, "third push");
    let unsigned = signed.get("/?override_build_number=pr-7", None);
    assert_eq!((unsigned.body.as_str(), unsigned.header("x-cutover-override")), ("live", Some("unsigned")));
    // A host carries no signature: with the secret a preview host shows no preview, and says so.
    let by_host = with_host(&signed, &host.replace(edge.url.rsplit(':').next().unwrap(), "1"));
    assert!(
        by_host.starts_with("HTTP/1.1 404")
            && by_host.ends_with("preview hosts are off with override-secret: use the signed preview link\n"),
        "{by_host}"
    );
    let domain = [("CUTOVER_PREVIEW_DOMAIN", "preview.example.com")];
    let bundled = f.run(&["edge", "bundle", "--dry-run", "--json"], &domain);
    if f.env.contains_key("CUTOVER_BUCKET") {
        assert_eq!(bundled.assert_code(0).json()["previewDomain"], "preview.example.com");
    }
    f.env.remove("CUTOVER_OVERRIDE_SECRET");
    f.set("CUTOVER_SITE_URL", &edge.url);
    f.set("CUTOVER_PREVIEW_DOMAIN", "preview.example.com");
    // Only the SSM style's router answers preview hosts; elsewhere the link stays the query link.
    let expected = match f.env.contains_key("CUTOVER_BUCKET") {
        true => "https://pr-7.preview.example.com/".to_owned(),
        false => format!("{}/?override_build_number=pr-7", edge.url),
    };
    assert_eq!(push(&f, "7", "14", "fourth push")["preview-url"], expected);

    assert_eq!(live_state(&f), before, "no preview touches the live pointer");
    assert_eq!(edge.wait_for_active("1").body, "live");
    let status = f.run(&["status", "--json"], &[]).assert_code(0).json();
    assert_eq!(status["active"], "1", "{status}");
}

fn previews_are_never_promoted_deployed_or_rolled_back_to(mut f: Fixture) {
    let _edge = f.start_edge();
    f.deploy(&f.site("v1", &[("index.html", "live")]), "1");
    push(&f, "3", "5", "preview");
    let before = live_state(&f);
    let dist = f.site("v2", &[("index.html", "two")]);
    let dist = dist.to_str().unwrap();
    for (args, version) in [
        (&["promote", "pr-3-5"][..], None),
        (&["promote"][..], Some("pr-3-5")),
        (&["rollback", "--to", "pr-3-5"][..], None),
        (&["deploy"][..], Some("pr-3-6")),
        (&["stage"][..], Some("pr-3-6")),
        (&["stage"][..], Some("pr-61")),
    ] {
        let extra: Vec<(&str, &str)> =
            [("CUTOVER_DIST_DIR", dist)].into_iter().chain(version.map(|v| ("CUTOVER_VERSION", v))).collect();
        let ran = f.run(args, &extra);
        assert_eq!(ran.code(), 4, "{args:?}: {}", ran.stderr());
        assert!(ran.stderr().contains("merge the pull request and release instead"), "{}", ran.stderr());
    }
    assert_eq!(live_state(&f), before);
    let staged = f.with_site(async |site| read_record(&site, &site.layout.record_key("pr-3-6")).await.unwrap());
    assert!(staged.is_none(), "a refused deploy or stage stages nothing");
    for refused in ["pr-3-6", "pr-61"] {
        let files = f.with_site(async |site| site.store.list(&site.layout.version_dir(refused)).await.unwrap());
        assert!(files.is_empty(), "{refused}: {files:?}");
    }
    // The order guard does not see previews: the next release goes live.
    f.deploy(&f.site("v2", &[("index.html", "two")]), "2");
    assert_eq!(f.active().as_deref(), Some("2"));

    // A push whose smoke test fails leaves the alias on the last good preview.
    push_with(&f, "3", "7", "broken", &FAILING_SMOKE).assert_code(3);
    let alias = f.with_site(async |site| site.aliases.read(PullRequest::parse("3").unwrap()).await.unwrap());
    assert_eq!(alias.as_deref(), Some("pr-3-5"));
    let status = f.run(&["status"], &[]).assert_code(0).stdout();
    assert!(status.lines().any(|l| l.contains("pr-3-7") && l.contains("smoke failed")), "{status}");
    // Re-run with a smoke test that passes: the alias moves and `status` drops the old verdict.
    push_with(&f, "3", "7", "broken", &[]).assert_code(0);
    assert_eq!(self::alias(&f, "3").as_deref(), Some("pr-3-7"));
    let status = f.run(&["status"], &[]).assert_code(0).stdout();
    assert!(!status.contains("smoke failed"), "{status}");
}

fn close_deletes_the_alias_and_the_previews_of_its_pull_request_only(mut f: Fixture) {
    let edge = f.start_edge();
    f.deploy(&f.site("v1", &[("index.html", "live")]), "1");
    push(&f, "9", "1", "nine one");
    push(&f, "9", "2", "nine two");
    push(&f, "10", "3", "ten");
    let before = live_state(&f);
    let closed = [("GITHUB_EVENT_NAME", "pull_request"), ("GITHUB_REF", "refs/pull/9/merge")];
    let dry = f.run(&["preview", "--close", "--dry-run"], &closed).assert_code(0).stdout();
    assert!(dry.contains("dry run: nothing was deleted"), "{dry}");
    assert!(dry.contains("alias pr-9 would be deleted\nwould delete: [\"pr-9-1\", \"pr-9-2\"]"), "{dry}");
    assert!(!dry.contains("alias pr-9 deleted") && !dry.contains("\ndeleted:"), "{dry}");
    assert_eq!(alias(&f, "9").as_deref(), Some("pr-9-2"), "a dry run deletes nothing");
    let planned = f.run(&["preview-close", "--dry-run", "--json"], &closed).assert_code(0).json();
    assert_eq!(planned["dry_run"], true, "{planned}");
    let report = f.run(&["preview-close", "--json"], &closed).assert_code(0).json();
    assert_eq!(report["deleted"], serde_json::json!(["pr-9-1", "pr-9-2"]), "{report}");
    assert_eq!(report["dry_run"], false, "{report}");
    assert_eq!(report["alias_deleted"], true);
    let left = f.with_site(async |site| {
        let mut left = Vec::new();
        for version in ["pr-9-1", "pr-9-2", "pr-10-3", "1"] {
            let files = site.store.list(&site.layout.version_dir(version)).await.unwrap().len();
            let recorded = read_record(&site, &site.layout.record_key(version)).await.unwrap().is_some();
            left.push((files, recorded));
        }
        let pr = |n| cutover::pull_request::PullRequest::parse(n).unwrap();
        let aliases = (site.aliases.read(pr("9")).await.unwrap(), site.aliases.read(pr("10")).await.unwrap());
        (left, aliases)
    });
    assert_eq!(left.0, [(0, false), (0, false), (1, true), (1, true)]);
    assert_eq!(left.1, (None, Some("pr-10-3".to_owned())));
    let gone = wait_for_link(&edge, "/?override_build_number=pr-9", "1");
    assert_eq!((gone.body.as_str(), gone.header("x-cutover-override")), ("live", Some("unknown-version")));
    // `preview --close` is the same, and closing again finds nothing to do.
    let again = f.run(&["preview", "--close", "--json"], &closed).assert_code(0).json();
    assert_eq!((again["deleted"].clone(), again["alias_deleted"].clone()), (serde_json::json!([]), false.into()));
    assert_eq!(live_state(&f), before);
}

fn prune_deletes_previews_past_their_ttl_and_never_counts_them_in_keep(mut f: Fixture) {
    let _edge = f.start_edge();
    for version in ["1", "2"] {
        f.deploy(&f.site(&format!("v{version}"), &[("index.html", version)]), version);
    }
    push(&f, "4", "1", "old");
    push(&f, "5", "1", "old too");
    push(&f, "5", "2", "new");
    for version in ["1", "pr-4-1", "pr-5-1"] {
        f.backdate(version, 3);
    }
    // Keep 1: release 2 is live, 1 the one before; no preview counts, none is older than 14 days.
    let kept = f.run(&["prune", "--json"], &[("CUTOVER_KEEP", "1")]).assert_code(0).json();
    assert_eq!(kept["deleted"], serde_json::json!([]), "{kept}");
    let pruned = f.run(&["prune", "--json"], &[("CUTOVER_KEEP", "1"), ("CUTOVER_PREVIEW_TTL", "2h")]);
    let pruned = pruned.assert_code(0).json();
    let mut deleted: Vec<String> = serde_json::from_value(pruned["deleted"].clone()).unwrap();
    deleted.sort();
    assert_eq!(deleted, ["pr-4-1", "pr-5-1"], "{pruned}");
    let aliases = f.with_site(async |site| {
        let pr = |n| cutover::pull_request::PullRequest::parse(n).unwrap();
        (site.aliases.read(pr("4")).await.unwrap(), site.aliases.read(pr("5")).await.unwrap())
    });
    assert_eq!(aliases, (None, Some("pr-5-2".to_owned())), "an alias goes with the preview it named");
    assert_eq!(f.active().as_deref(), Some("2"));
    f.assert_releases_intact();
}

/// `prune --preview-ttl 1h` without `keep` (a scheduled job's cleanup, e.g. on CircleCI, where
/// nothing runs when a pull request closes) deletes the expired previews and no release at all.
fn prune_with_only_a_preview_ttl_deletes_expired_previews_and_no_release(mut f: Fixture) {
    let _edge = f.start_edge();
    for version in ["1", "2", "3"] {
        f.deploy(&f.site(&format!("v{version}"), &[("index.html", version)]), version);
    }
    push(&f, "4", "1", "old");
    push(&f, "4", "2", "new");
    for version in ["1", "pr-4-1"] {
        f.backdate(version, 3);
    }
    let pruned = f.run(&["prune", "--preview-ttl", "1h", "--json"], &[]).assert_code(0).json();
    assert_eq!(pruned["deleted"], serde_json::json!(["pr-4-1"]), "release 1 is old but stays: {pruned}");
    assert_eq!(f.active().as_deref(), Some("3"));
    f.assert_releases_intact();
}

fn hostile_pull_request_numbers_are_refused_before_anything_is_written(f: Fixture) {
    let dist = f.site("v1", &[("index.html", "x")]);
    let dist = dist.to_str().unwrap();
    let cases: &[(&[(&str, &str)], &str)] = &[
        (&[("CUTOVER_PULL_REQUEST", "PR-1")], "pull-request"),
        (&[("CUTOVER_PULL_REQUEST", "1/../2")], "pull-request"),
        (&[("CUTOVER_PULL_REQUEST", "0")], "pull-request"),
        (&[("CUTOVER_PULL_REQUEST", "99999999999999999999")], "pull-request"),
        (&[("GITHUB_EVENT_NAME", "pull_request"), ("GITHUB_REF", "refs/pull/../merge")], "GITHUB_REF"),
        (&[("CIRCLE_PULL_REQUEST", "https://github.com/o/r/pull/1%2F..")], "CIRCLE_PULL_REQUEST"),
        (&[], "pull-request"),
    ];
    for (vars, input) in cases {
        let extra = [&[("CUTOVER_DIST_DIR", dist), ("GITHUB_RUN_NUMBER", "1")][..], vars].concat();
        let ran = f.run(&["preview"], &extra);
        assert_eq!(ran.code(), 2, "{vars:?}: {}", ran.stderr());
        assert!(ran.stderr().contains(&format!("input `{input}`")), "{vars:?}: {}", ran.stderr());
    }
    let records = f.with_site(async |site| site.store.list(&site.layout.cutover_dir()).await.unwrap_or_default());
    assert!(records.is_empty(), "nothing was written: {records:?}");
}

/// `GET /` with the `Host` header a browser sends for `host`; the whole answer as text.
fn with_host(edge: &Edge, host: &str) -> String {
    with_host_at(edge, host, "/")
}

/// `path` fetched with the `Host` header `host`.
fn with_host_at(edge: &Edge, host: &str, path: &str) -> String {
    raw_at(edge, format!("GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n").as_bytes())
}

/// The answer to a request written byte for byte.
fn raw_at(edge: &Edge, request: &[u8]) -> String {
    let mut stream = std::net::TcpStream::connect(edge.url.trim_start_matches("http://")).unwrap();
    stream.write_all(request).unwrap();
    let mut answer = Vec::new();
    stream.read_to_end(&mut answer).unwrap();
    String::from_utf8_lossy(&answer).into_owned()
}
