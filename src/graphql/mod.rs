//! The GraphQL API, one module per feature (`user`, `post`, `comment`), each
//! with its object type, queries and mutations.
//!
//! This module assembles the schema and owns what every feature shares: the
//! per-request context (viewer and DataLoaders), id parsing, and running a
//! command as the viewer. [`error`] is the one place a domain error becomes
//! a client-facing code; [`loader`] and [`connection`] are the batched
//! reference resolution and the Relay connections every list uses.

pub mod account;
pub mod batch;
pub mod comment;
pub mod connection;
pub mod cost;
pub mod deletion;
pub mod error;
pub mod federation;
pub mod feed;
pub mod loader;
pub mod node;
pub mod plain;
pub mod post;
pub mod scalars;
mod served;
pub mod subscription;
pub mod user;

use std::sync::Arc;

use async_graphql::{Context, ID, MergedObject, SDLExportOptions, Schema, SchemaBuilder};
use bson::oid::ObjectId;

use self::batch::Batcher;
pub(crate) use self::served::selected_operation;
pub use self::served::{AppSchema, build_schema, variables_fit};
pub use self::subscription::Subscription;
use crate::app::AppState;
use crate::auth::Token;
use crate::cmd::{Command, ReadCommand};
use crate::error::{Error, Result};
use crate::model::{CommentDoc, CommentId, Id, PostDoc, PostId, UserDoc, UserId};
use crate::store::{CommentsOf, PostsOf, Store, UsersOf};

/// Everything you can read: start from `viewer`, a list (`users`, `posts`),
/// or any object by id (`node`, `nodes`). Anonymous reads are allowed.
#[derive(MergedObject, Default)]
pub struct Query(node::NodeQuery, user::UserQuery, post::PostQuery, feed::FeedQuery, comment::CommentQuery);

/// Every write. Each runs in one transaction, so it happens completely or
/// not at all; all but `signUp` and `logIn` need `Authorization: Bearer <token>`.
#[derive(MergedObject, Default)]
pub struct Mutation(user::UserMutation, account::AccountMutation, post::PostMutation, comment::CommentMutation);

/// The client schema's type.
pub type BlogSchema = Schema<Query, Mutation, Subscription>;

/// The subgraph schema's type: the client schema plus Federation's entity resolvers.
pub type SubgraphSchema = Schema<federation::FederatedQuery, Mutation, Subscription>;

/// The schema without runtime data: enough to print the SDL.
pub fn schema_builder() -> SchemaBuilder<Query, Mutation, Subscription> {
    Schema::build(Query::default(), Mutation::default(), Subscription)
}

/// The subgraph schema without runtime data.
pub fn subgraph_builder() -> SchemaBuilder<federation::FederatedQuery, Mutation, Subscription> {
    Schema::build(federation::FederatedQuery::default(), Mutation::default(), Subscription).enable_federation()
}

/// The SDL that `schema.graphql` must match; `blogql print-schema` prints it.
pub fn sdl() -> String {
    schema_builder().finish().sdl()
}

/// The Federation v2 subgraph SDL (`blogql print-schema --federation`), which
/// `subgraph.graphql` must match and `_service { sdl }` answers.
/// It carries the cost model as `@cost` and `@listSize` (see [`cost::publish`]).
pub fn subgraph_sdl() -> String {
    subgraph_sdls().1.clone()
}

/// The subgraph SDL as async-graphql prints it (and answers `_service`
/// with), and as published, decorated with the cost directives; built once.
fn subgraph_sdls() -> &'static (String, String) {
    static SDLS: std::sync::OnceLock<(String, String)> = std::sync::OnceLock::new();
    SDLS.get_or_init(|| {
        let raw =
            subgraph_builder().finish().sdl_with_options(SDLExportOptions::new().federation().compose_directive());
        let decorated = cost::publish::decorate(&raw);
        (raw, decorated)
    })
}

/// How much deeper than the field depth limit a document may nest once
/// fragment spreads and inline fragments count as levels (async-graphql's
/// recursion check). Kept small: that check expands spreads.
pub const RECURSION_HEADROOM: usize = 8;

