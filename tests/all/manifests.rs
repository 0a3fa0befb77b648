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
/// The start of a script that reads the two workflows: `release` and `ci`, as PyYAML loads them.
const WORKFLOWS_PY: &str = r#"
import json, sys, yaml
root = sys.argv[1]
load = lambda name: yaml.safe_load(open(f"{root}/.github/workflows/{name}.yml"))
release, ci = load("release"), load("ci")
"#;

/// [`python_json`] with the two workflows loaded first.
fn workflows_json(script: &str) -> serde_json::Value {
    python_json(&format!("{WORKFLOWS_PY}{script}"))
}

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
    "build": steps("image")["build"]["with"],
    "index": steps("image-index")["index"]["run"],
    "tag_check": steps("version")["version"]["run"],
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
    assert_eq!(
        parsed["build"]["outputs"],
        "type=image,name=${{ env.IMAGE }},push-by-digest=true,name-canonical=true,push=true",
        "each platform's image is pushed to IMAGE, by digest"
    );
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

    // IMAGE:<version> is the index of the platform images pushed by digest.
    let index = parsed["index"].as_str().expect("the image index step");
    let (amd64, arm64) = (format!("sha256:{}", "a".repeat(64)), format!("sha256:{}", "b".repeat(64)));
    let fakes = Fakes::new(&[]);
    fakes.write("digests/amd64", &format!("{amd64}\n"));
    fakes.write("digests/arm64", &format!("{arm64}\n"));
    let ran = fakes.run(index, &[("IMAGE", REGISTRY_PATH), ("VERSION", "1.2.3")]);
    assert_eq!(ran.outputs, Some(format!("digest={}\n", Fakes::INDEX_DIGEST)), "{}", ran.stdout);
    assert_eq!(
        fakes.calls(),
        format!(
            "docker buildx imagetools create --tag {REGISTRY_PATH}:1.2.3 {REGISTRY_PATH}@{amd64} {REGISTRY_PATH}@{arm64}\n\
             docker buildx imagetools inspect {REGISTRY_PATH}:1.2.3 --format {{{{json .Manifest}}}}\n"
        )
    );
    fakes.write("digests/arm64", "");
    assert_eq!(fakes.run(index, &[("IMAGE", REGISTRY_PATH), ("VERSION", "1.2.3")]).outputs, None, "no arm64 image");

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

/// Runs git in `dir` and returns what it printed.
fn git_in(dir: &Path, args: &[&str]) -> String {
    let output = Command::new("git")
        .args(["-c", "user.name=t", "-c", "user.email=t@example.com", "-c", "tag.gpgSign=false"])
        .args(args)
        .current_dir(dir)
        .output()
        .expect("git");
    assert!(output.status.success(), "git {args:?}: {}", String::from_utf8_lossy(&output.stderr));
    String::from_utf8_lossy(&output.stdout).trim().to_owned()
}

/// Makes `dir` a git repository of `commits`, the last one checked out.
fn make_repo(dir: &Path, commits: &[Commit]) {
    git_in(dir, &["init", "-q"]);
    for (files, tags) in commits {
        write_files(dir, files);
        git_in(dir, &["add", "-A"]);
        git_in(dir, &["commit", "-q", "--allow-empty", "--no-gpg-sign", "-m", "release"]);
        for tag in *tags {
            git_in(dir, &["tag", tag]);
        }
    }
}

/// A directory to run a release step in (a git repository when given commits), holding
/// `scripts/release-highest`, with a fake `gh` and `docker` first on the PATH: each logs its call
/// (`calls()`) and answers as the step's environment says. `gh` lists the releases in `RELEASES`
/// (the API's JSON, filtered by the step's own `--jq`), views a release only when `RELEASE_EXISTS`
/// is set, and answers a write (`--method`) with the exit code `GH_WRITE_EXIT`; `docker` finds
/// `IMAGE:<tag>` when `IMAGE_STATE` is `exists` (otherwise it fails printing `IMAGE_STATE`, by
/// default `not found`), and its `run` prints `RUN_PRINTS`.
struct Fakes {
    dir: tempfile::TempDir,
}

