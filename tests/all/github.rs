//! `preview` with `github-token` against a local fake of GitHub's API that records every request:
//! one comment created, then updated (found by its marker); a deployment of `preview/pr-<n>` with
//! the link; a 403 (a fork's read-only token) is a warning and the step passes; the token is sent
//! only as the Authorization header and appears in no output.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::sync::{Arc, Mutex};

use serde_json::{Value, json};

use crate::harness::{Fixture, Run};

const TOKEN: &str = "ghs_fAkeT0ken1234567890";

/// One request the fake API received.
#[derive(Debug, Clone)]
struct Seen {
    method: String,
    path: String,
    authorization: Option<String>,
    body: Value,
}

#[derive(Default)]
struct State {
    seen: Vec<Seen>,
    /// Each comment's id, body and author (`None`: cutover's, as `github-actions[bot]`).
    comments: Vec<(u64, String, Option<&'static str>)>,
    /// The repository's deployments, as GitHub lists them.
    deployments: Vec<Value>,
    forbidden: bool,
    /// Writes (POST, PATCH) whose body holds this text are answered that much later, the others
    /// meanwhile: a run whose calls are slow.
    slow: Option<(&'static str, std::time::Duration)>,
    /// Whether a created deployment is listed (with its id) and each status posted kept on it.
    keep_deployments: bool,
    /// The comment another app's bot wrote: listed as `other-app[bot]`'s, its edit refused (403).
    other_app: Option<u64>,
}

/// The fake API on a free loopback port; it stops with the test process.
fn fake_api(state: Arc<Mutex<State>>) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(stream) = stream else { continue };
            let state = state.clone();
            std::thread::spawn(move || serve_one(stream, &state));
        }
    });
    url
}

/// Answers one request on its own thread, so a slow answer holds up no other.
fn serve_one(mut stream: std::net::TcpStream, state: &Mutex<State>) {
    let mut reader = BufReader::new(stream.try_clone().unwrap());
    let mut line = String::new();
    if reader.read_line(&mut line).is_err() {
        return;
    }
    let mut parts = line.split_whitespace();
    let (method, path) = (parts.next().unwrap_or("").to_owned(), parts.next().unwrap_or("").to_owned());
    let (mut length, mut authorization) = (0, None);
    loop {
        let mut header = String::new();
        if reader.read_line(&mut header).unwrap_or(0) == 0 || header.trim().is_empty() {
            break;
        }
        let (name, value) = header.split_once(':').unwrap_or((&header, ""));
        match name.to_ascii_lowercase().as_str() {
            "content-length" => length = value.trim().parse().unwrap_or(0),
            "authorization" => authorization = Some(value.trim().to_owned()),
            _ => {}
        }
    }
    let mut body = vec![0; length];
    reader.read_exact(&mut body).unwrap();
    let body: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    let slow = state.lock().unwrap().slow;
    if let Some((text, delay)) = slow
        && method != "GET"
        && body.to_string().contains(text)
    {
        std::thread::sleep(delay);
    }
    let (status, answer) = answer(state, Seen { method, path, authorization, body });
    let text = answer.to_string();
    let reply = format!(
        "HTTP/1.1 {status} X\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{text}",
        text.len()
    );
    let _ = stream.write_all(reply.as_bytes());
}

