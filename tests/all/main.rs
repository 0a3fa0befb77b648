//! The one integration-test binary: the built `cutover` run as a CI step against a real local AWS.

mod aws_errors;
mod bad_input;
mod browser;
mod cloudfront;
mod differential;
mod docs;
mod doctor;
mod edge_bundle;
mod edge_vectors;
mod flow;
mod github;
mod harness;
mod hostile;
mod infra;
mod layout;
mod manifests;
mod outputs;
mod permissions;
mod preview;
mod preview_browser;
mod proxy;
mod races;
mod reliability;
mod serve_files;
mod serve_pointer;
mod signals;
