//! The CI manifests (`action.yml`, the TeamCity recipe and meta-runner, the CircleCI orb) and the
//! README's inputs table are generated from the inputs and outputs defined in the code, and this
//! test fails when a file on disk differs. They are snapshots (`expect-test`): `UPDATE_EXPECT=1`
//! rewrites them.

use std::path::Path;
use std::process::Command;

use expect_test::expect_file;

use cutover::ci::{OUTPUT_ENV_PREFIX, output_env_name};
use cutover::inputs::{INPUTS, InputSpec};
use cutover::report::OUTPUTS;

/// Where the release workflow pushes the image (its `env.IMAGE`).
const REGISTRY_PATH: &str = "ghcr.io/cutover-dev/cutover";

/// The published image every manifest runs; its tag is the crate's version.
fn image() -> String {
    format!("{REGISTRY_PATH}:{}", env!("CARGO_PKG_VERSION"))
}

/// Commands a CI step may run.
const COMMANDS: [&str; 9] =
    ["deploy", "stage", "smoke", "promote", "rollback", "status", "prune", "preview", "preview-close"];

const HEADER: &str = "Generated from src/inputs/mod.rs and src/report.rs by tests/all/manifests.rs: edit those, then run\n\
                      UPDATE_EXPECT=1 cargo test manifests";

fn is_flag(input: &InputSpec) -> bool {
    matches!(input.default, Some("true" | "false"))
}

fn env_var(input: &InputSpec) -> String {
    format!("CUTOVER_{}", input.field.to_ascii_uppercase())
}

/// A YAML double-quoted scalar (JSON strings are valid YAML).
fn quoted(text: &str) -> String {
    serde_json::to_string(text).expect("a string serialises")
}

/// Where TeamCity and CircleCI steps find the outputs: never an input's name.
fn outputs_note(parameter: &str) -> String {
    format!(
        "Outputs reach later steps as {parameter}{OUTPUT_ENV_PREFIX}<NAME>, e.g. {parameter}{}.",
        output_env_name("version")
    )
}

fn commented(text: &str) -> String {
    text.lines().map(|l| format!("# {l}\n")).collect()
}

fn action_yml() -> String {
    let mut out = commented(HEADER);
    out.push_str("name: cutover\n");
    out.push_str("description: Release a static site through S3 and CloudFront as an immutable, smoke-tested version made live by one atomic flip.\n");
    out.push_str("author: cutover\nbranding:\n  icon: upload-cloud\n  color: blue\ninputs:\n");
    out.push_str(&format!(
        "  command:\n    description: {}\n    required: false\n    default: deploy\n",
        quoted(&format!("The cutover command to run: {}.", COMMANDS.join(", ")))
    ));
    for input in INPUTS {
        out.push_str(&format!(
            "  {}:\n    description: {}\n    required: false\n",
            input.name(),
            quoted(input.description)
        ));
        if let Some(default) = input.default {
            out.push_str(&format!("    default: {}\n", quoted(default)));
        }
    }
    out.push_str("outputs:\n");
    for (name, description) in OUTPUTS {
        out.push_str(&format!("  {name}:\n    description: {}\n", quoted(description)));
    }
    out.push_str(&format!(
        "runs:\n  using: docker\n  image: docker://{}\n  entrypoint: /usr/local/bin/cutover\n  args:\n    - ${{{{ inputs.command }}}}\n",
        image()
    ));
    out
}

fn recipe_yml() -> String {
    let mut out = commented(HEADER);
    out.push_str("name: cutover/cutover-deploy\ntitle: cutover\n");
    out.push_str(&format!("version: {}\n", env!("CARGO_PKG_VERSION")));
    out.push_str(&format!(
        "description: {}\n",
        quoted(&format!(
            "Release a static site through S3 and CloudFront as an immutable, smoke-tested version made live by one atomic pointer flip. {}",
            outputs_note("env.")
        ))
    ));
    out.push_str(&format!("container: {}\ninputs:\n", image()));
    let mut input = |name: &str, kind: &str, label: &str, description: &str, default: Option<&str>| {
        out.push_str(&format!("  - {name}:\n      type: {kind}\n      label: {}\n", quoted(label)));
        out.push_str(&format!("      description: {}\n      required: false\n", quoted(description)));
        if let Some(default) = default {
            out.push_str(&format!("      default: {}\n", quoted(default)));
        }
    };
    input(
        "env.CUTOVER_COMMAND",
        "text",
        "command",
        &format!("The cutover command: {}.", COMMANDS.join(", ")),
        Some("deploy"),
    );
    for spec in INPUTS {
        let kind = if is_flag(spec) { "boolean" } else { "text" };
        input(&format!("env.{}", env_var(spec)), kind, &spec.name(), spec.description, spec.default);
    }
    for (name, label) in AWS_SECRETS {
        input(&format!("env.{name}"), "password", label, "AWS credential for the step.", None);
    }
    out.push_str("  - env.CUTOVER_GIT_REF:\n      type: text\n      label: \"git ref\"\n");
    out.push_str("      description: \"The branch or tag built; a tag (refs/tags/<tag>) becomes the version.\"\n");
    out.push_str("      required: false\n      default: \"%teamcity.build.branch%\"\n");
    out.push_str("steps:\n  - name: cutover\n    script: |\n      cutover \"$CUTOVER_COMMAND\"\n");
    out
}

