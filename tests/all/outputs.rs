//! Step outputs as later steps and programs see them: on CircleCI and TeamCity they reach the next
//! step's environment without becoming its inputs, and `--json` prints one result object, failure
//! or not, with the smoke test's per-path results.

use std::collections::BTreeMap;
use std::process::{Command, Stdio};

use crate::harness::{Fixture, Run};

/// The site's env for one step of a two-step pipeline: its own store, prefix, version and URL.
struct Step {
    env: Vec<(String, String)>,
    url: String,
}

/// A staging and a production site in one fixture, each with its own edge.
fn staging_and_production(f: &Fixture) -> (Step, Step, Vec<crate::harness::Edge>) {
    let mut steps = Vec::new();
    let mut edges = Vec::new();
    for (name, version) in [("staging", "7"), ("production", "8")] {
        let dist = f.site(&format!("{name}-dist"), &[("index.html", name)]).display().to_string();
        let store = f.dir.path().join(format!("{name}-store")).display().to_string();
        let edge = f.spawn_edge(&[("CUTOVER_STORE_DIR", &store)]);
        let env = [
            ("CUTOVER_STORE_DIR", store),
            ("CUTOVER_DIST_DIR", dist),
            ("CUTOVER_VERSION", version.to_owned()),
            ("CUTOVER_SITE_URL", edge.url.clone()),
        ];
        let env = env.into_iter().map(|(k, v)| (k.to_owned(), v)).collect();
        steps.push(Step { env, url: edge.url.clone() });
        edges.push(edge);
    }
    let production = steps.pop().expect("production");
    let staging = steps.pop().expect("staging");
    (staging, production, edges)
}

/// Runs `script` under bash with the fixture's env plus `env`, as a CircleCI step runs its command:
/// bash sources `$BASH_ENV` first, so what earlier steps exported there wins over the step's env.
fn circleci_step(f: &Fixture, env: &[(String, String)], script: &str) -> Run {
    let bash_env = f.dir.path().join("bash_env");
    let mut command = Command::new("bash");
    command.env_clear().envs(&f.env).envs(env.iter().map(|(k, v)| (k, v)));
    command.envs([("GITHUB_ACTIONS", ""), ("CIRCLECI", "true")]).env("BASH_ENV", &bash_env);
    command.env("CUTOVER", env!("CARGO_BIN_EXE_cutover")).current_dir(f.dir.path()).stdin(Stdio::null());
    command.args(["-c", &format!("source \"$BASH_ENV\"; {script}")]).output().map(Run::new).expect("running bash")
}

/// TeamCity's escaping undone: what `##teamcity[... value='...']` means.
fn teamcity_unescape(text: &str) -> String {
    let mut out = String::new();
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        if c != '|' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('n') => out.push('\n'),
            Some('r') => out.push('\r'),
            Some('0') => {
                let hex: String = chars.by_ref().skip(1).take(4).collect();
                out.push(char::from_u32(u32::from_str_radix(&hex, 16).expect("hex")).expect("a char"));
            }
            Some(other) => out.push(other),
            None => panic!("a lone | in {text:?}"),
        }
    }
    out
}

/// The `env.X` parameters a TeamCity step set, as the env vars later steps get.
fn teamcity_env_parameters(stdout: &str) -> BTreeMap<String, String> {
    let prefix = "##teamcity[setParameter name='env.";
    stdout
        .lines()
        .filter_map(|line| line.strip_prefix(prefix)?.strip_suffix("']"))
        .map(|rest| {
            let (name, value) = rest.split_once("' value='").expect("a name and a value");
            (name.to_owned(), teamcity_unescape(value))
        })
        .collect()
}

#[test]
fn circleci_outputs_of_one_step_are_not_the_next_steps_inputs() {
    let f = Fixture::local();
    std::fs::write(f.dir.path().join("bash_env"), "").unwrap();
    let (staging, production, _edges) = staging_and_production(&f);
    circleci_step(&f, &staging.env, "exec \"$CUTOVER\" deploy").assert_code(0);
    let seen = circleci_step(&f, &production.env, "printf '%s %s' \"$CUTOVER_OUTPUT_VERSION\" \"$CUTOVER_VERSION\"");
    let run = circleci_step(&f, &production.env, "exec \"$CUTOVER\" deploy");
    run.assert_code(0);
    assert!(run.stderr().contains("cutover: 8 live"), "{}", run.stderr());
    assert_eq!(seen.stdout(), "7 8", "the next step sees staging's output beside its own input");
    let outputs = circleci_step(&f, &[], "printf '%s %s' \"$CUTOVER_OUTPUT_VERSION\" \"$CUTOVER_OUTPUT_SITE_URL\"");
    assert_eq!(outputs.stdout(), format!("8 {}/", production.url), "production smoked its own URL");
    let production_store = &production.env[0].1;
    let active = f.run(&["status", "--json"], &[("CUTOVER_STORE_DIR", production_store)]).assert_code(0).json();
    assert_eq!(active["active"], "8");
}

fn as_pairs(env: &[(String, String)]) -> Vec<(&str, &str)> {
    env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect()
}

