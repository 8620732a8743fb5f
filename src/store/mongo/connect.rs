//! Connecting: client options, the start-up probe that proves the deployment
//! runs transactions, and the indexes the reads and cascades need.

use std::time::Duration;

use bson::{Document, doc};
use mongodb::event::EventHandler;
use mongodb::event::command::CommandEvent;
use mongodb::options::{ClientOptions, IndexOptions};
use mongodb::{Client, Database, IndexModel};

use super::errors::{ILLEGAL_OPERATION, server_code};
use super::kept::KEPT_ANSWERS;
use super::{COMMENTS, POSTS, USERS, tx_options};
use crate::error::{Error, Result};

/// The database used when neither the URI path nor the configuration names one.
pub const DEFAULT_DATABASE: &str = "blogql";

/// What the startup probe says when the deployment refuses transactions.
pub const NEEDS_REPLICA_SET: &str = "MongoDB refused a transaction: blogql runs every cascade in a \
multi-document transaction, and MongoDB only allows those on a replica set or sharded cluster. \
For development, run a single-node replica set: start mongod with `--replSet rs0`, then run \
`rs.initiate()` once in mongosh, and connect with `?replicaSet=rs0`.";

/// How to connect, beyond the URI.
#[derive(Default)]
pub struct ConnectOptions {
    /// The database; defaults to the URI's path, else [`DEFAULT_DATABASE`].
    pub database: Option<String>,
    /// Sees every command the driver sends. The server installs none; tests
    /// install one to count a cascade's commands.
    pub command_observer: Option<EventHandler<CommandEvent>>,
}

/// A connected client and database, after the probe and index creation.
pub(super) async fn connect(uri: &str, options: ConnectOptions) -> Result<(Client, Database)> {
    let mut client_options =
        ClientOptions::parse(uri).await.map_err(|e| Error::internal_from("invalid MongoDB URI", e))?;
    client_options.app_name.get_or_insert_with(|| "blogql".to_owned());
    client_options.server_selection_timeout.get_or_insert(Duration::from_secs(10));
    client_options.command_event_handler = options.command_observer;
    let name = options
        .database
        .or_else(|| client_options.default_database.clone())
        .unwrap_or_else(|| DEFAULT_DATABASE.to_owned());
    let client =
        Client::with_options(client_options).map_err(|e| Error::internal_from("creating the MongoDB client", e))?;
    let db = client.database(&name);
    probe(&client, &db).await?;
    ensure_indexes(&db).await?;
    Ok((client, db))
}

/// Ping, then start, read in and commit a transaction. Refuses to go on
/// (rather than silently writing without transactions) when the deployment
/// cannot run them.
async fn probe(client: &Client, db: &Database) -> Result<()> {
    db.run_command(doc! { "ping": 1 })
        .await
        .map_err(|e| Error::internal_from("cannot reach MongoDB (gave up after the server-selection timeout)", e))?;
    let refused = |e: mongodb::error::Error| {
        let text = e.to_string();
        if server_code(&e) == Some(ILLEGAL_OPERATION)
            || text.contains("Transaction numbers are only allowed")
            || text.contains("not supported by this deployment")
        {
            Error::internal_from(NEEDS_REPLICA_SET, e)
        } else {
            Error::internal_from("the MongoDB transaction probe failed", e)
        }
    };
    let mut session = client.start_session().await.map_err(refused)?;
    session.start_transaction().with_options(tx_options()).await.map_err(refused)?;
    db.collection::<Document>(USERS).find_one(doc! {}).session(&mut session).await.map_err(refused)?;
    session.commit_transaction().await.map_err(refused)?;
    Ok(())
}

/// Creates the indexes the reads and cascades need; idempotent.
async fn ensure_indexes(db: &Database) -> Result<()> {
    let unique = IndexOptions::builder().unique(true).build();
    let ttl = IndexOptions::builder().expire_after(Duration::ZERO).build();
    let specs: [(&str, Document, Option<IndexOptions>); 12] = [
        (USERS, doc! { "email": 1 }, Some(unique)),
        (USERS, doc! { "createdAt": -1, "_id": -1 }, None),
        (USERS, doc! { "followers": 1 }, None),
        (USERS, doc! { "following": 1 }, None),
        (POSTS, doc! { "createdAt": -1, "_id": -1 }, None),
        (POSTS, doc! { "author": 1, "createdAt": -1, "_id": -1 }, None),
        (POSTS, doc! { "likedBy": 1 }, None),
        (COMMENTS, doc! { "post": 1, "createdAt": -1, "_id": -1 }, None),
        (COMMENTS, doc! { "author": 1, "createdAt": -1, "_id": -1 }, None),
        (COMMENTS, doc! { "createdAt": -1, "_id": -1 }, None),
        // `Idempotency-Key` records go when they expire (see `kept`).
        (KEPT_ANSWERS, doc! { "expiresAt": 1 }, Some(ttl.clone())),
        // Outbox entries go when every process has long read them (see `outbox`).
        (super::outbox::EVENTS, doc! { "expiresAt": 1 }, Some(ttl)),
    ];
    for (coll, keys, options) in specs {
        let model = IndexModel::builder().keys(keys).options(options).build();
        db.collection::<Document>(coll)
            .create_index(model)
            .await
            .map_err(|e| Error::internal_from(format!("creating an index on {coll}"), e))?;
    }
    Ok(())
}
