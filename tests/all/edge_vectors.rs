//! The edge contract's shared vectors (edge/vectors.json), run against `cutover serve` over HTTP:
//! the same vectors the CloudFront router's Node tests run.

use std::collections::BTreeSet;

use crate::harness::Fixture;

/// Serves releases whose every file holds its own key, so a body names the file that served it.
#[test]
fn cutover_serve_passes_the_shared_vectors() {
    let vectors: serde_json::Value =
        serde_json::from_str(include_str!("../../edge/vectors.json")).expect("edge/vectors.json");
    let vectors = vectors.as_array().expect("a list");
    let paths: BTreeSet<&str> = vectors.iter().filter_map(|v| v["path"].as_str()).collect();
    for active in [Some("41"), None] {
        let mut f = Fixture::local();
        let mut versions: BTreeSet<&str> = BTreeSet::new();
        for path in &paths {
            let (version, file) = path.trim_start_matches("/site/").split_once('/').expect("a versioned path");
            versions.insert(version);
            f.site(&format!("v{version}"), &[(file, path)]);
        }
        for version in &versions {
            let dist = f.dir.path().join(format!("v{version}")).display().to_string();
            f.run(&["stage"], &[("CUTOVER_DIST_DIR", &dist), ("CUTOVER_VERSION", version)]).assert_code(0);
        }
        if let Some(active) = active {
            f.run(&["promote", active], &[]).assert_code(0);
        }
        let edge = f.start_edge();
        for vector in vectors.iter().filter(|v| v["active"].as_str() == active) {
            let name = vector["name"].as_str().unwrap();
            let query = vector["query"].as_str().unwrap();
            let target = if query.is_empty() {
                vector["uri"].as_str().unwrap().to_owned()
            } else {
                format!("{}?{query}", vector["uri"].as_str().unwrap())
            };
            let response = edge.get(&target, vector["cookie"].as_str());
            assert_eq!(response.header("x-cutover-version"), vector["version"].as_str(), "{name}");
            match vector["path"].as_str() {
                Some(path) => assert_eq!((response.status, response.body.as_str()), (200, path), "{name}"),
                None => assert!(matches!(response.status, 400 | 404), "{name}: {}", response.status),
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
        }
    }
}
