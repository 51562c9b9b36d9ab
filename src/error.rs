//! The server's error type: every failure a caller can see, with its stable
//! `kind`, its HTTP status and its public message. Mapped to HTTP in one place
//! ([`ApiError::status`]); internal causes are logged, never sent.

use serde_json::{Map, Value};

/// The stable error kinds of the API (`kind` in every error body).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    BadRequest,
    SyntaxError,
    FnNotFound,
    Exception,
    Timeout,
    CpuLimit,
    MemoryLimit,
    OutputLimit,
    PermissionDenied,
    PayloadTooLarge,
    NotFound,
    MethodNotAllowed,
    Overloaded,
    Unauthorized,
    Unavailable,
    Internal,
}

impl ErrorKind {
    /// The `kind` string clients match on.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorKind::BadRequest => "bad_request",
            ErrorKind::SyntaxError => "syntax_error",
            ErrorKind::FnNotFound => "fn_not_found",
            ErrorKind::Exception => "exception",
            ErrorKind::Timeout => "timeout",
            ErrorKind::CpuLimit => "cpu_limit",
            ErrorKind::MemoryLimit => "memory_limit",
            ErrorKind::OutputLimit => "output_limit",
            ErrorKind::PermissionDenied => "permission_denied",
            ErrorKind::PayloadTooLarge => "payload_too_large",
            ErrorKind::NotFound => "not_found",
            ErrorKind::MethodNotAllowed => "method_not_allowed",
            ErrorKind::Overloaded => "overloaded",
            ErrorKind::Unauthorized => "unauthorized",
            ErrorKind::Unavailable => "unavailable",
            ErrorKind::Internal => "internal",
        }
    }

    /// The HTTP status of this kind.
    pub fn status(self) -> u16 {
        match self {
            ErrorKind::BadRequest | ErrorKind::SyntaxError | ErrorKind::FnNotFound => 400,
            ErrorKind::Unauthorized => 401,
            ErrorKind::NotFound => 404,
            ErrorKind::MethodNotAllowed => 405,
            ErrorKind::Timeout | ErrorKind::CpuLimit => 408,
            ErrorKind::PayloadTooLarge => 413,
            ErrorKind::Exception | ErrorKind::PermissionDenied | ErrorKind::Internal => 500,
            ErrorKind::Unavailable => 501,
            ErrorKind::Overloaded => 503,
            ErrorKind::MemoryLimit | ErrorKind::OutputLimit => 507,
        }
    }
}

/// A failure as the caller sees it.
#[derive(Debug, Clone)]
pub struct ApiError {
    pub kind: ErrorKind,
    /// The human message (`error` in the body).
    pub message: String,
    /// Kind-specific structured facts (`details` in the body).
    pub details: Map<String, Value>,
    /// Seconds for a `Retry-After` header (set for `overloaded`).
    pub retry_after: Option<u32>,
}

impl ApiError {
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> ApiError {
        ApiError {
            kind,
            message: message.into(),
            details: Map::new(),
            retry_after: None,
        }
    }

    /// Adds one field to `details`.
    pub fn with(mut self, key: &str, value: impl Into<Value>) -> ApiError {
        self.details.insert(key.to_string(), value.into());
        self
    }

    pub fn bad_request(message: impl Into<String>) -> ApiError {
        ApiError::new(ErrorKind::BadRequest, message)
    }

    /// A bug on our side: the cause is logged here, once, and the caller
    /// gets a generic message.
    pub fn internal(cause: impl std::fmt::Display) -> ApiError {
        tracing::error!(cause = %cause, "internal error");
        ApiError::new(ErrorKind::Internal, "Internal server error")
    }

    pub fn status(&self) -> u16 {
        self.kind.status()
    }
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} ({})", self.message, self.kind.as_str())
    }
}

impl std::error::Error for ApiError {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_follow_the_product_table() {
        let table = [
            (ErrorKind::BadRequest, "bad_request", 400),
            (ErrorKind::SyntaxError, "syntax_error", 400),
            (ErrorKind::FnNotFound, "fn_not_found", 400),
            (ErrorKind::Exception, "exception", 500),
            (ErrorKind::Timeout, "timeout", 408),
            (ErrorKind::CpuLimit, "cpu_limit", 408),
            (ErrorKind::MemoryLimit, "memory_limit", 507),
            (ErrorKind::OutputLimit, "output_limit", 507),
            (ErrorKind::PermissionDenied, "permission_denied", 500),
            (ErrorKind::PayloadTooLarge, "payload_too_large", 413),
            (ErrorKind::NotFound, "not_found", 404),
            (ErrorKind::MethodNotAllowed, "method_not_allowed", 405),
            (ErrorKind::Overloaded, "overloaded", 503),
            (ErrorKind::Unauthorized, "unauthorized", 401),
            (ErrorKind::Unavailable, "unavailable", 501),
            (ErrorKind::Internal, "internal", 500),
        ];
        for (kind, name, status) in table {
            assert_eq!(kind.as_str(), name);
            assert_eq!(kind.status(), status, "{name}");
        }
    }
}
