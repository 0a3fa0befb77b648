//! Every input is defined once here, and the definition generates what reads it: a typed layer per
//! source, their merge and their defaults. `raw.rs` fills the layers from the environment and
//! warns about variables that name no input, `parse.rs` checks single values, and `plan.rs` turns
//! the merged inputs into the one [`Plan`] every command runs from.
//!
//! Sources, lowest to highest: GitHub's `INPUT_<NAME>` (both `INPUT_DIST_DIR` and `INPUT_DIST-DIR`),
//! then `CUTOVER_<NAME>`, then command-line flags. An empty value counts as unset, because GitHub
//! passes every declared input, given or not.

mod parse;
mod plan;
mod raw;
mod site_url;

pub use plan::{AwsBackend, AwsPointer, Backend, Invalidation, Plan, SmokePlan};
pub use raw::variable_warnings;
pub use site_url::SiteUrl;

/// One input as users see it: the name they write, what it does, and its default.
#[derive(Debug, Clone, Copy)]
pub struct InputSpec {
    pub field: &'static str,
    pub description: &'static str,
    pub default: Option<&'static str>,
    /// Where one layer holds this input: the env layers are filled through it.
    slot: fn(&mut RawInputs) -> &mut Option<String>,
}

impl InputSpec {
    /// The name as written in `action.yml` and as a flag: `dist-dir`.
    pub fn name(&self) -> String {
        self.field.replace('_', "-")
    }
}

/// The type an input has once its default is applied: text when it has a default, else optional.
macro_rules! defaulted_type {
    (Some) => { String };
    (None) => { Option<String> };
}

/// A given value, else the input's default.
macro_rules! with_default {
    ($given:expr, Some, $default:literal) => {
        $given.unwrap_or_else(|| $default.to_owned())
    };
    ($given:expr, None) => {
        $given
    };
}