/// Credentials a TeamCity or CircleCI step passes on, never shown.
const AWS_SECRETS: [(&str, &str); 3] = [
    ("AWS_ACCESS_KEY_ID", "AWS access key id"),
    ("AWS_SECRET_ACCESS_KEY", "AWS secret access key"),
    ("AWS_SESSION_TOKEN", "AWS session token"),
];

/// Escapes a value inside a TeamCity parameter spec.
fn spec_escape(text: &str) -> String {
    cutover::ci::teamcity_escape(text)
}

fn xml_escape(text: &str) -> String {
    text.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
}

fn meta_runner_xml() -> String {
    let mut out = format!("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<!--\n{HEADER}\n-->\n");
    out.push_str("<meta-runner name=\"cutover\">\n");
    out.push_str(&format!(
        "  <description>Release a static site through S3 and CloudFront: stage, smoke-test, promote, roll back. {}</description>\n",
        xml_escape(&outputs_note("env."))
    ));
    out.push_str("  <settings>\n    <parameters>\n");
    let mut param = |name: &str, value: &str, spec: String| {
        out.push_str(&format!(
            "      <param name=\"{name}\" value=\"{}\" spec=\"{}\" />\n",
            xml_escape(value),
            xml_escape(&spec)
        ));
    };
    let command_spec = format!(
        "select label='command' description='The cutover command.' display='normal' {}",
        COMMANDS.iter().enumerate().map(|(i, c)| format!("data_{}='{c}'", i + 1)).collect::<Vec<_>>().join(" ")
    );
    param("env.CUTOVER_COMMAND", "deploy", command_spec);
    for spec in INPUTS {
        let kind = if is_flag(spec) {
            "checkbox checkedValue='true' uncheckedValue='false'"
        } else {
            "text validationMode='any'"
        };
        let text = format!(
            "{kind} label='{}' description='{}' display='normal'",
            spec_escape(&spec.name()),
            spec_escape(spec.description)
        );
        param(&format!("env.{}", env_var(spec)), spec.default.unwrap_or(""), text);
    }
    for (name, label) in AWS_SECRETS {
        param(&format!("env.{name}"), "", format!("password label='{label}' display='normal'"));
    }
    param(
        "env.CUTOVER_GIT_REF",
        "%teamcity.build.branch%",
        "text label='git ref' description='The branch or tag built; a tag (refs/tags/<tag>) becomes the version.' display='hidden' validationMode='any'".into(),
    );
    out.push_str("    </parameters>\n    <build-runners>\n      <runner name=\"cutover\" type=\"simpleRunner\">\n        <parameters>\n");
    for (name, value) in [
        ("script.content", "cutover \"$CUTOVER_COMMAND\"".to_owned()),
        ("teamcity.step.mode", "default".to_owned()),
        ("use.custom.script", "true".to_owned()),
        ("plugin.docker.imageId", image()),
        ("plugin.docker.imagePlatform", "linux".to_owned()),
    ] {
        out.push_str(&format!("          <param name=\"{name}\" value=\"{}\" />\n", xml_escape(&value)));
    }
    out.push_str("        </parameters>\n      </runner>\n    </build-runners>\n    <requirements />\n  </settings>\n</meta-runner>\n");
    out
}

fn orb_parameters(indent: &str) -> String {
    let mut out = String::new();
    out.push_str(&format!("{indent}command:\n{indent}  description: \"The cutover command to run.\"\n"));
    out.push_str(&format!(
        "{indent}  type: enum\n{indent}  enum: [{}]\n{indent}  default: deploy\n",
        COMMANDS.join(", ")
    ));
    for spec in INPUTS {
        out.push_str(&format!("{indent}{}:\n{indent}  description: {}\n", spec.name(), quoted(spec.description)));
        if is_flag(spec) {
            out.push_str(&format!("{indent}  type: boolean\n{indent}  default: {}\n", spec.default.unwrap_or("false")));
        } else {
            out.push_str(&format!(
                "{indent}  type: string\n{indent}  default: {}\n",
                quoted(spec.default.unwrap_or(""))
            ));
        }
    }
    for (name, label) in AWS_SECRETS {
        let parameter = name.to_ascii_lowercase().replace('_', "-");
        out.push_str(&format!(
            "{indent}{parameter}:\n{indent}  description: {}\n{indent}  type: env_var_name\n{indent}  default: {name}\n",
            quoted(&format!("Name of the env var holding the {label}."))
        ));
    }
    out
}

