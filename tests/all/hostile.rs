//! Hostile and bad input, secrets and retention: every case either releases correctly (and the edge
//! serves each file at its own path) or stops with a clear message, its exit code, and nothing
//! written.

use std::path::Path;
use std::process::Command;

use bytes::Bytes;
use cutover::store::{Condition, ObjectMeta};
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};

use crate::harness::{Fixture, Run, free_port};
use crate::proxy::{Fault, Proxy};

/// Characters a browser leaves as they are in a path segment.
const SEGMENT: &AsciiSet = &NON_ALPHANUMERIC.remove(b'-').remove(b'_').remove(b'.').remove(b'~');

fn url_path(path: &str) -> String {
    path.split('/').map(|s| utf8_percent_encode(s, SEGMENT).to_string()).collect::<Vec<_>>().join("/")
}

/// Names that are legitimate and must round-trip through the store and the edge.
fn legitimate_names() -> Vec<String> {
    let long_dir = "d".repeat(150);
    vec![
        "with space.txt".into(),
        "100%.txt".into(),
        "hash#tag.txt".into(),
        "what?.txt".into(),
        "a+b.txt".into(),
        "caf\u{e9}.txt".into(),
        "cafe\u{301}.txt".into(),
        "\u{1F600}.txt".into(),
        "quote'and\"double.txt".into(),
        format!("{long_dir}/{long_dir}/{long_dir}/{long_dir}/deep.txt"),
        ".well-known/apple-app-site-association.json".into(),
    ]
}

fn legitimate_names_round_trip(mut f: Fixture) {
    let names = legitimate_names();
    let mut files: Vec<(&str, &str)> = names.iter().map(|n| (n.as_str(), n.as_str())).collect();
    files.push(("index.html", "home"));
    let dist = f.site("v1", &files);
    let edge = f.start_edge();
    f.deploy(&dist, "1");
    edge.wait_for_active("1");
    for name in &names {
        let response = edge.get(&format!("/{}", url_path(name)), None);
        assert_eq!((response.status, response.body.as_str()), (200, name.as_str()), "{name:?} round-trips");
    }
    let nfc = edge.get(&format!("/{}", url_path("caf\u{e9}.txt")), None).body;
    let nfd = edge.get(&format!("/{}", url_path("cafe\u{301}.txt")), None).body;
    assert_ne!(nfc, nfd, "NFC and NFD names are different files");
}

mod legitimate_names_round_trip {
    #[test]
    fn local() {
        super::legitimate_names_round_trip(crate::harness::Fixture::local());
    }

    #[test]
    fn moto() {
        super::legitimate_names_round_trip(crate::harness::Fixture::moto());
    }
}

/// A build output that must be refused, made by `make` inside the given directory.
struct BadBuild {
    name: &'static str,
    make: fn(&Path),
    message: &'static str,
}

fn symlink(target: impl AsRef<Path>, link: impl AsRef<Path>) {
    std::os::unix::fs::symlink(target, link).unwrap();
}

fn run_ok(program: &str, args: &[&str]) {
    assert!(Command::new(program).args(args).status().unwrap().success(), "{program} {args:?}");
}

const BAD_BUILDS: &[BadBuild] = &[
    BadBuild {
        name: "a path whose key would pass S3's 1024 bytes",
        make: |dir| {
            let deep = dir.join(vec!["x".repeat(200); 6].join("/"));
            std::fs::create_dir_all(&deep).unwrap();
            std::fs::write(deep.join("f.txt"), "x").unwrap();
        },
        message: "S3 allows 1024",
    },
    BadBuild {
        name: "a symlink loop",
        make: |dir| {
            std::fs::create_dir(dir.join("loop")).unwrap();
            symlink("..", dir.join("loop/up"));
        },
        message: "loop",
    },
    BadBuild {
        name: "a symlink out of the build directory",
        make: |dir| symlink("/etc/hostname", dir.join("hostname")),
        message: "symlink leads outside the build directory",
    },
    BadBuild {
        name: "a FIFO",
        make: |dir| run_ok("mkfifo", &[dir.join("pipe").to_str().unwrap()]),
        message: "not a regular file",
    },
    BadBuild {
        name: "a device file",
        make: |dir| run_ok("mknod", &[dir.join("null").to_str().unwrap(), "c", "1", "3"]),
        message: "not a regular file",
    },
    BadBuild {
        name: "a name that is not UTF-8",
        make: |dir| {
            use std::os::unix::ffi::OsStrExt;
            std::fs::write(dir.join(std::ffi::OsStr::from_bytes(b"bad\xff.txt")), "x").unwrap();
        },
        message: "not valid UTF-8",
    },
    BadBuild { name: "an empty build directory", make: |_| {}, message: "holds no files" },
];

