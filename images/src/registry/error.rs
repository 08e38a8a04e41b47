//! Errors of the registry client, with messages that name the registry, the
//! repository and what to do next.

use std::fmt;

use serde::Deserialize;

/// One entry of the `errors` array that registries send in error bodies
/// (`{"errors":[{"code":"MANIFEST_UNKNOWN","message":"..."}]}`).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct ApiError {
    #[serde(default)]
    pub code: String,
    #[serde(default)]
    pub message: String,
}

/// The error codes of a registry's error body, ready for a message.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ApiErrors(pub Vec<ApiError>);

impl ApiErrors {
    /// Parses a registry error body. A body that is not the JSON error
    /// format gives an empty list.
    pub fn parse(body: &[u8]) -> Self {
        #[derive(Deserialize)]
        struct Body {
            #[serde(default)]
            errors: Vec<ApiError>,
        }
        match serde_json::from_slice::<Body>(body) {
            Ok(parsed) => Self(parsed.errors),
            Err(_) => Self::default(),
        }
    }

    /// Returns true when one of the codes is `code`.
    pub fn has_code(&self, code: &str) -> bool {
        self.0.iter().any(|error| error.code == code)
    }
}

impl fmt::Display for ApiErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0.is_empty() {
            return f.write_str("no error details in the response body");
        }
        for (i, error) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str("; ")?;
            }
            match (error.code.is_empty(), error.message.is_empty()) {
                (false, false) => write!(f, "{}: {}", error.code, error.message)?,
                (false, true) => f.write_str(&error.code)?,
                (true, _) => f.write_str(&error.message)?,
            }
        }
        Ok(())
    }
}

#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    #[error(
        "registry {registry} rejected the credentials for {repository}: check the user name and password, or run hullctl login {registry}"
    )]
    Unauthorized {
        registry: String,
        repository: String,
    },

    #[error(
        "registry {registry} rejected the login of user {user}: check the user name and password"
    )]
    LoginFailed { registry: String, user: String },

    #[error(
        "registry {registry} denied access to {repository} ({errors}): check that the user may {action} it, or run hullctl login {registry}"
    )]
    Denied {
        registry: String,
        repository: String,
        action: &'static str,
        errors: ApiErrors,
    },

    #[error("{what} not found in registry {registry}: check the image name, tag or digest")]
    NotFound { registry: String, what: String },

    #[error(
        "digest mismatch for {what} from registry {registry}: expected {expected}, got {actual}"
    )]
    DigestMismatch {
        registry: String,
        what: String,
        expected: String,
        actual: String,
    },

    #[error(
        "size mismatch for {what} from registry {registry}: expected {expected} bytes, got {actual}"
    )]
    SizeMismatch {
        registry: String,
        what: String,
        expected: u64,
        actual: u64,
    },

    #[error("manifest {what} from registry {registry} is larger than the limit of {limit} bytes")]
    ManifestTooLarge {
        registry: String,
        what: String,
        limit: u64,
    },

    #[error("registry {registry} returned HTTP {status} to the {action} request {url}: {errors}")]
    Http {
        registry: String,
        action: String,
        url: String,
        status: u16,
        errors: ApiErrors,
    },

    #[error("request {method} {url} to registry {registry} failed: {source}")]
    Request {
        registry: String,
        method: String,
        url: String,
        #[source]
        source: reqwest::Error,
    },

    #[error("invalid response from registry {registry} for {url}: {reason}")]
    InvalidResponse {
        registry: String,
        url: String,
        reason: String,
    },

    #[error(
        "token server {realm} for registry {registry} failed: {reason}; check the credentials, or run hullctl login {registry}"
    )]
    Token {
        registry: String,
        realm: String,
        reason: String,
    },

    #[error(
        "plain HTTP to registry {registry} is not allowed: list it in the insecure registries to allow it"
    )]
    InsecureNotAllowed { registry: String },

    #[error("invalid registry configuration: {0}")]
    Config(String),

    #[error("credentials file {path}: {reason}")]
    Credentials { path: String, reason: String },

    #[error("credential helper docker-credential-{helper} failed for {registry}: {reason}")]
    CredentialHelper {
        helper: String,
        registry: String,
        reason: String,
    },

    #[error("reading {path} failed: {source}")]
    Io {
        path: String,
        #[source]
        source: std::io::Error,
    },

    #[error("invalid JSON in {what} from registry {registry}: {source}")]
    Json {
        registry: String,
        what: String,
        #[source]
        source: serde_json::Error,
    },
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn api_errors_parse_codes() {
        let body =
            br#"{"errors":[{"code":"MANIFEST_UNKNOWN","message":"manifest unknown","detail":{}}]}"#;
        let errors = ApiErrors::parse(body);
        assert!(errors.has_code("MANIFEST_UNKNOWN"));
        assert_eq!(errors.to_string(), "MANIFEST_UNKNOWN: manifest unknown");
    }

    #[test]
    fn api_errors_parse_other_body() {
        let errors = ApiErrors::parse(b"<html>bad gateway</html>");
        assert!(errors.0.is_empty());
        assert_eq!(errors.to_string(), "no error details in the response body");
    }
}