fn orb_yml() -> String {
    let mut out = commented(HEADER);
    out.push_str("version: 2.1\n");
    out.push_str("description: Release a static site through S3 and CloudFront as an immutable, smoke-tested version made live by one atomic pointer flip.\n");
    out.push_str("display:\n  home_url: https://github.com/cutover-dev/cutover\n  source_url: https://github.com/cutover-dev/cutover\n");
    out.push_str(&format!("executors:\n  default:\n    docker:\n      - image: {}\n", image()));
    let exports = OUTPUTS.iter().map(|(name, _)| output_env_name(name)).collect::<Vec<_>>().join(", ");
    out.push_str(&format!(
        "commands:\n  deploy:\n    description: {}\n    parameters:\n",
        quoted(&format!(
            "Run cutover (deploy by default; any command via `command`) with the inputs as parameters. Outputs are exported through $BASH_ENV to the job's later steps as {exports}."
        ))
    ));
    out.push_str(&orb_parameters("      "));
    out.push_str(
        "    steps:\n      - run:\n          name: cutover << parameters.command >>\n          environment:\n",
    );
    for spec in INPUTS {
        out.push_str(&format!("            {}: << parameters.{} >>\n", env_var(spec), spec.name()));
    }
    out.push_str("          command: |\n");
    for (name, _) in AWS_SECRETS {
        let parameter = name.to_ascii_lowercase().replace('_', "-");
        out.push_str(&format!("            export {name}=\"${{<< parameters.{parameter} >>:-}}\"\n"));
    }
    out.push_str("            cutover << parameters.command >>\n");
    out.push_str("jobs:\n  deploy:\n    description: Release the build in the attached workspace.\n    executor: default\n    parameters:\n");
    out.push_str(&orb_parameters("      "));
    out.push_str("    steps:\n      - attach_workspace:\n          at: .\n      - deploy:\n");
    for spec in std::iter::once("command".to_owned())
        .chain(INPUTS.iter().map(InputSpec::name))
        .chain(AWS_SECRETS.iter().map(|(n, _)| n.to_ascii_lowercase().replace('_', "-")))
    {
        out.push_str(&format!("          {spec}: << parameters.{spec} >>\n"));
    }
    out.push_str(
        "examples:\n  deploy:\n    description: Build the site, then release it with cutover.\n    usage:\n      version: 2.1\n",
    );
    out.push_str(&format!("      orbs:\n        cutover: cutover-dev/cutover@{}\n", env!("CARGO_PKG_VERSION")));
    out.push_str(
        "      workflows:\n        release:\n          jobs:\n            - build\n            - cutover/deploy:\n",
    );
    out.push_str("                requires: [build]\n                bucket: my-site-bucket\n                site-url: https://www.example.com\n");
    out.push_str("  outputs:\n    description: Use a release's outputs in a later step of the same job.\n    usage:\n      version: 2.1\n");
    out.push_str(&format!("      orbs:\n        cutover: cutover-dev/cutover@{}\n", env!("CARGO_PKG_VERSION")));
    out.push_str("      jobs:\n        release:\n          executor: cutover/default\n          steps:\n");
    out.push_str("            - attach_workspace:\n                at: .\n            - cutover/deploy:\n");
    out.push_str("                bucket: my-site-bucket\n                site-url: https://www.example.com\n");
    out.push_str(&format!(
        "            - run: echo \"released ${} (was ${})\"\n",
        output_env_name("version"),
        output_env_name("previous-version")
    ));
    out.push_str("      workflows:\n        release:\n          jobs:\n            - release\n");
    out
}

/// Runs `script` with the Python in `.venv` (it has PyYAML), the repository's root as its
/// argument, and parses the JSON it prints.
fn python_json(script: &str) -> serde_json::Value {
    let python = Path::new(env!("CARGO_MANIFEST_DIR")).join(".venv/bin/python");
    let output = Command::new(&python)
        .args(["-c", script, env!("CARGO_MANIFEST_DIR")])
        .output()
        .unwrap_or_else(|e| panic!("{}: {e}; run scripts/test to install it", python.display()));
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    serde_json::from_slice(&output.stdout).expect("json")
}

#[test]
fn manifests_match_the_inputs_in_the_code() {
    expect_file!["../../action.yml"].assert_eq(&action_yml());
    expect_file!["../../teamcity-plugin/cutover-recipe.yml"].assert_eq(&recipe_yml());
    expect_file!["../../teamcity-plugin/cutover-meta-runner.xml"].assert_eq(&meta_runner_xml());
    expect_file!["../../circleci/orb.yml"].assert_eq(&orb_yml());
}

/// Parses each manifest as YAML/XML with Python (from `.venv`) and checks the inputs it declares.
#[test]
fn manifests_parse_and_declare_every_input() {
    let script = r#"
import json, sys, yaml, xml.etree.ElementTree as ET
root = sys.argv[1]
action = yaml.safe_load(open(root + "/action.yml"))
recipe = yaml.safe_load(open(root + "/teamcity-plugin/cutover-recipe.yml"))
orb = yaml.safe_load(open(root + "/circleci/orb.yml"))
meta = ET.parse(root + "/teamcity-plugin/cutover-meta-runner.xml").getroot()
print(json.dumps({
    "action": {k: v.get("default") for k, v in action["inputs"].items()},
    "action_outputs": list(action["outputs"]),
    "action_image": action["runs"]["image"],
    "recipe": {list(i)[0]: list(i.values())[0].get("default") for i in recipe["inputs"]},
    "meta": {p.get("name"): p.get("value") for p in meta.find("settings/parameters")},
    "orb_command": {k: v.get("default") for k, v in orb["commands"]["deploy"]["parameters"].items()},
    "orb_job": {k: v.get("default") for k, v in orb["jobs"]["deploy"]["parameters"].items()},
    "orb_image": orb["executors"]["default"]["docker"][0]["image"],
    "recipe_description": recipe["description"],
    "meta_description": meta.find("description").text,
    "orb_command_description": orb["commands"]["deploy"]["description"],
    "orb_example_steps": orb["examples"]["outputs"]["usage"]["jobs"]["release"]["steps"],
}))
"#;
    let parsed = python_json(script);
    for spec in INPUTS {
        let default = spec.default.map_or(serde_json::Value::Null, |d| d.into());
        assert_eq!(parsed["action"][spec.name()], default, "action.yml {}", spec.name());
        let env = format!("env.{}", env_var(spec));
        assert_eq!(parsed["recipe"][&env], default, "recipe {env}");
        assert_eq!(parsed["meta"][&env], spec.default.unwrap_or(""), "meta-runner {env}");
        assert!(parsed["orb_command"].get(spec.name()).is_some(), "orb command {}", spec.name());
        assert!(parsed["orb_job"].get(spec.name()).is_some(), "orb job {}", spec.name());
    }
    assert_eq!(
        parsed["action"].as_object().unwrap().len(),
        INPUTS.len() + 1,
        "action.yml declares only the inputs and `command`"
    );
    let outputs: Vec<&str> = OUTPUTS.iter().map(|(n, _)| *n).collect();
    assert_eq!(parsed["action_outputs"], serde_json::json!(outputs));
    assert_eq!(parsed["action_image"], format!("docker://{}", image()));
    assert_eq!(parsed["orb_image"], image());
    for name in ["env.AWS_SECRET_ACCESS_KEY", "env.AWS_SESSION_TOKEN", "env.CUTOVER_GIT_REF"] {
        assert!(parsed["recipe"].get(name).is_some() && parsed["meta"].get(name).is_some(), "{name}");
    }
    assert_eq!(parsed["meta"]["env.CUTOVER_GIT_REF"], "%teamcity.build.branch%");
    let recipe_description = parsed["recipe_description"].as_str().expect("a recipe description");
    assert!(recipe_description.chars().count() <= 250, "TeamCity takes at most 250: {recipe_description}");
    for description in [recipe_description, parsed["meta_description"].as_str().expect("a meta-runner description")] {
        assert!(description.contains("env.CUTOVER_OUTPUT_VERSION"), "{description}");
    }
    let orb_description = parsed["orb_command_description"].as_str().expect("an orb command description");
    for (name, _) in OUTPUTS {
        assert!(orb_description.contains(&output_env_name(name)), "{name}: {orb_description}");
    }
    assert!(parsed["orb_example_steps"][2]["run"].as_str().unwrap().contains("$CUTOVER_OUTPUT_VERSION"));
}

