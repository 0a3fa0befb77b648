//! The differential test (issue 11, item 5): seeded random requests, odd ones on purpose, sent to
//! `cutover serve` over HTTP and through the CloudFront router's handlers under Node
//! (`tests/differential/replay.js`, both pointer styles). The two implement one contract, so any
//! difference in status, version, file, override reason, redirect, `private` or cookies is a bug
//! in one of them. The seed is printed; `CUTOVER_DIFF_SEED=<seed>` replays a run.
//!
//! Requests go on the wire as a browser would send them: what hyper refuses in a request line
//! (spaces, controls, `<>\^`, invalid UTF-8) is percent-encoded, since CloudFront would not pass it
//! to the router either; raw UTF-8, which both accept, is sent raw.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use bytes::Bytes;
use cutover::env::Env;
use cutover::routing::{self, EdgeNames, OverrideSecret};
use http_body_util::{BodyExt, Full};
use hyper_util::rt::TokioIo;
use serde_json::{Value, json};

use crate::harness::Fixture;

/// Requests per setting; six settings make 9,000 a run.
const PER_SETTING: usize = 1_500;
/// Differences listed when the test fails.
const SHOWN: usize = 12;

/// One `cutover serve` (and one router configuration) the requests go to.
struct Setting {
    fixture: &'static str,
    active: Option<&'static str>,
    not_found: &'static str,
    secret: Option<&'static str>,
}

const SETTINGS: [Setting; 6] = [
    Setting { fixture: "multi", active: Some("41"), not_found: "auto", secret: None },
    Setting { fixture: "multi", active: Some("41"), not_found: "auto", secret: Some("s3cret") },
    Setting { fixture: "multi", active: Some("41"), not_found: "spa", secret: None },
    Setting { fixture: "spa", active: Some("51"), not_found: "auto", secret: None },
    Setting { fixture: "spa", active: Some("51"), not_found: "404", secret: Some("s3cret") },
    Setting { fixture: "spa", active: None, not_found: "auto", secret: None },
];

/// Files the differential fixtures hold besides those of `edge/vectors.json`.
fn extra_files(fixture: &str) -> Vec<String> {
    let long = format!("{}.txt", "l".repeat(200));
    match fixture {
        "multi" => vec![
            "100%.txt".into(),
            "über/index.html".into(),
            "e\u{301}t\u{e9}.txt".into(),
            "emoji \u{1f680}.txt".into(),
            "a+b.txt".into(),
            "x/y z/index.html".into(),
            "dir.v2/index.html".into(),
            "a/b/c/d/e/f/index.html".into(),
            "noext".into(),
            format!("deep/{long}"),
        ],
        _ => vec!["assets/ünï.css".into(), "app/index.html".into()],
    }
}

/// splitmix64: small, seeded, the same sequence on every machine.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: usize) -> usize {
        let n = u64::try_from(n).expect("a small count");
        usize::try_from(self.next() % n).expect("below a usize")
    }

    fn pick<T: Clone>(&mut self, items: &[T]) -> T {
        items[self.below(items.len())].clone()
    }

    fn chance(&mut self, percent: usize) -> bool {
        self.below(100) < percent
    }
}

/// Percent-encodes what a browser would in a path (`query`: in a query), bytes as UTF-8; `raw`
/// keeps non-ASCII characters as they are.
fn encode(text: &str, query: bool, raw: bool) -> String {
    let mut out = String::new();
    for c in text.chars() {
        let keep = if c.is_ascii() {
            c.is_ascii_graphic() && !"\"#<>\\^`{|}".contains(c) && (query || c != '?') && !(query && "&=+".contains(c))
        } else {
            raw
        };
        if keep {
            out.push(c);
        } else {
            for b in c.to_string().bytes() {
                out.push_str(&format!("%{b:02X}"));
            }
        }
    }
    out
}

/// Everything that could name a version in an override, well-formed or not.
struct Values {
    plain: Vec<String>,
    signed: Vec<String>,
    releases: Vec<String>,
}