impl Fakes {
    /// The digest the fake `docker` gives an image index.
    const INDEX_DIGEST: &str = "sha256:1111111111111111111111111111111111111111111111111111111111111111";

    fn new(commits: &[Commit]) -> Self {
        let dir = tempfile::tempdir().expect("a temp dir");
        if !commits.is_empty() {
            make_repo(dir.path(), commits);
        }
        let fakes = Fakes { dir };
        let highest = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/release-highest"))
            .expect("scripts/release-highest");
        fakes.executable("scripts/release-highest", &highest);
        fakes.executable(
            "bin/gh",
            r#"#!/bin/bash
case "$1 $2" in
  "api --paginate") echo "gh lists the releases of $3" >> "$CALLS"; printf '%s' "${RELEASES:-[]}" | jq -r "$5"; exit ;;
esac
echo "gh $*" >> "$CALLS"
case "$1 $2" in
  "release view") [ -z "$RELEASE_EXISTS" ] || { echo '{"tagName": "x"}'; exit 0; }; echo "release not found" >&2; exit 1 ;;
esac
case "$*" in *--method*) exit "${GH_WRITE_EXIT:-0}" ;; esac
"#,
        );
        fakes.executable(
            "bin/docker",
            &format!(
                r#"#!/bin/bash
echo "docker $*" >> "$CALLS"
case "$*" in
  "buildx imagetools inspect "*--format*) echo '{{"digest": "{}"}}' ;;
  "buildx imagetools inspect "*) [ "$IMAGE_STATE" != exists ] || exit 0; echo "ERROR: ${{IMAGE_STATE:-not found}}" >&2; exit 1 ;;
  "run "*) echo "$RUN_PRINTS" ;;
esac
"#,
                Fakes::INDEX_DIGEST
            ),
        );
        fakes
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }

    fn write(&self, name: &str, text: &str) {
        write_files(self.path(), &[(name, text)]);
    }

    fn executable(&self, name: &str, text: &str) {
        self.write(name, text);
        std::fs::set_permissions(self.path().join(name), std::os::unix::fs::PermissionsExt::from_mode(0o755))
            .expect("chmod");
    }

    /// Runs `script` here as a step of `o/r`'s run for the tag v1.1.0, with `env` on top.
    fn run(&self, script: &str, env: &[(&str, &str)]) -> Ran {
        let path = format!("{}:/usr/bin:/bin", self.path().join("bin").display());
        let calls = self.path().join("calls").display().to_string();
        let mut all = vec![
            ("PATH", path.as_str()),
            ("CALLS", calls.as_str()),
            ("GITHUB_REPOSITORY", "o/r"),
            ("GITHUB_REF_NAME", "v1.1.0"),
        ];
        all.extend_from_slice(env);
        run_in(self.path(), script, &all)
    }

    /// The calls of `gh` and `docker` so far, one a line; forgets them.
    fn calls(&self) -> String {
        let file = self.path().join("calls");
        let calls = std::fs::read_to_string(&file).unwrap_or_default();
        let _ = std::fs::remove_file(file);
        calls
    }
}