/// Who is asking, decided once per request from the `Authorization` header.
#[derive(Debug, Clone)]
pub enum Viewer {
    /// No token was sent.
    Anonymous,
    /// A token with a valid signature, not expired; whether its account
    /// still accepts it is checked against the account's record when a field
    /// first needs the viewer (`viewer_id`).
    User(Token),
    /// A token was sent but can't be trusted; any field that needs the viewer fails with this.
    Invalid(Error),
}

/// Per-request data: the viewer and fresh loaders.
///
/// Loaders are created per request so batches never mix users' requests and
/// nothing is cached across requests; see [`batch`] for how they batch.
pub struct RequestCtx {
    /// The store as this request sees it (see [`Store::per_request`]),
    /// shared with the loaders: one view, not a copy of its handles each.
    pub store: Arc<Store>,
    /// The authenticated viewer, if any.
    pub viewer: Viewer,
    /// Set by a successful `signUp` or `logIn`, so the rest of that response
    /// (e.g. `user { email }`) is resolved as the newly signed-in user.
    pub signed_in: std::sync::OnceLock<UserId>,
    /// The client's address, for per-IP rate limits.
    pub client_ip: Option<std::net::IpAddr>,
    /// The token check's answer, once a field has asked (see [`viewer_id`]):
    /// one check per request, and the account it read is the viewer, until
    /// the request writes ([`run_as`] forgets it).
    accepted: std::sync::Mutex<Option<Accepted>>,
    /// Users by id.
    pub users: Batcher<UserId, loader::ById<UserDoc>>,
    /// Posts by id.
    pub posts: Batcher<PostId, loader::ById<PostDoc>>,
    /// Comments by id.
    pub comments: Batcher<CommentId, loader::ById<CommentDoc>>,
    /// Pages of users related to a parent (followers, following, likers).
    pub user_pages: Batcher<loader::PageKey<UsersOf>, loader::PageLoader<UsersOf>>,
    /// Pages of posts per author.
    pub post_pages: Batcher<loader::PageKey<PostsOf>, loader::PageLoader<PostsOf>>,
    /// Pages of comments per post or author.
    pub comment_pages: Batcher<loader::PageKey<CommentsOf>, loader::PageLoader<CommentsOf>>,
    /// Per-parent counts read through an index (`totalCount` without a stored count).
    pub counts: Batcher<loader::CountKey, loader::Counts>,
}

impl RequestCtx {
    /// A context with new, empty loaders over a per-request view of `store`,
    /// recording batch sizes in `metrics` when given.
    pub fn new(viewer: Viewer, store: &Store, metrics: Option<&Arc<crate::metrics::Metrics>>) -> Self {
        let store = Arc::new(store.per_request());
        RequestCtx {
            viewer,
            signed_in: std::sync::OnceLock::new(),
            client_ip: None,
            accepted: std::sync::Mutex::new(None),
            users: Batcher::new(loader::ById::new(&store)).recording(metrics),
            posts: Batcher::new(loader::ById::new(&store)).recording(metrics),
            comments: Batcher::new(loader::ById::new(&store)).recording(metrics),
            user_pages: Batcher::new(loader::PageLoader::new(&store)).recording(metrics),
            post_pages: Batcher::new(loader::PageLoader::new(&store)).recording(metrics),
            comment_pages: Batcher::new(loader::PageLoader::new(&store)).recording(metrics),
            counts: Batcher::new(loader::Counts::new(&store)).recording(metrics),
            store,
        }
    }
}

/// Typed access to what resolvers need from the context, with no panics.
pub(crate) trait CtxExt {
    fn app(&self) -> Result<&AppState>;
    fn request(&self) -> Result<&RequestCtx>;
    fn store(&self) -> Result<&Store> {
        Ok(&self.request()?.store)
    }
    /// Most documents one cascade transaction may write (`--cascade-budget-docs`).
    fn cascade_budget(&self) -> Result<usize> {
        Ok(self.app()?.settings.store.cascade_budget_docs)
    }
}