/// The image each manifest on disk runs is the one a release of this version publishes: the
/// registry path the release workflow pushes to, tagged with the crate's version (the workflow
/// refuses a tag that is not `v<crate version>`). The README names no other.
#[test]
fn manifests_run_the_image_the_release_publishes() {
    let root = env!("CARGO_MANIFEST_DIR");
    let script = r#"
import json, re, sys, yaml, xml.etree.ElementTree as ET
root = sys.argv[1]
release = yaml.safe_load(open(root + "/.github/workflows/release.yml"))
jobs = release["jobs"]
steps = lambda job: {s["id"]: s for s in jobs[job]["steps"] if "id" in s}
meta = ET.parse(root + "/teamcity-plugin/cutover-meta-runner.xml").getroot()
print(json.dumps({
    "pushed_to": release["env"]["IMAGE"],
    "tags_script": steps("image")["tags"]["run"],
    "build": steps("image")["build"]["with"],
    "tag_check": steps("version")["version"]["run"],
    "forward_check": steps("version")["forward"]["run"],
    "move_major_output": jobs["version"]["outputs"]["move_major"],
    "tags_env": steps("image")["tags"]["env"],
    "major_tag_if": [s.get("if") for s in jobs["release"]["steps"] if s.get("name") == "Move the action's major tag"][0],
    "image_overrides": [
        where for job_name, job in jobs.items()
        for where, env in [(f"job {job_name}", job.get("env"))]
            + [(f"job {job_name} step {i}", s.get("env")) for i, s in enumerate(job.get("steps", []))]
        if "IMAGE" in (env or {})
    ],
    "images": {
        "action.yml": yaml.safe_load(open(root + "/action.yml"))["runs"]["image"].removeprefix("docker://"),
        "recipe": yaml.safe_load(open(root + "/teamcity-plugin/cutover-recipe.yml"))["container"],
        "meta-runner": {p.get("name"): p.get("value") for p in meta.iter("param")}["plugin.docker.imageId"],
        "orb": yaml.safe_load(open(root + "/circleci/orb.yml"))["executors"]["default"]["docker"][0]["image"],
    },
    "readme": re.findall(r"ghcr\.io/[\w./-]+:[\w.<>-]+", open(root + "/README.md").read()),
}))
"#;
    let parsed = python_json(script);

    assert_eq!(parsed["pushed_to"], REGISTRY_PATH, "the registry path in .github/workflows/release.yml");
    let tags = parsed["tags_script"].as_str().expect("the image tags step");
    assert_eq!(parsed["build"]["tags"], "${{ steps.tags.outputs.tags }}");
    assert_eq!(parsed["build"]["push"], true);
    assert_eq!(parsed["image_overrides"], serde_json::json!([]), "IMAGE is set once, at workflow level");

    let version = env!("CARGO_PKG_VERSION");
    let major = version.split('.').next().expect("a major version");
    // The tag check: only v<crate version> passes, and its outputs are what later jobs read.
    let tag_check = parsed["tag_check"].as_str().expect("the tag check");
    let cargo_toml = std::fs::read_to_string(Path::new(root).join("Cargo.toml")).expect("Cargo.toml");
    let check = |tag: &str| run_step(tag_check, &[("Cargo.toml", &cargo_toml)], &[("GITHUB_REF_NAME", tag)]).outputs;
    let prerelease = version.contains('-');
    assert_eq!(
        check(&format!("v{version}")),
        Some(format!("version={version}\nmajor={major}\nprerelease={prerelease}\n")),
        "the tag v{version} passes the tag check"
    );
    for tag in [format!("v{version}-rc.1"), format!("v0{version}"), version.to_owned(), "v99.0.0".into()] {
        assert_eq!(check(&tag), None, "the tag {tag} is refused");
    }

    // IMAGE:<major> and v<major> move only to the highest release of their major version.
    assert_eq!(parsed["move_major_output"], "${{ steps.forward.outputs.move_major }}");
    let forward = parsed["forward_check"].as_str().expect("the forward-only check");
    let released = ["v0.8.1", "v0.9.0", "v1.0.0", "v1.2.0", "v1.9.0", "v1.10.0-rc.1", "v2.0.0-rc.1"];
    for (pushed, moves) in [
        ("v1.9.1", true),
        ("v1.10.0", true),
        ("v1.3.0", false),
        ("v1.2.1", false),
        ("v1.11.0-rc.1", false),
        ("v0.9.1", true),
        ("v0.8.2", false),
    ] {
        let tags: Vec<&str> = released.into_iter().chain([pushed]).collect();
        let pushed_major = pushed.trim_start_matches('v').split('.').next().expect("a major");
        let env = [("GITHUB_REF_NAME", pushed), ("MAJOR", pushed_major)];
        let outputs = run_step_in_repo(forward, &[(&[], &tags)], &env).outputs;
        assert_eq!(
            outputs,
            Some(format!("move_major={moves}\nworkflows_changed=false\n")),
            "pushing {pushed} moves the major tags: {moves}"
        );
    }
    let tags_env = &parsed["tags_env"];
    assert_eq!(tags_env["MOVE_MAJOR"], "${{ needs.version.outputs.move_major }}", "the image tags step");
    for (moves, expected) in
        [("true", format!("{REGISTRY_PATH}:1.2.3\n{REGISTRY_PATH}:1\n")), ("false", format!("{REGISTRY_PATH}:1.2.3\n"))]
    {
        let env = [("IMAGE", REGISTRY_PATH), ("VERSION", "1.2.3"), ("MAJOR", "1"), ("MOVE_MAJOR", moves)];
        assert_eq!(
            run_step(tags, &[], &env).outputs,
            Some(format!("tags<<EOF\n{expected}EOF\n")),
            "image tags, moving: {moves}"
        );
    }
    assert_eq!(parsed["major_tag_if"], "needs.version.outputs.move_major == 'true'", "the step moving v<major>");

    for (manifest, image) in parsed["images"].as_object().expect("images") {
        assert_eq!(image, &format!("{REGISTRY_PATH}:{version}"), "the image {manifest} runs");
    }
    let readme = parsed["readme"].as_array().expect("README image references");
    assert!(!readme.is_empty(), "the README names the image");
    for reference in readme {
        let reference = reference.as_str().expect("a reference");
        let tag = reference.strip_prefix(&format!("{REGISTRY_PATH}:")).unwrap_or_else(|| panic!("README: {reference}"));
        assert!([version, major, "<version>"].contains(&tag), "README: {reference}");
    }
}