fn values(setting: &Setting, releases: &[String], now: u64) -> Values {
    let mut plain: Vec<String> = releases.to_vec();
    plain.extend(
        [
            "77", "999", "43", "52", "CLEAR", "clear", "Clear", "cLeAr", "", " clear", "clear ", "..%2F..", "../x",
            "41\n", "+41", "%34%31", "4%2", "%", "v1.0", "a~b~c", "41~", "~~", "é", "%C3%A9", "_cutover", "-41", "41.",
            ".41", "41 ", "\"41\"", "41,42",
        ]
        .map(str::to_owned),
    );
    plain.push("x".repeat(129));
    // The router reads at most 16 versions it never saw a second (edge/router.js,
    // NEW_READS_PER_SECOND) and `cutover serve` has no such cap, so more distinct versions than
    // that would make the answers depend on timing.
    let named: std::collections::BTreeSet<&str> =
        plain.iter().map(|v| v.trim()).filter(|v| cutover::version::is_valid(v)).collect();
    assert!(named.len() <= 16, "{} distinct versions would meet the router's cap: {named:?}", named.len());
    let secret = setting.secret.unwrap_or("s3cret");
    let names = EdgeNames { secret: Some(OverrideSecret::new(secret.to_owned(), "site")), ..EdgeNames::default() };
    let other = EdgeNames { secret: Some(OverrideSecret::new("other".into(), "site")), ..EdgeNames::default() };
    let elsewhere = EdgeNames { secret: Some(OverrideSecret::new(secret.to_owned(), "other")), ..EdgeNames::default() };
    let expired_at = now - routing::OVERRIDE_LIFETIME_SECS - 100;
    let mut signed = Vec::new();
    for version in releases.iter().map(String::as_str).chain(["77", "52"]) {
        let good = routing::override_value(&names, version, now);
        signed.push(good.clone());
        signed.push(routing::override_value(&names, version, expired_at));
        signed.push(routing::override_value(&other, version, now));
        signed.push(routing::override_value(&elsewhere, version, now));
        let (payload, signature) = good.rsplit_once('~').expect("a signed value");
        // The last character carries two unused bits: a different one may decode to the same bytes.
        let last = signature.chars().last().expect("a signature");
        let alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
        let at = alphabet.find(last).expect("base64url");
        for step in [1, 2, 3, 4] {
            let swapped = alphabet.as_bytes()[(at ^ step) % 64] as char;
            signed.push(format!("{payload}~{}{swapped}", &signature[..signature.len() - 1]));
        }
        signed.push(format!("{payload}~{signature}="));
        signed.push(format!("{payload}~{}", &signature[1..]));
        signed.push(format!("{payload}~"));
        signed.push(good.replacen('~', "~0", 1));
        signed.push(format!("{version}~{}", good.split('~').skip(1).collect::<Vec<_>>().join("~")).replace('1', "2"));
        signed.push(format!("x{good}"));
        signed.push(good.replace('-', "+").replace('_', "/"));
    }
    Values { plain, signed, releases: releases.to_vec() }
}

fn value(rng: &mut Rng, values: &Values) -> String {
    if rng.chance(35) { rng.pick(&values.signed) } else { rng.pick(&values.plain) }
}

/// What a framework pin names: a stored release half the time (pins are unsigned).
fn pin_value(rng: &mut Rng, values: &Values) -> String {
    if rng.chance(50) { rng.pick(&values.releases) } else { value(rng, values) }
}