#[test]
fn hostile_build_outputs_are_refused_and_nothing_is_written() {
    let f = Fixture::local();
    for (i, case) in BAD_BUILDS.iter().enumerate() {
        let dir = f.dir.path().join(format!("bad{i}"));
        std::fs::create_dir_all(&dir).unwrap();
        if case.name != "an empty build directory" {
            std::fs::write(dir.join("index.html"), "ok").unwrap();
        }
        (case.make)(&dir);
        let run = f.run(&["deploy"], &[("CUTOVER_DIST_DIR", &dir.display().to_string()), ("CUTOVER_VERSION", "1")]);
        assert_eq!(run.code(), 2, "{}: {}", case.name, run.stderr());
        assert!(run.stderr().contains("input `dist-dir`"), "{}: {}", case.name, run.stderr());
        assert!(run.stderr().contains(case.message), "{}: {}", case.name, run.stderr());
        assert!(!f.dir.path().join("store").exists(), "{}: nothing may be written", case.name);
    }
}

#[test]
fn an_unreadable_file_is_refused_unless_the_run_can_read_it() {
    use std::os::unix::fs::PermissionsExt;
    let f = Fixture::local();
    let dist = f.site("v1", &[("index.html", "ok"), ("secret.txt", "s")]);
    std::fs::set_permissions(dist.join("secret.txt"), std::fs::Permissions::from_mode(0o000)).unwrap();
    let readable = std::fs::File::open(dist.join("secret.txt")).is_ok();
    let run = f.run(&["stage"], &[("CUTOVER_DIST_DIR", &dist.display().to_string()), ("CUTOVER_VERSION", "1")]);
    if readable {
        // Root reads any file, so for root this is a legitimate file.
        run.assert_code(0);
    } else {
        run.assert_code(2);
        assert!(run.stderr().contains("secret.txt"), "{}", run.stderr());
        assert!(!f.dir.path().join("store").exists());
    }
}

#[test]
fn hostile_input_values_are_refused_with_the_input_named() {
    let f = Fixture::local();
    let dist = f.site("dist", &[("index.html", "ok")]).display().to_string();
    let cases: &[(&str, &str, &str)] = &[
        ("CUTOVER_VERSION", "a/b", "version"),
        ("CUTOVER_VERSION", "..", "version"),
        ("CUTOVER_VERSION", "_cutover", "version"),
        ("CUTOVER_VERSION", "", "version"),
        ("CUTOVER_VERSION", &"7".repeat(200), "version"),
        ("CUTOVER_VERSION", "1\n::error::injected", "version"),
        ("CUTOVER_PREFIX", "a//b", "prefix"),
        ("CUTOVER_PREFIX", "/site", "prefix"),
        ("CUTOVER_PREFIX", "site\nother", "prefix"),
        ("CUTOVER_SITE_URL", "http://", "site-url"),
        ("CUTOVER_SITE_URL", "javascript:alert(1)", "site-url"),
        ("CUTOVER_SMOKE_PATHS", "/ok,relative", "smoke-paths"),
    ];
    for (name, value, input) in cases {
        let run = f.run(&["deploy"], &[("CUTOVER_DIST_DIR", &dist), ("CUTOVER_VERSION", "1"), (name, value)]);
        assert_eq!(run.code(), 2, "{name}={value:?}: {}", run.stderr());
        assert!(run.stderr().contains(&format!("input `{input}`")), "{name}={value:?}: {}", run.stderr());
        assert!(!f.dir.path().join("store").exists(), "{name}={value:?}: nothing may be written");
        assert!(f.outputs().is_empty(), "{name}={value:?}: no outputs");
    }
}

