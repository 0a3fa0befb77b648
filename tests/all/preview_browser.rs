//! A pull request's preview in a real browser on `cutover serve` (headless Chromium, as
//! `browser.rs`): the host `pr-<n>.localhost` shows the preview on every page; the alias link sets
//! the cookies and the preview persists across navigation; the clear link drops them.

use crate::browser::{browse_at, browse_with, preview_visits, visits, write_pages};
use crate::harness::{Fixture, on_both_backends};

on_both_backends!(a_browser_sees_a_pull_requests_preview_by_host_and_by_link_until_cleared);

fn a_browser_sees_a_pull_requests_preview_by_host_and_by_link_until_cleared(mut f: Fixture) {
    let edge = f.start_edge();
    f.deploy(&write_pages(&f, "v1"), "1");
    edge.wait_for_active("1");
    let dist = write_pages(&f, "pr").display().to_string();
    let event = [
        ("CUTOVER_DIST_DIR", dist.as_str()),
        ("GITHUB_EVENT_NAME", "pull_request"),
        ("GITHUB_REF", "refs/pull/7/merge"),
        ("GITHUB_RUN_NUMBER", "1"),
    ];
    f.run(&["preview"], &event).assert_code(0);
    let link = f.outputs()["preview-url"].clone();

    let seen = browse_with(&edge, "preview", &[&link]);
    assert_eq!(visits(&seen), preview_visits("pr-7-1"), "every page comes from the preview: {seen}");
    let cookies = seen["cookies"].as_array().expect("cookies");
    let cookie = |name: &str| cookies.iter().find(|c| c["name"] == name).and_then(|c| c["value"].as_str());
    assert_eq!((cookie("Build-Number"), cookie("Override")), (Some("pr-7"), Some("true")), "{seen}");

    let host = edge.url.replace("127.0.0.1", "pr-7.localhost");
    let seen = browse_at(&host, "preview", &[&format!("{host}/")]);
    assert_eq!(visits(&seen), preview_visits("pr-7-1"), "the host shows the preview: {seen}");
    assert_eq!(seen["cookies"], serde_json::json!([]), "a host link sets no cookie");

    let seen = browse_with(&edge, "preview-clear", &[&link]);
    let steps: Vec<(String, String)> = visits(&seen).into_iter().map(|(step, _, _, version)| (step, version)).collect();
    let expected =
        [("open the link", "pr-7-1"), ("click about", "pr-7-1"), ("open the clear link", "1"), ("type /about", "1")];
    assert_eq!(steps, expected.map(|(s, v)| (s.to_owned(), v.to_owned())), "{seen}");
    assert_eq!(seen["cookies"], serde_json::json!([]), "the clear link drops the cookies");
}
