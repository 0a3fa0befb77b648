//! What a redeploy costs in S3 requests besides its uploads (issue 13's bound: changed + unhashed
//! + 5): each guard of staging asks once, none twice; counted on moto through the proxy.

use std::sync::{Arc, Mutex};

use crate::harness::Fixture;
use crate::proxy::Proxy;

/// A bundler's build: fingerprinted chunks under `assets/` (pooled) and unhashed pages.
fn build(f: &Fixture, name: &str, chunks: &[&str], pages: &str) -> String {
    let mut files: Vec<(String, String)> =
        chunks.iter().map(|hash| (format!("assets/chunk-{hash}.js"), format!("chunk {hash}"))).collect();
    files.extend(["index.html", "about/index.html", "robots.txt"].map(|p| (p.to_owned(), format!("{pages} {p}"))));
    let borrowed: Vec<(&str, &str)> = files.iter().map(|(p, b)| (p.as_str(), b.as_str())).collect();
    f.site(name, &borrowed).display().to_string()
}

/// One S3 request as the list below names it: the method (`LIST` for a listing) and the key or
/// the listed prefix, without the bucket.
fn named(method: &str, target: &str) -> String {
    let (path, query) = target.split_once('?').unwrap_or((target, ""));
    let key = path.trim_start_matches("/site-bucket").trim_start_matches('/');
    let listed = query.split('&').find_map(|pair| pair.strip_prefix("prefix="));
    match (method, listed) {
        ("GET", Some(prefix)) => format!("LIST {}", prefix.replace("%2F", "/")),
        _ => format!("{method} {key}"),
    }
}

/// The next build of a live release (two of four chunks renamed, every page rewritten): besides
/// its five uploads, `stage` makes each of these requests once, in this order.
#[test]
fn a_redeploy_asks_each_guard_once() {
    let mut f = Fixture::moto();
    // No renewal of the staging claim within the test: each would add a read and a write.
    f.set("CUTOVER_LOCK_LEASE", "10m");
    let first = build(&f, "v1", &["AAAAAAAA", "BBBBBBBB", "CCCCCCCC", "DDDDDDDD"], "one");
    f.run(&["deploy"], &[("CUTOVER_DIST_DIR", &first), ("CUTOVER_VERSION", "1")]).assert_code(0);
    let seen = Arc::new(Mutex::new(Vec::new()));
    let proxy = {
        let seen = seen.clone();
        Proxy::start(&f.moto_server().endpoint, move |request| {
            // The pointer's SSM calls are not S3 requests.
            if request.ssm_action().is_none() {
                seen.lock().unwrap().push(named(&request.method, &request.target));
            }
            None
        })
    };
    let next = build(&f, "v2", &["AAAAAAAA", "BBBBBBBB", "EEEEEEEE", "FFFFFFFF"], "two");
    let run =
        f.run(&["stage"], &[("CUTOVER_DIST_DIR", &next), ("CUTOVER_VERSION", "2"), ("AWS_ENDPOINT_URL", &proxy.url)]);
    run.assert_code(0);
    let seen = seen.lock().unwrap().clone();
    let uploads = ["PUT site/2/", "PUT site/_shared/"];
    let (sent, besides): (Vec<String>, Vec<String>) =
        seen.into_iter().partition(|r| uploads.iter().any(|u| r.starts_with(u)));
    assert_eq!(sent.len(), 5, "two new chunks and three pages are sent: {sent:#?}");
    let expected = [
        // The live release: is the pointer's value a release of this site; what can be copied.
        "GET site/_cutover/releases/1.json",
        // No site around this prefix, none inside this version's folder, before anything is written.
        "LIST _cutover/",
        "LIST site/2/_cutover/",
        // The staging claim, then whether the version was recorded (by a run that held it before).
        "PUT site/_cutover/staging/2.json",
        "GET site/_cutover/releases/2.json",
        // What an interrupted run of this version left, and the pool (one page per 1,000 objects).
        "LIST site/2/",
        "LIST site/_shared/",
        // No site began around or inside meanwhile, before the record makes the release final.
        "LIST _cutover/",
        "LIST site/2/_cutover/",
        // The claim is still this run's, then the record and the routing index.
        "GET site/_cutover/staging/2.json",
        "PUT site/_cutover/releases/2.json",
        "PUT site/_cutover/routes/2.json",
        // The claim given back, conditional on the ETag the check before the record read.
        "DELETE site/_cutover/staging/2.json",
    ];
    assert_eq!(besides, expected, "{} requests besides uploads, expected {}", besides.len(), expected.len());
}
