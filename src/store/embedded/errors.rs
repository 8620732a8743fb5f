//! redb's errors, converted to [`Error`] with the redb error kept as the cause.

use crate::error::Error;

impl From<redb::Error> for Error {
    fn from(err: redb::Error) -> Self {
        Error::internal_from("embedded store", err)
    }
}

/// redb has one error type per operation; each becomes an internal error with its cause.
macro_rules! redb_errors {
    ($($t:ty => $what:literal),* $(,)?) => {$(
        impl From<$t> for Error {
            fn from(err: $t) -> Self {
                Error::internal_from($what, err)
            }
        }
    )*};
}

redb_errors!(
    redb::DatabaseError => "opening the embedded store",
    redb::TransactionError => "starting an embedded transaction",
    redb::TableError => "opening an embedded table",
    redb::StorageError => "embedded storage",
    redb::CommitError => "committing an embedded transaction",
);
