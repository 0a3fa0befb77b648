//! How a run ends: the documented exit codes, and the errors that choose them.

use crate::inputs::InputError;
use crate::smoke::SmokeFailure;

pub const EXIT_OK: u8 = 0;
pub const EXIT_FAILED: u8 = 1;
pub const EXIT_BAD_INPUT: u8 = 2;
pub const EXIT_SMOKE_FAILED: u8 = 3;
pub const EXIT_REFUSED: u8 = 4;

/// A guard refused the change; nothing was changed.
#[derive(Debug, thiserror::Error)]
#[error("refused: {0}")]
pub struct Refusal(pub String);

impl Refusal {
    pub fn new(why: impl Into<String>) -> Self {
        Self(why.into())
    }
}

/// The exit code for an error: the first cause in its chain that has one decides, else 1.
pub fn exit_code(err: &anyhow::Error) -> u8 {
    err.chain()
        .find_map(|cause| {
            if cause.is::<InputError>() {
                Some(EXIT_BAD_INPUT)
            } else if cause.is::<SmokeFailure>() {
                Some(EXIT_SMOKE_FAILED)
            } else if cause.is::<Refusal>() {
                Some(EXIT_REFUSED)
            } else {
                None
            }
        })
        .unwrap_or(EXIT_FAILED)
}

#[cfg(test)]
mod tests {
    use super::*;
    use anyhow::Context;

    #[test]
    fn the_cause_chooses_the_exit_code() {
        let refused = Err::<(), _>(Refusal::new("x")).context("promoting 4").unwrap_err();
        assert_eq!(exit_code(&refused), EXIT_REFUSED);
        assert_eq!(exit_code(&anyhow::Error::new(InputError::new("bucket", "bad"))), EXIT_BAD_INPUT);
        assert_eq!(
            exit_code(&anyhow::Error::new(SmokeFailure { message: "/".into(), checks: Vec::new() })),
            EXIT_SMOKE_FAILED
        );
        assert_eq!(exit_code(&anyhow::anyhow!("network")), EXIT_FAILED);
    }
}
