//! MongoDB driver errors as [`Error`]: the driver error is kept as the cause,
//! and the codes that mean something to a client are mapped by what they say.

use std::borrow::Cow;

use mongodb::error::{ErrorKind, WriteFailure};

use crate::error::Error;

/// MongoDB's "duplicate key" error code.
pub(super) const DUPLICATE_KEY: i32 = 11000;
/// MongoDB's "write conflict" error code.
const WRITE_CONFLICT: i32 = 112;
/// MongoDB's "illegal operation" code, which a standalone server answers to a transaction.
pub(super) const ILLEGAL_OPERATION: i32 = 20;

/// The server's error code, for the kinds of error that carry one.
pub(super) fn server_code(err: &mongodb::error::Error) -> Option<i32> {
    match &*err.kind {
        ErrorKind::Command(e) => Some(e.code),
        ErrorKind::Write(WriteFailure::WriteError(e)) => Some(e.code),
        ErrorKind::Write(WriteFailure::WriteConcernError(e)) => Some(e.code),
        _ => None,
    }
}

/// The server's message, for the kinds of error that carry one.
fn server_message(err: &mongodb::error::Error) -> Option<&str> {
    match &*err.kind {
        ErrorKind::Command(e) => Some(&e.message),
        ErrorKind::Write(WriteFailure::WriteError(e)) => Some(&e.message),
        _ => None,
    }
}

/// Which unique index a duplicate-key error names: the server says
/// `... index: email_1 dup key: ...`.
fn duplicate_index(message: &str) -> Option<&str> {
    let rest = &message[message.find("index: ")? + "index: ".len()..];
    rest.split_whitespace().next()
}

/// Maps a driver error. Our own errors come back out of the transaction
/// callback unchanged; a duplicate key on the email index is a taken email;
/// a write conflict that outlived the retries is a `CONFLICT`; everything
/// else is internal, with the driver error (and its labels) as the cause.
impl From<mongodb::error::Error> for Error {
    fn from(err: mongodb::error::Error) -> Self {
        if let Some(ours) = err.get_custom::<Error>() {
            return ours.clone();
        }
        match server_code(&err) {
            Some(DUPLICATE_KEY) => match server_message(&err).and_then(duplicate_index) {
                Some(index) if index.starts_with("email") => Error::email_taken(),
                index => {
                    let context: Cow<'static, str> = format!("duplicate key on index {index:?}").into();
                    Error::internal_from(context, err)
                }
            },
            Some(WRITE_CONFLICT) => Error::Conflict("the data changed concurrently; retry the operation".into()),
            _ => Error::internal_from("mongodb", err),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The index name is read from the server's duplicate-key message, whatever follows it.
    #[test]
    fn duplicate_index_names() {
        let msg = "E11000 duplicate key error collection: blogql.users index: email_1 dup key: { email: \"a@b.io\" }";
        assert_eq!(duplicate_index(msg), Some("email_1"));
        assert_eq!(duplicate_index("E11000 duplicate key error index: _id_ dup key: { _id: 1 }"), Some("_id_"));
        assert_eq!(duplicate_index("E11000 duplicate key error"), None);
    }
}