/// A variable that is not UTF-8 stops nothing (reading the environment as text panicked, exit 101):
/// an unrelated one is no concern of cutover's, and an input holding one is refused naming it.
#[test]
fn variables_that_are_not_utf8_never_panic() {
    use std::os::unix::ffi::OsStrExt;
    let f = Fixture::local();
    let dist = f.site("dist", &[("index.html", "ok")]).display().to_string();
    let not_utf8 = std::ffi::OsStr::from_bytes(b"caf\xe9");
    let env = [("CUTOVER_DIST_DIR", dist.as_str()), ("CUTOVER_VERSION", "1")];
    let run = |name: &str| Run::new(f.command(&["stage"], &env).env(name, not_utf8).output().expect("running cutover"));
    let bad = run("CUTOVER_PREFIX");
    assert_eq!(bad.code(), 2, "{}", bad.stderr());
    assert!(bad.stderr().contains("input `prefix`"), "{}", bad.stderr());
    assert!(!f.dir.path().join("store").exists(), "nothing may be written");
    run("LC_CUSTOM").assert_code(0);
}

/// A newline in an input never becomes an extra line in `$GITHUB_OUTPUT` or a TeamCity message.
#[test]
fn newlines_in_inputs_inject_no_lines() {
    let f = Fixture::local();
    let dist = f.site("dist", &[("index.html", "ok")]).display().to_string();
    let url = "https://example.com/a\nversion=666\n##teamcity[buildStatus text='pwned']";
    let env = [("CUTOVER_DIST_DIR", dist.as_str()), ("CUTOVER_VERSION", "1"), ("CUTOVER_SITE_URL", url)];
    f.run(&["stage"], &env).assert_code(0);
    let written = std::fs::read_to_string(f.dir.path().join("github_output")).unwrap();
    assert_eq!(written.lines().filter(|l| l.starts_with("version=")).collect::<Vec<_>>(), ["version=1"], "{written}");
    assert_eq!(written.lines().count(), 11, "one line per output: {written}");
    let teamcity = f.run(
        &["stage"],
        &[env[0], ("CUTOVER_VERSION", "2"), env[2], ("GITHUB_ACTIONS", ""), ("TEAMCITY_VERSION", "2025.03")],
    );
    teamcity.assert_code(0);
    for line in teamcity.stdout().lines() {
        assert!(line.starts_with("##teamcity[") && line.ends_with(']'), "{line}");
        assert!(!line.contains("pwned") || line.contains("|[buildStatus"), "{line}");
    }
}

