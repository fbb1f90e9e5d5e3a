//! One error type for the core library.

use thiserror::Error;

/// Everything that can go wrong in Lifeboat's core.
#[derive(Debug, Error)]
pub enum Error {
    /// A configuration variable is missing or holds something unusable.
    #[error("configuration error in {variable}: {reason}")]
    Config {
        variable: &'static str,
        reason: String,
    },

    /// An event or payload could not be understood.
    #[error("bad input: {0}")]
    BadInput(String),

    /// An `s3://` location that does not parse.
    #[error("invalid S3 location {location:?}: {reason}")]
    BadLocation { location: String, reason: String },

    /// A request to S3 failed after the SDK's retries.
    #[error("S3 {operation} on s3://{bucket}/{key} failed: {message}")]
    S3 {
        operation: &'static str,
        bucket: String,
        key: String,
        message: String,
        /// Whether trying again later may succeed (throttling, 5xx, network).
        retryable: bool,
    },

    /// A request to SQS failed.
    #[error("SQS {operation} failed: {message}")]
    Sqs {
        operation: &'static str,
        message: String,
    },

    /// The Delta log could not be read or makes no sense.
    #[error("Delta log of {table}: {reason}")]
    Delta { table: String, reason: String },

    /// A restore request that cannot be carried out as asked.
    #[error("{0}")]
    Restore(String),

    #[error("JSON: {0}")]
    Json(#[from] serde_json::Error),
}

impl Error {
    pub fn config(variable: &'static str, reason: impl Into<String>) -> Self {
        Error::Config {
            variable,
            reason: reason.into(),
        }
    }

    pub fn bad_input(reason: impl Into<String>) -> Self {
        Error::BadInput(reason.into())
    }

    pub fn delta(table: impl Into<String>, reason: impl Into<String>) -> Self {
        Error::Delta {
            table: table.into(),
            reason: reason.into(),
        }
    }

    /// A short name for the kind of error, used as the Lambda error type.
    pub fn kind(&self) -> &'static str {
        match self {
            Error::Config { .. } => "Lifeboat.ConfigError",
            Error::BadInput(_) | Error::BadLocation { .. } | Error::Json(_) => "Lifeboat.BadInput",
            Error::S3 {
                retryable: true, ..
            }
            | Error::Sqs { .. } => "Lifeboat.Retryable",
            Error::S3 { .. } => "Lifeboat.S3Error",
            Error::Delta { .. } => "Lifeboat.DeltaError",
            Error::Restore(_) => "Lifeboat.RestoreError",
        }
    }

    /// Whether a retry may succeed. Bad input and configuration never will.
    pub fn is_retryable(&self) -> bool {
        match self {
            Error::S3 { retryable, .. } => *retryable,
            Error::Sqs { .. } => true,
            _ => false,
        }
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