/// A request path as a browser or a crawler could send it.
fn path(rng: &mut Rng, files: &[String]) -> String {
    let raw = rng.chance(30);
    let odd = [
        ".",
        "..",
        "%2e",
        "%2E%2E",
        ".%2e",
        "",
        "%",
        "%2",
        "%zz",
        "%00",
        "%2f",
        "%2F",
        "%25",
        "%252e",
        "%C0%AE",
        "%FF",
        "%C3",
        "%C3%28",
        "%ED%A0%80",
        "%F0%9F%9A%80",
        "%u00e9",
        "a%20b",
        "~",
        "+",
        ";x",
        "=",
        "@",
        ":",
        "!$&'()*,",
        "[]",
        "index",
        "404",
        "404.html",
        "index.html",
        "about.html",
        "x.js",
        "about",
        "docs",
        "café",
        "caf%C3%A9",
        "cafe%CC%81",
        "%63%61%66%C3%A9",
        "%2E",
        "..%2F",
        "%5C",
        "CNAME",
        "cname",
        "About",
        ".well-known",
        "assets",
    ];
    let known = rng.pick(files);
    let mut segments: Vec<String> = match rng.below(10) {
        0..=3 => known.split('/').map(|s| encode(s, false, raw)).collect(),
        4 | 5 => {
            let mut s: Vec<String> = known.split('/').map(|s| encode(s, false, raw)).collect();
            match rng.below(6) {
                0 => {
                    s.pop();
                }
                1 => s.push(String::new()),
                2 => {
                    let at = rng.below(s.len() + 1);
                    s.insert(at, rng.pick(&[".", "..", "", "%2e%2e", "x/.."]).to_string());
                }
                3 => {
                    let last = s.pop().unwrap_or_default();
                    s.push(last.trim_end_matches(".html").to_owned());
                }
                4 => {
                    let last = s.pop().unwrap_or_default();
                    s.push(last.to_uppercase());
                }
                _ => {
                    let last = s.pop().unwrap_or_default();
                    s.push(
                        last.chars()
                            .map(|c| if c.is_ascii_alphabetic() { format!("%{:02x}", c as u32) } else { c.to_string() })
                            .collect(),
                    );
                }
            }
            s
        }
        6 => {
            let word = "x".repeat(rng.pick(&[100, 255, 256, 1000, 3000]).to_owned());
            vec![word]
        }
        7 => (0..rng.pick(&[30, 100, 300]).to_owned()).map(|_| rng.pick(&odd[..20]).to_string()).collect(),
        _ => {
            let n = 1 + rng.below(5);
            (0..n)
                .map(|_| match rng.below(3) {
                    0 => encode(rng.pick(&known.split('/').collect::<Vec<_>>()), false, raw),
                    1 => rng.pick(&odd).to_string(),
                    _ => encode(
                        rng.pick(&["é", "ü/x", "\u{1f680}", "a b", "日本", "<x>", "a?b", "#", "\u{202e}"]),
                        false,
                        raw,
                    ),
                })
                .collect()
        }
    };
    if rng.chance(10) {
        segments.push(String::new());
    }
    let mut path = format!("/{}", segments.join("/"));
    if rng.chance(3) {
        path.insert(0, '/');
    }
    path
}

fn query(rng: &mut Rng, values: &Values) -> Option<String> {
    if rng.chance(40) {
        return None;
    }
    let raw = rng.chance(30);
    let n = rng.below(4);
    let mut pieces = Vec::new();
    for _ in 0..n {
        let v = encode(&value(rng, values), true, raw);
        pieces.push(match rng.below(12) {
            0..=4 => format!("override_build_number={v}"),
            5 => "override_build_number".to_owned(),
            6 => format!(
                "{}={v}",
                rng.pick(&[
                    "Override_build_number",
                    "override%5Fbuild%5Fnumber",
                    "override_build_number%00",
                    "override+build+number"
                ])
            ),
            7 => rng.pick(&["utm=x", "a=%zz", "=", "", "a=1;override_build_number=40", "x=%", "%"]).to_string(),
            10 | 11 => {
                let v = encode(&pin_value(rng, values), true, raw);
                format!("{}={v}", rng.pick(&["dpl", "dpl", "DPL", "dp%6C"]))
            }
            _ => format!("override_build_number={}", rng.pick(&["clear", "CLEAR", "c%6Cear", "cle+ar", "%43LEAR"])),
        });
    }
    let mut query = pieces.join("&");
    if rng.chance(8) {
        query.insert(0, rng.pick(&['?', '&']));
    }
    Some(query)
}