/// The GitHub API's list of releases: (tag, draft) each.
fn releases(list: &[(&str, bool)]) -> String {
    serde_json::Value::from_iter(list.iter().map(|(tag, draft)| serde_json::json!({"tag_name": tag, "draft": draft})))
        .to_string()
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

/// The steps of release.yml's jobs, by job, with each step's name, id and run script.
const RELEASE_STEPS: &str = r#"
import json, sys, yaml
release = yaml.safe_load(open(sys.argv[1] + "/.github/workflows/release.yml"))
print(json.dumps({
    "workflow": {k: v for k, v in release.items() if k != "jobs"} | {"on": release.get("on", release.get(True))},
    "jobs": {name: job | {"steps": {s.get("id") or s.get("name") or s.get("uses"): s for s in job.get("steps", [])},
                          "order": [s.get("id") or s.get("name") or s.get("uses") for s in job.get("steps", [])]}
             for name, job in release["jobs"].items()},
}, default=str))
"#;

/// A step's `run` script in release.yml: `job`'s step of that id or name.
fn release_step<'a>(parsed: &'a serde_json::Value, job: &str, step: &str) -> &'a str {
    parsed["jobs"][job]["steps"][step]["run"].as_str().unwrap_or_else(|| panic!("release.yml: no step {step} in {job}"))
}

/// GitHub refuses a GITHUB_TOKEN the move of a tag across a change to `.github/workflows/` (it
/// would need the `workflows` permission, which that token cannot have). The step moving
/// `v<major>` sees such a move coming and fails, after everything else is published, with an
/// error giving the command that moves it by hand, as it does when GitHub refuses anyway.
#[test]
fn a_major_tag_move_github_refuses_fails_with_the_command_to_run() {
    let parsed = python_json(RELEASE_STEPS);
    let step = release_step(&parsed, "major-tags", "Move the action's major tag");
    assert_eq!(
        parsed["jobs"]["major-tags"]["order"].as_array().and_then(|o| o.last()),
        Some(&"Move the action's major tag".into()),
        "v<major> moves last"
    );

    let sha = "0123456789abcdef0123456789abcdef01234567";
    let by_hand = "::error title=move v1 by hand::";
    let command = format!("git fetch origin tag v1.1.0 && git push --force origin {sha}:refs/tags/v1");
    let listed = "gh lists the releases of repos/o/r/releases\n";
    let moved = format!(
        "{listed}gh api repos/o/r/git/ref/tags/v1\ngh api --method PATCH repos/o/r/git/refs/tags/v1 -f sha={sha} -F force=true\n"
    );
    let released = releases(&[("v1.0.0", false), ("v1.1.0", false)]);
    let ci_a: &[(&str, &str)] = &[(".github/workflows/ci.yml", "a"), ("src/main.rs", "a")];
    let ci_b: &[(&str, &str)] = &[(".github/workflows/ci.yml", "b")];
    let src_b: &[(&str, &str)] = &[("src/main.rs", "b")];
    for (history, workflows_changed) in [
        (&[(ci_a, &["v1.0.0", "v1"][..]), (ci_b, &["v1.1.0"][..])][..], true),
        (&[(ci_a, &["v1.0.0", "v1"][..]), (src_b, &["v1.1.0"][..])][..], false),
        (&[(ci_a, &["v1.0.0"][..]), (ci_b, &["v1.1.0"][..])][..], false),
    ] {
        let fakes = Fakes::new(history);
        let ran = fakes.run(step, &[("MAJOR", "1"), ("GITHUB_SHA", sha), ("RELEASES", &released)]);
        if workflows_changed {
            assert_eq!(ran.outputs, None, "a move GitHub would refuse fails the step");
            assert!(ran.stdout.contains(by_hand) && ran.stdout.contains(&command), "{}", ran.stdout);
            assert!(ran.stdout.contains(".github/workflows/"), "{}", ran.stdout);
            assert_eq!(fakes.calls(), listed, "nothing asked of GitHub but the releases");
        } else {
            assert_eq!(ran.outputs.as_deref(), Some(""), "{history:?}: {}", ran.stdout);
            assert_eq!(fakes.calls(), moved, "{history:?}");
        }
    }

    let fakes = Fakes::new(&[(ci_a, &["v1.0.0", "v1"]), (src_b, &["v1.1.0"])]);
    let ran = fakes.run(step, &[("MAJOR", "1"), ("GITHUB_SHA", sha), ("RELEASES", &released), ("GH_WRITE_EXIT", "1")]);
    assert_eq!(ran.outputs, None, "a move GitHub refuses fails the step");
    assert!(ran.stdout.contains(by_hand) && ran.stdout.contains(&command), "{}", ran.stdout);
}

