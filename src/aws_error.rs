//! Every failed S3, SSM and CloudFront call as one line: the call, what it was made on, what the
//! service answered (code, HTTP status, message) and, where the cause is known, what to do.
//!
//! The SDK's own rendering of an error ends in its Debug dump (headers, body, extensions: about
//! 2 KB a call), so no AWS error is printed any other way.

use std::error::Error as StdError;
use std::fmt;

use aws_credential_types::provider::error::CredentialsError;
use aws_runtime::retries::classifiers::THROTTLING_ERRORS;
use aws_smithy_runtime_api::client::orchestrator::HttpResponse;
use aws_smithy_runtime_api::client::result::SdkError;
use aws_smithy_types::error::metadata::ProvideErrorMetadata;

/// Longest service message or cause kept, so that an HTML error page behind a proxy stays one
/// short line.
const PROBLEM_LIMIT: usize = 300;

/// One failed AWS call.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct AwsError {
    /// The service and operation: `S3 GetObject`.
    pub call: String,
    /// What the call was made on: `s3://bucket/key`, a parameter name, a distribution ID.
    pub resource: String,
    /// The service's error code (`NoSuchBucket`), when it answered with one.
    pub code: Option<String>,
    /// The HTTP status of the answer, when there was one.
    pub status: Option<u16>,
    /// The service's message (HEAD answers have none), or what went wrong before it answered.
    pub problem: String,
    /// What to do about it, where the cause is known.
    pub hint: Option<String>,
}

impl fmt::Display for AwsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} on {} failed", self.call, self.resource)?;
        let answer = match (&self.code, self.status) {
            (Some(code), Some(status)) => format!("{code} (HTTP {status})"),
            (Some(code), None) => code.clone(),
            (None, Some(status)) => format!("HTTP {status}"),
            (None, None) => String::new(),
        };
        for part in [answer.as_str(), self.problem.as_str()] {
            if !part.is_empty() {
                write!(f, ": {part}")?;
            }
        }
        match &self.hint {
            Some(hint) => write!(f, "; hint: {hint}"),
            None => Ok(()),
        }
    }
}

impl AwsError {
    /// Whether the service refused the call for want of permission (a HEAD answer has no code,
    /// only its 403).
    pub fn is_access_denied(&self) -> bool {
        match self.code.as_deref() {
            Some(code) => code.starts_with("AccessDenied"),
            None => self.status == Some(403),
        }
    }

    /// The failure of `call` (`"S3 GetObject"`) on `resource`, from the SDK's error.
    pub fn new<E>(call: &str, resource: impl Into<String>, err: &SdkError<E, HttpResponse>) -> Self
    where
        E: ProvideErrorMetadata + StdError + 'static,
    {
        let status = err.raw_response().map(|r| r.status().as_u16());
        let code = err.code().map(str::to_owned);
        let credentials = causes(err).find_map(|cause| cause.downcast_ref::<CredentialsError>());
        let (problem, hint) = match (err, credentials) {
            (_, Some(CredentialsError::CredentialsNotLoaded(_))) => {
                ("no AWS credentials found".to_owned(), Some(NO_CREDENTIALS.to_owned()))
            }
            (_, Some(e)) => {
                (format!("loading AWS credentials failed: {}", one_line(causes(e))), Some(BAD_CREDENTIALS.to_owned()))
            }
            (SdkError::ServiceError(_), _) => {
                let problem = err.message().unwrap_or_default().to_owned();
                let region = err.raw_response().and_then(|r| r.headers().get("x-amz-bucket-region"));
                (problem, answer_hint(code.as_deref(), status, region))
            }
            (SdkError::ResponseError(_), _) => {
                (format!("the answer could not be read: {}", sources(err)), answer_hint(None, status, None))
            }
            (SdkError::TimeoutError(_), _) => (format!("no answer in time: {}", sources(err)), unreachable()),
            (SdkError::DispatchFailure(failure), _) if failure.is_timeout() => {
                (format!("no answer in time: {}", sources(err)), unreachable())
            }
            (SdkError::DispatchFailure(failure), _) if failure.is_io() => {
                (format!("the request could not be sent: {}", sources(err)), unreachable())
            }
            (SdkError::DispatchFailure(_), _) => (format!("the request could not be sent: {}", sources(err)), None),
            _ => (format!("the request could not be made: {}", sources(err)), None),
        };
        AwsError { call: call.to_owned(), resource: resource.into(), code, status, problem: clip(problem), hint }
    }

