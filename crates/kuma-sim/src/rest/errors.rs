//! Kuma's error bodies (`pkg/core/rest/errors/error_handler.go`): AIP-193 shaped, with the
//! deprecated `details` and `causes` mirrors Kuma still fills for old clients.

use serde::Serialize;

/// One rejected field, as `invalid_parameters[]` shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct InvalidParameter {
    pub field: String,
    pub reason: String,
}

#[derive(Serialize)]
struct Cause<'a> {
    field: &'a str,
    message: &'a str,
}

/// An error answer of the API: its status and the JSON body Kuma would send.
#[derive(Debug, Clone)]
pub struct ApiError {
    pub status: u16,
    pub title: String,
    pub detail: String,
    pub invalid_parameters: Vec<InvalidParameter>,
}

/// The body in Kuma's field order, with the deprecated mirrors filled at write time.
#[derive(Serialize)]
struct Body<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    status: u16,
    title: &'a str,
    detail: &'a str,
    #[serde(skip_serializing_if = "<[_]>::is_empty")]
    invalid_parameters: &'a [InvalidParameter],
    details: &'a str,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    causes: Vec<Cause<'a>>,
}

impl Serialize for ApiError {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        Body {
            kind: "/std-errors",
            status: self.status,
            title: &self.title,
            detail: &self.detail,
            invalid_parameters: &self.invalid_parameters,
            details: &self.detail,
            causes: self
                .invalid_parameters
                .iter()
                .map(|p| Cause {
                    field: &p.field,
                    message: &p.reason,
                })
                .collect(),
        }
        .serialize(s)
    }
}

impl ApiError {
    pub(crate) fn new(status: u16, title: &str, detail: &str) -> Self {
        Self {
            status,
            title: title.to_owned(),
            detail: detail.to_owned(),
            invalid_parameters: Vec::new(),
        }
    }

    /// A store `NotFound` under `title` (Kuma's detail is always "Not found").
    pub(crate) fn not_found(title: &str) -> Self {
        Self::new(404, title, "Not found")
    }

    /// `rest.InvalidResourceError` and friends: the title is fixed, the detail says why.
    pub(crate) fn bad_request(detail: &str) -> Self {
        Self::new(400, "Bad Request", detail)
    }

    /// A `validators.ValidationError`: one parameter per violation.
    pub(crate) fn invalid(title: &str, violations: Violations) -> Self {
        Self::new(400, title, "Resource is not valid").with_parameters(violations.0)
    }

    pub(crate) fn method_not_allowed(detail: &str) -> Self {
        Self::new(405, "Method not allowed", detail)
    }

    /// `InvalidPageSizeError`.
    pub(crate) fn page_size(title: &str, reason: &str) -> Self {
        Self::new(400, title, "Invalid page size").with_parameters(vec![InvalidParameter {
            field: "size".to_owned(),
            reason: reason.to_owned(),
        }])
    }

    fn with_parameters(mut self, params: Vec<InvalidParameter>) -> Self {
        self.invalid_parameters = params;
        self
    }
}

/// Violations collected while validating a request, in the order Kuma reports them.
#[derive(Debug, Default)]
pub(crate) struct Violations(pub Vec<InvalidParameter>);

impl Violations {
    pub(crate) fn add(&mut self, field: impl Into<String>, reason: impl Into<String>) {
        self.0.push(InvalidParameter {
            field: field.into(),
            reason: reason.into(),
        });
    }

    /// Adds `other` under `root` the way Kuma's `AddError` joins paths (`labels` +
    /// `["k"]` is `labels["k"]`, `labels` + `name` is `labels.name`).
    pub(crate) fn nest(&mut self, root: &str, other: Violations) {
        for p in other.0 {
            let field = match (root.is_empty(), p.field.starts_with('[') || p.field.is_empty()) {
                (true, _) => p.field,
                (false, true) => format!("{root}{}", p.field),
                (false, false) => format!("{root}.{}", p.field),
            };
            self.0.push(InvalidParameter {
                field,
                reason: p.reason,
            });
        }
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// Kuma's `PathBuilder.Key`: a Go `%q` of the key in brackets.
pub(crate) fn key_field(key: &str) -> String {
    format!("[{}]", serde_json::Value::String(key.to_owned()))
}