#[test]
fn secrets_never_appear_in_anything_written() {
    const SECRET: &str = "fAkEsEcReTkEy/9876543210+dOnOtLeAk";
    const TOKEN: &str = "FaKeSeSsIoNtOkEn0123456789dOnOtLeAk";
    let mut f = Fixture::moto();
    f.set("AWS_SECRET_ACCESS_KEY", SECRET).set("AWS_SESSION_TOKEN", TOKEN);
    let dist = f.site("v1", &[("index.html", "ok")]).display().to_string();
    let bash_env = f.dir.path().join("bash_env").display().to_string();
    let systems: [&[(&str, &str)]; 3] = [
        &[],
        &[("GITHUB_ACTIONS", ""), ("TEAMCITY_VERSION", "2025.03")],
        &[("GITHUB_ACTIONS", ""), ("CIRCLECI", "true"), ("BASH_ENV", &bash_env)],
    ];
    for system in systems {
        let failing: [&[(&str, &str)]; 3] = [
            &[("CUTOVER_BUCKET", "no-such-bucket")],
            &[("CUTOVER_SITE_URL", "http://127.0.0.1:9"), ("CUTOVER_SMOKE_TIMEOUT", "1s")],
            &[("CUTOVER_CONCURRENCY", "0")],
        ];
        for extra in failing {
            let mut env = vec![("CUTOVER_DIST_DIR", dist.as_str()), ("CUTOVER_VERSION", "1")];
            env.extend_from_slice(system);
            env.extend_from_slice(extra);
            let run = f.run(&["deploy", "--json"], &env);
            assert_ne!(run.code(), 0, "{extra:?} fails");
            let mut written = vec![run.stdout(), run.stderr()];
            for file in ["github_output", "step_summary", "bash_env"] {
                written.push(std::fs::read_to_string(f.dir.path().join(file)).unwrap_or_default());
            }
            for text in written {
                for line in text.lines().filter(|l| !l.starts_with("::add-mask::")) {
                    assert!(!line.contains(SECRET) && !line.contains(TOKEN), "{system:?} {extra:?} leaks: {line}");
                }
            }
        }
    }
    let github = f.run(&["deploy"], &[("CUTOVER_DIST_DIR", &dist), ("CUTOVER_BUCKET", "no-such-bucket")]);
    assert!(
        github.stdout().contains(&format!("::add-mask::{}", SECRET.replace('%', "%25"))),
        "GitHub is asked to mask the key"
    );
}

#[test]
fn prune_touches_nothing_but_old_releases_of_its_own_site() {
    let mut f = Fixture::moto();
    let others = ["site2/1/index.html", "site-old/1/index.html", "robots.txt", "site10/index.html"];
    f.with_site(async |site| {
        for key in others {
            site.store.put(key, Bytes::from("other"), &ObjectMeta::default(), Condition::Always).await.unwrap();
        }
    });
    for version in ["1", "10", "11", "12"] {
        let dist = f.site(&format!("v{version}"), &[("index.html", version), ("a.txt", version)]);
        f.deploy(&dist, version);
    }
    let v13 = f.site("v13", &[("index.html", "13")]).display().to_string();
    f.run(&["stage"], &[("CUTOVER_DIST_DIR", &v13), ("CUTOVER_VERSION", "13")]).assert_code(0);
    for version in ["1", "10", "11", "12"] {
        f.backdate(version, 3);
    }
    f.set("CUTOVER_KEEP", "0");
    let report = f.run(&["prune", "--json"], &[]).assert_code(0).json();
    assert_eq!(report["deleted"], serde_json::json!(["10", "1"]));
    assert_eq!(report["kept"], serde_json::json!(["13", "12", "11"]), "the recent, the live and the previous stay");
    let left = f.with_site(async |site| site.store.list("").await.unwrap());
    let keys: Vec<&str> = left.iter().map(|o| o.key.as_str()).collect();
    for key in others {
        assert!(keys.contains(&key), "{key} is outside the site and stays: {keys:?}");
    }
    assert!(!keys.iter().any(|k| k.starts_with("site/1/") || k.starts_with("site/10/")), "{keys:?}");
    for version in ["11", "12", "13"] {
        assert!(keys.iter().any(|k| k.starts_with(&format!("site/{version}/"))), "{version} stays: {keys:?}");
    }
    assert_eq!(f.active().as_deref(), Some("12"));
}

/// Every file under `dir`, as text.
fn every_file(dir: &Path) -> Vec<(String, String)> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap().map(Result::unwrap) {
        let path = entry.path();
        if entry.file_type().unwrap().is_dir() {
            files.extend(every_file(&path));
        } else if entry.file_type().unwrap().is_file() {
            files.push((path.display().to_string(), String::from_utf8_lossy(&std::fs::read(&path).unwrap()).into()));
        }
    }
    files
}

/// One deploy: its arguments, extra env and expected exit code.
type Deploy<'a> = (&'a [&'a str], &'a [(&'a str, &'a str)], i32);