/// GitHub's answers for the calls a preview makes.
fn answer(state: &Mutex<State>, seen: Seen) -> (u16, Value) {
    let mut state = state.lock().unwrap();
    state.seen.push(seen.clone());
    if state.forbidden {
        return (403, json!({ "message": "Resource not accessible by integration" }));
    }
    let path = seen.path.split('?').next().unwrap_or_default().to_owned();
    match (seen.method.as_str(), path.as_str()) {
        ("GET", "/repos/o/r/issues/7/comments") => {
            let comments: Vec<Value> = state
                .comments
                .iter()
                .map(|(id, body, person)| {
                    let user = match person {
                        Some(login) => json!({ "login": login, "type": "User" }),
                        None if state.other_app == Some(*id) => json!({ "login": "other-app[bot]", "type": "Bot" }),
                        None => json!({ "login": "github-actions[bot]", "type": "Bot" }),
                    };
                    json!({ "id": id, "body": body, "user": user })
                })
                .collect();
            (200, Value::Array(comments))
        }
        ("POST", "/repos/o/r/issues/7/comments") => {
            let id = 100 + state.comments.len() as u64;
            state.comments.push((id, seen.body["body"].as_str().unwrap_or_default().to_owned(), None));
            (201, json!({ "id": id }))
        }
        ("PATCH", comment) if comment.starts_with("/repos/o/r/issues/comments/") => {
            let id: u64 = comment.rsplit('/').next().unwrap().parse().unwrap();
            if state.other_app == Some(id) {
                return (403, json!({ "message": "Resource not accessible by integration" }));
            }
            let body = seen.body["body"].as_str().unwrap_or_default().to_owned();
            state.comments.iter_mut().filter(|(c, _, _)| *c == id).for_each(|(_, b, _)| *b = body.clone());
            (200, json!({ "id": id }))
        }
        ("GET", "/repos/o/r/deployments") => {
            let query = seen.path.split_once('?').map_or("", |(_, q)| q);
            let environment = url::form_urlencoded::parse(query.as_bytes()).find(|(k, _)| k == "environment");
            let environment = environment.map(|(_, v)| v.into_owned()).unwrap_or_default();
            let listed = state.deployments.iter().filter(|d| d["environment"] == environment.as_str()).cloned();
            (200, Value::Array(listed.collect()))
        }
        ("POST", "/repos/o/r/deployments") if state.keep_deployments => {
            let id = 20 + state.deployments.len() as u64;
            let mut deployment = seen.body.clone();
            deployment["id"] = id.into();
            state.deployments.push(deployment);
            (201, json!({ "id": id }))
        }
        ("POST", "/repos/o/r/deployments") => (201, json!({ "id": 5 })),
        ("POST", statuses) if statuses.starts_with("/repos/o/r/deployments/") && statuses.ends_with("/statuses") => {
            let id: u64 = statuses.split('/').nth(5).and_then(|id| id.parse().ok()).unwrap_or_default();
            let posted = seen.body["state"].clone();
            state.deployments.iter_mut().filter(|d| d["id"] == id).for_each(|d| d["state"] = posted.clone());
            (201, json!({ "id": 1 }))
        }
        _ => (404, json!({ "message": "Not Found" })),
    }
}

fn push(f: &Fixture, api: &str, run: &str) -> Run {
    Run::new(push_command(f, api, run).output().unwrap())
}

/// The command of [`push`], to run beside another.
fn push_command(f: &Fixture, api: &str, run: &str) -> std::process::Command {
    push_command_with(f, api, run, None)
}

/// [`push_command`] with the token given as the `--github-token` flag (`flag`) instead of the
/// action's input variable.
fn push_command_with(f: &Fixture, api: &str, run: &str, flag: Option<&str>) -> std::process::Command {
    let dist = f.site(&format!("push{run}"), &[("index.html", run)]);
    let event = [
        ("CUTOVER_DIST_DIR", dist.to_str().unwrap()),
        ("GITHUB_EVENT_NAME", "pull_request"),
        ("GITHUB_REF", "refs/pull/7/merge"),
        ("GITHUB_RUN_NUMBER", run),
        ("GITHUB_REPOSITORY", "o/r"),
        ("GITHUB_SHA", "0123456789abcdef0123456789abcdef01234567"),
        ("GITHUB_API_URL", api),
    ];
    let mut command = match flag {
        Some(token) => f.command(&["preview", "--github-token", token], &event),
        None => f.command(&["preview"], &[&event[..], &[("INPUT_GITHUB-TOKEN", TOKEN)]].concat()),
    };
    command.stdout(std::process::Stdio::piped()).stderr(std::process::Stdio::piped());
    command
}

