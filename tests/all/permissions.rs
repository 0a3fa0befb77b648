//! The shipped `DeployPolicy` is exactly what cutover needs: every command runs through a proxy
//! that logs each AWS call, each call is mapped to the IAM action and resource ARN (and condition
//! keys) AWS authorizes it as, and tests/all/template.py evaluates them against the template's policy
//! resolved for this test's account, region, bucket, parameter and distribution. A call the policy
//! denies fails the test, and so does a granted action no command calls. The proxy answers a read
//! of a missing key 403, as S3 does to credentials without unconditional `s3:ListBucket`.
//!
//! What moto cannot show is stated where it is assumed: moto drops Lambda associations from
//! distribution configs, so each UpdateDistribution is taken to carry the template's (as it does
//! on AWS), which AWS authorizes as `lambda:GetFunction` and `lambda:EnableReplication` on the
//! router's version.

use std::collections::BTreeMap;
use std::process::Stdio;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::{Value, json};

use crate::harness::Fixture;
use crate::proxy::{Fault, Proxy, Request};

const ACCOUNT: &str = "123456789012";
const REGION: &str = "us-east-1";
const BUCKET: &str = "site-bucket";
const PREFIX: &str = "site";
const PARAMETER: &str = "/cutover/site-bucket/site/active";
/// The cache policy `Moto::create_distribution` attaches, standing for the template's.
const CACHE_POLICY: &str = "658327ea-f89d-4fab-a63d-7e88639e58f6";
const ROUTER_VERSION: &str = "arn:aws:lambda:us-east-1:123456789012:function:my-site-RouterFunction-abc:3";

/// One AWS call as IAM authorizes it.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Call {
    action: String,
    resource: String,
    context: BTreeMap<String, String>,
}

impl Call {
    fn new(action: &str, resource: impl Into<String>) -> Call {
        Call { action: action.to_owned(), resource: resource.into(), context: BTreeMap::new() }
    }

    fn json(&self) -> Value {
        json!({"action": self.action, "resource": self.resource, "context": self.context})
    }
}

fn decode(text: &str) -> String {
    percent_encoding::percent_decode_str(text).decode_utf8_lossy().into_owned()
}

/// The IAM actions one request is authorized as (a batch delete is one per key). A request this
/// does not know fails the test: a new call must be mapped, and then granted or refused.
fn calls_of(request: &Request) -> Vec<Call> {
    let url = url::Url::parse(&format!("http://proxy{}", request.target)).expect("a request target");
    // `x-id` names the SDK's operation for logs; it changes nothing S3 authorizes.
    let query: BTreeMap<String, String> =
        url.query_pairs().filter(|(k, _)| k != "x-id").map(|(k, v)| (k.into_owned(), v.into_owned())).collect();
    let method = request.method.as_str();
    if let Some(operation) = request.ssm_action() {
        let body: Value = serde_json::from_slice(&request.body).expect("an SSM request is JSON");
        let name = body["Name"].as_str().expect("an SSM call names its parameter");
        let separator = if name.starts_with('/') { "" } else { "/" };
        return vec![Call::new(
            &format!("ssm:{operation}"),
            format!("arn:aws:ssm:{REGION}:{ACCOUNT}:parameter{separator}{name}"),
        )];
    }
    let segments: Vec<String> = url.path_segments().map(|s| s.map(decode).collect()).unwrap_or_default();
    if let Some(rest) = request.target.strip_prefix("/2020-05-31/") {
        let distribution = |id: &str| format!("arn:aws:cloudfront::{ACCOUNT}:distribution/{id}");
        let parts: Vec<&str> = rest.split('?').next().unwrap_or_default().split('/').collect();
        return match (method, parts.as_slice()) {
            ("GET", ["distribution", id, "config"]) => {
                vec![Call::new("cloudfront:GetDistributionConfig", distribution(id))]
            }
            ("PUT", ["distribution", id, "config"]) => vec![
                Call::new("cloudfront:UpdateDistribution", distribution(id)),
                Call::new("lambda:GetFunction", ROUTER_VERSION),
                Call::new("lambda:EnableReplication", ROUTER_VERSION),
            ],
            ("POST", ["distribution", id, "invalidation"]) => {
                vec![Call::new("cloudfront:CreateInvalidation", distribution(id))]
            }
            ("GET", ["distribution", id, "invalidation", _]) => {
                vec![Call::new("cloudfront:GetInvalidation", distribution(id))]
            }
            ("GET", ["cache-policy", id]) => {
                vec![Call::new("cloudfront:GetCachePolicy", format!("arn:aws:cloudfront::{ACCOUNT}:cache-policy/{id}"))]
            }
            _ => unmapped(request),
        };
    }
    // S3, addressed by path (an overridden endpoint makes cutover use path style).
    let Some((bucket, key)) = segments.split_first() else { unmapped(request) };
    let bucket_arn = format!("arn:aws:s3:::{bucket}");
    let key = key.join("/");
    if key.is_empty() {
        return match method {
            "GET" if query.get("list-type").map(String::as_str) == Some("2") => {
                let mut call = Call::new("s3:ListBucket", bucket_arn);
                if let Some(prefix) = query.get("prefix") {
                    call.context.insert("s3:prefix".into(), prefix.clone());
                }
                vec![call]
            }
            "HEAD" => vec![Call::new("s3:ListBucket", bucket_arn)],
            "GET" if query.contains_key("publicAccessBlock") => {
                vec![Call::new("s3:GetBucketPublicAccessBlock", bucket_arn)]
            }
            "POST" if query.contains_key("delete") => {
                let body = String::from_utf8_lossy(&request.body);
                let keys = body.split("<Key>").skip(1).filter_map(|k| k.split_once("</Key>")).map(|(k, _)| k);
                keys.map(|k| Call::new("s3:DeleteObject", format!("{bucket_arn}/{}", xml_unescape(k)))).collect()
            }
            _ => unmapped(request),
        };
    }
    let object = format!("{bucket_arn}/{key}");
    match method {
        "GET" | "HEAD" if query.is_empty() || query.contains_key("partNumber") => {
            vec![Call::new("s3:GetObject", object)]
        }
        "PUT" => {
            let mut calls = vec![Call::new("s3:PutObject", object)];
            if let Some(source) = request.header("x-amz-copy-source") {
                let source = decode(source.trim_start_matches('/').split('?').next().unwrap_or_default());
                calls.push(Call::new("s3:GetObject", format!("arn:aws:s3:::{source}")));
            }
            calls
        }
        "POST" if query.contains_key("uploads") || query.contains_key("uploadId") => {
            vec![Call::new("s3:PutObject", object)]
        }
        "DELETE" if query.contains_key("uploadId") => vec![Call::new("s3:AbortMultipartUpload", object)],
        "DELETE" => vec![Call::new("s3:DeleteObject", object)],
        _ => unmapped(request),
    }
}