/// A password in `site-url` (a protected staging site) is sent with every smoke request, and shown
/// nowhere: not in outputs, summaries, JSON, logs, error lines or any file, on any CI system.
#[test]
fn url_credentials_reach_the_site_and_nothing_written() {
    use base64::Engine;
    const PASSWORD: &str = "S3cr3tPa55";
    let mut f = Fixture::local();
    let edge = f.spawn_edge(&[]);
    // The site answers only requests that carry the URL's credentials, as a protected one does.
    let expected = format!("Basic {}", base64::engine::general_purpose::STANDARD.encode(format!("deploy:{PASSWORD}")));
    let site = Proxy::start(&edge.url, move |request| {
        (request.header("authorization") != Some(expected.as_str())).then_some(Fault::InternalError)
    });
    let with_password = |url: &str| url.replacen("http://", &format!("http://deploy:{PASSWORD}@"), 1);
    let site_url = with_password(&site.url);
    let closed = with_password(&format!("http://127.0.0.1:{}", free_port()));
    let dist = f.site("v1", &[("index.html", "ok")]).display().to_string();
    f.set("CUTOVER_DIST_DIR", &dist).set("CUTOVER_SITE_URL", &site_url);
    let bash_env = f.dir.path().join("bash_env").display().to_string();
    let systems: [&[(&str, &str)]; 3] = [
        &[],
        &[("GITHUB_ACTIONS", ""), ("TEAMCITY_VERSION", "2025.03")],
        &[("GITHUB_ACTIONS", ""), ("CIRCLECI", "true"), ("BASH_ENV", &bash_env)],
    ];
    let mut version = 0;
    for system in systems {
        let runs: [Deploy; 6] = [
            (&["deploy"], &[], 0),
            (&["deploy", "--json"], &[], 0),
            (
                &["deploy", "--json"],
                &[("CUTOVER_SMOKE_EXPECT_TEXT", "not on the page"), ("CUTOVER_SMOKE_TIMEOUT", "1s")],
                3,
            ),
            (&["deploy"], &[("CUTOVER_SITE_URL", &closed), ("CUTOVER_SMOKE_TIMEOUT", "1s")], 3),
            (&["deploy", "--json"], &[("CUTOVER_SITE_URL", &format!("http://deploy:{PASSWORD}@exa mple.com/"))], 2),
            // The scheme forgotten: `deploy` parses as the scheme and the rest as a path.
            (&["deploy", "--json"], &[("CUTOVER_SITE_URL", &format!("deploy:{PASSWORD}@127.0.0.1:1"))], 2),
        ];
        for (args, extra, code) in runs {
            version += 1;
            let version = version.to_string();
            let mut env = vec![("CUTOVER_VERSION", version.as_str())];
            env.extend_from_slice(system);
            env.extend_from_slice(extra);
            let run = f.run(args, &env);
            let context = format!("{system:?} {args:?} {extra:?}");
            assert_eq!(run.code(), code, "{context}: {}", run.stderr());
            let mut written = vec![("stdout".to_owned(), run.stdout()), ("stderr".to_owned(), run.stderr())];
            written.extend(every_file(f.dir.path()));
            for (name, text) in written {
                for line in text.lines().filter(|l| !l.starts_with("::add-mask::")) {
                    assert!(!line.contains(PASSWORD), "{context} leaks in {name}: {line}");
                }
            }
            if system.is_empty() && code == 0 {
                let console = if args.contains(&"--json") { run.stderr() } else { run.stdout() };
                for masked in [PASSWORD.to_owned(), format!("deploy:{PASSWORD}")] {
                    assert!(console.lines().any(|l| l == format!("::add-mask::{masked}")), "{context}: {console}");
                }
                let outputs = f.outputs();
                assert_eq!(outputs["site-url"], format!("{}/", site.url), "the URL without its credentials");
                assert!(outputs["preview-url"].starts_with(&format!("{}/?", site.url)), "{outputs:?}");
            }
        }
    }
}