fn cookies(rng: &mut Rng, values: &Values) -> Vec<String> {
    let headers = if rng.chance(40) { 0 } else { 1 + rng.below(3) };
    (0..headers)
        .map(|_| {
            let pairs: Vec<String> = (0..1 + rng.below(4))
                .map(|_| {
                    let v = value(rng, values).replace(['\n', ';'], "");
                    match rng.below(12) {
                        0..=2 => format!("Build-Number={v}"),
                        3 | 4 => rng
                            .pick(&[
                                "Override=true",
                                "Override=TRUE",
                                "Override=\"true\"",
                                "Override=false",
                                " Override = true ",
                                "Override=true\t",
                                "override=true",
                            ])
                            .to_string(),
                        5 => format!("Build-Number=\"{v}\""),
                        6 => format!("Build-Number=\"\"{v}\"\""),
                        7 => format!(
                            "{}={v}",
                            rng.pick(&["\"Build-Number\"", "build-number", "Build-Number ", "Build-Number\t", "Bü"])
                        ),
                        8 => rng
                            .pick(&[
                                "=x",
                                "=",
                                "pref=José",
                                "a=b=c",
                                "justname",
                                "\"\"",
                                "Build-Number=",
                                "Build-Number=\"",
                                "x=\"é\"",
                            ])
                            .to_string(),
                        9 => format!("Build-Number={v},Override=true"),
                        _ => format!("Build-Number={v}; Override=true"),
                    }
                })
                .collect();
            let header = pairs.join(rng.pick(&["; ", ";", ";  ", " ; "]));
            header.trim_matches([' ', '\t']).to_owned()
        })
        .collect()
}

/// A framework pin's headers: `x-deployment-id` (as a header may hold it) and `Sec-Fetch-Dest`.
fn pin_headers(rng: &mut Rng, values: &Values) -> Vec<(String, String)> {
    let mut headers = Vec::new();
    let sendable = |v: &String| v.chars().all(|c| c == ' ' || c.is_ascii_graphic());
    if rng.chance(30) {
        let v = pin_value(rng, values);
        headers.push(("x-deployment-id".to_owned(), if sendable(&v) { v } else { "41".to_owned() }));
    }
    if rng.chance(30) {
        let dest =
            rng.pick(&["empty", "script", "image", "document", "Document", " iframe ", "frame", "object", "embed"]);
        headers.push(("sec-fetch-dest".to_owned(), dest.to_owned()));
    }
    headers
}

/// One request as both sides get it.
fn request(rng: &mut Rng, files: &[String], values: &Values) -> Value {
    let uri = path(rng, files);
    let query = query(rng, values);
    let target = match &query {
        Some(q) => format!("{uri}?{q}"),
        None => uri.clone(),
    };
    // What hyper's client will not put in a request line, a browser would have encoded.
    let (uri, query) = if hyper::Uri::try_from(target.as_str()).is_ok() {
        (uri, query)
    } else {
        (encode_high(&uri), query.map(|q| encode_high(&q)))
    };
    json!({"uri": uri, "query": query, "cookies": cookies(rng, values), "headers": pin_headers(rng, values)})
}

fn encode_high(text: &str) -> String {
    text.chars().map(|c| if c.is_ascii() { c.to_string() } else { encode(&c.to_string(), true, false) }).collect()
}

