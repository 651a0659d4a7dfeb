//! The one place errors become gRPC statuses: no other module builds a `tonic::Status`. Each
//! status carries a message that names the field or the state at fault and what to do, and
//! machine-readable details (`google.rpc.BadRequest`, `google.rpc.ErrorInfo`) for clients that
//! branch on them.

use std::collections::HashMap;

use rapport_store::StoreError;
use tonic::{Code, Status};
use tonic_types::{ErrorDetails, StatusExt};

use crate::error::{AccessError, AppendError, PrivacyError, ReadError, SubscriptionEnd};

/// The `ErrorInfo.domain` of every error Rapport reports.
const DOMAIN: &str = "rapport.v1";

impl From<AppendError> for Status {
    fn from(error: AppendError) -> Self {
        let message = error.to_string();
        match error {
            AppendError::Invalid(violation) => Status::with_error_details(
                Code::InvalidArgument,
                message,
                ErrorDetails::with_bad_request_violation(violation.field, violation.reason),
            ),
            AppendError::WrongExpectedVersion { account_id, expected, current } => Status::with_error_details(
                Code::FailedPrecondition,
                message,
                ErrorDetails::with_error_info(
                    "WRONG_EXPECTED_VERSION",
                    DOMAIN,
                    HashMap::from([
                        ("account_id".to_owned(), account_id.to_string()),
                        ("expected".to_owned(), expected.to_string()),
                        ("current_version".to_owned(), current.to_string()),
                    ]),
                ),
            ),
            AppendError::EventIdTaken { index, event_id, .. } => Status::with_error_details(
                Code::AlreadyExists,
                message,
                ErrorDetails::with_error_info(
                    "EVENT_ID_TAKEN",
                    DOMAIN,
                    HashMap::from([
                        ("event_id".to_owned(), event_id.to_string()),
                        ("index".to_owned(), index.to_string()),
                    ]),
                ),
            ),
            AppendError::Store(store) => {
                store_status(store, "the append was not acknowledged; retry with the same event ids")
            }
            AppendError::ShuttingDown => Status::unavailable(message),
        }
    }
}

/// A status as a `google.rpc.Status` message (an `AppendStreamResponse` carries one): its
/// code, message and details, exactly as its `grpc-status-details-bin` trailer would carry
/// them.
pub(crate) fn rpc_status(status: &Status) -> rapport_proto::rpc::Status {
    use prost::Message;
    // The details tonic keeps are that very message, encoded, when the status has any.
    let details = rapport_proto::rpc::Status::decode(status.details()).map(|s| s.details).unwrap_or_default();
    rapport_proto::rpc::Status { code: status.code() as i32, message: status.message().to_owned(), details }
}

impl From<AccessError> for Status {
    fn from(error: AccessError) -> Self {
        let message = error.to_string();
        match error {
            AccessError::NoToken | AccessError::MalformedHeader | AccessError::UnknownToken => {
                Status::unauthenticated(message)
            }
            AccessError::Forbidden { .. } => Status::permission_denied(message),
            AccessError::ActorNotCaller { index, .. } => Status::with_error_details(
                Code::PermissionDenied,
                message,
                ErrorDetails::with_bad_request_violation(format!("events[{index}].actor"), "not the token's identity"),
            ),
        }
    }
}

