//! The CloudFormation template passes cfn-lint, matches cutover's defaults, and resolves (by
//! tests/all/template.py) to what the README promises for each pointer style.

use std::path::Path;
use std::process::{Command, Stdio};

use serde_json::{Value, json};

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// infra/cutover.yml resolved by tests/all/template.py (its docstring says what `input` holds).
pub fn resolve(input: &Value) -> Value {
    let mut input = input.clone();
    input["template"] = json!(root().join("infra/cutover.yml"));
    let mut child = Command::new(root().join(".venv/bin/python"))
        .arg(root().join("tests/all/template.py"))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("running tests/all/template.py with .venv's python (scripts/test installs it)");
    std::io::Write::write_all(&mut child.stdin.take().expect("stdin"), input.to_string().as_bytes()).expect("stdin");
    let out = child.wait_with_output().expect("template.py");
    let (stdout, stderr) = (String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "template.py: {stdout}{stderr}");
    serde_json::from_str(&stdout).expect("template.py prints JSON")
}

/// `resource` resolved in `region` with the pointer style and parameters given.
fn resolved(resource: &str, region: &str, parameters: Value) -> Value {
    let mut values = json!({
        "BucketName": "site-bucket",
        "RouterCodeBucket": "my-artifacts",
        "RouterCodeKey": "cutover/router-0123456789abcdef.zip",
        "RouterCodeSha256": "bm90IGEgcmVhbCBoYXNoIGJ1dCBiYXNlNjQgYXQgYWxsPQ=",
    });
    values.as_object_mut().unwrap().extend(parameters.as_object().unwrap().clone());
    resolve(&json!({
        "resource": resource,
        "parameters": values,
        "pseudo": {"AWS::Region": region, "AWS::AccountId": "123456789012", "AWS::Partition": "aws", "AWS::StackName": "s"},
        "refs": {"SiteBucket": "site-bucket", "ActiveVersionParameter": "/cutover/site-bucket/site/active",
                 "Distribution": "E1", "CachePolicy": "c", "RouterVersion": "arn:aws:lambda:us-east-1:1:function:f:1",
                 "RouterFunction": "f", "OriginAccessControl": "o"},
        "attributes": {"SiteBucket.Arn": "arn:aws:s3:::site-bucket", "SiteBucket.RegionalDomainName": "d",
                       "RouterRole.Arn": "arn:aws:iam::1:role/r", "OriginAccessControl.Id": "o"},
    }))
}

#[test]
fn a_rule_refuses_any_region_but_us_east_1() {
    assert_eq!(resolved("CachePolicy", "us-east-1", json!({}))["broken_rules"], json!([]));
    let broken = resolved("CachePolicy", "eu-west-1", json!({}))["broken_rules"].to_string();
    assert!(broken.contains("us-east-1"), "{broken}");
}

