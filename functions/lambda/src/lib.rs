//! The Lambda boundary the three functions share: logging as Lambda expects it, and the one
//! mapping of a core error to the error Lambda reports (its type says whether a retry can
//! help). A function's `main` parses its configuration, builds its handler, and runs it.

use lambda_runtime::Diagnostic;

/// The one mapping of a core error to the error Lambda reports: `errorType` is the error's
/// kind (`Lifeboat.BadInput`, `Lifeboat.Retryable`, `Lifeboat.NotRestorable`, ...), so a
/// caller can tell what to do without parsing the message.
pub fn diagnostic(error: lifeboat::Error) -> Diagnostic {
    Diagnostic {
        error_type: error.kind().to_string(),
        error_message: error.to_string(),
    }
}

/// Logging as Lambda expects it, set up before anything else can fail.
pub fn init() {
    lifeboat::telemetry::init_lambda_logging();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_keep_their_kind() {
        let cases = [
            (lifeboat::Error::bad_input("no"), "Lifeboat.BadInput"),
            (
                lifeboat::Error::ConcurrentCommit("v5 taken".into()),
                "Lifeboat.ConcurrentCommit",
            ),
            (
                lifeboat::Error::NotRestorable("v3".into()),
                "Lifeboat.NotRestorable",
            ),
        ];
        for (error, kind) in cases {
            let message = error.to_string();
            let d = diagnostic(error);
            assert_eq!(d.error_type, kind);
            assert_eq!(d.error_message, message);
        }
    }
}
