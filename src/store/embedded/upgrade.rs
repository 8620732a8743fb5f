//! The one-time upgrade of a data directory written by blogql 0.1.
//!
//! blogql 0.1 used redb 2, which writes file format v2. redb 3 and later
//! read only v3, and redb 2.6 is what can convert one into the other
//! (`Database::upgrade`, in place and crash-safe like any redb commit). So
//! when redb 4 says a file needs upgrading, it is opened once with redb 2.6,
//! upgraded, and then opened normally.

use std::path::Path;

use redb::{Database, DatabaseError};

use super::FileOptions;
use super::redo::{self, Redo};
use crate::error::{Error, Result};

/// Opens (or creates) the database at `path` with `options`, upgrading a v2
/// file first. With a redo log, the log is replayed before redb reads the
/// file (see `redo`), so the upgrade below always sees a whole file.
pub(super) fn open_or_upgrade(path: &Path, options: FileOptions) -> Result<Database> {
    let create = || {
        let mut builder = Database::builder();
        builder.set_cache_size(options.cache_bytes);
        let refused = |err: std::io::Error| match err.kind() {
            std::io::ErrorKind::WouldBlock => DatabaseError::DatabaseAlreadyOpen,
            _ => DatabaseError::Storage(redb::StorageError::Io(err)),
        };
        if options.redo_log_bytes == 0 {
            redo::replay_leftover(path).map_err(refused)?;
            return builder.create(path);
        }
        builder.create_with_backend(Redo::open(path, options.redo_log_bytes).map_err(refused)?)
    };
    match create() {
        Err(DatabaseError::UpgradeRequired(version)) => {
            tracing::warn!(path = %path.display(), version, "upgrading the embedded store's file format to v3 (one time)");
            let mut old = redb2::Database::open(path)
                .map_err(|e| Error::internal_from("opening a v2 embedded store to upgrade it", e))?;
            old.upgrade().map_err(|e| Error::internal_from("upgrading the embedded store to file format v3", e))?;
            drop(old);
            Ok(create()?)
        }
        other => Ok(other?),
    }
}

#[cfg(test)]
mod tests {
    use redb::{ReadableDatabase, TableHandle};

    use super::*;
    use crate::domain::Page;
    use crate::model::UserDoc;
    use crate::store::embedded::schema::{Stored, USERS, USERS_BY_EMAIL};
    use crate::store::embedded::{DB_FILE, EmbeddedStore};
    use crate::store::{Backend, Store};

    fn user() -> UserDoc {
        UserDoc::new(
            crate::model::UserId::new(),
            "Old Timer".into(),
            "old@example.com".into(),
            "h".into(),
            bson::DateTime::from_millis(1_700_000_000_000),
        )
    }

    /// Writes `user` the way blogql 0.1 did: redb 2, file format v2, same tables and index keys.
    fn write_v2(path: &Path, user: &UserDoc) -> std::result::Result<(), Box<dyn std::error::Error>> {
        let db = redb2::Database::create(path)?;
        let tx = db.begin_write()?;
        {
            let doc = bson::serialize_to_vec(user)?;
            let mut users = tx.open_table(redb2::TableDefinition::<&[u8], &[u8]>::new(USERS.name()))?;
            users.insert(user.id.bytes().as_slice(), doc.as_slice())?;
            let emails = redb2::TableDefinition::<&str, &[u8]>::new(USERS_BY_EMAIL.name());
            tx.open_table(emails)?.insert(user.email.as_str(), user.id.bytes().as_slice())?;
            for (index, key) in user.index_entries() {
                tx.open_table(redb2::TableDefinition::<&[u8], ()>::new(index.name()))?.insert(key.as_slice(), ())?;
            }
        }
        tx.commit()?;
        Ok(())
    }

    /// A data directory written by blogql 0.1 (redb 2, format v2) opens, is upgraded
    /// once, and serves the same documents through every index.
    #[tokio::test]
    async fn a_v2_data_directory_is_upgraded_and_keeps_its_data() {
        let dir = tempfile::tempdir().expect("temp dir");
        let old = user();
        write_v2(&dir.path().join(DB_FILE), &old).expect("write a v2 file");
        assert!(
            matches!(Database::create(dir.path().join(DB_FILE)), Err(DatabaseError::UpgradeRequired(_))),
            "the fixture is a v2 file that redb 4 cannot open as it is"
        );

        let store: Store = EmbeddedStore::open(dir.path()).expect("opens after upgrading").into();
        assert_eq!(store.users_by_ids(&[old.id]).await.ok(), Some(vec![old.clone()]));
        assert_eq!(store.user_by_email("old@example.com").await.ok().flatten(), Some(old.clone()));
        assert_eq!(store.users_page(&Page::newest(10)).await.ok().map(|p| p.docs), Some(vec![old.clone()]));
        drop(store);

        // Upgraded for good: redb 4 now opens it directly.
        let db = Database::create(dir.path().join(DB_FILE)).expect("a v3 file now");
        let tables = db.begin_read().expect("read").list_tables().expect("tables").count();
        assert!(tables > 0);
        drop(db);
        let reopened = EmbeddedStore::open(dir.path()).expect("reopens");
        assert_eq!(reopened.users_by_ids(&[old.id]).await.ok(), Some(vec![old]));
    }
}