/// `IMAGE:<major>` and `v<major>` move only to the highest published release of their major
/// version, and each move asks again right before it is made (`scripts/release-highest`), after
/// the GitHub release is published: a run that finishes after a newer release, a re-run of an old
/// one, a pre-release or a backport moves nothing. Releases run one at a time (one concurrency
/// group, none cancelled). A stray tag with no release, or a release made a draft (its tag
/// deleted), never counts; a listing that fails fails the step rather than moving.
#[test]
fn the_major_tags_move_only_to_the_highest_release_asked_again_before_each_move() {
    let parsed = python_json(RELEASE_STEPS);
    assert_eq!(
        parsed["workflow"]["concurrency"],
        serde_json::json!({"group": "release", "cancel-in-progress": false}),
        "release.yml: one concurrency group for every release, none cancelled"
    );
    let major_tags = &parsed["jobs"]["major-tags"];
    assert_eq!(major_tags["needs"], serde_json::json!(["version", "image-index", "release"]), "moves come last");
    let order: Vec<&str> = major_tags["order"].as_array().expect("steps").iter().filter_map(|s| s.as_str()).collect();
    let moves = ["Move IMAGE:<major>", "Move the action's major tag"];
    assert!(order.ends_with(&moves), "release.yml: the major-tags job ends with the moves: {order:?}");
    for job in ["version", "ci", "binaries", "image", "image-index", "release"] {
        let text = serde_json::to_string(&parsed["jobs"][job]).expect("json");
        for word in ["MAJOR", "major"] {
            assert!(!text.contains(&format!("$IMAGE:${word}")), "{job} moves IMAGE:<major>");
        }
        assert!(!text.contains("git/refs"), "{job} moves a tag");
    }

    // Which release is the highest.
    let fakes = Fakes::new(&[]);
    let published = releases(&[
        ("v0.8.1", false),
        ("v0.9.0", false),
        ("v1.0.0", false),
        ("v1.2.0", false),
        ("v1.9.0", false),
        ("v1.10.0-rc.1", false),
        ("v2.0.0-rc.1", false),
        ("v1.20.0", true),
    ]);
    for (pushed, major, highest) in [
        ("v1.9.1", "1", "v1.9.1"),
        ("v1.10.0", "1", "v1.10.0"),
        ("v1.3.0", "1", "v1.9.0"),
        ("v1.2.1", "1", "v1.9.0"),
        ("v1.11.0-rc.1", "1", "v1.9.0"),
        ("v0.9.1", "0", "v0.9.1"),
        ("v0.8.2", "0", "v0.9.0"),
        ("v3.0.0-rc.1", "3", ""),
        ("v0.9.1", "", "v1.9.0"),
        ("v2.0.0", "", "v2.0.0"),
    ] {
        let env = [("GITHUB_REF_NAME", pushed), ("MAJOR", major), ("RELEASES", published.as_str())];
        let ran = fakes.run("scripts/release-highest \"$MAJOR\"", &env);
        assert!(ran.outputs.is_some(), "{pushed}");
        assert_eq!(ran.stdout.trim(), highest, "pushing {pushed}, the highest release of v{major}");
    }
    let ran = fakes.run("scripts/release-highest 1", &[("RELEASES", "[{\"tag_name\": ")]);
    assert_eq!(ran.outputs, None, "a listing that fails fails: {}", ran.stdout);

    // Each move, in a repository where a stray v1.99.0 was tagged and refused (no release).
    let (image_step, tag_step) =
        (release_step(&parsed, "major-tags", moves[0]), release_step(&parsed, "major-tags", moves[1]));
    let sha = "0123456789abcdef0123456789abcdef01234567";
    let listed = "gh lists the releases of repos/o/r/releases\n";
    let image_moved = format!(
        "{listed}docker buildx imagetools create --tag {REGISTRY_PATH}:1 {REGISTRY_PATH}@{}\n",
        Fakes::INDEX_DIGEST
    );
    let tag_moved = format!(
        "{listed}gh api repos/o/r/git/ref/tags/v1\ngh api --method PATCH repos/o/r/git/refs/tags/v1 -f sha={sha} -F force=true\n"
    );
    let fakes = Fakes::new(&[(&[], &["v1.0.0", "v1"]), (&[], &["v1.99.0"]), (&[], &["v1.1.0"])]);
    let now = releases(&[("v1.0.0", false), ("v1.1.0", false)]);
    let newer = releases(&[("v1.0.0", false), ("v1.1.0", false), ("v1.2.0", false)]);
    for (pushed, when_moving_image, when_moving_tag, expected) in [
        ("v1.1.0", &now, &now, [image_moved.as_str(), tag_moved.as_str()]),
        // v1.2.0 is published while this run is between its two moves: v1 stays where v1.2.0 put it.
        ("v1.1.0", &now, &newer, [image_moved.as_str(), listed]),
        // A run finishing after a newer release, or a re-run of an old one: nothing moves.
        ("v1.1.0", &newer, &newer, [listed, listed]),
        ("v1.2.0-rc.1", &newer, &newer, [listed, listed]),
    ] {
        for ((step, listing), expected) in
            [(image_step, when_moving_image), (tag_step, when_moving_tag)].into_iter().zip(expected)
        {
            let env = [
                ("GITHUB_REF_NAME", pushed),
                ("MAJOR", "1"),
                ("GITHUB_SHA", sha),
                ("IMAGE", REGISTRY_PATH),
                ("DIGEST", Fakes::INDEX_DIGEST),
                ("RELEASES", listing.as_str()),
            ];
            let ran = fakes.run(step, &env);
            assert_eq!(ran.outputs.as_deref(), Some(""), "{pushed}: {}", ran.stdout);
            assert_eq!(fakes.calls(), expected, "{pushed}, releases {listing}");
        }
    }
    let ran = fakes.run(image_step, &[("MAJOR", "1"), ("IMAGE", REGISTRY_PATH), ("RELEASES", "[")]);
    assert_eq!(ran.outputs, None, "a listing that fails fails the move: {}", ran.stdout);
    assert_eq!(fakes.calls(), listed, "and moves nothing");
}

