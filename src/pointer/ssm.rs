//! The active version in an SSM Parameter Store parameter, read by the edge router; its history is
//! the promotion log.

use async_trait::async_trait;
use aws_sdk_ssm::Client;
use aws_sdk_ssm::types::ParameterType;
use chrono::{DateTime, Utc};

use super::{Flipped, NO_RELEASE, Pointer, PointerResult, Promotion};
use crate::aws_error::AwsError;

/// SSM refuses longer parameter descriptions.
const DESCRIPTION_LIMIT: usize = 1024;

pub struct SsmPointer {
    client: Client,
    parameter: String,
}

impl SsmPointer {
    pub fn new(client: Client, parameter: &str) -> Self {
        Self { client, parameter: parameter.to_owned() }
    }
}

#[async_trait]
impl Pointer for SsmPointer {
    async fn read(&self) -> PointerResult<Option<String>> {
        match self.client.get_parameter().name(&self.parameter).send().await {
            Ok(out) => Ok(out.parameter().and_then(|p| p.value()).filter(|v| *v != NO_RELEASE).map(str::to_owned)),
            Err(e) if e.as_service_error().is_some_and(|e| e.is_parameter_not_found()) => Ok(None),
            Err(e) => Err(AwsError::new("SSM GetParameter", &self.parameter, &e).into()),
        }
    }

    async fn write(&self, version: &str, note: &str) -> PointerResult<Flipped> {
        let description: String = note.chars().take(DESCRIPTION_LIMIT).collect();
        let written = self
            .client
            .put_parameter()
            .name(&self.parameter)
            .value(version)
            .r#type(ParameterType::String)
            .overwrite(true)
            .description(description)
            .send()
            .await
            .map_err(|e| AwsError::new("SSM PutParameter", &self.parameter, &e))?;
        // Version 1 is a parameter this write created: worth a line, since the template creates
        // it, so a missing one is usually a wrong `region` (or pointer name).
        if written.version() == 1 {
            let region = self.client.config().region().map_or_else(|| "(none set)".to_owned(), ToString::to_string);
            crate::say!(
                "SSM parameter {} did not exist in region {region}, so this run created it; if the stack is in another region, set `region`",
                self.parameter
            );
        }
        Ok(Flipped::default())
    }

    async fn history(&self) -> PointerResult<Vec<Promotion>> {
        let mut pages = self.client.get_parameter_history().name(&self.parameter).into_paginator().send();
        let mut history = Vec::new();
        loop {
            let page = match pages.try_next().await {
                Ok(Some(page)) => page,
                Ok(None) => break,
                Err(e) if e.as_service_error().is_some_and(|e| e.is_parameter_not_found()) => break,
                Err(e) => return Err(AwsError::new("SSM GetParameterHistory", &self.parameter, &e).into()),
            };
            // The placeholder the parameter was created with is no promotion.
            history.extend(page.parameters().iter().filter(|entry| entry.value() != Some(NO_RELEASE)).map(|entry| {
                Promotion {
                    version: entry.value().unwrap_or_default().to_owned(),
                    at: entry
                        .last_modified_date()
                        .and_then(|d| DateTime::<Utc>::from_timestamp(d.secs(), d.subsec_nanos())),
                    note: entry.description().unwrap_or_default().to_owned(),
                    invalidation_pending: false,
                }
            }));
        }
        history.sort_by_key(|p| p.at);
        Ok(history)
    }

    fn describe(&self) -> String {
        format!("SSM parameter {}", self.parameter)
    }
}