fn unmapped(request: &Request) -> ! {
    panic!("no IAM mapping for {} {}", request.method, request.target)
}

fn xml_unescape(text: &str) -> String {
    text.replace("&lt;", "<").replace("&gt;", ">").replace("&quot;", "\"").replace("&apos;", "'").replace("&amp;", "&")
}

/// The pointer style under test, as the template's `PointerStyle` names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Style {
    Ssm,
    OriginPath,
}

/// Every command, run through a logging proxy: the calls they made, the distribution, and what
/// doctor said (for a failure's message).
fn calls_of_every_command(style: Style) -> (Vec<Call>, String, String) {
    // Aged, so prune's sweep finds a pool object older than an hour to delete.
    let mut f = Fixture::moto_aged();
    let distribution = f.moto_server().create_distribution(BUCKET);
    f.moto_server().block_public_access(BUCKET);
    f.env.remove("CUTOVER_POINTER");
    match style {
        Style::Ssm => {
            // The template's SSM style gives the origin no path.
            f.moto_server().set_origin_path(&distribution, "");
            f.set("CUTOVER_DISTRIBUTION_ID", &distribution)
        }
        Style::OriginPath => {
            f.set("CUTOVER_POINTER", &format!("cloudfront:{distribution}")).set("CUTOVER_INVALIDATION_WAIT", "1s")
        }
    };
    let log = Arc::new(Mutex::new(Vec::new()));
    let hold_parts = Arc::new(AtomicBool::new(false));
    let part_size = cutover::site::PART_SIZE.to_string();
    let proxy = {
        let (log, hold_parts) = (log.clone(), hold_parts.clone());
        Proxy::start(&f.moto_server().endpoint, move |request| {
            log.lock().unwrap().push(request.clone());
            let part = request.header("content-length") == Some(part_size.as_str());
            // Without unconditional s3:ListBucket, S3 answers a read of a missing key 403.
            Some(if part && hold_parts.load(Ordering::SeqCst) { Fault::Hold } else { Fault::MissingDenied })
        })
    };
    f.set("AWS_ENDPOINT_URL", &proxy.url);

    // Big enough that the second release copies it from the first instead of uploading it.
    let copied = "c".repeat(usize::try_from(cutover::stage::COPY_MIN_BYTES).unwrap() + 1);
    let build = |version: &str| {
        let files = [("index.html", version), ("big.bin", &copied), ("assets/p-AbCd1234.js", "only previews")];
        let dir = f.site(&format!("v{version}"), &files[..if version == "p" { 3 } else { 2 }]);
        dir.display().to_string()
    };
    let with = |version: &str| [("CUTOVER_DIST_DIR", build(version)), ("CUTOVER_VERSION", version.to_owned())];
    let run = |args: &[&str], env: &[(&str, String)]| {
        let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let run = f.run(args, &env);
        run.assert_code(0);
    };
    run(&["deploy"], &with("1"));
    run(&["deploy"], &with("2"));
    run(&["stage"], &with("3"));
    run(&["promote", "3"], &[]);
    run(&["rollback"], &[]);
    run(&["rollback", "--to", "1"], &[]);
    run(&["status"], &[]);
    run(&["prune", "--keep", "1"], &[]);
    // serve reads the routing index of a version nobody staged: missing, so the live release.
    let edge = f.spawn_edge(&[]);
    let page = edge.get("/?override_build_number=77", None);
    assert_eq!((page.status, page.body.as_str()), (200, "1"), "an unknown version is no error");
    drop(edge);
    let pull_request = |run: &str| [("CUTOVER_PULL_REQUEST", "4".to_owned()), ("GITHUB_RUN_NUMBER", run.to_owned())];
    run(&["preview"], &[&with("p")[..1], &pull_request("1")].concat());
    run(&["preview"], &[&with("p")[..1], &pull_request("2")].concat());
    run(&["prune", "--keep", "1", "--preview-ttl", "1h"], &[]);
    // The closed previews' pool object is used by no release now: the close sweeps it.
    run(&["preview-close"], &pull_request("3"));
    run(&["prune", "--keep", "1"], &[]);
    let pool = f.with_site(async |site| site.store.list(&site.layout.shared_dir()).await.unwrap());
    assert!(pool.is_empty(), "{pool:?}");
    // doctor passes with these calls, but for what moto cannot hold (tests/all/doctor.rs says why).
    let doctor = f.run(&["doctor", "--json"], &[]);
    let report = doctor.json();
    let failed: Vec<&str> = report["checks"]
        .as_array()
        .expect("a list of checks")
        .iter()
        .filter(|c| c["passed"] == false)
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    assert_eq!(failed, ["router", "cache policy"], "{}", doctor.stdout());

    // A stage stopped mid-upload aborts its multipart upload.
    hold_parts.store(true, Ordering::SeqCst);
    let big = "b".repeat(usize::try_from(cutover::site::MULTIPART_THRESHOLD + 1).unwrap());
    let dist = f.site("big", &[("index.html", "9"), ("media/big.bin", &big)]).display().to_string();
    let child = f
        .command(&["stage"], &[("CUTOVER_DIST_DIR", dist.as_str()), ("CUTOVER_VERSION", "9")])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("starting cutover stage");
    assert!(proxy.wait_for_hold(Duration::from_secs(60)).is_some(), "no part was sent");
    let stopped = crate::signals::stop(child, "INT");
    assert_eq!(stopped.status.code(), Some(130), "{}", String::from_utf8_lossy(&stopped.stderr));

    let requests = log.lock().unwrap().clone();
    let calls = requests.iter().flat_map(calls_of).collect();
    (calls, distribution, format!("{}{}", doctor.stdout(), doctor.stderr()))
}

