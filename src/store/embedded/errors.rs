//! redb's errors, converted to [`Error`] with the redb error kept as the cause.
//!
//! A failure of the file itself (an I/O error such as a full disk, or the
//! latch redb sets after one, or a database closed to be reopened) becomes
//! [`Error::Unavailable`]: it passes, and the store recovers from it (see
//! `disk`). Everything else is internal.

use crate::error::Error;

/// Whether `err` is the file failing rather than a bug.
fn storage_failed(err: &redb::StorageError) -> bool {
    matches!(err, redb::StorageError::Io(_) | redb::StorageError::PreviousIo | redb::StorageError::DatabaseClosed)
}

/// `err`, classified: [`Error::Unavailable`] when the file failed, else internal.
fn classify<E>(what: &'static str, failed: bool, err: E) -> Error
where
    E: std::error::Error + Send + Sync + 'static,
{
    if failed { Error::unavailable_from(what, err) } else { Error::internal_from(what, err) }
}

impl From<redb::Error> for Error {
    fn from(err: redb::Error) -> Self {
        let failed = matches!(err, redb::Error::Io(_) | redb::Error::PreviousIo | redb::Error::DatabaseClosed);
        classify("embedded store", failed, err)
    }
}

/// redb has one error type per operation; each keeps its cause, and its
/// `Storage` variant is classified like a [`redb::StorageError`].
macro_rules! redb_errors {
    ($($t:ident => $what:literal),* $(,)?) => {$(
        impl From<redb::$t> for Error {
            fn from(err: redb::$t) -> Self {
                let failed = matches!(&err, redb::$t::Storage(s) if storage_failed(s));
                classify($what, failed, err)
            }
        }
    )*};
}

redb_errors!(
    DatabaseError => "opening the embedded store",
    TransactionError => "starting an embedded transaction",
    TableError => "opening an embedded table",
    CommitError => "committing an embedded transaction",
);

impl From<redb::StorageError> for Error {
    fn from(err: redb::StorageError) -> Self {
        let failed = storage_failed(&err);
        classify("embedded storage", failed, err)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A full disk (and the latch redb sets after it) is `Unavailable`, with
    /// its cause kept; a corrupted page stays internal.
    #[test]
    fn file_failures_are_unavailable_and_bugs_internal() {
        let full = std::io::Error::from(std::io::ErrorKind::StorageFull);
        let err = Error::from(redb::CommitError::Storage(redb::StorageError::Io(full)));
        assert!(matches!(err, Error::Unavailable { .. }), "{err:?}");
        assert!(err.find_cause::<redb::CommitError>().is_some(), "the cause is kept");
        assert!(matches!(Error::from(redb::StorageError::PreviousIo), Error::Unavailable { .. }));
        assert!(matches!(
            Error::from(redb::TransactionError::Storage(redb::StorageError::DatabaseClosed)),
            Error::Unavailable { .. }
        ));
        assert!(matches!(Error::from(redb::StorageError::Corrupted("page".into())), Error::Internal { .. }));
    }
}
