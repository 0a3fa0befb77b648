//! The test harness: a local AWS (moto server) per test, temp sites, the built binary run as a CI
//! system runs it, a way to run one scenario on both backends, and an HTTP client to look at what
//! the edge serves.

use std::collections::BTreeMap;
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use bytes::Bytes;
use cutover::backend::{AwsClients, Site};
use cutover::env::Env;
use cutover::inputs::{Backend, Plan, RawInputs};
use cutover::release::read_record;
use cutover::store::{Condition, json_meta};
use http_body_util::{BodyExt, Full};
use hyper_util::rt::TokioIo;

/// Runs each scenario (a function taking a [`Fixture`]) twice: on the local store and on moto.
macro_rules! on_both_backends {
    ($($scenario:ident),* $(,)?) => {
        $(mod $scenario {
            #[test]
            fn local() {
                super::$scenario(crate::harness::Fixture::local());
            }

            #[test]
            fn moto() {
                super::$scenario(crate::harness::Fixture::moto());
            }
        })*
    };
}
pub(crate) use on_both_backends;

/// A moto server on a free loopback port, stopped when dropped.
pub struct Moto {
    child: Child,
    pub endpoint: String,
}

impl Moto {
    /// Starts moto; a test that needs it fails (never skips) when it cannot start.
    pub fn start() -> Moto {
        let server = Env::from_process()
            .get("CUTOVER_MOTO_SERVER")
            .map(PathBuf::from)
            .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join(".venv/bin/moto_server"));
        Moto::run(&server, &[])
    }

    /// Moto whose S3 stamps every object two hours before it was written (SSM keeps the real
    /// clock): how prune's sweep of pool objects older than an hour is tested on S3.
    pub fn start_aged() -> Moto {
        let python = Path::new(env!("CARGO_MANIFEST_DIR")).join(".venv/bin/python");
        let script = "import datetime, sys\n\
                      import moto.s3.models as m\n\
                      now = m.utcnow\n\
                      m.utcnow = lambda: now() - datetime.timedelta(hours=2)\n\
                      from moto.server import main\n\
                      sys.exit(main())";
        Moto::run(&python, &["-c", script])
    }

    fn run(server: &Path, leading: &[&str]) -> Moto {
        assert!(server.exists(), "{} is missing: run scripts/test, which installs moto", server.display());
        let port = free_port();
        let child = Command::new(server)
            .args(leading)
            .args(["-H", "127.0.0.1", "-p", &port.to_string()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("starting {}: {e}", server.display()));
        let moto = Moto { child, endpoint: format!("http://127.0.0.1:{port}") };
        let deadline = Instant::now() + Duration::from_secs(60);
        while http_get(&moto.endpoint, "/moto-api/", None).map(|r| r.status) != Ok(200) {
            assert!(Instant::now() < deadline, "moto did not answer on {} within 60 s", moto.endpoint);
            std::thread::sleep(Duration::from_millis(100));
        }
        moto
    }

    fn credentials() -> aws_sdk_s3::config::Credentials {
        aws_sdk_s3::config::Credentials::new("testing", "testing", None, None, "harness")
    }

    pub fn s3(&self) -> aws_sdk_s3::Client {
        let config = aws_sdk_s3::Config::builder()
            .behavior_version_latest()
            .credentials_provider(Self::credentials())
            .region(aws_sdk_s3::config::Region::new("us-east-1"))
            .endpoint_url(&self.endpoint)
            .force_path_style(true)
            .build();
        aws_sdk_s3::Client::from_conf(config)
    }

    pub fn ssm(&self) -> aws_sdk_ssm::Client {
        let config = aws_sdk_ssm::Config::builder()
            .behavior_version_latest()
            .credentials_provider(Self::credentials())
            .region(aws_sdk_ssm::config::Region::new("us-east-1"))
            .endpoint_url(&self.endpoint)
            .build();
        aws_sdk_ssm::Client::from_conf(config)
    }

    pub fn cloudfront(&self) -> aws_sdk_cloudfront::Client {
        let config = aws_sdk_cloudfront::Config::builder()
            .behavior_version_latest()
            .credentials_provider(Self::credentials())
            .region(aws_sdk_cloudfront::config::Region::new("us-east-1"))
            .endpoint_url(&self.endpoint)
            .build();
        aws_sdk_cloudfront::Client::from_conf(config)
    }

    /// The plan's site on this moto, with clients built here: the AWS chain would read this
    /// process's environment, not the fixture's.
    pub fn site(&self, plan: &Plan) -> Site {
        let Backend::Aws(site) = &plan.backend else { panic!("a moto fixture has an S3 plan") };
        Site::on_aws(&plan.prefix, site, AwsClients { s3: self.s3(), ssm: self.ssm(), cloudfront: self.cloudfront() })
    }

    /// Creates a distribution in front of the bucket; returns its ID.
    pub fn create_distribution(&self, bucket: &str) -> String {
        use aws_sdk_cloudfront::types::{
            DefaultCacheBehavior, DistributionConfig, Origin, Origins, S3OriginConfig, ViewerProtocolPolicy,
        };
        let origin = Origin::builder()
            .id("site")
            .domain_name(format!("{bucket}.s3.amazonaws.com"))
            // What infra/cutover.yml creates in the origin-path style: no release live yet.
            .origin_path("/site/-")
            .s3_origin_config(S3OriginConfig::builder().origin_access_identity("").build())
            .build()
            .unwrap();
        let behaviour = DefaultCacheBehavior::builder()
            .target_origin_id("site")
            .viewer_protocol_policy(ViewerProtocolPolicy::RedirectToHttps)
            // The managed CachingOptimized policy.
            .cache_policy_id("658327ea-f89d-4fab-a63d-7e88639e58f6")
            .build()
            .unwrap();
        let config = DistributionConfig::builder()
            .caller_reference(format!("harness-{bucket}"))
            .comment("cutover test")
            .enabled(true)
            .origins(Origins::builder().quantity(1).items(origin).build().unwrap())
            .default_cache_behavior(behaviour)
            .build()
            .unwrap();
        let client = self.cloudfront();
        let runtime = tokio::runtime::Runtime::new().expect("runtime");
        let created =
            runtime.block_on(client.create_distribution().distribution_config(config).send()).unwrap_or_else(|e| {
                panic!("creating a distribution: {}", aws_smithy_types::error::display::DisplayErrorContext(&e))
            });
        created.distribution().expect("a distribution").id().to_owned()
    }

    /// Turns on all four Block Public Access settings of a bucket.
    pub fn block_public_access(&self, bucket: &str) {
        use aws_sdk_s3::types::PublicAccessBlockConfiguration;
        let block = PublicAccessBlockConfiguration::builder()
            .block_public_acls(true)
            .ignore_public_acls(true)
            .block_public_policy(true)
            .restrict_public_buckets(true)
            .build();
        let client = self.s3();
        let runtime = tokio::runtime::Runtime::new().expect("runtime");
        runtime
            .block_on(client.put_public_access_block().bucket(bucket).public_access_block_configuration(block).send())
            .expect("blocking public access");
    }

    /// The origin path of the distribution's only origin.
    pub fn origin_path(&self, distribution: &str) -> String {
        let client = self.cloudfront();
        let runtime = tokio::runtime::Runtime::new().expect("runtime");
        let out = runtime
            .block_on(client.get_distribution_config().id(distribution).send())
            .expect("reading the distribution");
        let config = out.distribution_config().expect("config");
        config.origins().expect("origins").items()[0].origin_path().unwrap_or_default().to_owned()
    }

    /// Sets the origin path of the distribution's only origin, as a stack update would.
    pub fn set_origin_path(&self, distribution: &str, path: &str) {
        let client = self.cloudfront();
        let runtime = tokio::runtime::Runtime::new().expect("runtime");
        runtime.block_on(async {
            let out = client.get_distribution_config().id(distribution).send().await.expect("reading the distribution");
            let mut config = out.distribution_config().expect("config").clone();
            cutover::pointer::cloudfront::set_origin_path(&mut config, None, path).expect("an origin");
            let update = client.update_distribution().id(distribution).if_match(out.e_tag().unwrap_or_default());
            update.distribution_config(config).send().await.expect("updating the distribution");
        });
    }

    /// Sets an SSM parameter by hand (a String, overwritten if it exists), as an operator would;
    /// moto's refusal is returned, for values SSM does not take.
    pub fn put_parameter(&self, name: &str, value: &str) -> Result<(), String> {
        let client = self.ssm();
        let runtime = tokio::runtime::Runtime::new().expect("runtime");
        let put = client.put_parameter().name(name).value(value).overwrite(true);
        let put = put.r#type(aws_sdk_ssm::types::ParameterType::String);
        runtime
            .block_on(put.send())
            .map(drop)
            .map_err(|e| aws_smithy_types::error::display::DisplayErrorContext(&e).to_string())
    }

    pub fn create_bucket(&self, bucket: &str) {
        let response = http_send(&self.endpoint, "PUT", &format!("/{bucket}"), &[], "").expect("creating a bucket");
        assert_eq!(response.status, 200, "creating bucket {bucket}: {}", response.body);
    }
}

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).expect("a free port").port()
}

