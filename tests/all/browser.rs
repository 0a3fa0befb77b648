//! A real browser on `cutover serve`: headless Chromium driven by `tests/browser/browse.mjs`
//! (playwright-core), so links, redirects and cookies are followed the way visitors' browsers
//! follow them, not the way a test client is told to.
//!
//! The scenarios assert what a static host does and what overrides may do (issue 11, items 1 and
//! 4): links reach their pages; an override naming no release, or a signed preview link whose
//! expiry was changed, sets no cookie; an intact signed link pins its version across navigation.

use std::path::Path;
use std::process::Command;

use crate::harness::{Edge, Fixture, on_both_backends};

on_both_backends!(
    a_browser_follows_links_between_the_pages_of_a_multi_page_site,
    a_browser_sent_an_unknown_override_keeps_no_cookie,
    a_signed_preview_link_pins_the_preview_across_navigation,
    a_tampered_preview_link_pins_nothing,
);

/// Writes a multi-page site as Hugo, Jekyll or Astro emit one into `name`.
pub(crate) fn write_pages(f: &Fixture, name: &str) -> std::path::PathBuf {
    let page = |name: &str, links: &str| format!("<!doctype html><title>{name}</title><h1>{name}</h1>{links}");
    let home = page("home", r#"<a id="about" href="/about/">about</a> <a id="post" href="/blog/post-1/">post</a>"#);
    let about = page("about", r#"<a id="post" href="/blog/post-1/">post</a> <a id="home" href="/">home</a>"#);
    let post = page("post-1", r#"<a id="about-relative" href="../../about/">about</a> <a id="home" href="/">home</a>"#);
    f.site(name, &[("index.html", &home), ("about/index.html", &about), ("blog/post-1/index.html", &post)])
}

/// The multi-page site live as version 1 behind `cutover serve`.
fn multi_page_site(mut f: Fixture) -> (Fixture, Edge) {
    let edge = f.start_edge();
    f.deploy(&write_pages(&f, "v1"), "1");
    edge.wait_for_active("1");
    (f, edge)
}

/// With `override-secret`: version 1 live, version 2 staged; the `preview-url` stage printed for it.
fn signed_preview(mut f: Fixture) -> (Fixture, Edge, String) {
    f.set("CUTOVER_OVERRIDE_SECRET", "browser-secret");
    let (f, edge) = multi_page_site(f);
    let dist = write_pages(&f, "v2").display().to_string();
    f.run(&["stage"], &[("CUTOVER_DIST_DIR", &dist), ("CUTOVER_VERSION", "2")]).assert_code(0);
    let preview = f.outputs()["preview-url"].clone();
    assert!(preview.contains("override_build_number=2%7E"), "a signed link: {preview}");
    (f, edge, preview)
}

/// Runs one scenario of `browse.mjs` against the edge; what the browser saw.
fn browse(edge: &Edge, scenario: &str) -> serde_json::Value {
    browse_with(edge, scenario, &[])
}

/// [`browse`] with the scenario's arguments.
pub(crate) fn browse_with(edge: &Edge, scenario: &str, args: &[&str]) -> serde_json::Value {
    browse_at(&edge.url, scenario, args)
}

/// [`browse_with`] at another base URL of the edge (`http://pr-7.localhost:<port>`).
pub(crate) fn browse_at(base: &str, scenario: &str, args: &[&str]) -> serde_json::Value {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/browser");
    let missing = "is missing: run scripts/test, which installs it";
    assert!(root.join("node_modules/playwright-core").exists(), "tests/browser/node_modules/playwright-core {missing}");
    assert!(Path::new("/usr/bin/chromium").exists(), "/usr/bin/chromium (Debian's chromium package) {missing}");
    let output = Command::new("node")
        .arg(root.join("browse.mjs"))
        .args([base, scenario])
        .args(args)
        .output()
        .expect("running node tests/browser/browse.mjs");
    let (stdout, stderr) = (String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr));
    assert!(output.status.success(), "browse.mjs {scenario} failed\nstdout:\n{stdout}\nstderr:\n{stderr}");
    serde_json::from_str(stdout.trim()).unwrap_or_else(|e| panic!("browse.mjs printed no JSON ({e}):\n{stdout}"))
}

/// (step, page reached, status, version) of each visit.
pub(crate) fn visits(seen: &serde_json::Value) -> Vec<(String, String, u64, String)> {
    let text = |v: &serde_json::Value| v.as_str().unwrap_or("-").to_owned();
    seen["visits"]
        .as_array()
        .expect("visits")
        .iter()
        .map(|v| (text(&v["step"]), text(&v["page"]), v["status"].as_u64().unwrap_or(0), text(&v["version"])))
        .collect()
}

fn a_browser_follows_links_between_the_pages_of_a_multi_page_site(f: Fixture) {
    let (_f, edge) = multi_page_site(f);
    let seen = browse(&edge, "links");
    let expected: Vec<_> = [
        ("open /", "home"),
        ("click about", "about"),
        ("click post-1", "post-1"),
        ("click the relative link to about", "about"),
        ("click home", "home"),
        ("type /about", "about"),
        ("click post-1 from /about", "post-1"),
    ]
    .into_iter()
    .map(|(step, page)| (step.to_owned(), page.to_owned(), 200, "1".to_owned()))
    .collect();
    assert_eq!(visits(&seen), expected, "each link reaches its own page (what the browser saw: {seen})");
    let typed = &seen["visits"][5]["path"];
    assert!(
        typed == "/about/" || typed == "/about",
        "`/about` is redirected to `/about/` or served in place, not elsewhere: {typed}"
    );
    assert_eq!(seen["cookies"], serde_json::json!([]), "browsing pins nothing");
}

fn a_browser_sent_an_unknown_override_keeps_no_cookie(f: Fixture) {
    let (_f, edge) = multi_page_site(f);
    let seen = browse(&edge, "unknown-override");
    let expected: Vec<_> = ["open /?override_build_number=77", "open / again"]
        .into_iter()
        .map(|step| (step.to_owned(), "home".to_owned(), 200, "1".to_owned()))
        .collect();
    assert_eq!(visits(&seen), expected, "the live release is served (what the browser saw: {seen})");
    assert_eq!(seen["cookies"], serde_json::json!([]), "an override naming no release sets no cookie");
}

/// The steps of `browse.mjs preview`, each reaching its page from `version`.
pub(crate) fn preview_visits(version: &str) -> Vec<(String, String, u64, String)> {
    [
        ("open the link", "home"),
        ("click about", "about"),
        ("click post-1", "post-1"),
        ("click home", "home"),
        ("type /about", "about"),
    ]
    .into_iter()
    .map(|(step, page)| (step.to_owned(), page.to_owned(), 200, version.to_owned()))
    .collect()
}

fn a_signed_preview_link_pins_the_preview_across_navigation(f: Fixture) {
    let (_f, edge, preview) = signed_preview(f);
    let seen = browse_with(&edge, "preview", &[&preview]);
    assert_eq!(visits(&seen), preview_visits("2"), "every page comes from the preview (what the browser saw: {seen})");
    let cookies = seen["cookies"].as_array().expect("cookies");
    let cookie = |name: &str| cookies.iter().find(|c| c["name"] == name).and_then(|c| c["value"].as_str());
    assert_eq!(cookie("Override"), Some("true"), "{seen}");
    assert!(cookie("Build-Number").is_some_and(|v| v.starts_with("2~")), "the signed value pins: {seen}");
}

fn a_tampered_preview_link_pins_nothing(f: Fixture) {
    let (_f, edge, preview) = signed_preview(f);
    // Another expiry under the same signature: the link a visitor could forge to stay pinned longer.
    let (link, rest) = preview.split_once("2%7E").expect("a signed link");
    let (expiry, signature) = rest.split_once("%7E").expect("an expiry");
    let later = expiry.parse::<u64>().expect("an expiry in seconds") + 3600;
    let tampered = format!("{link}2%7E{later}%7E{signature}");
    let seen = browse_with(&edge, "preview", &[&tampered]);
    assert_eq!(visits(&seen), preview_visits("1"), "the live release answers (what the browser saw: {seen})");
    assert_eq!(seen["cookies"], serde_json::json!([]), "a tampered link sets no cookie");
}