/// Sends every request to `cutover serve` over one kept-alive connection; what each answered.
fn through_serve(url: &str, requests: &[Value]) -> Vec<Value> {
    let host = url.trim_start_matches("http://").to_owned();
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("a runtime");
    runtime.block_on(async {
        let connect = || async {
            let stream = tokio::net::TcpStream::connect(&host).await.expect("connecting to cutover serve");
            let (sender, connection) =
                hyper::client::conn::http1::handshake(TokioIo::new(stream)).await.expect("an HTTP/1 handshake");
            tokio::spawn(connection);
            sender
        };
        let mut sender = connect().await;
        let mut results = Vec::with_capacity(requests.len());
        for wire in requests {
            let target = match wire["query"].as_str() {
                Some(q) => format!("{}?{q}", wire["uri"].as_str().unwrap()),
                None => wire["uri"].as_str().unwrap().to_owned(),
            };
            let mut answer = None;
            for _ in 0..2 {
                let mut request = hyper::Request::builder().uri(target.as_str()).header("host", host.as_str());
                for cookie in wire["cookies"].as_array().unwrap() {
                    request = request.header("cookie", cookie.as_str().unwrap().as_bytes());
                }
                for pair in wire["headers"].as_array().unwrap() {
                    request = request.header(pair[0].as_str().unwrap(), pair[1].as_str().unwrap());
                }
                let request = request.body(Full::new(Bytes::new())).expect("a request hyper accepts");
                if sender.ready().await.is_err() {
                    sender = connect().await;
                }
                match tokio::time::timeout(Duration::from_secs(10), sender.send_request(request)).await {
                    Ok(Ok(response)) => {
                        answer = Some(response);
                        break;
                    }
                    _ => sender = connect().await,
                }
            }
            let response = answer.unwrap_or_else(|| panic!("cutover serve did not answer {target}"));
            let status = response.status().as_u16();
            let headers = response.headers().clone();
            let body = response.into_body().collect().await.expect("a body").to_bytes();
            let header = |name: &str| headers.get(name).map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned());
            let body = String::from_utf8_lossy(&body);
            let file = (status < 300 || status == 404) && body.starts_with("/site/");
            results.push(json!({
                "status": status,
                "version": header("x-cutover-version"),
                "override": header("x-cutover-override"),
                "location": header("location"),
                "private": header("cache-control").as_deref() == Some(routing::PRIVATE),
                "file": file.then(|| body.to_string()),
                "cookies": headers.get_all("set-cookie").iter().map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned()).collect::<Vec<_>>(),
            }));
        }
        results
    })
}

/// Runs every setting's requests through the router under Node, in one process.
fn through_router(input: &Value) -> Vec<Value> {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/differential/replay.js");
    let mut child = Command::new("node")
        .arg(&script)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("running node tests/differential/replay.js");
    let mut stdin = child.stdin.take().expect("stdin");
    let text = input.to_string();
    let writer = std::thread::spawn(move || stdin.write_all(text.as_bytes()));
    let output = child.wait_with_output().expect("waiting for node");
    writer.join().expect("writing the requests").expect("writing the requests");
    let (stdout, stderr) = (String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr));
    assert!(output.status.success(), "replay.js failed\nstderr:\n{stderr}");
    serde_json::from_str::<Vec<Value>>(stdout.trim()).unwrap_or_else(|e| panic!("replay.js printed no JSON ({e})"))
}