/// What a workflow step did: what it wrote to `$GITHUB_OUTPUT` if it succeeded, `None` if it
/// failed (having written nothing there), and what it printed (workflow commands included).
struct Ran {
    outputs: Option<String>,
    stdout: String,
}

/// Runs a workflow step's `run:` script as GitHub does (bash -eo pipefail) in a fresh directory
/// holding `files`, with `env` (the pushed tag is `GITHUB_REF_NAME`).
fn run_step(script: &str, files: &[(&str, &str)], env: &[(&str, &str)]) -> Ran {
    let dir = tempfile::tempdir().expect("a temp dir");
    write_files(dir.path(), files);
    run_in(dir.path(), script, env)
}

fn write_files(dir: &Path, files: &[(&str, &str)]) {
    for (name, text) in files {
        let path = dir.join(name);
        std::fs::create_dir_all(path.parent().expect("a parent")).expect("a directory");
        std::fs::write(path, text).expect("a file");
    }
}

/// A commit of a test repository: the files it writes, then the tags it carries.
type Commit<'a> = (&'a [(&'a str, &'a str)], &'a [&'a str]);

/// Like `run_step`, in a git repository made of `commits`, the last one checked out (the
/// forward-only check of the major tags reads the tags and the workflow files).
fn run_step_in_repo(script: &str, commits: &[Commit], env: &[(&str, &str)]) -> Ran {
    let dir = tempfile::tempdir().expect("a temp dir");
    let git = |args: &[&str]| {
        let output = Command::new("git")
            .args(["-c", "user.name=t", "-c", "user.email=t@example.com", "-c", "tag.gpgSign=false"])
            .args(args)
            .current_dir(dir.path())
            .output()
            .expect("git");
        assert!(output.status.success(), "git {args:?}: {}", String::from_utf8_lossy(&output.stderr));
    };
    git(&["init", "-q"]);
    for (files, tags) in commits {
        write_files(dir.path(), files);
        git(&["add", "-A"]);
        git(&["commit", "-q", "--allow-empty", "--no-gpg-sign", "-m", "release"]);
        for tag in *tags {
            git(&["tag", tag]);
        }
    }
    run_in(dir.path(), script, env)
}

fn run_in(dir: &Path, script: &str, env: &[(&str, &str)]) -> Ran {
    let output_file = dir.join("github-output");
    std::fs::write(&output_file, "").expect("GITHUB_OUTPUT");
    let output = Command::new("bash")
        .args(["--noprofile", "--norc", "-eo", "pipefail", "-c", script])
        .envs(env.iter().copied())
        .env("GITHUB_OUTPUT", &output_file)
        .current_dir(dir)
        .output()
        .expect("bash");
    let written = std::fs::read_to_string(&output_file).expect("GITHUB_OUTPUT");
    let outputs = if output.status.success() {
        Some(written)
    } else {
        assert_eq!(written, "", "a failed step writes no outputs");
        None
    };
    Ran { outputs, stdout: String::from_utf8_lossy(&output.stdout).into_owned() }
}

