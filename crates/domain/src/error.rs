use std::fmt;

/// A boxed error that can cross threads, used to carry an adapter's cause upwards.
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// A value given by a client failed validation.
///
/// `field` names the offending input and `problem` says what is wrong with it, in words
/// fit to show to the client. Neither ever contains the rejected value itself, so a
/// validation error may be logged or returned safely even for passwords and secrets.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {problem}")]
pub struct ValidationError {
    /// The name of the input field, as the client spelled it.
    pub field: &'static str,
    /// What is wrong, e.g. "must be at least 12 characters".
    pub problem: String,
}

impl ValidationError {
    /// Builds a validation error for `field`.
    pub fn new(field: &'static str, problem: impl Into<String>) -> Self {
        Self {
            field,
            problem: problem.into(),
        }
    }
}

/// A repository could not do its work for a reason that is not the caller's fault.
#[derive(Debug, thiserror::Error)]
pub enum RepoError {
    /// The store is unreachable or saturated right now (connection refused, pool
    /// exhausted, database locked past its timeout). Retrying later may succeed.
    #[error("storage unavailable: {0}")]
    Unavailable(#[source] BoxError),
    /// Anything else: a bug, corrupt data, a failed migration.
    #[error("storage failure: {0}")]
    Internal(#[source] BoxError),
}

impl RepoError {
    /// Wraps `cause` as [`RepoError::Internal`].
    pub fn internal(cause: impl Into<BoxError>) -> Self {
        Self::Internal(cause.into())
    }
}

/// Writes `TypeName(<redacted>)`, the Debug form of every secret-bearing type.
pub(crate) fn redacted(f: &mut fmt::Formatter<'_>, type_name: &str) -> fmt::Result {
    write!(f, "{type_name}(<redacted>)")
}