/// One site under test: a temp workspace, a backend, and the env a CI step would have.
pub struct Fixture {
    pub dir: tempfile::TempDir,
    /// The local AWS, when the site lives there; kept alive as long as the fixture.
    _moto: Option<Moto>,
    pub env: BTreeMap<String, String>,
}

impl Fixture {
    pub fn local() -> Fixture {
        let dir = tempfile::tempdir().expect("temp dir");
        let mut env = base_env(dir.path());
        env.insert("CUTOVER_STORE_DIR".into(), dir.path().join("store").display().to_string());
        Fixture { dir, _moto: None, env }
    }

    /// The moto fixture, if this fixture runs on moto.
    pub fn moto_server(&self) -> &Moto {
        self._moto.as_ref().expect("a moto fixture")
    }

    pub fn moto() -> Fixture {
        Fixture::on(Moto::start())
    }

    /// A moto fixture whose S3 objects all look two hours old ([`Moto::start_aged`]).
    pub fn moto_aged() -> Fixture {
        Fixture::on(Moto::start_aged())
    }

    fn on(moto: Moto) -> Fixture {
        moto.create_bucket("site-bucket");
        let dir = tempfile::tempdir().expect("temp dir");
        let mut env = base_env(dir.path());
        env.insert("AWS_ENDPOINT_URL".into(), moto.endpoint.clone());
        env.insert("CUTOVER_BUCKET".into(), "site-bucket".into());
        env.insert("CUTOVER_POINTER".into(), "ssm:/cutover/test/active".into());
        Fixture { dir, _moto: Some(moto), env }
    }

