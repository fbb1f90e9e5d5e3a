//! Lifeboat core: everything the Lambda functions and the CLI share.
//!
//! The functions are thin wrappers: they parse configuration once, build an S3 client, and call
//! into this crate. Nothing here depends on `lambda_runtime`.

pub mod backfill;
pub mod batch;
pub mod catalog;
pub mod config;
pub mod copy;
pub mod csv;
pub mod delta;
pub mod error;
pub mod events;
pub mod history;
pub mod identity;
pub mod inventory;
pub mod keys;
pub mod layout;
pub mod listing;
pub mod metrics;
pub mod ranges;
pub mod replicate;
pub mod restore;
pub mod s3;
pub mod store;
pub mod telemetry;
pub mod verify;

pub use config::Config;
pub use error::{Error, Result};