#[test]
fn teamcity_outputs_of_one_step_are_not_the_next_steps_inputs() {
    let f = Fixture::local();
    let (staging, production, _edges) = staging_and_production(&f);
    let teamcity = [("GITHUB_ACTIONS", ""), ("TEAMCITY_VERSION", "2025.03")];
    let first = f.run(&["deploy"], &[as_pairs(&staging.env), teamcity.to_vec()].concat());
    first.assert_code(0);
    let first_set = teamcity_env_parameters(&first.stdout());
    // The parameters a step sets are in the environment of every later step, over its own.
    let mut env = as_pairs(&production.env);
    env.extend(teamcity);
    env.extend(first_set.iter().map(|(k, v)| (k.as_str(), v.as_str())));
    let second = f.run(&["deploy"], &env);
    second.assert_code(0);
    let production_store = &production.env[0].1;
    let active = f.run(&["status", "--json"], &[("CUTOVER_STORE_DIR", production_store)]).assert_code(0).json();
    assert_eq!(active["active"], "8");
    let set = teamcity_env_parameters(&second.stdout());
    assert_eq!(set.get("CUTOVER_OUTPUT_VERSION").map(String::as_str), Some("8"), "{set:?}");
    assert_eq!(set["CUTOVER_OUTPUT_SITE_URL"], format!("{}/", production.url), "production smoked its own URL");
    assert_eq!(first_set["CUTOVER_OUTPUT_VERSION"], "7", "later steps hear staging's outputs: {first_set:?}");
}

/// `--json` on success: the outputs, and the result of each smoke path.
#[test]
fn json_results_carry_the_smoke_results() {
    let mut f = Fixture::local();
    let _edge = f.start_edge();
    let dist = f.site("v1", &[("index.html", "one"), ("about.html", "about")]).display().to_string();
    f.set("CUTOVER_DIST_DIR", &dist).set("CUTOVER_VERSION", "1").set("CUTOVER_SMOKE_PATHS", "/,/about.html");
    for command in ["deploy", "smoke"] {
        let result = f.run(&[command, "--json"], &[]).assert_code(0).json();
        assert_eq!(result["version"], "1", "{command}: {result}");
        let smoke = result["smoke"].as_array().unwrap_or_else(|| panic!("{command}: {result}"));
        let paths: Vec<(&str, bool, &str)> = smoke
            .iter()
            .map(|c| (c["path"].as_str().unwrap(), c["passed"].as_bool().unwrap(), c["detail"].as_str().unwrap()))
            .collect();
        assert_eq!(paths, [("/", true, "ok"), ("/about.html", true, "ok")], "{command}: {result}");
        assert!(smoke.iter().all(|c| c["attempts"].as_u64() >= Some(1)), "{command}: {result}");
        assert!(result.get("error").is_none() && result.get("exit-code").is_none(), "{command}: {result}");
    }
}

/// `--json` on failure: one object on stdout with `error` and `exit-code`, for every command.
#[test]
fn json_failures_print_the_error_and_exit_code() {
    let mut f = Fixture::local();
    let _edge = f.start_edge();
    let dist = f.site("v1", &[("index.html", "one")]).display().to_string();
    f.set("CUTOVER_DIST_DIR", &dist).set("CUTOVER_VERSION", "1");
    let failure = |run: &Run, code: i32| {
        run.assert_code(code);
        let result = run.json();
        assert_eq!(result["exit-code"], code, "{result}");
        result["error"].as_str().unwrap_or_else(|| panic!("an error message: {result}")).to_owned()
    };
    let commands: [&[&str]; 10] = [
        &["deploy"],
        &["stage"],
        &["smoke"],
        &["promote"],
        &["rollback"],
        &["status"],
        &["prune"],
        &["serve"],
        &["doctor"],
        &["edge", "bundle"],
    ];
    for command in commands {
        let run = f.run(&[command, &["--json"]].concat(), &[("CUTOVER_CONCURRENCY", "0")]);
        assert!(failure(&run, 2).starts_with("input `concurrency`"), "{command:?}: {}", run.stdout());
        assert!(f.outputs().is_empty(), "{command:?}: no outputs on bad input");
    }
    let run = f.run(&["--json"], &[]);
    assert!(failure(&run, 2).contains("no command"), "{}", run.stdout());
    std::fs::create_dir_all(f.dir.path().join("store")).unwrap();
    let run = f.run(&["promote", "--json"], &[("CUTOVER_VERSION", "9")]);
    assert!(failure(&run, 4).contains('9'), "a refused promotion: {}", run.stdout());
    let run = f.run(&["smoke", "--json"], &[("CUTOVER_SMOKE_TIMEOUT", "1s")]);
    assert!(failure(&run, 3).starts_with("smoke test failed"), "{}", run.stdout());
    let smoke = run.json()["smoke"].clone();
    assert_eq!(smoke[0]["path"], "/", "the failed smoke's results: {smoke}");
    assert_eq!(smoke[0]["passed"], false, "{smoke}");
    assert!(smoke[0]["detail"].as_str().unwrap().contains("404"), "{smoke}");
}

/// `cutover deploy | head -c 1` or `2>&1 | head`: a reader that goes away never stops a release
/// between its flip and its outputs, and never makes cutover panic.
#[test]
fn a_closed_stdout_or_stderr_never_stops_a_release() {
    let f = Fixture::local();
    let dist = f.site("dist", &[("index.html", "ok")]).display().to_string();
    for (version, command) in [("1", &["deploy"][..]), ("2", &["deploy", "--json"][..])] {
        let mut child = f
            .command(command, &[("CUTOVER_DIST_DIR", &dist), ("CUTOVER_VERSION", version)])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("starting cutover");
        drop(child.stdout.take());
        drop(child.stderr.take());
        let status = child.wait().expect("waiting for cutover");
        assert_eq!(status.code(), Some(0), "{command:?} with both pipes closed");
        assert_eq!(f.outputs().get("version").map(String::as_str), Some(version), "the outputs are written");
    }
    assert_eq!(f.active().as_deref(), Some("2"));
}
