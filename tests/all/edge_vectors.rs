//! The edge contract's shared vectors (edge/vectors.json), run against `cutover serve` over HTTP:
//! the same vectors the CloudFront router's Node tests and the Rust unit test run, preview aliases
//! and hosts included.

use std::collections::BTreeMap;

use cutover::route_index::RouteIndex;
use cutover::store::{Condition, json_meta};

use crate::harness::{Fixture, http_send};

/// The settings one `cutover serve` runs with: fixture, active version, `not-found`, `override-secret`.
type Setting = (String, Option<String>, String, Option<String>);

/// Stages each fixture's releases (every file holds its own key, so a body names the file that
/// served it) and asks one `cutover serve` per setting each of its vectors.
#[test]
fn cutover_serve_passes_the_shared_vectors() {
    let doc: serde_json::Value =
        serde_json::from_str(include_str!("../../edge/vectors.json")).expect("edge/vectors.json");
    let mut groups: BTreeMap<Setting, Vec<&serde_json::Value>> = BTreeMap::new();
    for vector in doc["vectors"].as_array().expect("a list") {
        let text = |key: &str| vector[key].as_str().map(str::to_owned);
        let key =
            (text("fixture").unwrap(), text("active"), text("not_found").unwrap_or("auto".into()), text("secret"));
        groups.entry(key).or_default().push(vector);
    }
    for ((fixture, active, not_found, secret), vectors) in groups {
        let mut f = Fixture::local();
        for version in doc["releases"][&fixture].as_array().unwrap().iter().map(|v| v.as_str().unwrap()) {
            let files: Vec<(&str, String)> = doc["fixtures"][&fixture]
                .as_array()
                .unwrap()
                .iter()
                .map(|file| (file.as_str().unwrap(), format!("/site/{version}/{}", file.as_str().unwrap())))
                .collect();
            let files: Vec<(&str, &str)> = files.iter().map(|(k, v)| (*k, v.as_str())).collect();
            let dist = f.site(&format!("v{version}"), &files).display().to_string();
            if cutover::pull_request::alias_of(version).is_some() {
                // A release named like an alias can no longer be staged: it is left as an older
                // cutover or a hand would leave it, copied from a stand-in staged under another name.
                let stand_in = format!("stand-in-for-{version}");
                f.run(&["stage"], &[("CUTOVER_DIST_DIR", &dist), ("CUTOVER_VERSION", &stand_in)]).assert_code(0);
                f.with_site(async |site| rename_release(&site, &stand_in, version).await);
                continue;
            }
            match version.strip_prefix("pr-").and_then(|rest| rest.split_once('-')) {
                Some((pr, run)) => f.run(
                    &["preview"],
                    &[("CUTOVER_DIST_DIR", &dist), ("CUTOVER_PULL_REQUEST", pr), ("GITHUB_RUN_NUMBER", run)],
                ),
                None => f.run(&["stage"], &[("CUTOVER_DIST_DIR", &dist), ("CUTOVER_VERSION", version)]),
            }
            .assert_code(0);
        }
        if let Some(active) = &active {
            f.run(&["promote", active], &[]).assert_code(0);
        }
        // The aliases as `preview` writes them (and malformed ones it never would).
        f.with_site(async |site| {
            for (alias, value) in doc["aliases"].as_object().unwrap() {
                let pr = cutover::pull_request::alias_of(alias).expect("an alias name");
                site.aliases.write(pr, value.as_str().unwrap()).await.unwrap();
            }
        });
        f.set("CUTOVER_NOT_FOUND", &not_found);
        if let Some(secret) = &secret {
            f.set("CUTOVER_OVERRIDE_SECRET", secret);
        }
        let edge = f.start_edge();
        for vector in vectors {
            let name = vector["name"].as_str().unwrap();
            let query = vector["query"].as_str().unwrap();
            let uri = vector["uri"].as_str().unwrap();
            let target = if query.is_empty() { uri.to_owned() } else { format!("{uri}?{query}") };
            let mut headers: Vec<(&str, &str)> = vector["cookie"].as_str().map(|c| ("cookie", c)).into_iter().collect();
            if let Some(extra) = vector["headers"].as_object() {
                headers.extend(extra.iter().map(|(k, v)| (k.as_str(), v.as_str().unwrap())));
            }
            // `cutover serve`'s preview hosts are `pr-<n>.localhost` (browsers send them to loopback).
            let host = vector["host"].as_str().map(|h| h.replace("<preview-domain>", "localhost"));
            headers.extend(host.as_deref().map(|h| ("host", h)));
            let response = http_send(&edge.url, "GET", &target, &headers, "").expect("requesting the edge");
            assert_eq!(u64::from(response.status), vector["status"].as_u64().unwrap(), "{name}");
            assert_eq!(response.header("x-cutover-version"), vector["version"].as_str(), "{name}");
            assert_eq!(response.header("x-cutover-override"), vector["override"].as_str(), "{name}");
            assert_eq!(response.header("location"), vector["location"].as_str(), "{name}");
            if let (Some(file), Some(version)) = (vector["file"].as_str(), vector["version"].as_str()) {
                assert_eq!(response.body, format!("/site/{version}/{file}"), "{name}");
            }
            let cookies: Vec<&str> = response
                .headers
                .iter()
                .filter(|(k, _)| k.eq_ignore_ascii_case("set-cookie"))
                .map(|(_, v)| v.as_str())
                .collect();
            let expected: Vec<&str> =
                vector["set_cookies"].as_array().unwrap().iter().filter_map(|c| c.as_str()).collect();
            assert_eq!(cookies, expected, "{name}");
            if let Some(robots) = vector.get("robots") {
                assert_eq!(response.header("x-robots-tag"), robots.as_str(), "{name}");
            }
            if let Some(body) = vector["body"].as_str() {
                assert_eq!(response.body, format!("{body}\n"), "{name}");
            }
            if let Some(cache) = vector.get("cache_control") {
                assert_eq!(response.header("cache-control"), cache.as_str(), "{name}");
            } else if vector["pinned"] == true {
                assert_ne!(
                    response.header("cache-control"),
                    Some("private, no-cache"),
                    "a framework pin is cacheable: {name}"
                );
            } else if !expected.is_empty() || vector["version"] != vector["active"] {
                assert_eq!(response.header("cache-control"), Some("private, no-cache"), "{name}");
            }
        }
    }
}