    pub fn set(&mut self, name: &str, value: &str) -> &mut Self {
        self.env.insert(name.into(), value.into());
        self
    }

    /// Writes a build output: `files` are (path, body) pairs.
    pub fn site(&self, name: &str, files: &[(&str, &str)]) -> PathBuf {
        let root = self.dir.path().join(name);
        for (path, body) in files {
            let full = root.join(path);
            std::fs::create_dir_all(full.parent().expect("parent")).expect("mkdir");
            std::fs::write(full, body).expect("write");
        }
        root
    }

    /// Runs the binary with the fixture's env plus `extra`, as a GitHub Actions step.
    #[track_caller]
    pub fn run(&self, args: &[&str], extra: &[(&str, &str)]) -> Run {
        Run::new(self.command(args, extra).output().expect("running cutover"))
    }

    pub fn command(&self, args: &[&str], extra: &[(&str, &str)]) -> Command {
        let mut command = Command::new(env!("CARGO_BIN_EXE_cutover"));
        command.env_clear().envs(&self.env).envs(extra.iter().copied()).args(args).current_dir(self.dir.path());
        command.stdin(Stdio::null());
        command
    }

    /// Deploys `dist` as `version`, expecting success.
    #[track_caller]
    pub fn deploy(&self, dist: &Path, version: &str) -> Run {
        let run =
            self.run(&["deploy"], &[("CUTOVER_DIST_DIR", &dist.display().to_string()), ("CUTOVER_VERSION", version)]);
        run.assert_code(0);
        run
    }

