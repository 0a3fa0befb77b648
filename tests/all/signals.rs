//! A run stopped by SIGINT or SIGTERM cleans up after itself: no temp file left in the local
//! store, no multipart upload left open in the bucket, and the documented exit code.

use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use crate::harness::Fixture;
use crate::proxy::{Fault, Proxy};

/// Sends `signal` (`INT`, `TERM`) to a running child and waits for it to end.
pub fn stop(child: Child, signal: &str) -> Output {
    let sent = Command::new("kill").arg(format!("-{signal}")).arg(child.id().to_string()).status().expect("kill");
    assert!(sent.success(), "kill -{signal}");
    child.wait_with_output().expect("waiting for cutover")
}

fn entries(dir: &Path) -> usize {
    std::fs::read_dir(dir).map_or(0, Iterator::count)
}

/// The size of the largest file in `dir`.
fn largest(dir: &Path) -> u64 {
    let sizes = std::fs::read_dir(dir).into_iter().flatten().flatten().filter_map(|e| e.metadata().ok());
    sizes.map(|m| m.len()).max().unwrap_or(0)
}

#[test]
fn a_stopped_local_stage_leaves_no_temp_files_and_exits_128_plus_the_signal() {
    let f = Fixture::local();
    let big = "x".repeat(24 << 20);
    let files: Vec<(String, &str)> = (0..4).map(|i| (format!("media/{i}.bin"), big.as_str())).collect();
    let files: Vec<(&str, &str)> =
        files.iter().map(|(path, body)| (path.as_str(), *body)).chain([("index.html", "big")]).collect();
    let dist = f.site("big", &files).display().to_string();
    let tmp = f.dir.path().join("store/tmp");
    for (version, signal, code) in [("1", "INT", 130), ("2", "TERM", 143)] {
        let env = [("CUTOVER_DIST_DIR", dist.as_str()), ("CUTOVER_VERSION", version)];
        let mut child = f.command(&["stage"], &env).stdout(Stdio::null()).stderr(Stdio::piped()).spawn().unwrap();
        let deadline = Instant::now() + Duration::from_secs(60);
        // The signal comes while a large file is being copied into the store.
        while largest(&tmp) < 1 << 20 {
            assert!(
                child.try_wait().unwrap().is_none(),
                "version {version} was staged before a large temp file was seen"
            );
            assert!(Instant::now() < deadline, "no large temp file appeared in {}", tmp.display());
            std::thread::sleep(Duration::from_millis(1));
        }
        let out = stop(child, signal);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(code), "SIG{signal}: {stderr}");
        assert!(stderr.contains(&format!("stopped by SIG{signal}")), "{stderr}");
        assert_eq!(entries(&tmp), 0, "SIG{signal} left temp files in {}", tmp.display());
        let claims = f.with_site(async |site| site.store.list(&site.layout.claims_dir()).await.unwrap());
        assert!(claims.is_empty(), "SIG{signal} left the staging claim: {claims:?}");
    }
    // The stopped run gave its claim back, so the re-run neither waits nor takes anything over.
    let rerun = f.deploy(Path::new(&dist), "1");
    assert!(!rerun.stderr().contains("staging claim"), "{}", rerun.stderr());
    assert_eq!(entries(&tmp), 0);
}

#[test]
fn sigint_during_a_multipart_upload_aborts_it() {
    let f = Fixture::moto();
    let big = "b".repeat(20 << 20);
    let dist = f.site("big", &[("index.html", "1"), ("media/big.bin", &big)]).display().to_string();
    let part_size = cutover::site::PART_SIZE.to_string();
    // Every full-size part is held, so the upload is open, with parts in flight, when the signal comes.
    let proxy = Proxy::start(&f.moto_server().endpoint, move |r| {
        (r.header("content-length") == Some(&part_size)).then_some(Fault::Hold)
    });
    let env = [("AWS_ENDPOINT_URL", proxy.url.as_str()), ("CUTOVER_DIST_DIR", &dist), ("CUTOVER_VERSION", "1")];
    let child = f.command(&["stage"], &env).stdout(Stdio::null()).stderr(Stdio::piped()).spawn().unwrap();
    assert!(proxy.wait_for_hold(Duration::from_secs(60)).is_some(), "no part was sent");
    let open_uploads = || {
        let runtime = tokio::runtime::Runtime::new().unwrap();
        let listed = runtime.block_on(f.moto_server().s3().list_multipart_uploads().bucket("site-bucket").send());
        listed.unwrap().uploads().iter().map(|u| u.key().unwrap_or_default().to_owned()).collect::<Vec<_>>()
    };
    assert_eq!(open_uploads(), ["site/1/media/big.bin"]);
    let out = stop(child, "INT");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(130), "{stderr}");
    // The upload and the staging claim.
    assert!(stderr.contains("undid 2 unfinished writes"), "{stderr}");
    assert!(open_uploads().is_empty(), "the interrupted upload is aborted");
}