/// The GitHub release says whether it is the latest, instead of letting GitHub make every new
/// release "Latest": only the highest published release overall is.
#[test]
fn only_the_highest_release_is_marked_latest() {
    let parsed = python_json(RELEASE_STEPS);
    let step = release_step(&parsed, "release", "GitHub release with the binaries and SHA256SUMS");
    let fakes = Fakes::new(&[]);
    fakes.write("dist/cutover-x86_64-unknown-linux-musl", "");
    fakes.write("dist/SHA256SUMS", "");
    for (pushed, prerelease, published, flags) in [
        ("v1.1.0", "false", releases(&[("v1.0.0", false)]), "--latest=true"),
        ("v1.1.0", "false", releases(&[("v1.0.0", false), ("v2.0.0", false)]), "--latest=false"),
        ("v1.0.1", "false", releases(&[("v1.0.0", false), ("v1.1.0", false)]), "--latest=false"),
        ("v1.1.0", "false", releases(&[("v1.0.0", false), ("v2.0.0", true)]), "--latest=true"),
        ("v1.2.0-rc.1", "true", releases(&[("v1.1.0", false)]), "--latest=false --prerelease"),
    ] {
        let version = pushed.trim_start_matches('v');
        let env =
            [("GITHUB_REF_NAME", pushed), ("VERSION", version), ("PRERELEASE", prerelease), ("RELEASES", &published)];
        let ran = fakes.run(step, &env);
        assert_eq!(ran.outputs.as_deref(), Some(""), "{}", ran.stdout);
        assert_eq!(
            fakes.calls(),
            format!(
                "gh lists the releases of repos/o/r/releases\ngh release create {pushed} dist/cutover-x86_64-unknown-linux-musl \
                 dist/SHA256SUMS --repo o/r --verify-tag --title cutover {version} --generate-notes {flags}\n"
            ),
            "{pushed} after {published}"
        );
    }
}