    /// The outputs the last run appended to `$GITHUB_OUTPUT` (single-line values).
    pub fn outputs(&self) -> BTreeMap<String, String> {
        let text = std::fs::read_to_string(self.dir.path().join("github_output")).unwrap_or_default();
        let outputs =
            text.lines().filter_map(|l| l.split_once('=')).map(|(k, v)| (k.to_owned(), v.to_owned())).collect();
        std::fs::remove_file(self.dir.path().join("github_output")).ok();
        outputs
    }

    /// Makes a release's record `hours` older: past the hour in which prune never deletes it, or
    /// past a `preview-ttl`.
    pub fn backdate(&self, version: &str, hours: i64) {
        self.with_site(async |site| {
            let key = site.layout.record_key(version);
            let mut record = read_record(&site, &key).await.unwrap().expect("a recorded release");
            record.created_at -= chrono::Duration::hours(hours);
            site.store.put(&key, Bytes::from(record.to_json()), &json_meta(), Condition::Always).await.unwrap();
        });
    }

    /// The site as the library sees it, for checks and for setting up states a run would leave.
    pub fn with_site<T>(&self, work: impl AsyncFnOnce(Site) -> T) -> T {
        let env: Env = self.env.clone().into_iter().collect();
        let raw = RawInputs::layered(&env, &RawInputs::default());
        let plan = Plan::resolve(&raw, &env).expect("plan");
        let runtime = tokio::runtime::Runtime::new().expect("runtime");
        runtime.block_on(async move {
            let site = match &self._moto {
                Some(moto) => moto.site(&plan),
                None => Site::connect(&plan).await,
            };
            work(site).await
        })
    }

    pub fn active(&self) -> Option<String> {
        self.with_site(async |site| site.pointer.read().await.expect("reading the pointer"))
    }

    /// Starts `cutover serve` on a free port and makes it the fixture's site URL.
    pub fn start_edge(&mut self) -> Edge {
        let edge = self.spawn_edge(&[]);
        self.set("CUTOVER_SITE_URL", &edge.url);
        edge
    }

    /// Starts `cutover serve` on a free port with the fixture's env plus `extra`.
    pub fn spawn_edge(&self, extra: &[(&str, &str)]) -> Edge {
        let port = free_port();
        let listen = format!("127.0.0.1:{port}");
        let log = self.dir.path().join(format!("serve-{port}.log"));
        let child = self
            .command(&["serve"], &[extra, &[("CUTOVER_LISTEN", listen.as_str())]].concat())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).expect("serve log"))
            .spawn()
            .expect("starting cutover serve");
        let edge = Edge { child, url: format!("http://{listen}"), log };
        let deadline = Instant::now() + Duration::from_secs(20);
        while TcpStream::connect(&listen).is_err() {
            assert!(Instant::now() < deadline, "cutover serve did not listen on {listen}");
            std::thread::sleep(Duration::from_millis(50));
        }
        edge
    }
}

fn base_env(dir: &Path) -> BTreeMap<String, String> {
    [
        ("PATH", Env::from_process().get("PATH").unwrap_or_default().to_owned()),
        ("HOME", dir.display().to_string()),
        ("AWS_ACCESS_KEY_ID", "testing".into()),
        ("AWS_SECRET_ACCESS_KEY", "testing".into()),
        ("AWS_REGION", "us-east-1".into()),
        ("AWS_EC2_METADATA_DISABLED", "true".into()),
        ("GITHUB_ACTIONS", "true".into()),
        ("GITHUB_OUTPUT", dir.join("github_output").display().to_string()),
        ("GITHUB_STEP_SUMMARY", dir.join("step_summary").display().to_string()),
        ("CUTOVER_SMOKE_TIMEOUT", "10s".into()),
        // Every release in a test was live moments ago: the tests of the skew window set their own.
        ("CUTOVER_SKEW_WINDOW", "0s".into()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v))
    .collect()
}