impl From<ReadError> for Status {
    fn from(error: ReadError) -> Self {
        match error {
            ReadError::Invalid(violation) => Status::with_error_details(
                Code::InvalidArgument,
                violation.to_string(),
                ErrorDetails::with_bad_request_violation(violation.field, violation.reason),
            ),
            ReadError::AccountNotFound(_) | ReadError::NotYetOpened(_) => Status::not_found(error.to_string()),
            ReadError::Corrupt(_) => Status::data_loss(error.to_string()),
            ReadError::Store(store) => store_status(store, "the read failed; retry later"),
            ReadError::RuleSetNotFound { .. } => Status::not_found(error.to_string()),
            ReadError::RuleSetChanged(_) => Status::already_exists(error.to_string()),
            ReadError::InvalidRules(ref rules) => Status::with_error_details(
                Code::InvalidArgument,
                error.to_string(),
                ErrorDetails::with_bad_request_violation("rule_set", rules.to_string()),
            ),
            ReadError::Busy(_) => Status::unavailable(error.to_string()),
            ReadError::TooManySubscriptions { .. } => Status::resource_exhausted(error.to_string()),
            ReadError::NotCaughtUp { .. } => Status::failed_precondition(error.to_string()),
            ReadError::BeyondEnd { .. } => Status::out_of_range(error.to_string()),
            ReadError::NotReadUpTo { min_position, read, waited_ms } => Status::with_error_details(
                Code::Unavailable,
                error.to_string(),
                ErrorDetails::with_error_info(
                    "MIN_POSITION_NOT_REACHED",
                    DOMAIN,
                    HashMap::from([
                        ("min_position".to_owned(), min_position.to_string()),
                        ("read_position".to_owned(), read.to_string()),
                        ("behind".to_owned(), min_position.saturating_sub(read).to_string()),
                        ("waited_ms".to_owned(), waited_ms.to_string()),
                    ]),
                ),
            ),
            ReadError::Replaced(_) => Status::aborted(error.to_string()),
            ReadError::TaskFailed(_) => Status::internal(error.to_string()),
        }
    }
}

impl From<PrivacyError> for Status {
    fn from(error: PrivacyError) -> Self {
        let message = error.to_string();
        match error {
            PrivacyError::Invalid(violation) => Status::with_error_details(
                Code::InvalidArgument,
                message,
                ErrorDetails::with_bad_request_violation(violation.field, violation.reason),
            ),
            PrivacyError::ContactNotFound { .. } => Status::not_found(message),
            PrivacyError::InClear { account_id, contact_id } => Status::with_error_details(
                Code::FailedPrecondition,
                message,
                ErrorDetails::with_error_info(
                    "STORED_IN_CLEAR",
                    DOMAIN,
                    HashMap::from([
                        ("account_id".to_owned(), account_id.to_string()),
                        ("contact_id".to_owned(), contact_id.to_string()),
                    ]),
                ),
            ),
            PrivacyError::NotSealing => Status::failed_precondition(message),
            PrivacyError::Keys(_) => Status::unavailable(message),
            PrivacyError::Append(append) => Status::from(append),
            PrivacyError::Read(read) => Status::from(read),
        }
    }
}

impl From<SubscriptionEnd> for Status {
    fn from(end: SubscriptionEnd) -> Self {
        match end {
            SubscriptionEnd::ShuttingDown { .. } => Status::unavailable(end.to_string()),
            SubscriptionEnd::Stalled { .. } => Status::resource_exhausted(end.to_string()),
            SubscriptionEnd::Read(error) => Status::from(error),
        }
    }
}

fn store_status(error: StoreError, advice: &str) -> Status {
    let message = format!("{error}; {advice}");
    match error {
        StoreError::Full(_) => Status::resource_exhausted(message),
        StoreError::Io(_) => Status::unavailable(message),
        StoreError::Corrupt(_) => Status::data_loss(format!("{error}; restore the data directory from an export")),
        // The writer checks versions and ids before it appends, and stages a request again
        // when another writer of a replicated log got there first: these come back only when
        // other writers kept getting there first.
        StoreError::WrongVersion { .. } | StoreError::DuplicateEventId { .. } => Status::aborted(format!(
            "{error}; other writers of the log kept appending to this account while this request was decided \
             again; retry with the same event ids (on a log with one writer this is a bug in Rapport, please report it)"
        )),
        StoreError::InvalidBatch(_) => Status::internal(format!("{error}; this is a bug in Rapport, please report it")),
    }
}