/// A release publishes only a commit of the default branch: the CI gate is the tagged commit's
/// own workflow, so a tag on an unmerged commit (whose release.yml could drop the gate) is refused
/// before anything else runs, saying so.
#[test]
fn a_release_publishes_only_a_commit_of_the_default_branch() {
    let parsed = python_json(RELEASE_STEPS);
    let step_name = "The tagged commit must be on the default branch";
    let version = &parsed["jobs"]["version"];
    assert_eq!(version["steps"][step_name]["env"]["DEFAULT_BRANCH"], "${{ github.event.repository.default_branch }}");
    assert_eq!(version["steps"]["actions/checkout@08c6903cd8c0fde910a37f88322edcfb5dd907a8"]["with"]["fetch-depth"], 0);
    let step = release_step(&parsed, "version", step_name);

    let fakes = Fakes::new(&[(&[("a", "1")], &[]), (&[("a", "2")], &[])]);
    let (merged, unmerged) =
        (git_in(fakes.path(), &["rev-parse", "HEAD~1"]), git_in(fakes.path(), &["rev-parse", "HEAD"]));
    git_in(fakes.path(), &["update-ref", "refs/remotes/origin/main", &merged]);
    for (sha, branch, passes) in [(&merged, "main", true), (&unmerged, "main", false), (&merged, "trunk", false)] {
        let ran = fakes.run(step, &[("GITHUB_SHA", sha), ("DEFAULT_BRANCH", branch)]);
        assert_eq!(ran.outputs.is_some(), passes, "{sha} on {branch}: {}", ran.stdout);
        if !passes {
            let error =
                format!("::error title=tag is not on {branch}::v1.1.0 points to {sha}, which is not on {branch}");
            assert!(ran.stdout.contains(&error), "{}", ran.stdout);
        }
    }
    git_in(fakes.path(), &["update-ref", "refs/remotes/origin/main", &unmerged]);
    assert!(fakes.run(step, &[("GITHUB_SHA", &unmerged), ("DEFAULT_BRANCH", "main")]).outputs.is_some(), "once merged");
}

/// A published version is never published again: before CI, and so before anything is pushed, a
/// run stops when `IMAGE:<version>` or the GitHub release exists (a re-pushed tag, "Re-run all
/// jobs"), or when the registry's answer is neither the image nor its absence.
#[test]
fn a_published_version_is_never_published_again() {
    let parsed = python_json(RELEASE_STEPS);
    let step_name = "Nothing of this version is published yet";
    let order = parsed["jobs"]["version"]["order"].as_array().expect("steps");
    assert_eq!(order.last(), Some(&step_name.into()), "the version job, before CI, ends with the check");
    let step = release_step(&parsed, "version", step_name);
    let fakes = Fakes::new(&[]);
    let inspect = format!("docker buildx imagetools inspect {REGISTRY_PATH}:1.1.0\n");
    let view = "gh release view v1.1.0 --repo o/r --json tagName\n";
    for (image_state, release_exists, passes, calls, says) in [
        ("not found", "", true, format!("{inspect}{view}"), ""),
        // A package not created yet (the first release) may answer "denied" to a reader.
        ("denied: requested access to the resource is denied", "", true, format!("{inspect}{view}"), ""),
        ("exists", "", false, inspect.clone(), "::error title=v1.1.0 is already published::"),
        ("not found", "yes", false, format!("{inspect}{view}"), "::error title=v1.1.0 is already published::"),
        ("dial tcp: connection refused", "", false, inspect.clone(), "::error title=cannot tell whether"),
    ] {
        let env = [
            ("IMAGE", REGISTRY_PATH),
            ("VERSION", "1.1.0"),
            ("IMAGE_STATE", image_state),
            ("RELEASE_EXISTS", release_exists),
        ];
        let ran = fakes.run(step, &env);
        assert_eq!(ran.outputs.is_some(), passes, "{image_state}, release: {release_exists:?}: {}", ran.stdout);
        assert!(ran.stdout.contains(says), "{}", ran.stdout);
        assert_eq!(fakes.calls(), calls);
    }
}

