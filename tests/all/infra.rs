//! The CloudFormation template passes cfn-lint and matches cutover's defaults.

use std::path::Path;
use std::process::Command;

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
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
    for cookie in ["Build-Number", "Override", "override_build_number"] {
        assert!(template.contains(cookie), "the origin-path cache key names {cookie}");
    }
}

#[test]
fn the_bucket_aborts_incomplete_multipart_uploads_after_a_day() {
    let template = std::fs::read_to_string(root().join("infra/cutover.yml")).expect("infra/cutover.yml");
    let bucket = &template[template.find("  SiteBucket:\n").expect("the SiteBucket resource")..];
    let bucket = &bucket[..bucket.find("\n\n").unwrap_or(bucket.len())];
    let rule = "            Status: Enabled\n            AbortIncompleteMultipartUpload:\n              DaysAfterInitiation: 1";
    assert!(bucket.contains(rule), "the SiteBucket has an enabled AbortIncompleteMultipartUpload rule:\n{bucket}");
}
