//! `Idempotency-Key` records on MongoDB: one document per key in
//! `idempotencyKeys`, shared by every process on the database.
//!
//! Each step is one single-document operation, atomic on its own, so no
//! session transaction is needed: a claim inserts (the `_id` is unique, so
//! of two processes claiming one key at once exactly one wins), and takes
//! over an expired record only with a replace conditional on the expiry it
//! read. A TTL index on `expiresAt` removes records; since its monitor runs
//! about once a minute, [`KeptDoc::verdict`] treats an expired record as
//! absent whether or not it is still there.

use bson::oid::ObjectId;
use bson::{DateTime, doc};
use mongodb::Collection;
use mongodb::options::{CollectionOptions, WriteConcern};

use super::MongoStore;
use super::errors::{DUPLICATE_KEY, server_code};
use crate::error::Result;
use crate::store::idempotency::{Claim, Fingerprint, IdemKey, KeptDoc, Lease, Verdict};

/// The collection's name.
pub(super) const KEPT_ANSWERS: &str = "idempotencyKeys";

/// How many times a claim re-reads a record that changed under it before
/// saying the key is in use: each retry means another process just wrote it.
const CLAIM_ATTEMPTS: usize = 3;

impl MongoStore {
    /// The collection, written with majority write concern: a kept answer
    /// must survive a failover, or a retry after one writes twice.
    fn kept(&self) -> Collection<KeptDoc> {
        self.db.collection_with_options(
            KEPT_ANSWERS,
            CollectionOptions::builder().write_concern(WriteConcern::majority()).build(),
        )
    }

    pub(super) async fn claim(&self, key: &IdemKey, fingerprint: &Fingerprint, until: DateTime) -> Result<Claim> {
        let kept = self.kept();
        let id = key.hex();
        for _ in 0..CLAIM_ATTEMPTS {
            let lease = Lease(ObjectId::new());
            let fresh = KeptDoc::claim(key, fingerprint, lease, until);
            match kept.insert_one(&fresh).await {
                Ok(_) => return Ok(Claim::Fresh(lease)),
                Err(err) if server_code(&err) == Some(DUPLICATE_KEY) => {}
                Err(err) => return Err(err.into()),
            }
            let Some(found) = kept.find_one(doc! { "_id": &id }).await? else { continue };
            match KeptDoc::verdict(Some(&found), fingerprint, DateTime::now()) {
                Verdict::Answer(claim) => return Ok(claim),
                Verdict::Take => {
                    let filter = doc! { "_id": &id, "expiresAt": found.expires_at };
                    if kept.replace_one(filter, &fresh).await?.matched_count == 1 {
                        return Ok(Claim::Fresh(lease));
                    }
                }
            }
        }
        Ok(Claim::InProgress)
    }

    pub(super) async fn keep(&self, key: &IdemKey, lease: Lease, answer: Vec<u8>, until: DateTime) -> Result<()> {
        let answer = bson::Binary { subtype: bson::spec::BinarySubtype::Generic, bytes: answer };
        self.kept()
            .update_one(
                doc! { "_id": key.hex(), "lease": lease.0 },
                doc! { "$set": { "answer": answer, "expiresAt": until }, "$unset": { "lease": "" } },
            )
            .await?;
        Ok(())
    }

    pub(super) async fn release(&self, key: &IdemKey, lease: Lease) -> Result<()> {
        self.kept().delete_one(doc! { "_id": key.hex(), "lease": lease.0 }).await?;
        Ok(())
    }
}