    /// A failure the service reported inside a successful answer, such as one key of a
    /// DeleteObjects batch.
    pub fn reported(call: &str, resource: impl Into<String>, code: Option<&str>, message: Option<&str>) -> Self {
        AwsError {
            call: call.to_owned(),
            resource: resource.into(),
            code: code.map(str::to_owned),
            status: None,
            problem: clip(message.unwrap_or_default().to_owned()),
            hint: answer_hint(code, None, None),
        }
    }

    /// A call that failed outside the SDK's request (reading the answer's body, a waiter that
    /// could not poll): what went wrong, each cause said once, on one line.
    pub fn failed(call: &str, resource: impl Into<String>, err: &(dyn StdError + 'static)) -> Self {
        AwsError {
            call: call.to_owned(),
            resource: resource.into(),
            code: None,
            status: None,
            problem: clip(one_line(causes(err))),
            hint: None,
        }
    }
}

const NO_CREDENTIALS: &str = "set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, a profile (AWS_PROFILE) or a web \
     identity (on GitHub, aws-actions/configure-aws-credentials)";
const BAD_CREDENTIALS: &str = "the credentials are expired or invalid: refresh them (on GitHub, \
     aws-actions/configure-aws-credentials) and check AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY and AWS_SESSION_TOKEN";
/// What to check first on an access error, before granting anything: the inputs that must match
/// the stack the DeployPolicy was made for (a macro, so that constants can be built from it).
macro_rules! match_the_stack {
    () => {
        "check first that `bucket`, `prefix`, `region` (us-east-1) and `pointer` (unset in the template's SSM style, \
         `cloudfront:<DistributionId>` in its origin-path style) match the stack"
    };
}
pub(crate) use match_the_stack;

const ACCESS_DENIED: &str = concat!(
    "these credentials may not make this call: ",
    match_the_stack!(),
    ", since the DeployPolicy from infra/cutover.yml grants only the stack's bucket under its prefix, \
     its parameter and its distribution; if they do, give the role that DeployPolicy"
);
const THROTTLED: &str = "AWS kept throttling through every retry: lower `concurrency` or run again later";

fn unreachable() -> Option<String> {
    Some("AWS could not be reached: check the network, `region` and any AWS_ENDPOINT_URL setting".to_owned())
}

/// The hint for an answer from the service, by its code, else by its status.
fn answer_hint(code: Option<&str>, status: Option<u16>, bucket_region: Option<&str>) -> Option<String> {
    let wrong_region = || match bucket_region {
        Some(region) => format!("the bucket is in {region}: set `region` to {region}"),
        None => "the bucket is in another region: set `region` (or AWS_REGION) to the bucket's region".to_owned(),
    };
    let hint = match code {
        Some("NoSuchBucket") => "the bucket does not exist: check `bucket`, or create it (infra/cutover.yml does)",
        Some("NoSuchDistribution") => "no CloudFront distribution has this ID: check `pointer` or `distribution-id`",
        Some("AccessDenied" | "AccessDeniedException" | "AllAccessDisabled" | "Forbidden") => ACCESS_DENIED,
        Some(
            "PermanentRedirect" | "AuthorizationHeaderMalformed" | "IllegalLocationConstraintException" | "Redirect",
        ) => return Some(wrong_region()),
        Some(
            "ExpiredToken"
            | "ExpiredTokenException"
            | "TokenRefreshRequired"
            | "InvalidAccessKeyId"
            | "InvalidClientTokenId"
            | "UnrecognizedClientException"
            | "SignatureDoesNotMatch"
            | "InvalidSignatureException"
            | "IncompleteSignature"
            | "InvalidToken",
        ) => BAD_CREDENTIALS,
        Some("RequestTimeTooSkewed" | "RequestExpired") => {
            "this machine's clock is off by more than AWS allows: synchronise it (NTP)"
        }
        Some(code) if THROTTLING_ERRORS.contains(&code) => THROTTLED,
        _ => match status {
            Some(301 | 307) => return Some(wrong_region()),
            Some(403) => ACCESS_DENIED,
            Some(429) => THROTTLED,
            _ => return None,
        },
    };
    Some(hint.to_owned())
}

/// The error and each of its causes.
pub(crate) fn causes<'a>(err: &'a (dyn StdError + 'static)) -> impl Iterator<Item = &'a (dyn StdError + 'static)> {
    std::iter::successors(Some(err), |&e| e.source())
}

/// The causes below the SDK's own summary (`dispatch failure`), on one line.
fn sources(err: &(dyn StdError + 'static)) -> String {
    match one_line(causes(err).skip(1)) {
        said if said.is_empty() => "no cause given".to_owned(),
        said => said,
    }
}

/// Errors on one line, each said once, leaving out the SDK's bare labels (`io error`, `other`).
fn one_line<'a>(errors: impl Iterator<Item = &'a (dyn StdError + 'static)>) -> String {
    let mut said: Vec<String> = Vec::new();
    for error in errors {
        let text = one_line_text(&error.to_string());
        let label = matches!(text.as_str(), "" | "io error" | "timeout" | "user error" | "other");
        if !label && !said.iter().any(|s| s.contains(&text)) {
            said.push(text);
        }
    }
    said.join(": ")
}

/// Text with its line breaks (and the indentation after them) turned into "; ".
fn one_line_text(text: &str) -> String {
    text.lines().map(str::trim).filter(|l| !l.is_empty()).collect::<Vec<_>>().join("; ")
}

fn clip(text: String) -> String {
    let text = one_line_text(&text);
    match text.char_indices().nth(PROBLEM_LIMIT) {
        Some((cut, _)) => format!("{}...", &text[..cut]),
        None => text,
    }
}

/// An error answer from a service, as the SDK hands it over: for tests of what a seam makes of it.
#[cfg(test)]
pub(crate) fn service_answer<E>(
    status: u16,
    code: Option<&str>,
    message: &str,
    headers: &[(&str, &str)],
    error: impl FnOnce(aws_smithy_types::error::ErrorMetadata) -> E,
) -> SdkError<E, HttpResponse> {
    let status = aws_smithy_runtime_api::http::StatusCode::try_from(status).expect("a valid HTTP status");
    let mut response = HttpResponse::new(status, aws_smithy_types::body::SdkBody::from("<Error/>"));
    for (name, value) in headers {
        response.headers_mut().insert(name.to_string(), value.to_string());
    }
    let mut meta = aws_smithy_types::error::ErrorMetadata::builder().message(message);
    if let Some(code) = code {
        meta = meta.code(code);
    }
    SdkError::service_error(error(meta.build()), response)
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_sdk_s3::operation::get_object::GetObjectError;
    use aws_smithy_runtime_api::client::result::ConnectorError;
    use aws_smithy_runtime_api::http::StatusCode;
    use aws_smithy_types::body::SdkBody;
    use aws_smithy_types::error::ErrorMetadata;

    type Failure = SdkError<GetObjectError, HttpResponse>;

    fn answered(status: u16, code: &str, message: &str, headers: &[(&str, &str)]) -> Failure {
        service_answer(status, Some(code), message, headers, GetObjectError::generic)
    }

    fn line(err: &Failure) -> String {
        AwsError::new("S3 GetObject", "s3://b/site/1/index.html", err).to_string()
    }

    #[test]
    fn a_service_answer_is_one_line_with_code_status_message_and_hint() {
        let text = line(&answered(404, "NoSuchBucket", "The specified bucket does not exist", &[]));
        assert_eq!(
            text,
            "S3 GetObject on s3://b/site/1/index.html failed: NoSuchBucket (HTTP 404): The specified bucket does not \
             exist; hint: the bucket does not exist: check `bucket`, or create it (infra/cutover.yml does)"
        );
    }

    #[test]
    fn known_causes_get_their_hints() {
        let cases = [
            // A wrong input looks like a missing grant: the hint says to check them first.
            (403, "AccessDenied", vec![], "check first that `bucket`, `prefix`, `region` (us-east-1) and `pointer`"),
            (400, "AccessDeniedException", vec![], "if they do, give the role that DeployPolicy"),
            (
                301,
                "PermanentRedirect",
                vec![("x-amz-bucket-region", "eu-west-1")],
                "is in eu-west-1: set `region` to eu-west-1",
            ),
            (400, "AuthorizationHeaderMalformed", vec![], "set `region`"),
            (400, "ExpiredToken", vec![], "expired or invalid"),
            (403, "InvalidAccessKeyId", vec![], "expired or invalid"),
            (400, "UnrecognizedClientException", vec![], "expired or invalid"),
            (400, "ThrottlingException", vec![], "throttling"),
            (503, "SlowDown", vec![], "throttling"),
            (403, "RequestTimeTooSkewed", vec![], "clock"),
        ];
        for (status, code, headers, hint) in cases {
            let text = line(&answered(status, code, "m", &headers));
            assert!(text.contains(&format!("{code} (HTTP {status}): m; hint: ")), "{text}");
            assert!(text.contains(hint), "{code}: {text}");
        }
        let unknown = line(&answered(400, "InvalidArgument", "bad", &[]));
        assert!(!unknown.contains("hint"), "{unknown}");
    }

    #[test]
    fn an_answer_without_a_code_is_known_by_its_status() {
        let mut response = HttpResponse::new(StatusCode::try_from(403).unwrap(), SdkBody::empty());
        response.headers_mut().insert("x-amz-request-id", "1");
        let err = SdkError::service_error(GetObjectError::generic(ErrorMetadata::builder().build()), response);
        let text = line(&err);
        assert!(text.contains("failed: HTTP 403; hint: ") && text.contains("DeployPolicy"), "{text}");
        let err = SdkError::service_error(
            GetObjectError::generic(ErrorMetadata::builder().code("NotFound").build()),
            HttpResponse::new(StatusCode::try_from(404).unwrap(), SdkBody::empty()),
        );
        assert_eq!(line(&err), "S3 GetObject on s3://b/site/1/index.html failed: NotFound (HTTP 404)");
    }

    #[test]
    fn failures_before_an_answer_say_so_with_their_cause_and_no_debug_dump() {
        let refused = std::io::Error::new(std::io::ErrorKind::ConnectionRefused, "Connection refused (os error 111)");
        let err: Failure = SdkError::dispatch_failure(ConnectorError::io(Box::new(refused)));
        assert_eq!(
            line(&err),
            "S3 GetObject on s3://b/site/1/index.html failed: the request could not be sent: Connection refused (os \
             error 111); hint: AWS could not be reached: check the network, `region` and any AWS_ENDPOINT_URL setting"
        );
        let err: Failure = SdkError::timeout_error("operation timeout (all attempts) after 30s");
        assert!(line(&err).contains("failed: no answer in time: operation timeout"), "{}", line(&err));
        let err: Failure = SdkError::construction_failure("bucket is required");
        assert!(line(&err).ends_with("failed: the request could not be made: bucket is required"), "{}", line(&err));
    }

    #[test]
    fn missing_credentials_are_named_without_the_providers_list() {
        let missing = CredentialsError::not_loaded("no credentials found in chain. Attempted:\n  Environment: x\n");
        let err: Failure = SdkError::dispatch_failure(ConnectorError::other(Box::new(missing), None));
        let text = line(&err);
        assert!(text.contains("failed: no AWS credentials found; hint: set AWS_ACCESS_KEY_ID"), "{text}");
        let broken = CredentialsError::provider_error("the web identity token\nwas refused");
        let err: Failure = SdkError::dispatch_failure(ConnectorError::other(Box::new(broken), None));
        let text = line(&err);
        assert!(!text.contains('\n') && text.contains("token; was refused"), "{text}");
    }

    #[test]
    fn a_failure_outside_the_request_is_one_line_like_any_other() {
        let reset = std::io::Error::new(std::io::ErrorKind::ConnectionReset, "connection reset by peer");
        let body = aws_smithy_types::byte_stream::error::Error::from(reset);
        let failed = AwsError::failed("S3 GetObject", "s3://b/k", &body);
        let text = failed.to_string();
        assert!(text.starts_with("S3 GetObject on s3://b/k failed: "), "{text}");
        assert!(text.contains("connection reset by peer") && !text.contains('\n'), "{text}");
        assert_eq!((failed.code, failed.status, failed.hint), (None, None, None));
    }

    #[test]
    fn long_or_multi_line_messages_are_clipped_to_one_short_line() {
        let page = format!("<html>\n<body>{}</body>\n</html>", "x".repeat(2000));
        let text = line(&answered(502, "BadGateway", &page, &[]));
        assert!(!text.contains('\n') && text.len() < 500, "{text}");
        let reported = AwsError::reported("S3 DeleteObjects", "s3://b/k", Some("AccessDenied"), Some("Access Denied"));
        assert_eq!(
            reported.to_string().split("; hint:").next(),
            Some("S3 DeleteObjects on s3://b/k failed: AccessDenied: Access Denied")
        );
    }
}