/// What is published has run: each platform's image is built on a runner of that architecture
/// (no emulator, so no QEMU image in the job that can push), pushed by digest with no tag, pulled
/// and run (`cutover --version` must print the release's version), and only the digests that ran
/// make up `IMAGE:<version>`.
#[test]
fn each_platforms_pushed_image_runs_before_any_tag_names_it() {
    let parsed = python_json(RELEASE_STEPS);
    let text = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join(".github/workflows/release.yml"))
        .expect("release.yml");
    assert!(!text.contains("setup-qemu-action"), "release.yml: no emulator");
    let image = &parsed["jobs"]["image"];
    let runners: serde_json::Map<String, serde_json::Value> = image["strategy"]["matrix"]["include"]
        .as_array()
        .expect("the image matrix")
        .iter()
        .map(|leg| (leg["arch"].as_str().expect("arch").to_owned(), leg["runner"].clone()))
        .collect();
    assert_eq!(
        serde_json::Value::from(runners),
        serde_json::json!({"amd64": "ubuntu-24.04", "arm64": "ubuntu-24.04-arm"})
    );
    assert_eq!(image["runs-on"], "${{ matrix.runner }}");
    assert_eq!(image["steps"]["build"]["with"]["platforms"], "linux/${{ matrix.arch }}");
    assert_eq!(image["steps"]["run"]["env"]["DIGEST"], "${{ steps.build.outputs.digest }}");
    let order = image["order"].as_array().expect("steps");
    let at = |id: &str| order.iter().position(|s| s == id).unwrap_or_else(|| panic!("no step {id}"));
    assert_eq!(at("run"), at("build") + 1, "the image runs right after its push");
    assert_eq!(parsed["jobs"]["image-index"]["needs"], serde_json::json!(["version", "image"]));

    let step = release_step(&parsed, "image", "run");
    let digest = format!("sha256:{}", "c".repeat(64));
    let env = |prints| {
        [
            ("IMAGE", REGISTRY_PATH),
            ("ARCH", "arm64"),
            ("VERSION", "1.2.3"),
            ("DIGEST", digest.as_str()),
            ("RUN_PRINTS", prints),
        ]
    };
    let fakes = Fakes::new(&[]);
    let ran = fakes.run(step, &env("cutover 1.2.2"));
    assert_eq!(ran.outputs, None, "an image printing another version fails");
    assert!(ran.stdout.contains("::error title=the pushed arm64 image does not run cutover 1.2.3::"), "{}", ran.stdout);
    assert!(!fakes.path().join("digests/arm64").exists(), "and its digest goes nowhere");
    assert_eq!(
        fakes.calls(),
        format!("docker run --rm --pull always --platform linux/arm64 {REGISTRY_PATH}@{digest} cutover --version\n")
    );
    let ran = fakes.run(step, &env("cutover 1.2.3"));
    assert_eq!(ran.outputs.as_deref(), Some(""), "{}", ran.stdout);
    assert_eq!(std::fs::read_to_string(fakes.path().join("digests/arm64")).expect("the digest"), format!("{digest}\n"));
}

