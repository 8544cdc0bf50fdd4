//! `metav1.Status` failures, shaped as the apiserver sends them, so clients (kube-rs's
//! `Error::Api`, `watcher()`'s 410 handling) react as they would to a real cluster.

use http::StatusCode;
use serde_json::{Value, json};

/// A failed request: the HTTP code and the Status body explaining it.
#[derive(Debug, Clone, PartialEq)]
pub struct Failure {
    pub code: StatusCode,
    pub reason: &'static str,
    pub message: String,
    pub details: Option<Value>,
}

impl Failure {
    fn new(code: StatusCode, reason: &'static str, message: impl Into<String>) -> Self {
        Self {
            code,
            reason,
            message: message.into(),
            details: None,
        }
    }

    pub fn with_details(
        code: StatusCode,
        reason: &'static str,
        message: impl Into<String>,
        details: Value,
    ) -> Self {
        let mut f = Self::new(code, reason, message);
        f.details = Some(details);
        f
    }

    /// 409: `reason` is `AlreadyExists` or `Conflict`.
    pub fn conflict(reason: &'static str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::CONFLICT, reason, message)
    }

    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "BadRequest", message)
    }

    /// 422: query parameters that parse but are not allowed together.
    pub fn invalid(message: impl Into<String>) -> Self {
        Self::new(StatusCode::UNPROCESSABLE_ENTITY, "Invalid", message)
    }

    /// The apiserver's answer to a path it does not serve.
    pub fn no_such_path() -> Self {
        Self::new(
            StatusCode::NOT_FOUND,
            "NotFound",
            "the server could not find the requested resource",
        )
    }

    pub fn object_not_found(qualified: &str, kind_plural: &str, name: &str) -> Self {
        let mut f = Self::new(
            StatusCode::NOT_FOUND,
            "NotFound",
            format!("{qualified} \"{name}\" not found"),
        );
        let group = qualified.split_once('.').map(|(_, g)| g).unwrap_or("");
        f.details = Some(json!({"name": name, "group": group, "kind": kind_plural}));
        f
    }

    /// The simulator serves reads only, but for Leases (a leader election's).
    pub fn method_not_allowed(method: &http::Method) -> Self {
        Self::new(
            StatusCode::METHOD_NOT_ALLOWED,
            "MethodNotAllowed",
            format!(
                "the server does not allow this method on the requested resource ({method}): the simulated Kubernetes API is read-only but for Leases"
            ),
        )
    }

    /// 410 for a watch or list version older than the kept history.
    pub fn expired(message: impl Into<String>) -> Self {
        Self::new(StatusCode::GONE, "Expired", message)
    }

    /// 504, as the apiserver answers a version it has not reached after waiting.
    pub fn too_large_resource_version(requested: u64, current: u64) -> Self {
        let mut f = Self::new(
            StatusCode::GATEWAY_TIMEOUT,
            "Timeout",
            format!("Timeout: Too large resource version: {requested}, current: {current}"),
        );
        f.details = Some(json!({"causes": [{"reason": "ResourceVersionTooLarge",
            "message": "Too large resource version"}], "retryAfterSeconds": 1}));
        f
    }

    /// The `Status` object, for a response body or a watch `ERROR` event.
    pub fn to_status(&self) -> Value {
        let mut status = json!({
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": self.message,
            "reason": self.reason,
            "code": self.code.as_u16(),
        });
        if let Some(details) = &self.details {
            status["details"] = details.clone();
        }
        status
    }
}
