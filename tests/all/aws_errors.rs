//! AWS failures against moto read as one line each: the call, the resource, the service's code and
//! HTTP status and a hint, never the SDK's Debug dump.

use percent_encoding::{NON_ALPHANUMERIC, utf8_percent_encode};

use crate::harness::{Fixture, Moto, Run, free_port, http_send};

/// The one `error:` line of a failed run; the rest of stderr is short and holds no Debug output.
#[track_caller]
fn error_line(run: &Run) -> String {
    let stderr = run.stderr();
    let errors: Vec<&str> = stderr.lines().filter(|l| l.starts_with("error:")).collect();
    assert_eq!(errors.len(), 1, "one error line:\n{stderr}");
    for dump in [" { ", "ResponseError", "ServiceError", "ErrorMetadata", "extensions", "DispatchFailure"] {
        assert!(!stderr.contains(dump), "no Debug output ({dump}):\n{stderr}");
    }
    assert!(stderr.len() < 1000, "stderr stays short ({} bytes):\n{stderr}", stderr.len());
    errors[0].to_owned()
}

#[track_caller]
fn assert_names(line: &str, parts: &[&str]) {
    for part in parts {
        assert!(line.contains(part), "{part:?} missing from:\n{line}");
    }
}

fn deploy(f: &Fixture, extra: &[(&str, &str)]) -> Run {
    let dist = f.site("dist", &[("index.html", "1")]).display().to_string();
    let mut env = vec![("CUTOVER_DIST_DIR", dist.as_str()), ("CUTOVER_VERSION", "1")];
    env.extend_from_slice(extra);
    f.run(&["deploy"], &env)
}

#[test]
fn a_missing_bucket_is_one_line_with_its_hint() {
    let mut f = Fixture::moto();
    f.set("CUTOVER_BUCKET", "no-such-bucket");
    let run = deploy(&f, &[]);
    run.assert_code(1);
    assert_names(
        &error_line(&run),
        &[
            "on s3://no-such-bucket/",
            "NoSuchBucket (HTTP 404): The specified bucket does not exist",
            "hint: the bucket does not exist",
        ],
    );
}

#[test]
fn missing_credentials_are_named_with_where_to_set_them() {
    let mut f = Fixture::moto();
    f.env.remove("AWS_ACCESS_KEY_ID");
    f.env.remove("AWS_SECRET_ACCESS_KEY");
    let run = f.run(&["status"], &[]);
    run.assert_code(1);
    assert_names(&error_line(&run), &["failed: no AWS credentials found", "hint: set AWS_ACCESS_KEY_ID"]);
}

/// Creates an IAM user that may read S3 and use SSM but write nothing to S3, then makes moto check
/// every request's credentials and permissions from then on; returns the user's key pair.
fn read_only_user_then_enforce_auth(moto: &Moto) -> (String, String) {
    let iam = |params: &[(&str, &str)]| {
        let mut body = String::from("Version=2010-05-08");
        for (name, value) in params {
            body.push_str(&format!("&{name}={}", utf8_percent_encode(value, NON_ALPHANUMERIC)));
        }
        let signed = "AWS4-HMAC-SHA256 Credential=testing/20250101/us-east-1/iam/aws4_request, SignedHeaders=host, \
                      Signature=0";
        let headers = [("Content-Type", "application/x-www-form-urlencoded"), ("Authorization", signed)];
        let response = http_send(&moto.endpoint, "POST", "/", &headers, &body).expect("calling moto's IAM");
        assert_eq!(response.status, 200, "{params:?}: {}", response.body);
        response.body
    };
    iam(&[("Action", "CreateUser"), ("UserName", "deployer")]);
    let policy = r#"{"Version":"2012-10-17","Statement":[
        {"Effect":"Allow","Action":["s3:Get*","s3:List*","ssm:*"],"Resource":"*"}]}"#;
    iam(&[("Action", "PutUserPolicy"), ("UserName", "deployer"), ("PolicyName", "read"), ("PolicyDocument", policy)]);
    let created = iam(&[("Action", "CreateAccessKey"), ("UserName", "deployer")]);
    let element = |name: &str| {
        let start = created.find(&format!("<{name}>")).expect(name) + name.len() + 2;
        created[start..].split('<').next().unwrap_or_default().to_owned()
    };
    let keys = (element("AccessKeyId"), element("SecretAccessKey"));
    let enforced = http_send(&moto.endpoint, "POST", "/moto-api/reset-auth", &[], "0").expect("enforcing auth");
    assert_eq!(enforced.status, 200, "{}", enforced.body);
    keys
}

#[test]
fn unknown_credentials_and_denied_calls_are_one_line_with_their_hints() {
    let f = Fixture::moto();
    let (key, secret) = read_only_user_then_enforce_auth(f.moto_server());
    let lock = "S3 PutObject on s3://site-bucket/site/_cutover/lock failed";

    let run = f.run(&["prune", "--keep", "1"], &[]);
    run.assert_code(1);
    let expected = [lock, "InvalidAccessKeyId (HTTP 403)", "hint: the credentials are expired or invalid"];
    assert_names(&error_line(&run), &expected);

    let user = [("AWS_ACCESS_KEY_ID", key.as_str()), ("AWS_SECRET_ACCESS_KEY", secret.as_str())];
    let run = f.run(&["prune", "--keep", "1"], &user);
    run.assert_code(1);
    assert_names(
        &error_line(&run),
        &[lock, "AccessDenied (HTTP 403)", "hint: these credentials may not make this call"],
    );

    // Moto answers SSM's JSON protocol with an XML error here, which the SDK cannot read: the line
    // still names the call, the parameter and the status.
    let run = f.run(&["status"], &[]);
    run.assert_code(1);
    assert_names(&error_line(&run), &["SSM GetParameter on /cutover/test/active failed: HTTP 403", "; hint: "]);
}

#[test]
fn an_unreachable_ssm_endpoint_says_so_with_its_cause() {
    let f = Fixture::moto();
    let nowhere = format!("http://127.0.0.1:{}", free_port());
    let run = f.run(&["status"], &[("AWS_ENDPOINT_URL_SSM", &nowhere)]);
    run.assert_code(1);
    assert_names(
        &error_line(&run),
        &[
            "SSM GetParameter on /cutover/test/active failed: the request could not be sent",
            "Connection refused",
            "hint: AWS could not be reached",
        ],
    );
}