#[test]
fn the_override_names_are_parameters_of_the_origin_path_cache_key() {
    let names =
        json!({"PointerStyle": "origin-path", "VersionCookie": "V", "OverrideCookie": "O", "OverrideQuery": "q"});
    let key = &resolved("CachePolicy", "us-east-1", names)["properties"]["CachePolicyConfig"]["ParametersInCacheKeyAndForwardedToOrigin"];
    assert_eq!(key["CookiesConfig"], json!({"CookieBehavior": "whitelist", "Cookies": ["V", "O"]}));
    assert_eq!(key["QueryStringsConfig"], json!({"QueryStringBehavior": "whitelist", "QueryStrings": ["q", "dpl"]}));
    // A framework pin and what tells a navigation apart answer differently: both in the key.
    let headers = json!({"HeaderBehavior": "whitelist", "Headers": ["x-deployment-id", "sec-fetch-dest"]});
    assert_eq!(key["HeadersConfig"], headers);
    let ssm = &resolved("CachePolicy", "us-east-1", json!({"PointerStyle": "ssm"}))["properties"]["CachePolicyConfig"]
        ["ParametersInCacheKeyAndForwardedToOrigin"];
    assert_eq!(ssm["CookiesConfig"], json!({"CookieBehavior": "none"}));
    assert_eq!(ssm["HeadersConfig"], json!({"HeaderBehavior": "none"}), "the router puts a pin's version in the URI");
    // The defaults are cutover's, and `edge bundle` names these very parameters.
    let env: cutover::env::Env =
        [("CUTOVER_BUCKET", "b-u-c"), ("CUTOVER_POINTER", "cloudfront:E2QWRUHAPOMQZL")].into_iter().collect();
    let raw = cutover::inputs::RawInputs::layered(&env, &Default::default());
    let plan = cutover::inputs::Plan::resolve(&raw, &env).unwrap();
    let config = cutover::edge_bundle::RouterConfig::from_plan(&plan).unwrap();
    let defaults = resolved("CachePolicy", "us-east-1", json!({"PointerStyle": "origin-path"}));
    let key = &defaults["properties"]["CachePolicyConfig"]["ParametersInCacheKeyAndForwardedToOrigin"];
    let (cookies, query) = (&key["CookiesConfig"]["Cookies"], &key["QueryStringsConfig"]["QueryStrings"]);
    let expected = format!(
        "VersionCookie={} OverrideCookie={} OverrideQuery={}",
        cookies[0].as_str().unwrap(),
        cookies[1].as_str().unwrap(),
        query[0].as_str().unwrap()
    );
    assert_eq!(config.stack_parameters(), expected);
}

#[test]
fn a_stack_update_sends_the_live_version_as_the_origin_path() {
    let origin = |parameters: Value| {
        let distribution = resolved("Distribution", "us-east-1", parameters);
        distribution["properties"]["DistributionConfig"]["Origins"][0].get("OriginPath").cloned()
    };
    assert_eq!(origin(json!({"PointerStyle": "origin-path"})), Some(json!("/site/-")));
    assert_eq!(origin(json!({"PointerStyle": "origin-path", "LiveVersion": "42"})), Some(json!("/site/42")));
    assert_eq!(origin(json!({"PointerStyle": "ssm", "LiveVersion": "42"})), None);
}

#[test]
fn a_new_router_hash_publishes_a_new_version() {
    let version = resolved("RouterVersion", "us-east-1", json!({"RouterCodeSha256": "A".repeat(43) + "="}));
    assert_eq!(version["properties"]["CodeSha256"], json!("A".repeat(43) + "="));
    let function = resolved("RouterFunction", "us-east-1", json!({}));
    assert_eq!(function["properties"]["Code"]["S3Key"], json!("cutover/router-0123456789abcdef.zip"));
}

#[test]
fn the_router_may_read_indexes_records_404_pages_and_aliases_and_nothing_else_of_the_bucket() {
    let role = resolved("RouterRole", "us-east-1", json!({}));
    let policy = &role["properties"]["Policies"][0];
    assert_eq!(policy["PolicyName"], json!("read-the-routing-index"));
    assert_eq!(
        policy["PolicyDocument"]["Statement"][0]["Resource"],
        json!([
            "arn:aws:s3:::site-bucket/site/_cutover/routes/*",
            "arn:aws:s3:::site-bucket/site/_cutover/releases/*",
            "arn:aws:s3:::site-bucket/site/*/404.html",
            "arn:aws:s3:::site-bucket/site/_cutover/aliases/*",
        ])
    );
}

#[test]
fn the_origin_path_style_has_no_parameter() {
    assert_eq!(
        resolved("ActiveVersionParameter", "us-east-1", json!({"PointerStyle": "origin-path"}))["properties"],
        Value::Null
    );
    assert!(resolved("ActiveVersionParameter", "us-east-1", json!({"PointerStyle": "ssm"}))["properties"].is_object());
}

