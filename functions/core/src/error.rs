//! One error type for the core library.
//!
//! Variants say what a caller can act on: bad input and configuration never succeed on a
//! retry; S3 and SQS errors say whether one may; a restore that cannot be carried out says
//! why, in a variant of its own (not restorable, target not empty, a concurrent commit, a table
//! Lifeboat cannot commit for). The SDK's and the kernel's own errors stay attached as the
//! source.

use thiserror::Error;

/// The error of an SDK or library call, kept as the source of ours.
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

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
        #[source]
        source: Option<BoxError>,
    },

    /// A request to SQS failed.
    #[error("SQS {operation} failed: {message}")]
    Sqs {
        operation: &'static str,
        message: String,
        #[source]
        source: Option<BoxError>,
    },

    /// A request to the Glue Data Catalog failed.
    #[error("Glue {operation} of {table} failed: {message}")]
    Catalog {
        operation: &'static str,
        table: String,
        message: String,
        retryable: bool,
        #[source]
        source: Option<BoxError>,
    },

    /// The Delta log could not be read or makes no sense.
    #[error("Delta log of {table}: {reason}")]
    Delta {
        table: String,
        reason: String,
        #[source]
        source: Option<BoxError>,
    },

    /// The version asked for (or any version) cannot be restored from the backup.
    #[error("{0}")]
    NotRestorable(String),

    /// A clone target that holds objects that are not part of the clone.
    #[error("{0}")]
    TargetNotEmpty(String),

    /// Another writer committed the version a restore was about to write; nothing was
    /// overwritten.
    #[error("{0}")]
    ConcurrentCommit(String),

    /// A table whose protocol or properties a Lifeboat commit would not be correct for.
    #[error("{0}")]
    UnsupportedTable(String),

    /// Any other restore request that cannot be carried out as asked.
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
            source: None,
        }
    }

    /// A kernel (or other library) error while reading `table`'s log, kept as the source.
    pub fn kernel(table: impl Into<String>, source: impl Into<BoxError>) -> Self {
        let source = source.into();
        Error::Delta {
            table: table.into(),
            reason: source.to_string(),
            source: Some(source),
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
            Error::Catalog {
                retryable: true, ..
            } => "Lifeboat.Retryable",
            Error::Catalog { .. } => "Lifeboat.CatalogError",
            Error::Delta { .. } => "Lifeboat.DeltaError",
            Error::NotRestorable(_) => "Lifeboat.NotRestorable",
            Error::TargetNotEmpty(_) => "Lifeboat.TargetNotEmpty",
            Error::ConcurrentCommit(_) => "Lifeboat.ConcurrentCommit",
            Error::UnsupportedTable(_) => "Lifeboat.UnsupportedTable",
            Error::Restore(_) => "Lifeboat.RestoreError",
        }
    }

    /// Whether a retry may succeed. Bad input and configuration never will; a concurrent
    /// commit will, once the restore plans against the new latest version.
    pub fn is_retryable(&self) -> bool {
        match self {
            Error::S3 { retryable, .. } | Error::Catalog { retryable, .. } => *retryable,
            Error::Sqs { .. } | Error::ConcurrentCommit(_) => true,
            _ => false,
        }
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_tell_callers_apart() {
        let cases = [
            (Error::config("X", "y"), "Lifeboat.ConfigError", false),
            (Error::bad_input("x"), "Lifeboat.BadInput", false),
            (
                Error::NotRestorable("x".into()),
                "Lifeboat.NotRestorable",
                false,
            ),
            (
                Error::TargetNotEmpty("x".into()),
                "Lifeboat.TargetNotEmpty",
                false,
            ),
            (
                Error::ConcurrentCommit("x".into()),
                "Lifeboat.ConcurrentCommit",
                true,
            ),
            (
                Error::UnsupportedTable("x".into()),
                "Lifeboat.UnsupportedTable",
                false,
            ),
            (Error::Restore("x".into()), "Lifeboat.RestoreError", false),
            (Error::delta("t", "x"), "Lifeboat.DeltaError", false),
        ];
        for (error, kind, retryable) in cases {
            assert_eq!(error.kind(), kind, "{error}");
            assert_eq!(error.is_retryable(), retryable, "{error}");
        }
    }

    #[test]
    fn sources_are_kept() {
        let io = std::io::Error::other("disk on fire");
        let error = Error::kernel("s3://b/t", io);
        assert_eq!(error.to_string(), "Delta log of s3://b/t: disk on fire");
        let source = std::error::Error::source(&error).expect("source kept");
        assert_eq!(source.to_string(), "disk on fire");
    }
}