/// GitHub refuses a GITHUB_TOKEN the move of a tag across a change to `.github/workflows/` (it
/// would need the `workflows` permission, which that token cannot have). The version job sees
/// such a move coming; the step moving `v<major>` then fails, after everything else is published,
/// with an error giving the command that moves it by hand, as it does when GitHub refuses anyway.
#[test]
fn a_major_tag_move_github_refuses_fails_with_the_command_to_run() {
    let script = r#"
import json, sys, yaml
release = yaml.safe_load(open(sys.argv[1] + "/.github/workflows/release.yml"))
jobs = release["jobs"]
steps = [s for s in jobs["release"]["steps"] if s.get("name") == "Move the action's major tag"]
print(json.dumps({
    "forward": [s for s in jobs["version"]["steps"] if s.get("id") == "forward"][0]["run"],
    "output": jobs["version"]["outputs"]["workflows_changed"],
    "move": steps[0]["run"],
    "move_env": steps[0]["env"],
    "after_move": [s.get("name") for s in jobs["release"]["steps"]][-1],
}))
"#;
    let parsed = python_json(script);
    let forward = parsed["forward"].as_str().expect("the forward-only check");
    assert_eq!(parsed["output"], "${{ steps.forward.outputs.workflows_changed }}");
    assert_eq!(parsed["move_env"]["WORKFLOWS_CHANGED"], "${{ needs.version.outputs.workflows_changed }}");
    assert_eq!(parsed["after_move"], "Move the action's major tag", "the release job moves v<major> last");

    let ci_a: &[(&str, &str)] = &[(".github/workflows/ci.yml", "a"), ("src/main.rs", "a")];
    let ci_b: &[(&str, &str)] = &[(".github/workflows/ci.yml", "b")];
    let src_b: &[(&str, &str)] = &[("src/main.rs", "b")];
    for (history, pushed, expected) in [
        (
            &[(ci_a, &["v1.0.0", "v1"][..]), (ci_b, &["v1.1.0"][..])][..],
            "v1.1.0",
            "move_major=true\nworkflows_changed=true\n",
        ),
        (
            &[(ci_a, &["v1.0.0", "v1"][..]), (src_b, &["v1.1.0"][..])][..],
            "v1.1.0",
            "move_major=true\nworkflows_changed=false\n",
        ),
        (
            &[(ci_a, &["v1.0.0"][..]), (ci_b, &["v1.1.0"][..])][..],
            "v1.1.0",
            "move_major=true\nworkflows_changed=false\n",
        ),
        (
            &[(ci_a, &["v1.0.0"][..]), (ci_b, &["v1.2.0", "v1"][..]), (ci_a, &["v1.1.1"][..])][..],
            "v1.1.1",
            "move_major=false\nworkflows_changed=false\n",
        ),
    ] {
        let ran = run_step_in_repo(forward, history, &[("GITHUB_REF_NAME", pushed), ("MAJOR", "1")]);
        assert_eq!(ran.outputs.as_deref(), Some(expected), "pushing {pushed} after {history:?}");
    }

    // The step, with a `gh` that logs its calls and answers as told.
    let sha = "0123456789abcdef0123456789abcdef01234567";
    let by_hand = "::error title=move v1 by hand::";
    let command = format!("git fetch origin tag v1.1.0 && git push --force origin {sha}:refs/tags/v1");
    let run_move = |workflows_changed: &str, write_exit: &str| {
        let dir = tempfile::tempdir().expect("a temp dir");
        let gh = dir.path().join("gh");
        std::fs::write(
            &gh,
            "#!/bin/bash\necho \"$*\" >> gh-calls\ncase \"$*\" in *--method*) exit \"$GH_WRITE_EXIT\";; esac\n",
        )
        .expect("a fake gh");
        std::fs::set_permissions(&gh, std::os::unix::fs::PermissionsExt::from_mode(0o755)).expect("chmod");
        let path = format!("{}:/usr/bin:/bin", dir.path().display());
        let env = [
            ("PATH", path.as_str()),
            ("WORKFLOWS_CHANGED", workflows_changed),
            ("GH_WRITE_EXIT", write_exit),
            ("MAJOR", "1"),
            ("GITHUB_REF_NAME", "v1.1.0"),
            ("GITHUB_SHA", sha),
            ("GITHUB_REPOSITORY", "o/r"),
        ];
        let ran = run_in(dir.path(), parsed["move"].as_str().expect("the step"), &env);
        let calls = std::fs::read_to_string(dir.path().join("gh-calls")).unwrap_or_default();
        (ran, calls)
    };
    let (ran, calls) = run_move("true", "0");
    assert_eq!(ran.outputs, None, "a move GitHub would refuse fails the step");
    assert!(ran.stdout.contains(by_hand) && ran.stdout.contains(&command), "{}", ran.stdout);
    assert!(ran.stdout.contains(".github/workflows/"), "{}", ran.stdout);
    assert_eq!(calls, "", "nothing asked of GitHub");

    let (ran, calls) = run_move("false", "0");
    assert_eq!(ran.outputs.as_deref(), Some(""), "{}", ran.stdout);
    assert_eq!(
        calls,
        format!(
            "api repos/o/r/git/ref/tags/v1\napi --method PATCH repos/o/r/git/refs/tags/v1 -f sha={sha} -F force=true\n"
        )
    );

    let (ran, _) = run_move("false", "1");
    assert_eq!(ran.outputs, None, "a move GitHub refuses fails the step");
    assert!(ran.stdout.contains(by_hand) && ran.stdout.contains(&command), "{}", ran.stdout);
}

