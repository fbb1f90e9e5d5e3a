//! The AWS clients, built once per process, and the settings they are built from.

#[allow(unused_imports)]
use super::*;

/// AWS clients built once per process from the usual SDK environment (`AWS_REGION`,
/// `AWS_ENDPOINT_URL`, credentials).
#[derive(Clone, Debug)]
pub struct Clients {
    pub s3: Client,
    pub sqs: aws_sdk_sqs::Client,
    /// The Glue Data Catalog (used only when `LIFEBOAT_GLUE_DATABASES` is set).
    pub glue: aws_sdk_glue::Client,
    pub settings: ClientSettings,
}

/// Attempts per request (the first plus retries) unless `AWS_MAX_ATTEMPTS` says otherwise.
/// Throttling (503 SlowDown), 5xx and dropped connections are retried with exponential backoff
/// and jitter; what still fails after that fails the record, and SQS retries it later.
pub const DEFAULT_MAX_ATTEMPTS: u32 = 8;

/// How the clients reach AWS, read once from the SDK's usual variables. The Delta reader
/// ([`crate::delta::KernelReader`]) reads through the S3 client itself
/// ([`super::SdkObjectStore`]), so it goes to the same place with the same retry budget.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClientSettings {
    /// `AWS_ENDPOINT_URL_S3`, else `AWS_ENDPOINT_URL` (a local server); `None` on AWS.
    pub endpoint: Option<String>,
    /// `AWS_MAX_ATTEMPTS`, else [`DEFAULT_MAX_ATTEMPTS`].
    pub max_attempts: u32,
    /// The account expected to own each bucket ([`crate::Config::bucket_owners`]), sent as
    /// `ExpectedBucketOwner` (and `ExpectedSourceBucketOwner` on copies): S3 refuses the
    /// request with 403 when another account owns the bucket. Empty: no owner is sent.
    pub bucket_owners: BTreeMap<String, String>,
}

impl ClientSettings {
    pub fn from_env() -> Self {
        Self::from_lookup(|name| std::env::var(name).ok())
    }

    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Self {
        let get = |name: &str| lookup(name).filter(|v| !v.trim().is_empty());
        ClientSettings {
            endpoint: get("AWS_ENDPOINT_URL_S3").or_else(|| get("AWS_ENDPOINT_URL")),
            max_attempts: get("AWS_MAX_ATTEMPTS")
                .and_then(|v| v.trim().parse().ok())
                .filter(|n| *n > 0)
                .unwrap_or(DEFAULT_MAX_ATTEMPTS),
            bucket_owners: BTreeMap::new(),
        }
    }
}

impl Clients {
    pub async fn from_env() -> Self {
        Self::new(&ClientSettings::from_env()).await
    }

    pub async fn new(settings: &ClientSettings) -> Self {
        let shared = aws_config::from_env()
            .retry_config(
                aws_config::retry::RetryConfig::standard()
                    .with_max_attempts(settings.max_attempts)
                    .with_initial_backoff(std::time::Duration::from_millis(50))
                    .with_max_backoff(std::time::Duration::from_secs(5)),
            )
            .load()
            .await;
        let s3_config = aws_sdk_s3::config::Builder::from(&shared)
            // Local S3 servers (moto, rclone) are addressed by path, not by virtual host.
            .force_path_style(settings.endpoint.is_some())
            .build();
        Clients {
            s3: Client::from_conf(s3_config),
            sqs: aws_sdk_sqs::Client::new(&shared),
            glue: aws_sdk_glue::Client::new(&shared),
            settings: settings.clone(),
        }
    }

    /// The [`Store`] over these clients.
    pub fn store(&self) -> S3Store {
        S3Store {
            client: self.s3.clone(),
            settings: self.settings.clone(),
        }
    }
}