#[test]
fn the_template_passes_cfn_lint() {
    let lint = root().join(".venv/bin/cfn-lint");
    let out = Command::new(&lint)
        .arg("infra/cutover.yml")
        .current_dir(root())
        .output()
        .unwrap_or_else(|e| panic!("{}: {e}; run scripts/test to install it", lint.display()));
    assert!(
        out.status.success(),
        "cfn-lint:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn the_template_names_the_parameter_cutover_uses_by_default() {
    let template = std::fs::read_to_string(root().join("infra/cutover.yml")).expect("infra/cutover.yml");
    assert!(template.contains(r#"Name: !Sub "/cutover/${BucketName}/${Prefix}/active""#));
    let env: cutover::env::Env = [("CUTOVER_BUCKET", "b-u-c"), ("CUTOVER_PREFIX", "p")].into_iter().collect();
    let raw = cutover::inputs::RawInputs::layered(&env, &Default::default());
    let plan = cutover::inputs::Plan::resolve(&raw, &env).unwrap();
    let cutover::inputs::Backend::Aws(site) = plan.backend else { panic!("a bucket makes a plan on AWS") };
    assert_eq!(site.pointer, cutover::inputs::AwsPointer::Ssm { parameter: "/cutover/b-u-c/p/active".into() });
}

#[test]
fn the_bucket_aborts_incomplete_multipart_uploads_after_a_day() {
    let template = std::fs::read_to_string(root().join("infra/cutover.yml")).expect("infra/cutover.yml");
    let bucket = &template[template.find("  SiteBucket:\n").expect("the SiteBucket resource")..];
    let bucket = &bucket[..bucket.find("\n\n").unwrap_or(bucket.len())];
    let rule = "            Status: Enabled\n            AbortIncompleteMultipartUpload:\n              DaysAfterInitiation: 1";
    assert!(bucket.contains(rule), "the SiteBucket has an enabled AbortIncompleteMultipartUpload rule:\n{bucket}");
}

/// The README's stack snippet (step 3), as written.
fn readme_stack_snippet() -> String {
    let readme = std::fs::read_to_string(root().join("README.md")).expect("README.md");
    let blocks: Vec<&str> =
        readme.split("```sh\n").skip(1).filter_map(|b| b.split_once("```").map(|(b, _)| b)).collect();
    let block = blocks.into_iter().find(|b| b.contains("aws cloudformation deploy")).expect("the stack snippet");
    block.lines().map(str::trim_start).collect::<Vec<_>>().join("\n")
}

/// How the fake `aws` answers `describe-stacks`.
enum Stack<'a> {
    Missing,
    Exists { distribution: &'a str },
    Unreadable,
}

/// The README's stack snippet run by bash as written, in the origin-path style, with the bucket
/// renamed to the fixture's, `prefix` as given, `cutover` on the PATH and a fake `aws` that answers
/// `describe-stacks` as `stack` says and whose `deploy` finds nothing to change (exit 255 unless
/// told not to fail on that): the `LiveVersion` its `aws cloudformation deploy` sent and the whole
/// parameter list, or `None` (and stderr) when the snippet stopped before deploying.
fn run_readme_snippet(f: &crate::harness::Fixture, prefix: &str, stack: &Stack) -> Result<(String, String), String> {
    let snippet = readme_stack_snippet();
    assert!(snippet.contains("style=ssm") && snippet.contains("prefix=site\n"), "{snippet}");
    let script = snippet
        .replace("style=ssm", "style=origin-path")
        .replace("prefix=site\n", &format!("prefix={prefix}\n"))
        .replace("my-site-bucket", "site-bucket");
    let fake = f.dir.path().join("fake-aws");
    std::fs::create_dir_all(&fake).expect("mkdir");
    let deployed = f.dir.path().join("deployed");
    let _ = std::fs::remove_file(&deployed);
    let (describe, answer) = match stack {
        Stack::Missing => ("echo 'An error occurred (ValidationError) when calling the DescribeStacks operation: Stack with id my-site does not exist' >&2; exit 254".to_owned(), ""),
        Stack::Unreadable => ("echo 'An error occurred (AccessDenied) when calling the DescribeStacks operation: denied' >&2; exit 254".to_owned(), ""),
        Stack::Exists { distribution } => (String::new(), *distribution),
    };
    let aws = format!(
        "#!/bin/bash\ncase \" $* \" in\n*' describe-stacks '*) {describe}\n  case \" $* \" in *' --query '*) echo '{answer}';; *) echo '{{}}';; esac;;\n*' deploy '*) printf '%s\\n' \"$@\" > '{}'\n  case \" $* \" in *' --no-fail-on-empty-changeset '*) ;; *) echo 'No changes to deploy. Stack my-site is up to date' >&2; exit 255;; esac;;\n*) echo \"unexpected: aws $*\" >&2; exit 1;;\nesac\n",
        deployed.display()
    );
    let aws_path = fake.join("aws");
    std::fs::write(&aws_path, aws).expect("the fake aws");
    let executable = std::os::unix::fs::PermissionsExt::from_mode(0o755);
    std::fs::set_permissions(&aws_path, executable).expect("chmod");
    let bin = Path::new(env!("CARGO_BIN_EXE_cutover")).parent().expect("the binary's directory");
    let path = format!("{}:{}:{}", fake.display(), bin.display(), f.env["PATH"]);
    let out = Command::new("bash")
        .args(["-c", &script])
        .env_clear()
        .envs(f.env.iter().filter(|(k, _)| !k.starts_with("CUTOVER_")))
        .env("PATH", path)
        .current_dir(f.dir.path())
        .output()
        .expect("bash (and jq) run the README's snippet");
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    let Ok(sent) = std::fs::read_to_string(&deployed) else {
        assert!(!out.status.success(), "no deploy, yet success: {stderr}");
        return Err(stderr);
    };
    assert!(out.status.success(), "{script}\n{stderr}");
    let live = sent.lines().find_map(|l| l.strip_prefix("LiveVersion=")).expect("LiveVersion is sent").to_owned();
    Ok((live, sent))
}

/// The `LiveVersion` the README's snippet sends for the fixture's stack.
fn readme_live_version(f: &crate::harness::Fixture, distribution: &str) -> String {
    let (live, sent) = run_readme_snippet(f, "site", &Stack::Exists { distribution }).expect("the snippet deploys");
    assert!(sent.contains("Prefix=site\n"), "{sent}");
    live
}

#[test]
fn the_readme_stack_snippet_keeps_the_live_release_or_stops() {
    let mut f = crate::harness::Fixture::moto();
    let distribution = f.moto_server().create_distribution("site-bucket");
    f.moto_server().set_origin_path(&distribution, "/web/-");
    f.set("CUTOVER_POINTER", &format!("cloudfront:{distribution}")).set("CUTOVER_PREFIX", "web");
    let exists = Stack::Exists { distribution: &distribution };
    assert_eq!(run_readme_snippet(&f, "web", &Stack::Missing).unwrap().0, "-", "creating the stack");
    assert_eq!(run_readme_snippet(&f, "web", &exists).unwrap().0, "-", "nothing promoted yet");
    f.deploy(&f.site("v1", &[("index.html", "1")]), "1");
    // The live version is read with the stack's prefix, not cutover's default.
    let (live, sent) = run_readme_snippet(&f, "web", &exists).unwrap();
    assert_eq!(live, "1");
    assert!(sent.contains("Prefix=web\n"), "{sent}");
    // It stops rather than send "-" for a stack that exists.
    let stopped = run_readme_snippet(&f, "web", &Stack::Unreadable).unwrap_err();
    assert!(stopped.contains("AccessDenied"), "{stopped}");
    // It sends only what cutover last made live, and stops, naming doctor, when the origin path
    // serves anything else: nothing, a preview, a version never recorded, an older release.
    f.deploy(&f.site("v2", &[("index.html", "2")]), "2");
    f.deploy(&f.site("v4", &[("index.html", "4")]), "4");
    assert_eq!(run_readme_snippet(&f, "web", &exists).unwrap().0, "4");
    for (path, serves) in [("/web/-", "-"), ("/web/pr-7-11", "pr-7-11"), ("/web/9", "9"), ("/web/2", "2")] {
        f.moto_server().set_origin_path(&distribution, path);
        let stopped = run_readme_snippet(&f, "web", &exists).unwrap_err();
        let says = format!("origin path serves {serves}, last promotion 4: run cutover doctor");
        assert!(stopped.contains(&says), "{path}: {stopped}");
    }
    let stopped = run_readme_snippet(&f, "web", &Stack::Exists { distribution: "" }).unwrap_err();
    assert!(stopped.contains("pointer"), "{stopped}");
}

/// A stack just created: the SSM parameter holds the template's `-` (or the origin path is
/// `/site/-`). That is no release: the local edge answers 404, `status` shows nothing live, the
/// first deploy promotes without `take-over-pointer`, and rollbacks never go back to `-`.
fn a_fresh_stack_takes_its_first_release(origin_path: bool) {
    let mut f = crate::harness::Fixture::moto();
    let distribution = f.moto_server().create_distribution("site-bucket");
    f.moto_server().block_public_access("site-bucket");
    f.set("CUTOVER_DISTRIBUTION_ID", &distribution);
    if origin_path {
        f.moto_server().set_origin_path(&distribution, "/site/-");
        f.set("CUTOVER_POINTER", &format!("cloudfront:{distribution}"));
    } else {
        // The template's parameter, exactly: cutover's default name for the bucket and prefix.
        f.env.remove("CUTOVER_POINTER");
        let ssm = f.moto_server().ssm();
        tokio::runtime::Runtime::new()
            .unwrap()
            .block_on(async {
                let put = ssm.put_parameter().name("/cutover/site-bucket/site/active").value("-");
                let put = put.r#type(aws_sdk_ssm::types::ParameterType::String);
                put.description("The active version of the site; cutover writes it, the router reads it.").send().await
            })
            .expect("creating the parameter as the template does");
    }
    let edge = f.start_edge();
    let page = edge.get("/", None);
    assert_eq!((page.status, page.body.trim()), (404, "no release is active"));
    let status = f.run(&["status", "--json"], &[]);
    status.assert_code(0);
    assert_eq!(status.json()["active"], Value::Null, "{}", status.stdout());
    // The snippet is the origin-path style's; in the SSM style the origin path names nothing either.
    assert_eq!(readme_live_version(&f, &distribution), "-");
    let doctor = f.run(&["doctor", "--json"], &[]);
    let passed = |run: &crate::harness::Run, name: &str| {
        let checks = run.json()["checks"].as_array().expect("checks").clone();
        let check = checks.into_iter().find(|c| c["name"] == name).unwrap_or_else(|| panic!("{name} is checked"));
        (check["passed"].as_bool().unwrap(), check["detail"].as_str().unwrap().to_owned())
    };
    let (name, says) =
        if origin_path { ("live release", "no promotion yet") } else { ("parameter", "no release is live yet") };
    let (ok, detail) = passed(&doctor, name);
    assert!(ok && detail.contains(says), "{detail}");

    let deploy = |version: &str| f.deploy(&f.site(&format!("v{version}"), &[("index.html", version)]), version);
    let first = deploy("1");
    assert!(!first.stderr().contains("taking over"), "{}", first.stderr());
    assert_eq!(f.outputs()["previous-version"], "");
    assert_eq!(edge.wait_for_active("1").body, "1");
    if origin_path {
        assert_eq!(readme_live_version(&f, &distribution), "1");
    }
    assert_eq!(f.run(&["status", "--json"], &[]).json()["active"], "1");
    deploy("2");
    f.run(&["rollback"], &[]).assert_code(0);
    assert_eq!(f.active().as_deref(), Some("1"));
    let again = f.run(&["rollback"], &[]);
    again.assert_code(4);
    assert!(again.stderr().contains("no earlier version in the promotion history"), "{}", again.stderr());
    assert_eq!(f.active().as_deref(), Some("1"));
}

#[test]
fn a_fresh_ssm_stack_takes_its_first_release() {
    a_fresh_stack_takes_its_first_release(false);
}

#[test]
fn a_fresh_origin_path_stack_takes_its_first_release() {
    a_fresh_stack_takes_its_first_release(true);
}