/// Every build of the released binary embeds its crate list (`cargo auditable build`), in the
/// release workflow and in the Dockerfile alike, with the same cargo-auditable: image SBOM
/// scanners (syft, which the image's SBOM comes from) read the crates from it. The release build
/// fails when the binary lacks the list's section.
#[test]
fn released_binaries_carry_their_crate_list() {
    let script = r#"
import json, sys, yaml
release = yaml.safe_load(open(sys.argv[1] + "/.github/workflows/release.yml"))
print(json.dumps({
    name: [s["run"] for s in job.get("steps", []) if "run" in s] for name, job in release["jobs"].items()
}))
"#;
    let runs = python_json(script);
    let dockerfile =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("Dockerfile")).expect("Dockerfile");
    let dockerfile_runs: Vec<&str> = dockerfile.lines().filter_map(|l| l.strip_prefix("RUN ")).collect();
    let binaries: Vec<&str> =
        runs["binaries"].as_array().expect("the binaries job").iter().filter_map(|r| r.as_str()).collect();
    let release: Vec<&str> = runs
        .as_object()
        .expect("jobs")
        .values()
        .flat_map(|r| r.as_array().expect("runs"))
        .filter_map(|r| r.as_str())
        .collect();

    // (cargo builds, cargo auditable builds) in `scripts`.
    let builds = |scripts: &[&str]| {
        let mut counts = (0, 0);
        for words in scripts.iter().flat_map(|s| s.lines()).map(|l| l.split_whitespace().collect::<Vec<_>>()) {
            for (i, _) in words.iter().enumerate().filter(|(_, w)| **w == "cargo") {
                match (words.get(i + 1), words.get(i + 2)) {
                    (Some(&"build"), _) => counts.0 += 1,
                    (Some(&"auditable"), Some(&"build")) => counts.1 += 1,
                    _ => {}
                }
            }
        }
        counts
    };
    assert_eq!(builds(&release), (0, 1), "release.yml: one build, `cargo auditable build`, and no plain `cargo build`");
    assert_eq!(builds(&binaries), (0, 1), "release.yml: the binaries job builds with `cargo auditable build`");
    assert_eq!(builds(&dockerfile_runs), (0, 1), "Dockerfile: `cargo auditable build`, and no plain `cargo build`");
    assert!(
        binaries.iter().any(|r| r.contains("readelf -S \"$binary\" | grep -F .dep-v0")),
        "release.yml: the build checks the binary carries its crate list"
    );

    let versions = |scripts: &[&str]| -> Vec<String> {
        scripts
            .iter()
            .flat_map(|s| s.split_whitespace())
            .filter_map(|w| w.strip_prefix("cargo-auditable@"))
            .map(str::to_owned)
            .collect()
    };
    let (in_release, in_dockerfile) = (versions(&binaries), versions(&dockerfile_runs));
    assert_eq!(in_release.len(), 1, "release.yml installs cargo-auditable@<version> once: {in_release:?}");
    assert_eq!(in_release, in_dockerfile, "the release workflow and the Dockerfile build with one cargo-auditable");
}

/// A release publishes only a commit that passed CI: `release.yml` calls `ci.yml` (the project's
/// CI, `scripts/test`) on the tagged commit as one job, the gate, and every job that builds or
/// publishes needs it, directly or through the jobs it needs; the jobs before the gate only read.
/// `ci.yml` can be called, and its own push trigger leaves tags to the release.
#[test]
fn a_release_publishes_only_a_commit_that_passed_ci() {
    let script = r#"
import json, sys, yaml
root = sys.argv[1]
load = lambda name: yaml.safe_load(open(f"{root}/.github/workflows/{name}.yml"))
release, ci = load("release"), load("ci")
needs = lambda job: [job["needs"]] if isinstance(job.get("needs"), str) else job.get("needs", [])
print(json.dumps({
    "jobs": {name: {"needs": needs(job), "uses": job.get("uses"), "permissions": job.get("permissions", {})}
             for name, job in release["jobs"].items()},
    # PyYAML reads the key `on` as the boolean true.
    "ci_on": ci.get("on", ci.get(True)),
    "ci_runs": [s.get("run") for job in ci["jobs"].values() for s in job.get("steps", [])],
}))
"#;
    let parsed = python_json(script);
    let jobs = parsed["jobs"].as_object().expect("release.yml jobs");
    let gates: Vec<&str> = jobs
        .iter()
        .filter(|(_, job)| job["uses"] == "./.github/workflows/ci.yml")
        .map(|(name, _)| name.as_str())
        .collect();
    let [gate] = gates[..] else { panic!("release.yml: one job calls ./.github/workflows/ci.yml, not {gates:?}") };
    // Every job `name` waits for, directly or transitively.
    let upstream = |name: &str| {
        let mut seen = std::collections::BTreeSet::new();
        let mut todo = vec![name.to_owned()];
        while let Some(job) = todo.pop() {
            for need in jobs[&job]["needs"].as_array().expect("needs") {
                let need = need.as_str().expect("a job name").to_owned();
                if seen.insert(need.clone()) {
                    todo.push(need);
                }
            }
        }
        seen
    };
    let before_gate = upstream(gate);
    for (name, job) in jobs {
        if before_gate.contains(name) {
            let scopes = job["permissions"].as_object().expect("permissions");
            assert!(scopes.values().all(|s| s == "read"), "release.yml: {name} runs before CI passes, and writes");
        } else if name != gate {
            assert!(upstream(name).contains(gate), "release.yml: {name} runs without CI passing: it must need {gate}");
        }
    }

    let on = &parsed["ci_on"];
    assert!(on.get("workflow_call").is_some(), "ci.yml: the release calls it (on: workflow_call)");
    assert_eq!(on["push"], serde_json::json!({"branches": ["**"]}), "ci.yml: pushed tags are the release's to test");
    assert!(on.get("pull_request").is_some(), "ci.yml: runs on pull requests");
    assert!(parsed["ci_runs"].as_array().expect("runs").contains(&"scripts/test".into()), "ci.yml runs scripts/test");
}