#[test]
fn cutover_serve_and_the_router_answer_every_generated_request_alike() {
    let seed = Env::from_process()
        .get("CUTOVER_DIFF_SEED")
        .map(|s| s.parse::<u64>().expect("CUTOVER_DIFF_SEED is a number"))
        .unwrap_or_else(|| u64::from(std::process::id()) ^ routing::unix_now().wrapping_mul(0x2545_f491_4f6c_dd1d));
    cutover::say!("differential test: seed {seed} (replay with CUTOVER_DIFF_SEED={seed})");
    let doc: Value = serde_json::from_str(include_str!("../../edge/vectors.json")).expect("edge/vectors.json");
    let now = routing::unix_now();
    let mut rng = Rng(seed);
    let mut inputs = Vec::new();
    let mut served = Vec::new();
    for setting in &SETTINGS {
        let releases: Vec<String> = doc["releases"][setting.fixture]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_str().unwrap().to_owned())
            .collect();
        let mut files: Vec<String> = doc["fixtures"][setting.fixture]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_str().unwrap().to_owned())
            .collect();
        files.extend(extra_files(setting.fixture));
        let values = values(setting, &releases, now);
        let requests: Vec<Value> = (0..PER_SETTING).map(|_| request(&mut rng, &files, &values)).collect();
        let mut f = Fixture::local();
        for version in &releases {
            let site: Vec<(&str, String)> =
                files.iter().map(|file| (file.as_str(), format!("/site/{version}/{file}"))).collect();
            let site: Vec<(&str, &str)> = site.iter().map(|(k, v)| (*k, v.as_str())).collect();
            let dist = f.site(&format!("v{version}"), &site).display().to_string();
            f.run(&["stage"], &[("CUTOVER_DIST_DIR", &dist), ("CUTOVER_VERSION", version)]).assert_code(0);
        }
        if let Some(active) = setting.active {
            f.run(&["promote", active], &[]).assert_code(0);
        }
        f.set("CUTOVER_NOT_FOUND", setting.not_found);
        if let Some(secret) = setting.secret {
            f.set("CUTOVER_OVERRIDE_SECRET", secret);
        }
        let edge = f.start_edge();
        served.push(through_serve(&edge.url, &requests));
        inputs.push(json!({
            "files": files, "releases": releases, "active": setting.active, "not_found": setting.not_found,
            "secret": setting.secret, "requests": requests,
        }));
    }
    let input = json!({ "settings": inputs });
    let routed = through_router(&input);
    let mut differences = Vec::new();
    let mut compared = 0;
    for (i, (setting, serve)) in SETTINGS.iter().zip(&served).enumerate() {
        let modes: BTreeMap<String, Value> =
            routed[i].as_object().unwrap().iter().map(|(k, v)| (k.clone(), v.clone())).collect();
        for (mode, answers) in &modes {
            for (j, (mine, theirs)) in serve.iter().zip(answers.as_array().unwrap()).enumerate() {
                compared += 1;
                if mine != theirs {
                    let request = &input["settings"][i]["requests"][j];
                    differences.push(format!(
                        "setting {} {:?} not-found {} secret {}, router {mode}\n  request {request}\n  serve  {mine}\n  router {theirs}",
                        setting.fixture, setting.active, setting.not_found, setting.secret.is_some()
                    ));
                }
            }
        }
    }
    let mut seen: BTreeMap<String, usize> = BTreeMap::new();
    for (setting, answers) in SETTINGS.iter().zip(&served) {
        // A framework pin: another version than the live one, cacheable.
        let pinned = answers.iter().filter(|a| a["version"].as_str() != setting.active && a["private"] == false);
        *seen.entry("framework pins".into()).or_default() += pinned.filter(|a| !a["version"].is_null()).count();
    }
    for answer in served.iter().flatten() {
        *seen.entry(format!("status {}", answer["status"])).or_default() += 1;
        *seen.entry(format!("override {}", answer["override"])).or_default() += 1;
        if answer["file"].is_string() {
            *seen.entry("a file served".into()).or_default() += 1;
        }
        if !answer["cookies"].as_array().unwrap().is_empty() {
            *seen.entry("cookies set".into()).or_default() += 1;
        }
    }
    cutover::say!("differential test: {compared} answers compared; serve answered {seen:?}");
    assert!(compared >= 5_000, "only {compared} comparisons");
    assert!(seen.get("framework pins").is_some_and(|&n| n > 0), "no request was served by a framework pin");
    assert!(
        differences.is_empty(),
        "seed {seed} (replay with CUTOVER_DIFF_SEED={seed}): {} of {compared} answers differ; the first:\n{}",
        differences.len(),
        differences.iter().take(SHOWN).cloned().collect::<Vec<_>>().join("\n")
    );
}