/// A release starts only on a version tag (moving `v0` by hand starts nothing), a failed publish
/// can be re-run for a week (the artifacts it downloads are kept that long), and CI's cached
/// `.tools` follow `scripts/test`, which installs them only when missing.
#[test]
fn releases_start_on_version_tags_and_a_failed_publish_can_be_rerun() {
    let script = r#"
import re
patterns = release.get("on", release.get(True))["push"]["tags"]
# GitHub's filter patterns: * is any run of characters but /, + repeats the previous character or
# class, [] is a class, and the rest stands for itself.
def matches(pattern, tag):
    regex = "".join(".*" if c == "*" else c if c in "+[]-" else re.escape(c) for c in pattern).replace(".*", "[^/]*")
    return re.fullmatch(regex, tag) is not None
tags = ["v1.2.3", "v0.10.0", "v1.2.3-rc.1", "v0", "v1", "v1.2", "vx.y.z", "release-1"]
steps = [s for w in (release, ci) for job in w["jobs"].values() for s in job.get("steps", [])]
print(json.dumps({
    "patterns": patterns,
    "started": [t for t in tags if any(matches(p, t) for p in patterns)],
    "retention": [s["with"].get("retention-days") for s in steps if s.get("uses", "").startswith("actions/upload-artifact@")],
    "cache": [s["with"] for s in steps if s.get("uses", "").startswith("Swatinem/rust-cache@")],
}))
"#;
    let parsed = workflows_json(script);
    assert_eq!(parsed["started"], serde_json::json!(["v1.2.3", "v0.10.0", "v1.2.3-rc.1"]), "{}", parsed["patterns"]);
    let retention = parsed["retention"].as_array().expect("uploads");
    assert!(
        !retention.is_empty() && retention.iter().all(|d| d.as_u64() >= Some(7)),
        "artifacts kept a week: {retention:?}"
    );
    let cache = &parsed["cache"][0];
    assert_eq!(cache["cache-directories"], ".tools");
    assert!(
        cache["key"].as_str().is_some_and(|k| k.contains("hashFiles('scripts/test')")),
        "ci.yml's cache key: {cache}"
    );
}

/// The README's install and release instructions work as written: the binary is installed with
/// root's rights, the one-time steps GitHub and CircleCI need are spelled out, and who may push a
/// release tag is a ruleset's job.
#[test]
fn the_readme_install_and_release_steps_work_as_written() {
    let readme = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("README.md")).expect("README.md");
    let install: Vec<&str> =
        readme.lines().filter(|l| l.contains("/usr/local/bin/cutover") && l.contains("install ")).collect();
    assert!(!install.is_empty() && install.iter().all(|l| l.starts_with("sudo install ")), "{install:?}");
    for needed in
        ["Change visibility", "circleci orb publish circleci/orb.yml cutover-dev/cutover@<version>", "tag ruleset"]
    {
        assert!(readme.contains(needed), "README: {needed}");
    }
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
needs = lambda job: [job["needs"]] if isinstance(job.get("needs"), str) else job.get("needs", [])
print(json.dumps({
    "jobs": {name: {"needs": needs(job), "uses": job.get("uses"), "permissions": job.get("permissions", {})}
             for name, job in release["jobs"].items()},
    # PyYAML reads the key `on` as the boolean true.
    "ci_on": ci.get("on", ci.get(True)),
    "ci_runs": [s.get("run") for job in ci["jobs"].values() for s in job.get("steps", [])],
}))
"#;
    let parsed = workflows_json(script);
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
            "version": {"contents": "read", "packages": "read"},
            "ci": read,
            "binaries": read,
            "image": {"contents": "read", "packages": "write"},
            "image-index": attest(serde_json::json!({"packages": "write"})),
            "release": attest(serde_json::json!({"contents": "write"})),
            "major-tags": {"contents": "write", "packages": "write"},
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