/// Least privilege and pinned actions in the project's workflows: no permission at workflow level,
/// each job exactly the scopes below (writes only where the job publishes; `id-token` and
/// `attestations` only where it attests), and every `uses:` a full commit SHA with its version in a
/// comment, so a moved tag cannot change what runs (a workflow of this repository, called with
/// `./`, runs at the caller's commit).
#[test]
fn workflows_have_least_privilege_and_pinned_actions() {
    let script = r#"
import json, re, sys, yaml
root = sys.argv[1]
out = {}
for name in ["ci", "release"]:
    text = open(f"{root}/.github/workflows/{name}.yml").read()
    workflow = yaml.safe_load(text)
    steps = [s for job in workflow["jobs"].values() for s in job.get("steps", [])]
    out[name] = {
        "permissions": workflow.get("permissions", "unset"),
        "jobs": {k: job.get("permissions", "unset") for k, job in workflow["jobs"].items()},
        "attesting": sorted(k for k, job in workflow["jobs"].items()
                            if any(s.get("uses", "").startswith("actions/attest") for s in job.get("steps", []))),
        "uses": [s["uses"] for s in steps if "uses" in s]
            + [job["uses"] for job in workflow["jobs"].values() if "uses" in job],
        "uses_lines": [l.strip() for l in text.splitlines() if re.search(r"\buses:", l)],
    }
print(json.dumps(out))
"#;
    let parsed = python_json(script);

    let read = serde_json::json!({"contents": "read"});
    let attest = |scopes: serde_json::Value| {
        let mut scopes = scopes;
        scopes["id-token"] = "write".into();
        scopes["attestations"] = "write".into();
        scopes
    };
    let expected = serde_json::json!({
        "ci": {"test": read},
        "release": {
            "version": read,
            "ci": read,
            "binaries": read,
            "image": attest(serde_json::json!({"contents": "read", "packages": "write"})),
            "release": attest(serde_json::json!({"contents": "write"})),
        },
    });
    for workflow in ["ci", "release"] {
        let parsed = &parsed[workflow];
        assert_eq!(parsed["permissions"], serde_json::json!({}), "{workflow}.yml: top-level `permissions: {{}}`");
        assert_eq!(parsed["jobs"], expected[workflow], "{workflow}.yml: each job's permissions");
        let attesting: Vec<&str> = expected[workflow]
            .as_object()
            .expect("jobs")
            .iter()
            .filter(|(_, scopes)| scopes.get("id-token").is_some() || scopes.get("attestations").is_some())
            .map(|(job, _)| job.as_str())
            .collect();
        assert_eq!(parsed["attesting"], serde_json::json!(attesting), "{workflow}.yml: only attesting jobs sign");

        let lines = parsed["uses_lines"].as_array().expect("uses lines");
        let mut pinned = Vec::new();
        for line in lines {
            let line = line.as_str().expect("a line");
            let rest = line.strip_prefix("- ").unwrap_or(line).strip_prefix("uses: ");
            // A workflow of this repository runs from the same commit as its caller: nothing to pin.
            let local = rest.map(|r| r.split_once(" # zizmor: ignore[self-repository]").map_or(r, |(r, _)| r));
            if let Some(local) = local.filter(|r| r.starts_with("./.github/workflows/") && !r.contains(' ')) {
                assert!(Path::new(env!("CARGO_MANIFEST_DIR")).join(local).is_file(), "{workflow}.yml: {local}");
                pinned.push(local);
                continue;
            }
            let (reference, comment) = rest
                .and_then(|rest| rest.split_once(" # v"))
                .unwrap_or_else(|| panic!("{workflow}.yml: `{line}` is not `uses: <action>@<sha> # v<version>`"));
            let reference = reference.trim_end();
            let (action, sha) =
                reference.split_once('@').unwrap_or_else(|| panic!("{workflow}.yml: {reference} is not pinned"));
            assert!(action.split('/').count() >= 2 && !action.starts_with('.'), "{workflow}.yml: {reference}");
            assert!(
                sha.len() == 40 && sha.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)),
                "{workflow}.yml: {reference} is not pinned by a full commit SHA"
            );
            let version = comment.split_whitespace().next().unwrap_or("");
            assert!(
                version.split('.').all(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit())),
                "{workflow}.yml: `{line}`: the comment is not v<version>"
            );
            pinned.push(reference);
        }
        let mut uses: Vec<&str> = parsed["uses"].as_array().expect("uses").iter().filter_map(|u| u.as_str()).collect();
        uses.sort_unstable();
        pinned.sort_unstable();
        assert_eq!(uses, pinned, "{workflow}.yml: every `uses:` is on a line of its own, checked above");
    }
}