impl CtxExt for Context<'_> {
    fn app(&self) -> Result<&AppState> {
        self.data::<AppState>().map_err(|_| Error::internal("AppState missing from schema data"))
    }
    fn request(&self) -> Result<&RequestCtx> {
        self.data::<RequestCtx>().map_err(|_| Error::internal("RequestCtx missing from request data"))
    }
}

/// The request's token and its account, if the account's record still
/// accepts the token ([`Token::accepted_by`]: not ended by a log-out or a
/// password change, account not deleted). Read through the request's users
/// loader, so the check is the viewer load every signed-in request makes
/// once, with no read of its own; nothing is cached across requests, so a
/// token ended on any process is refused here from the next request on.
/// An invalid token is an error; a refused one is as if none was sent.
async fn accepted(ctx: &Context<'_>) -> Result<Accepted> {
    let request = ctx.request()?;
    let token = match &request.viewer {
        Viewer::Anonymous => return Ok(None),
        Viewer::Invalid(err) => return Err(err.clone()),
        Viewer::User(token) => *token,
    };
    let lock = || request.accepted.lock().map_err(|_| Error::internal("viewer lock poisoned"));
    if let Some(known) = lock()?.as_ref() {
        return Ok(known.clone());
    }
    let user = request.users.load_one(token.user).await?;
    let known = user.filter(|u| token.accepted_by(u)).map(|u| (token, u));
    *lock()? = Some(known.clone());
    Ok(known)
}

/// A token its account accepts, with the account as the check read it.
type Accepted = Option<(Token, Arc<UserDoc>)>;

/// Forgets the token check's answer, so the next field that needs the
/// viewer checks again: after `logOut` or a password change, a later field
/// of the same request no longer counts the ended token.
pub(crate) fn forget_viewer(ctx: &Context<'_>) -> Result<()> {
    *ctx.request()?.accepted.lock().map_err(|_| Error::internal("viewer lock poisoned"))? = None;
    Ok(())
}

/// The signed-in viewer's account, `None` without an accepted token: as the
/// token check read it, so `viewer` costs no second read.
pub(crate) async fn viewer_doc(ctx: &Context<'_>) -> Result<Option<Arc<UserDoc>>> {
    match accepted(ctx).await? {
        Some((_, user)) => Ok(Some(user)),
        None => match ctx.request()?.signed_in.get() {
            Some(id) => ctx.request()?.users.load_one(*id).await,
            None => Ok(None),
        },
    }
}

/// What a field that needs a signed-in viewer answers without one.
fn sign_in_first() -> Error {
    Error::Unauthenticated("sign in first: send `Authorization: Bearer <token>`".into())
}

/// The viewer's id: `None` when no token was sent or the token was refused
/// (unless `signUp` or `logIn` signed someone in earlier in this request),
/// an error when the token was bad.
pub(crate) async fn viewer_id(ctx: &Context<'_>) -> Result<Option<UserId>> {
    match accepted(ctx).await? {
        Some((token, _)) => Ok(Some(token.user)),
        None => Ok(ctx.request()?.signed_in.get().copied()),
    }
}

/// The viewer's id, or `UNAUTHENTICATED`.
pub(crate) async fn require_viewer(ctx: &Context<'_>) -> Result<UserId> {
    viewer_id(ctx).await?.ok_or_else(sign_in_first)
}

/// The presented token, if its account accepts it, or `UNAUTHENTICATED`:
/// what `logOut` and `changePassword` act on.
pub(crate) async fn viewer_token(ctx: &Context<'_>) -> Result<Token> {
    Ok(accepted(ctx).await?.ok_or_else(sign_in_first)?.0)
}

/// The signed-in viewer's account, or `UNAUTHENTICATED`.
pub(crate) async fn load_viewer(ctx: &Context<'_>) -> Result<Arc<UserDoc>> {
    Ok(accepted(ctx).await?.ok_or_else(sign_in_first)?.1)
}

/// Runs the command `make(viewer, target)` in one transaction, where the
/// target is the document named by the `ID` argument `field`: the shape of
/// most mutations.
pub(crate) async fn as_viewer<C: Command, D>(
    ctx: &Context<'_>,
    field: &'static str,
    id: &ID,
    make: impl FnOnce(UserId, Id<D>) -> C,
) -> Result<C::Output> {
    let (me, target) = viewer_and_target(ctx, field, id).await?;
    run_as(ctx, me, make(me, target)).await
}

