//! `cutover serve` when the active version cannot be trusted (issue 11, item 5): a pointer that
//! cannot be read answers 503 with `Retry-After` and still serves overrides of recorded releases;
//! an unreadable or invalid value read later keeps the last good one, and says so in the log.

use std::time::Duration;

use crate::harness::{Edge, Fixture, on_both_backends};

on_both_backends!(an_invalid_active_value_keeps_the_last_good_one);

/// Releases 1 and 2, version 2 live.
fn two_releases(f: &Fixture) {
    f.deploy(&f.site("v1", &[("index.html", "one")]), "1");
    f.deploy(&f.site("v2", &[("index.html", "two")]), "2");
}

/// The local store's pointer file.
fn pointer_file(f: &Fixture) -> std::path::PathBuf {
    f.dir.path().join("store/pointers/site/active.json")
}

/// Writes `value` where the active version lives, bypassing cutover's checks.
fn write_active(f: &Fixture, value: &str) {
    if f.env.contains_key("CUTOVER_BUCKET") {
        let ssm = f.moto_server().ssm();
        let runtime = tokio::runtime::Runtime::new().expect("runtime");
        let put = ssm.put_parameter().name("/cutover/test/active").value(value).overwrite(true);
        runtime.block_on(put.send()).expect("writing the parameter");
    } else {
        let history = serde_json::json!({"history": [{"version": value, "at": null, "note": "by hand"}]});
        std::fs::write(pointer_file(f), history.to_string()).expect("writing the pointer file");
    }
}

/// Past serve's one-second cache of the active version.
fn past_the_cache() {
    std::thread::sleep(Duration::from_millis(1_200));
}

fn log(edge: &Edge) -> String {
    std::fs::read_to_string(&edge.log).unwrap_or_default()
}

#[test]
fn a_damaged_pointer_answers_503_and_still_serves_overrides() {
    let f = Fixture::local();
    two_releases(&f);
    std::fs::write(pointer_file(&f), "{\"history\": [{\"vers").expect("damaging the pointer");
    let edge = f.spawn_edge(&[]);
    let live = edge.get("/", None);
    assert_eq!((live.status, live.header("retry-after")), (503, Some("5")), "{}", live.body);
    assert_eq!(live.header("x-cutover-version"), None);
    assert!(!live.body.contains("active.json"), "no internal detail in the answer: {}", live.body);
    let previewed = edge.get("/?override_build_number=1", None);
    assert_eq!((previewed.status, previewed.header("x-cutover-version")), (200, Some("1")));
    assert_eq!(previewed.body, "one");
    let pinned = edge.get("/", Some("Build-Number=2; Override=true"));
    assert_eq!((pinned.status, pinned.body.as_str()), (200, "two"));
    let unknown = edge.get("/?override_build_number=77", None);
    assert_eq!((unknown.status, unknown.header("x-cutover-override")), (503, Some("unknown-version")));
    assert!(log(&edge).contains("pointer"), "the failed read is logged: {}", log(&edge));
}

fn an_invalid_active_value_keeps_the_last_good_one(f: Fixture) {
    two_releases(&f);
    let edge = f.spawn_edge(&[]);
    assert_eq!(edge.wait_for_active("2").body, "two");
    for invalid in ["../x", "_cutover/releases", "2\n"] {
        write_active(&f, invalid);
        past_the_cache();
        let answer = edge.get("/", None);
        assert_eq!((answer.status, answer.header("x-cutover-version")), (200, Some("2")), "{invalid:?}");
        assert!(log(&edge).contains(&format!("{invalid:?} is not a version")), "{invalid:?} is logged: {}", log(&edge));
    }
    if !f.env.contains_key("CUTOVER_BUCKET") {
        std::fs::write(pointer_file(&f), "not json").expect("damaging the pointer");
        past_the_cache();
        let answer = edge.get("/", None);
        assert_eq!((answer.status, answer.header("x-cutover-version")), (200, Some("2")), "a damaged file");
        assert!(log(&edge).contains("is damaged"), "{}", log(&edge));
    }
    write_active(&f, "1");
    assert_eq!(edge.wait_for_active("1").body, "one", "a valid value is taken again");
}