/// A `cutover serve` child, stopped when dropped.
pub struct Edge {
    child: Child,
    pub url: String,
    /// Its stderr, shown if it panicked.
    pub log: PathBuf,
}

impl Edge {
    /// The `cutover serve` process, to read its memory use from `/proc`.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn get(&self, path: &str, cookie: Option<&str>) -> Response {
        http_get(&self.url, path, cookie).expect("requesting the edge")
    }

    /// Waits until the edge serves `version` at `/`, past its short active-version cache.
    pub fn wait_for_active(&self, version: &str) -> Response {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let response = self.get("/", None);
            if response.header("x-cutover-version") == Some(version) || Instant::now() > deadline {
                return response;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

impl Drop for Edge {
    fn drop(&mut self) {
        let exited = self.child.try_wait().ok().flatten();
        let _ = self.child.kill();
        let _ = self.child.wait();
        if exited.and_then(|status| status.code()) == Some(PANIC_EXIT) && !std::thread::panicking() {
            let stderr = std::fs::read_to_string(&self.log).unwrap_or_default();
            panic!("cutover serve panicked (exit {PANIC_EXIT})\nstderr:\n{stderr}");
        }
    }
}

/// Rust's exit code for a panic. No run of cutover may end with it, whatever a test expects.
const PANIC_EXIT: i32 = 101;

/// A finished run of the binary, never a panicked one.
pub struct Run(Output);

/// Waits for a spawned run to end; a panic fails the test with the run's output.
#[track_caller]
pub fn finish(child: Child) -> Run {
    Run::new(child.wait_with_output().expect("waiting for cutover"))
}

/// Kills a spawned run and reaps it; one that had already panicked fails the test.
#[track_caller]
pub fn kill(mut child: Child) {
    child.kill().expect("killing cutover");
    finish(child);
}

impl Run {
    /// Every way a test sees a run end passes here, so a panic fails the test that saw it.
    #[track_caller]
    pub fn new(output: Output) -> Run {
        let run = Run(output);
        let (stdout, stderr) = (run.stdout(), run.stderr());
        assert_ne!(run.code(), PANIC_EXIT, "cutover panicked\nstdout:\n{stdout}\nstderr:\n{stderr}");
        run
    }

    pub fn code(&self) -> i32 {
        self.0.status.code().unwrap_or(-1)
    }

    pub fn stdout(&self) -> String {
        String::from_utf8_lossy(&self.0.stdout).into_owned()
    }

    pub fn stderr(&self) -> String {
        String::from_utf8_lossy(&self.0.stderr).into_owned()
    }

    #[track_caller]
    pub fn assert_code(&self, code: i32) -> &Self {
        assert_eq!(self.code(), code, "exit code\nstdout:\n{}\nstderr:\n{}", self.stdout(), self.stderr());
        self
    }

    pub fn json(&self) -> serde_json::Value {
        let stdout = self.stdout();
        serde_json::from_str(stdout.trim()).unwrap_or_else(|e| panic!("stdout is not one JSON value ({e}):\n{stdout}"))
    }
}

/// The `version` of each entry of a JSON list, such as `status --json`'s releases or promotions.
pub fn versions(list: &serde_json::Value) -> Vec<&str> {
    list.as_array().unwrap().iter().map(|entry| entry["version"].as_str().unwrap()).collect()
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: String,
}

impl Response {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }
}

pub fn http_get(base: &str, path: &str, cookie: Option<&str>) -> Result<Response, String> {
    let cookie = cookie.map(|c| ("cookie", c));
    http_send(base, "GET", path, cookie.as_slice(), "")
}

/// Sends one request and reads the whole answer, within 30 s. This is hyper's HTTP/1 client, the
/// one reqwest runs on, driven directly: reqwest parses the target as a URL, which resolves
/// `%2E%2E` segments, and the edge vectors send such a path on purpose to see it refused.
pub fn http_send(
    base: &str,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> Result<Response, String> {
    let host = base.trim_start_matches("http://").trim_end_matches('/');
    let mut request = hyper::Request::builder().method(method).uri(path);
    // The address connected to, unless the caller names a host (a preview host, say).
    if !headers.iter().any(|(name, _)| name.eq_ignore_ascii_case("host")) {
        request = request.header("host", host);
    }
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    let request = request.body(Full::new(Bytes::from(body.to_owned()))).map_err(|e| e.to_string())?;
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().map_err(|e| e.to_string())?;
    let exchange = async {
        let stream = tokio::net::TcpStream::connect(host).await.map_err(|e| e.to_string())?;
        let (mut sender, connection) =
            hyper::client::conn::http1::handshake(TokioIo::new(stream)).await.map_err(|e| e.to_string())?;
        tokio::spawn(connection);
        let response = sender.send_request(request).await.map_err(|e| e.to_string())?;
        let status = response.status().as_u16();
        let headers = response
            .headers()
            .iter()
            .map(|(name, value)| (name.as_str().to_owned(), String::from_utf8_lossy(value.as_bytes()).into_owned()))
            .collect();
        let body = response.into_body().collect().await.map_err(|e| e.to_string())?.to_bytes();
        Ok(Response { status, headers, body: String::from_utf8_lossy(&body).into_owned() })
    };
    runtime
        .block_on(async { tokio::time::timeout(Duration::from_secs(30), exchange).await.map_err(|e| e.to_string())? })
}

impl Fixture {
    /// Checks the promises every run must keep, whatever ran at the same time: each recorded
    /// release holds exactly the files its record lists, byte for byte; the live version is a
    /// recorded release; no lock or staging claim is left behind.
    pub fn assert_releases_intact(&self) {
        self.check_releases(true);
    }

    /// [`Fixture::assert_releases_intact`] for runs that were paused or refused mid-write: every
    /// recorded file is byte for byte as recorded, though files no record lists may stand beside
    /// them (a paused run's last writes, which never replace anything).
    pub fn assert_recorded_files_intact(&self) {
        self.check_releases(false);
    }

    fn check_releases(&self, nothing_unrecorded: bool) {
        let problems = self.with_site(async |site| {
            let mut problems = Vec::new();
            let records = cutover::release::all_records(&site).await.expect("reading the records");
            for record in &records {
                let dir = site.layout.version_dir(&record.version);
                let stored = site.store.list(&dir).await.expect("listing a release");
                let stored_paths: Vec<&str> = stored.iter().map(|o| &o.key[dir.len()..]).collect();
                let recorded_paths: Vec<&str> = record
                    .files
                    .iter()
                    .filter(|(_, file)| file.place == cutover::release::Place::Version)
                    .map(|(path, _)| path.as_str())
                    .collect();
                if nothing_unrecorded && stored_paths != recorded_paths
                    || recorded_paths.iter().any(|p| !stored_paths.contains(p))
                {
                    problems.push(format!(
                        "release {} holds {} files, its record lists {}",
                        record.version,
                        stored_paths.len(),
                        recorded_paths.len()
                    ));
                }
                for (path, file) in &record.files {
                    let key = file.key(&site.layout, &record.version, path);
                    match site.store.get(&key).await.expect("reading an object") {
                        Some(object) if hex::encode(<md5::Md5 as md5::Digest>::digest(&object.body)) == file.md5 => {}
                        _ => problems.push(format!("{key} is not the recorded content")),
                    }
                }
            }
            if let Some(active) = site.pointer.read().await.expect("reading the pointer")
                && !records.iter().any(|r| r.version == active)
            {
                problems.push(format!("{active} is live but not a recorded release"));
            }
            if site.store.get(&site.layout.lock_key()).await.expect("reading the lock").is_some() {
                problems.push("the deploy lock was left behind".into());
            }
            for claim in site.store.list(&site.layout.claims_dir()).await.expect("listing staging claims") {
                problems.push(format!("the staging claim {} was left behind", claim.key));
            }
            problems
        });
        assert!(problems.is_empty(), "{}", problems.join("\n"));
    }
}
