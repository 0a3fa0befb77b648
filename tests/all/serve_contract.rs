//! `cutover serve` keeps the edge contract when the store changes under it or a request carries
//! what a 404 must not honour: a pruned release stops being pinnable at once, a missing page
//! ignores `Range` and conditions, and a damaged routing index falls back to the record.

use bytes::Bytes;
use cutover::store::{Condition, json_meta};

use crate::harness::{Fixture, http_send, on_both_backends};

on_both_backends!(
    a_pruned_release_is_not_pinnable_once_pruned,
    a_missing_page_answers_404_whatever_range_or_condition_it_carries,
    a_damaged_routing_index_falls_back_to_the_record,
    a_response_with_cookies_ignores_range_and_a_large_not_found_page_answers_plainly,
);

const PIN: &str = "Build-Number=2; Override=true";

fn a_pruned_release_is_not_pinnable_once_pruned(mut f: Fixture) {
    let edge = f.start_edge();
    for version in ["1", "2", "3", "4"] {
        let dist = f.site(&format!("v{version}"), &[("index.html", version), ("404.html", &format!("gone {version}"))]);
        f.deploy(&dist, version);
    }
    edge.wait_for_active("4");
    let previewed = edge.get("/?override_build_number=2", None);
    assert_eq!((previewed.header("x-cutover-version"), previewed.body.as_str()), (Some("2"), "2"));
    assert_eq!(edge.get("/nope", Some(PIN)).body, "gone 2", "the pin reaches version 2's 404 page");
    for version in ["1", "2"] {
        f.backdate(version, 2);
    }
    let pruned = f.run(&["prune", "--json"], &[("CUTOVER_KEEP", "0")]).assert_code(0).json();
    assert_eq!(pruned["deleted"], serde_json::json!(["2", "1"]));
    // The first request after the prune finds version 2's page gone and routes again.
    let missing = edge.get("/nope", Some(PIN));
    assert_eq!(
        (
            missing.status,
            missing.header("x-cutover-version"),
            missing.header("x-cutover-override"),
            missing.body.as_str()
        ),
        (404, Some("4"), Some("unknown-version"), "gone 4")
    );
    let home = edge.get("/", Some(PIN));
    assert_eq!((home.header("x-cutover-version"), home.body.as_str()), (Some("4"), "4"));
    let link = edge.get("/?override_build_number=2", None);
    assert_eq!(
        (link.header("x-cutover-version"), link.header("x-cutover-override")),
        (Some("4"), Some("unknown-version"))
    );
    assert!(link.header("set-cookie").is_none(), "a pruned release is never pinned again");
}

fn a_missing_page_answers_404_whatever_range_or_condition_it_carries(mut f: Fixture) {
    let edge = f.start_edge();
    let dist = f.site("v1", &[("index.html", "home"), ("404.html", "missing page")]);
    f.deploy(&dist, "1");
    edge.wait_for_active("1");
    for headers in [
        vec![("range", "bytes=0-3")],
        vec![("if-none-match", "*")],
        vec![("if-modified-since", "Fri, 01 Jan 2100 00:00:00 GMT")],
        vec![("range", "bytes=100-")],
    ] {
        for path in ["/nope", "/404.html"] {
            let answer = http_send(&edge.url, "GET", path, &headers, "").expect("requesting the edge");
            assert_eq!((answer.status, answer.body.as_str()), (404, "missing page"), "{path} {headers:?}");
            assert_eq!(answer.header("content-range"), None, "{path} {headers:?}");
        }
    }
    let page = http_send(&edge.url, "GET", "/", &[("range", "bytes=0-1")], "").expect("requesting the edge");
    assert_eq!((page.status, page.body.as_str()), (206, "ho"), "a page that exists still honours Range");
}

fn a_damaged_routing_index_falls_back_to_the_record(mut f: Fixture) {
    for version in ["1", "2"] {
        let dist = f.site(&format!("v{version}"), &[("index.html", version), ("about/index.html", "about")]);
        f.deploy(&dist, version);
    }
    f.with_site(async |site| {
        let key = cutover::route_index::key(&site.layout, "1");
        site.store.put(&key, Bytes::from("{\"format\":1,\"fil"), &json_meta(), Condition::Always).await.unwrap();
    });
    let edge = f.start_edge();
    let about = edge.get("/about/?override_build_number=1", None);
    assert_eq!(
        (about.status, about.header("x-cutover-version"), about.header("x-cutover-override"), about.body.as_str()),
        (200, Some("1"), None, "about")
    );
    assert!(about.header("set-cookie").is_some(), "version 1 is a recorded release");
    let log = std::fs::read_to_string(&edge.log).unwrap();
    assert!(log.contains("routing index of 1") && log.contains("its record"), "{log}");
}

fn a_response_with_cookies_ignores_range_and_a_large_not_found_page_answers_plainly(mut f: Fixture) {
    let edge = f.start_edge();
    let big = "x".repeat(33 * 1024);
    let dist = f.site("v1", &[("index.html", "home"), ("404.html", &big)]);
    f.deploy(&dist, "1");
    edge.wait_for_active("1");
    for range in ["bytes=100-", "bytes=-0", "bytes=0-1"] {
        let headers = [("range", range), ("if-none-match", "*")];
        let home =
            http_send(&edge.url, "GET", "/?override_build_number=clear", &headers, "").expect("requesting the edge");
        assert_eq!((home.status, home.body.as_str()), (200, "home"), "{range}");
        assert!(home.header("set-cookie").is_some(), "{range}: the clearing cookies are sent");
    }
    let missing = edge.get("/nope?override_build_number=clear", None);
    assert_eq!(
        (missing.status, missing.body.as_str()),
        (404, "not found\n"),
        "a page over 32 KiB is not sent with cookies"
    );
    assert!(missing.header("set-cookie").is_some());
    let plain = edge.get("/nope", None);
    assert_eq!((plain.status, plain.body.len()), (404, big.len()), "without cookies the page is the origin's");
}