/// With `override-secret`, the smoke test and `preview-url` sign: a deploy smoke-tests through the
/// local edge, and its preview link pins the release while a bare version does not.
#[test]
fn the_smoke_test_and_the_preview_link_sign_with_the_override_secret() {
    let mut f = Fixture::local();
    f.set("CUTOVER_OVERRIDE_SECRET", "s3cret");
    let dist = f.site("v1", &[("index.html", "one")]);
    f.deploy(&dist, "1");
    let preview = f.outputs()["preview-url"].clone();
    let query = preview.split_once('?').expect("a query").1.to_owned();
    assert!(query.starts_with("override_build_number=1%7E"), "{preview}");
    let dist = f.site("v2", &[("index.html", "two")]);
    f.deploy(&dist, "2");
    let edge = f.start_edge();
    let signed = edge.get(&format!("/?{query}"), None);
    assert_eq!((signed.header("x-cutover-version"), signed.body.as_str()), (Some("1"), "one"));
    let bare = edge.get("/?override_build_number=1", None);
    assert_eq!((bare.header("x-cutover-version"), bare.header("x-cutover-override")), (Some("2"), Some("unsigned")));
    assert!(bare.header("set-cookie").is_none());
}

/// Writes release `from` again as release `to`: its files, its record and its routing index.
async fn rename_release(site: &cutover::backend::Site, from: &str, to: &str) {
    let (store, layout) = (&site.store, &site.layout);
    let fetched = store.get(&layout.record_key(from)).await.unwrap().expect("the stand-in's record");
    let mut record = cutover::release::ReleaseRecord::from_json(from, &fetched.body).unwrap();
    for (path, file) in &record.files {
        let object = store.get(&file.key(layout, from, path)).await.unwrap().expect("a recorded file");
        store.put(&file.key(layout, to, path), object.body, &object.meta, Condition::Always).await.unwrap();
    }
    record.version = to.to_owned();
    store.put(&layout.record_key(to), record.to_json().into(), &json_meta(), Condition::Always).await.unwrap();
    cutover::route_index::write(site, to, &RouteIndex::of_record(&record)).await.unwrap();
}