macro_rules! define_inputs {
    ($( #[doc = $doc:literal] $(#[arg($($arg:tt)*)])? $field:ident = $kind:ident $(($default:literal))?; )*) => {
        /// One layer of inputs as a source gives them (the flags, the `CUTOVER_` or the `INPUT_`
        /// variables), or the layers merged: text, as env vars are, unset where the source is silent.
        #[derive(Debug, Default, Clone, clap::Args)]
        pub struct RawInputs {
            $(
                #[doc = $doc]
                #[arg(long, global = true, $($($arg)*)?)]
                pub $field: Option<String>,
            )*
        }

        /// The merged inputs with their defaults applied: what [`Plan::resolve`] checks.
        #[derive(Debug, Clone)]
        struct Inputs {
            $(
                #[doc = $doc]
                pub $field: defaulted_type!($kind),
            )*
        }

        impl RawInputs {
            /// This layer over `lower`: each input from here if set here, else from `lower`; an empty
            /// value counts as unset.
            fn over(self, lower: RawInputs) -> RawInputs {
                RawInputs { $( $field: non_empty(self.$field).or_else(|| non_empty(lower.$field)), )* }
            }

            /// The inputs with each unset one at its default.
            fn with_defaults(&self) -> Inputs {
                Inputs { $( $field: with_default!(non_empty(self.$field.clone()), $kind $(, $default)?), )* }
            }
        }

        /// The one definition of the inputs, for the env layers, the check of unknown variables,
        /// manifests, docs and the tests that check them.
        pub const INPUTS: &[InputSpec] = &[
            $(
                InputSpec {
                    field: stringify!($field),
                    description: $doc.trim_ascii(),
                    default: $kind $(($default))?,
                    slot: |raw| &mut raw.$field,
                },
            )*
        ];
    };
}

fn non_empty(value: Option<String>) -> Option<String> {
    value.filter(|v| !v.is_empty())
}

define_inputs! {
    /// Directory holding the built site to release.
    dist_dir = Some("dist");
    /// S3 bucket that holds the releases. Unset: the embedded local store (no AWS needed).
    bucket = None;
    /// Key prefix of the site inside the bucket: releases live at `<prefix>/<version>/`. `/` asks for the bucket root; empty, like every input, counts as unset (`site`).
    prefix = Some("site");
    /// AWS region. Unset: the standard AWS chain (AWS_REGION, profile); `edge bundle` then bakes us-east-1, the only region infra/cutover.yml deploys in, whatever AWS_REGION says.
    region = None;
    /// Version to release. Unset: the git tag, else the CI run number. Alone, `--version` prints cutover's version.
    #[arg(num_args = 0..=1, default_missing_value = "")]
    version = None;
    /// Where the active version lives: `ssm:<parameter-name>`, `cloudfront:<distribution-id>[/<origin-id>]` or `file`. Default: `file` on the embedded store, `ssm:/cutover/<bucket>/<prefix>/active` on S3.
    pointer = None;
    /// With `rollback`: the version to go back to. Unset: the version live before the current one.
    to = None;
    /// CloudFront distribution serving the site, for `cutover doctor` (a `cloudfront:` pointer names it itself).
    distribution_id = None;
    /// Public URL of the site, used for the smoke test and the preview link. Credentials in it (`https://user:password@host/`) are sent as Basic auth and shown nowhere.
    site_url = None;
    /// Paths the smoke test requests, separated by commas or newlines.
    smoke_paths = Some("/");
    /// Text every smoke response must contain.
    smoke_expect_text = None;
    /// HTTP status every smoke response must have.
    smoke_status = Some("200");
    /// How long the smoke test keeps retrying, e.g. `90s` or `2m`; 0s to 1h (`0s`: one try).
    smoke_timeout = Some("60s");
    /// How many uploads run at once, 1 to 1024.
    concurrency = Some("32");
    /// Releases to keep when pruning; the active one, the one before it, any staged in the last hour and any live within `skew-window` are always kept; previews never count (`preview-ttl` ages them out); 0 to 100000. Unset: `deploy` prunes nothing and `prune` deletes only previews past `preview-ttl`.
    keep = None;
    /// With `preview`: the pull request the preview is for, 1 to 999999999. Unset: from the CI system (GitHub's `pull_request` events, CircleCI's `CIRCLE_PULL_REQUEST`).
    pull_request = None;
    /// With `prune`: previews recorded longer ago than this are deleted with their alias, 1h to 30days.
    preview_ttl = Some("14d");
    /// With `prune`: every release that was live at any moment within this window is kept whatever `keep` says, with the pool files it uses, so a tab opened on an earlier release still gets its chunks; 0s to 30days.
    skew_window = Some("7d");
    /// Domain whose hosts `pr-<n>.<domain>` show each pull request's newest preview, e.g. `preview.example.com` (a wildcard DNS record and certificate on the distribution). Refused when the `site-url` host lies under it. Unset: previews are linked by the override query.
    preview_domain = None;
    /// With `preview` on GitHub: a token that may write pull request comments and deployments (`secrets.GITHUB_TOKEN` with `pull-requests: write` and `deployments: write`); cutover then keeps one comment with the link on the pull request and records a deployment of `preview/pr-<n>`, which `preview-close` marks inactive. Masked and never printed; a refusal (a fork's pull request) is a warning.
    github_token = None;
    /// Cache-Control rules for files that are not fingerprinted (`shared-assets`), `GLOB=VALUE` separated by newlines or `;`; the first match wins over the default (`public, max-age=0, must-revalidate`).
    cache_control = None;
    /// Fingerprinted files (names that change with their content): globs separated by newlines or commas, with `<hex:N>` or `<base64url:N>` for the content hash (the defaults are the shapes Vite, SvelteKit, Astro, Next.js and Create React App write; see the README). They are stored once in the site's pool `<prefix>/_shared/`, served to every release that asks for them and cached `public, max-age=31536000, immutable`; everything else is revalidated. `none` turns sharing off.
    shared_assets = Some("assets/**/*-<base64url:8>.*, _app/immutable/**/*.<base64url:8>.*, _astro/**/*.<base64url:8>.*, _astro/**/*.<base64url:8>_*.*, _next/static/chunks/**/*-<hex:16>.js, _next/static/css/<hex:16>.css, _next/static/media/*.<hex:8>.*, _next/static/media/<hex:16>-s.*, _next/static/<base64url:21>/*, static/{js,css,media}/*.<hex:8>.*, static/media/*.<hex:20>.*");
    /// With a `cloudfront:` pointer: invalidate cached copies after the flip.
    #[arg(num_args = 0..=1, default_missing_value = "true")]
    invalidate = Some("true");
    /// With a `cloudfront:` pointer: the paths to invalidate, separated by commas or newlines.
    invalidation_paths = Some("/*");
    /// With a `cloudfront:` pointer: wait at most this long for the invalidation to complete, 0s to 1h (`0s`: do not wait).
    invalidation_wait = Some("0s");
    /// Release `.git/`, `.env` files and the other secret files listed in the README instead of skipping them with a warning.
    #[arg(num_args = 0..=1, default_missing_value = "true")]
    release_secret_files = Some("false");
    /// Let a promotion replace a pointer value that is not a version cutover knows (refused with exit 4 otherwise).
    #[arg(num_args = 0..=1, default_missing_value = "true")]
    take_over_pointer = Some("false");
    /// How long a deploy lock is honoured before another run may take it over, 1s to 1h.
    lock_lease = Some("2m");
    /// Directory of the embedded local store (used when no bucket is set).
    store_dir = Some(".cutover");
    /// Query parameter that previews a version and pins it with the cookies below.
    override_query = Some("override_build_number");
    /// Cookie naming the pinned version.
    version_cookie = Some("Build-Number");
    /// Cookie that must be `true` for the version cookie to count.
    override_cookie = Some("Override");
    /// What a path that names nothing in the release serves: `spa` (the release's `index.html`, 200, for paths without a file extension), `404` (its `404.html` with status 404, or a plain 404) or `auto` (`404` when the release has a `404.html`, else `spa`).
    not_found = Some("auto");
    /// Secret that signs overrides (from the CI system's secret store): when set, the edge honours only signed preview links and cookies, which `preview-url` and the smoke test make. Unset: anyone can pin visitors to any release.
    override_secret = None;
    /// How long the CloudFront router trusts the active version it read from SSM, 0s to 1h.
    edge_cache = Some("5s");
    /// Address `cutover serve` listens on.
    listen = Some("127.0.0.1:8080");
    /// Force path-style S3 addressing. Default: true when an S3 endpoint is overridden.
    #[arg(num_args = 0..=1, default_missing_value = "true")]
    s3_path_style = None;
    /// Plan and report without writing anything.
    #[arg(num_args = 0..=1, default_missing_value = "true")]
    dry_run = Some("false");
    /// Print the result object as JSON on stdout.
    #[arg(num_args = 0..=1, default_missing_value = "true")]
    json = Some("false");
}

/// Input that cannot be used; the message names the input.
#[derive(Debug, Clone, thiserror::Error)]
#[error("input `{input}`: {problem}")]
pub struct InputError {
    pub input: String,
    pub problem: String,
}

impl InputError {
    pub fn new(input: &str, problem: impl Into<String>) -> Self {
        Self { input: input.to_owned(), problem: problem.into() }
    }
}