/// The variables of `preview-close` for pull request 7, with the token.
fn close_env(api: &str) -> [(&'static str, &str); 4] {
    [
        ("CUTOVER_PULL_REQUEST", "7"),
        ("GITHUB_REPOSITORY", "o/r"),
        ("GITHUB_API_URL", api),
        ("INPUT_GITHUB-TOKEN", TOKEN),
    ]
}

/// The marker of the fixture's site, as cutover writes it: its store and prefix.
fn site_marker(f: &Fixture) -> String {
    cutover::github::marker(&f.with_site(async |site| format!("{} {}", site.store.describe(), site.layout.prefix())))
}

/// Another app's bot comment carrying the site's marker (and the marker every site shared before)
/// answers 403 to an edit: cutover passes it over, writes its own comment and updates that one;
/// a second site previewing the same pull request keeps a comment of its own.
#[test]
fn another_apps_marker_comment_is_passed_over_and_each_site_keeps_its_own() {
    let mut f = Fixture::local();
    let _edge = f.start_edge();
    let state = Arc::new(Mutex::new(State { other_app: Some(50), ..State::default() }));
    let api = fake_api(state.clone());
    let ours = site_marker(&f);
    let foreign = format!("<!-- cutover-preview --> {ours} another app's");
    state.lock().unwrap().comments.push((50, foreign.clone(), None));
    for run in ["1", "2"] {
        let pushed = push(&f, &api, run);
        assert_eq!(pushed.code(), 0, "{}", pushed.stderr());
        assert!(!pushed.stdout().contains("comment was not written"), "{}", pushed.stdout());
    }
    {
        let state = state.lock().unwrap();
        let bodies: Vec<&str> = state.comments.iter().map(|(_, body, _)| body.as_str()).collect();
        assert_eq!(bodies.len(), 2, "{bodies:?}");
        assert_eq!(bodies[0], foreign, "another app's comment is untouched");
        assert!(bodies[1].contains(&ours) && bodies[1].contains("`pr-7-2`"), "{bodies:?}");
        let tries = state.seen.iter().filter(|s| s.method == "PATCH" && s.path.ends_with("/50")).count();
        assert_eq!(tries, 1, "passed over once, then cutover's own comment is the newest");
    }
    // The second site is smoke-tested through a local edge of its own.
    f.set("CUTOVER_PREFIX", "other").env.remove("CUTOVER_SITE_URL");
    let other = push(&f, &api, "3");
    assert_eq!(other.code(), 0, "{}", other.stderr());
    let state = state.lock().unwrap();
    assert_eq!(state.comments.len(), 3, "a comment per site: {:?}", state.comments);
    assert!(state.comments[1].1.contains("`pr-7-2`") && state.comments[2].1.contains("`pr-7-3`"));
    assert_ne!(site_marker(&f), ours);
}

/// Starts push `run` and returns once its first GitHub call arrived (its preview is linked).
fn push_started(f: &Fixture, api: &str, run: &str, state: &Mutex<State>) -> std::process::Child {
    let child = push_command(f, api, run).spawn().unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while state.lock().unwrap().seen.is_empty() {
        assert!(std::time::Instant::now() < deadline, "push {run} made no GitHub call");
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    child
}

/// Two pushes at once, the older one's GitHub writes slow (the tester's method): the calls are
/// made under the deploy lock, so the newer push finds the older one's comment and updates it;
/// one comment, and the newest comment and deployment name the newest push.
#[test]
fn racing_pushes_keep_one_comment_and_the_last_calls_name_the_newest_push() {
    let mut f = Fixture::local();
    let _edge = f.start_edge();
    let slow = Some(("pr-7-1", std::time::Duration::from_secs(3)));
    let state = Arc::new(Mutex::new(State { slow, ..State::default() }));
    let api = fake_api(state.clone());
    let first = push_started(&f, &api, "1", &state);
    let second = push(&f, &api, "2");
    assert_eq!(second.code(), 0, "{}", second.stderr());
    let first = crate::harness::finish(first);
    assert_eq!(first.code(), 0, "{}", first.stderr());
    let state = state.lock().unwrap();
    assert_eq!(state.comments.len(), 1, "one marker comment: {:?}", state.comments);
    assert!(state.comments[0].1.contains("`pr-7-2`"), "{:?}", state.comments);
    let deployed: Vec<&str> = state
        .seen
        .iter()
        .filter(|s| s.method == "POST" && s.path == "/repos/o/r/deployments")
        .filter_map(|s| s.body["description"].as_str())
        .collect();
    assert_eq!(deployed.last(), Some(&"cutover preview pr-7-2"), "{deployed:?}");
}

/// A close while a push's GitHub writes are slow: the close marks deployments inactive under the
/// deploy lock, after the push's calls, so no deployment of the closed pull request stays active.
#[test]
fn a_close_racing_a_push_leaves_no_deployment_active() {
    let mut f = Fixture::local();
    let _edge = f.start_edge();
    let slow = Some(("pr-7-1", std::time::Duration::from_secs(3)));
    let state = Arc::new(Mutex::new(State { slow, keep_deployments: true, ..State::default() }));
    let api = fake_api(state.clone());
    let pushed = push_started(&f, &api, "1", &state);
    let env = close_env(&api);
    let closed = f.run(&["preview-close"], &env);
    closed.assert_code(0);
    let pushed = crate::harness::finish(pushed);
    assert_eq!(pushed.code(), 0, "{}", pushed.stderr());
    let state = state.lock().unwrap();
    assert!(!state.deployments.is_empty(), "the push recorded its deployment");
    for deployment in &state.deployments {
        assert_eq!(deployment["state"], "inactive", "{:?}", state.deployments);
    }
}

#[test]
fn a_preview_keeps_one_comment_records_a_deployment_and_a_403_is_a_warning() {
    let mut f = Fixture::local();
    let edge = f.start_edge();
    let state = Arc::new(Mutex::new(State::default()));
    let api = fake_api(state.clone());
    let mut printed = String::new();

    // A person's comment quoting the marker is never edited.
    let quoted = format!("look: {}", site_marker(&f));
    state.lock().unwrap().comments.push((99, quoted.clone(), Some("mallory")));
    let first = push(&f, &api, "1");
    assert_eq!(first.code(), 0, "{}", first.stderr());
    let link = f.outputs()["preview-url"].clone();
    assert_eq!(link, format!("{}/?override_build_number=pr-7", edge.url));
    let second = push(&f, &api, "2");
    assert_eq!(second.code(), 0, "{}", second.stderr());
    {
        let state = state.lock().unwrap();
        assert_eq!(state.comments.len(), 2, "one comment of cutover's, updated: {:?}", state.comments);
        assert_eq!(state.comments[0].1, quoted, "the person's comment is untouched");
        let body = &state.comments[1].1;
        assert!(body.contains(&site_marker(&f)) && body.contains(&link) && body.contains("`pr-7-2`"), "{body}");
        let calls: Vec<String> =
            state.seen.iter().map(|s| format!("{} {}", s.method, s.path.split('?').next().unwrap())).collect();
        assert_eq!(
            calls,
            [
                "GET /repos/o/r/issues/7/comments",
                "POST /repos/o/r/issues/7/comments",
                "POST /repos/o/r/deployments",
                "POST /repos/o/r/deployments/5/statuses",
                "GET /repos/o/r/issues/7/comments",
                "PATCH /repos/o/r/issues/comments/101",
                "POST /repos/o/r/deployments",
                "POST /repos/o/r/deployments/5/statuses",
            ]
        );
        let deployment = &state.seen[2].body;
        assert_eq!(deployment["environment"], "preview/pr-7");
        assert_eq!(deployment["production_environment"], false);
        assert_eq!(state.seen[3].body["environment_url"], link.as_str());
        assert_eq!(state.seen[3].body["state"], "success");
        let bearer = format!("Bearer {TOKEN}");
        assert!(state.seen.iter().all(|s| s.authorization.as_deref() == Some(bearer.as_str())));
    }

    // A re-run of the older push 1 finishing last leaves the comment and the deployment alone.
    let calls = state.lock().unwrap().seen.len();
    let rerun = push(&f, &api, "1");
    assert_eq!(rerun.code(), 0, "{}", rerun.stderr());
    assert_eq!(state.lock().unwrap().seen.len(), calls, "no GitHub call for an older preview");
    assert!(state.lock().unwrap().comments[1].1.contains("`pr-7-2`"), "the comment still names the newest");

    state.lock().unwrap().forbidden = true;
    let refused = push(&f, &api, "3");
    assert_eq!(refused.code(), 0, "a refusal never fails the step: {}", refused.stderr());
    let warnings: Vec<&str> = refused.stdout().lines().filter(|l| l.starts_with("::warning::")).map(|_| "").collect();
    assert_eq!(warnings.len(), 2, "{}", refused.stdout());
    assert!(refused.stdout().contains("403"), "{}", refused.stdout());
    assert_eq!(f.outputs()["version"], "pr-7-3", "the preview itself was made");

    // Given as a flag rather than an input variable, the token is masked all the same.
    // With the newline a secret saved by `echo` ends with: sent without it.
    let flagged = Run::new(push_command_with(&f, &api, "4", Some(&format!("{TOKEN}\n"))).output().unwrap());
    assert_eq!(flagged.code(), 0, "{}", flagged.stderr());
    let sent = state.lock().unwrap().seen.last().and_then(|s| s.authorization.clone());
    assert_eq!(sent, Some(format!("Bearer {TOKEN}")), "{}", flagged.stdout());
    for run in [&first, &second, &refused, &flagged] {
        printed.push_str(&run.stdout());
        printed.push_str(&run.stderr());
        assert!(run.stdout().lines().any(|l| l == format!("::add-mask::{TOKEN}")), "the token is masked");
    }
    printed.push_str(&std::fs::read_to_string(f.dir.path().join("step_summary")).unwrap_or_default());
    for line in printed.lines().filter(|l| !l.starts_with("::add-mask::")) {
        assert!(!line.contains(TOKEN), "the token was printed: {line}");
    }
}

/// `preview-close` with `github-token` marks inactive each deployment of `preview/pr-<n>` that
/// cutover recorded, never another tool's there nor another pull request's; a 403 is a warning and
/// the close still passes; the token is printed nowhere.
#[test]
fn a_close_marks_the_pull_requests_deployments_inactive_and_a_403_is_a_warning() {
    let f = Fixture::local();
    f.deploy(&f.site("v1", &[("index.html", "live")]), "1");
    let state = Arc::new(Mutex::new(State::default()));
    let api = fake_api(state.clone());
    let deployment = |id: u64, environment: &str, description: &str| json!({ "id": id, "environment": environment, "description": description });
    state.lock().unwrap().deployments = vec![
        deployment(11, "preview/pr-7", "cutover preview pr-7-1"),
        deployment(12, "preview/pr-7", "cutover preview pr-7-2"),
        deployment(13, "preview/pr-7", "another tool's"),
        deployment(14, "preview/pr-8", "cutover preview pr-8-1"),
    ];
    let env = close_env(&api);
    let dry = f.run(&["preview-close", "--dry-run"], &env);
    dry.assert_code(0);
    assert!(state.lock().unwrap().seen.is_empty(), "a dry run makes no call");
    let closed = f.run(&["preview-close"], &env);
    closed.assert_code(0);
    assert!(!closed.stdout().contains("::warning::"), "{}", closed.stdout());
    {
        let state = state.lock().unwrap();
        let calls: Vec<String> = state.seen.iter().map(|s| format!("{} {}", s.method, s.path)).collect();
        assert_eq!(
            calls,
            [
                "GET /repos/o/r/deployments?environment=preview%2Fpr-7&per_page=100&page=1",
                "POST /repos/o/r/deployments/11/statuses",
                "POST /repos/o/r/deployments/12/statuses",
            ]
        );
        assert!(state.seen[1..].iter().all(|s| s.body["state"] == "inactive"), "{:?}", state.seen);
        let bearer = format!("Bearer {TOKEN}");
        assert!(state.seen.iter().all(|s| s.authorization.as_deref() == Some(bearer.as_str())));
    }

    state.lock().unwrap().forbidden = true;
    let refused = f.run(&["preview-close"], &env);
    assert_eq!(refused.code(), 0, "a refusal never fails the step: {}", refused.stderr());
    let warning = refused.stdout().lines().filter(|l| l.starts_with("::warning::")).collect::<Vec<_>>().join("\n");
    assert!(warning.contains("preview/pr-7 were not marked inactive") && warning.contains("403"), "{warning}");
    for run in [&dry, &closed, &refused] {
        assert!(run.stdout().lines().any(|l| l == format!("::add-mask::{TOKEN}")), "the token is masked");
        let printed = run.stdout() + &run.stderr();
        assert!(printed.lines().filter(|l| !l.starts_with("::add-mask::")).all(|l| !l.contains(TOKEN)), "{printed}");
    }
}