/// The template's DeployPolicy evaluated against `calls`: (denied calls, granted actions unused).
fn evaluate(style: Style, distribution: &str, calls: &[Call]) -> (Vec<Value>, Vec<String>) {
    let input = json!({
        "resource": "DeployPolicy",
        "parameters": {
            "BucketName": BUCKET,
            "Prefix": PREFIX,
            "PointerStyle": match style { Style::Ssm => "ssm", Style::OriginPath => "origin-path" },
            "RouterCodeBucket": "my-artifacts",
            "RouterCodeKey": "cutover/router-0123456789abcdef.zip",
            "RouterCodeSha256": "bm90IGEgcmVhbCBoYXNoIGJ1dCBiYXNlNjQ=",
        },
        "pseudo": {"AWS::Region": REGION, "AWS::AccountId": ACCOUNT, "AWS::Partition": "aws", "AWS::StackName": "my-site"},
        "refs": {
            "SiteBucket": BUCKET,
            "ActiveVersionParameter": PARAMETER,
            "Distribution": distribution,
            "CachePolicy": CACHE_POLICY,
            "RouterVersion": ROUTER_VERSION,
        },
        "attributes": {"SiteBucket.Arn": format!("arn:aws:s3:::{BUCKET}")},
        "calls": calls.iter().map(Call::json).collect::<Vec<_>>(),
    });
    let result = crate::infra::resolve(&input);
    let denied = result["denied"].as_array().cloned().unwrap_or_default();
    let unused = result["unused"].as_array().unwrap().iter().map(|u| u.as_str().unwrap().to_owned()).collect();
    (denied, unused)
}

fn check(style: Style) {
    let (calls, distribution, doctor) = calls_of_every_command(style);
    let (denied, unused) = evaluate(style, &distribution, &calls);
    let denied: Vec<String> = denied.iter().map(Value::to_string).collect();
    assert!(
        denied.is_empty(),
        "the DeployPolicy denies calls cutover makes:\n{}\ndoctor:\n{doctor}",
        denied.join("\n")
    );
    assert!(unused.is_empty(), "the DeployPolicy grants actions no command calls:\n{}", unused.join("\n"));
}

#[test]
fn the_deploy_policy_is_exactly_what_the_ssm_style_calls() {
    check(Style::Ssm);
}

#[test]
fn the_deploy_policy_is_exactly_what_the_origin_path_style_calls() {
    check(Style::OriginPath);
}