/// The signed-in viewer (or `UNAUTHENTICATED`) and the id in argument `field`.
async fn viewer_and_target<D>(ctx: &Context<'_>, field: &'static str, id: &ID) -> Result<(UserId, Id<D>)> {
    let me = require_viewer(ctx).await?;
    Ok((me, parse_id(field, id)?))
}

/// [`as_viewer`] for a read-only command: it runs in a read snapshot, in the
/// store's bounded pool, and never on the writer.
pub(crate) async fn read_as_viewer<C: ReadCommand, D>(
    ctx: &Context<'_>,
    field: &'static str,
    id: &ID,
    make: impl FnOnce(UserId, Id<D>) -> C,
) -> Result<C::Output> {
    let (me, target) = viewer_and_target(ctx, field, id).await?;
    ctx.store()?.read_only(make(me, target)).await
}

/// Runs `cmd` for the viewer `me`, charging what it writes against the
/// viewer's and the client address's write budgets first (see
/// [`Command::written_bytes`]; deletes are free).
pub(crate) async fn run_as<C: Command>(ctx: &Context<'_>, me: UserId, cmd: C) -> Result<C::Output> {
    if let Some(bytes) = cmd.written_bytes() {
        ctx.app()?.write_budget.charge(&me, ctx.request()?.client_ip, bytes)?;
    }
    let done = ctx.store()?.run(cmd).await;
    // The write may have changed the viewer's record, which the token check
    // keeps for the request: a later field that needs the viewer reads it again.
    forget_viewer(ctx)?;
    done
}

/// A referenced document that is gone. Requests read one snapshot, so this
/// means corruption (which `blogql check` reports) or a MongoDB server that
/// gave no snapshot time, where a concurrent delete can commit between two
/// reads of one request. The client gets `NOT_FOUND`, not an internal error.
pub(crate) fn vanished(kind: &str, id: impl std::fmt::Display) -> Error {
    tracing::info!(%kind, %id, "a referenced document was deleted while the request ran");
    Error::NotFound(format!("{kind} {id} was deleted while this request ran"))
}

/// Parses a GraphQL `ID` argument as the id of a `D`, naming the argument when it is not one.
pub fn parse_id<D>(field: &'static str, id: &ID) -> Result<Id<D>> {
    parse_any_id(field, id).map(Id::from_oid)
}

/// Parses a GraphQL `ID` argument that may name a document of any
/// collection (`node`), naming the argument when it is not an id.
pub fn parse_any_id(field: &'static str, id: &ID) -> Result<ObjectId> {
    ObjectId::parse_str(id.as_str())
        .map_err(|_| Error::bad_input(field, format!("{field} must be a 24-character hexadecimal id")))
}

/// Exposes an id as a GraphQL `ID`.
pub fn to_id(id: impl Into<ObjectId>) -> ID {
    // What `ObjectId::to_hex` writes, without building the string a
    // character at a time through an iterator: this runs for the `id` of
    // every item of every list.
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut hex = String::with_capacity(24);
    for byte in id.into().bytes() {
        hex.push(char::from(DIGITS[usize::from(byte >> 4)]));
        hex.push(char::from(DIGITS[usize::from(byte & 0xf)]));
    }
    ID(hex)
}

/// Narrows a store count to GraphQL's `Int`, saturating rather than wrapping.
pub fn to_int<N: TryInto<i32>>(n: N) -> i32 {
    n.try_into().unwrap_or(i32::MAX)
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    proptest! {
        /// An id is shown exactly as `ObjectId::to_hex` writes it, and parses back to itself.
        #[test]
        fn ids_show_as_hex(bytes in any::<[u8; 12]>()) {
            let id = ObjectId::from_bytes(bytes);
            prop_assert_eq!(&to_id(id).0, &id.to_hex());
            prop_assert_eq!(parse_any_id("id", &to_id(id)).ok(), Some(id));
        }
    }
}
