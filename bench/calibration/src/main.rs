//! The calibration server for `bench/perf.sh`: the same three query shapes as
//! blogql (`posts`, `author`, `comments`, `postCount`) over in-memory maps,
//! every field resolved directly (no loader, no store, no limits), on the
//! same async-graphql, axum and tokio, built with the same profile. Its
//! req/s is what the framework alone costs on this machine.
//!
//! It also answers the write mix's three mutations (`createPost`,
//! `createComment`, `likePost`) on the same maps behind one lock, with no
//! disk, no auth (every write is user 0's) and no limits: the rate a server
//! that stores nothing durably reaches on this stack, which bounds what any
//! durable write path on it can reach.
//!
//! Usage: `calibration 127.0.0.1:PORT` (100 users, 1,000 posts, 2,000 comments).

use std::collections::{HashMap, HashSet};
use std::sync::Mutex;

/// The same allocator as blogql, so the ratio compares code, not allocators.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

use async_graphql::connection::{Connection, Edge, EmptyFields};
use async_graphql::{Context, EmptySubscription, ID, InputObject, Object, Schema};
use async_graphql_axum::GraphQL;
use axum::Router;
use axum::routing::post_service;

struct Data {
    users: HashMap<u32, UserRow>,
    posts: Vec<PostRow>,
    comments_by_post: HashMap<u32, Vec<CommentRow>>,
}

#[derive(Clone)]
struct UserRow {
    id: u32,
    name: String,
    post_count: i32,
}

#[derive(Clone)]
struct PostRow {
    id: u32,
    title: String,
    body: String,
    author: u32,
}

#[derive(Clone)]
struct CommentRow {
    id: u32,
    body: String,
    author: u32,
}

static DATA: std::sync::OnceLock<Data> = std::sync::OnceLock::new();

/// What the mutations write: kept apart from the read maps, so the read
/// shapes cost exactly what they did before writes existed.
#[derive(Default)]
struct Written {
    next_id: u32,
    posts: HashMap<u32, PostRow>,
    comments: HashMap<u32, Vec<CommentRow>>,
    likes: HashMap<u32, HashSet<u32>>,
}

static WRITTEN: std::sync::LazyLock<Mutex<Written>> =
    std::sync::LazyLock::new(|| Mutex::new(Written { next_id: 1_000_000, ..Written::default() }));

fn data(_ctx: &Context<'_>) -> &'static Data {
    DATA.get_or_init(seed)
}

struct User(UserRow);

#[Object]
impl User {
    async fn id(&self) -> ID {
        ID(format!("{:024x}", self.0.id))
    }
    async fn name(&self) -> &str {
        &self.0.name
    }
    async fn post_count(&self) -> i32 {
        self.0.post_count
    }
}

struct Post(PostRow);

#[Object]
impl Post {
    async fn id(&self) -> ID {
        ID(format!("{:024x}", self.0.id))
    }
    async fn title(&self) -> &str {
        &self.0.title
    }
    async fn body(&self) -> &str {
        &self.0.body
    }
    async fn author(&self, ctx: &Context<'_>) -> Option<User> {
        data(ctx).users.get(&self.0.author).cloned().map(User)
    }
    async fn comments(&self, ctx: &Context<'_>, first: Option<i32>) -> Connection<String, Comment, EmptyFields, EmptyFields> {
        let rows = data(ctx).comments_by_post.get(&self.0.id).cloned().unwrap_or_default();
        page(rows.into_iter().map(Comment).collect(), first, |c| c.0.id)
    }
}

struct Comment(CommentRow);

#[Object]
impl Comment {
    async fn id(&self) -> ID {
        ID(format!("{:024x}", self.0.id))
    }
    async fn body(&self) -> &str {
        &self.0.body
    }
    async fn author(&self, ctx: &Context<'_>) -> Option<User> {
        data(ctx).users.get(&self.0.author).cloned().map(User)
    }
}

fn page<T: async_graphql::OutputType>(
    mut items: Vec<T>,
    first: Option<i32>,
    id: impl Fn(&T) -> u32,
) -> Connection<String, T, EmptyFields, EmptyFields> {
    let first = first.unwrap_or(20).clamp(0, 100) as usize;
    let more = items.len() > first;
    items.truncate(first);
    let mut conn = Connection::new(false, more);
    conn.edges.extend(items.into_iter().map(|t| Edge::new(format!("{:x}", id(&t)), t)));
    conn
}

struct Query;

#[derive(InputObject)]
struct CreatePostInput {
    title: String,
    body: String,
}

#[derive(InputObject)]
struct CreateCommentInput {
    post_id: ID,
    body: String,
}

/// The post an id names, among the seeded ones and those written since.
fn post_exists(written: &Written, id: &ID) -> async_graphql::Result<u32> {
    let n = u32::from_str_radix(id, 16).map_err(|_| "invalid post id")?;
    if (n as usize) < DATA.get().map_or(0, |d| d.posts.len()) || written.posts.contains_key(&n) {
        Ok(n)
    } else {
        Err("no such post".into())
    }
}

struct Mutation;

#[Object]
impl Mutation {
    async fn create_post(&self, input: CreatePostInput) -> async_graphql::Result<Post> {
        let mut w = WRITTEN.lock().map_err(|_| "poisoned")?;
        w.next_id += 1;
        let row = PostRow { id: w.next_id, title: input.title, body: input.body, author: 0 };
        w.posts.insert(row.id, row.clone());
        Ok(Post(row))
    }
    async fn create_comment(&self, input: CreateCommentInput) -> async_graphql::Result<Comment> {
        let mut w = WRITTEN.lock().map_err(|_| "poisoned")?;
        let post = post_exists(&w, &input.post_id)?;
        w.next_id += 1;
        let row = CommentRow { id: w.next_id, body: input.body, author: 0 };
        w.comments.entry(post).or_default().push(row.clone());
        Ok(Comment(row))
    }
    async fn like_post(&self, post_id: ID) -> async_graphql::Result<Post> {
        let mut w = WRITTEN.lock().map_err(|_| "poisoned")?;
        let post = post_exists(&w, &post_id)?;
        w.likes.entry(post).or_default().insert(0);
        Ok(Post(PostRow { id: post, title: String::new(), body: String::new(), author: 0 }))
    }
}

#[Object]
impl Query {
    async fn posts(&self, ctx: &Context<'_>, first: Option<i32>) -> Connection<String, Post, EmptyFields, EmptyFields> {
        let rows = data(ctx).posts.clone();
        page(rows.into_iter().map(Post).collect(), first, |p| p.0.id)
    }
}

fn seed() -> Data {
    let users: HashMap<u32, UserRow> =
        (0..100).map(|i| (i, UserRow { id: i, name: format!("Seed {i}"), post_count: 10 })).collect();
    let posts: Vec<PostRow> = (0..1000)
        .rev()
        .map(|i| PostRow { id: i, title: format!("Post {i}"), body: format!("Body of post {i}"), author: i % 100 })
        .collect();
    let mut comments_by_post: HashMap<u32, Vec<CommentRow>> = HashMap::new();
    for c in 0..2000u32 {
        let post = c / 2;
        comments_by_post.entry(post).or_default().push(CommentRow {
            id: 10_000 + c,
            body: "Seeded comment".into(),
            author: (post % 100 + 1 + c % 2) % 100,
        });
    }
    Data { users, posts, comments_by_post }
}

#[tokio::main]
async fn main() {
    let bind = std::env::args().nth(1).unwrap_or_else(|| "127.0.0.1:18090".into());
    DATA.get_or_init(seed);
    let schema = Schema::build(Query, Mutation, EmptySubscription).finish();
    let app = Router::new().route("/graphql", post_service(GraphQL::new(schema)));
    let listener = tokio::net::TcpListener::bind(&bind).await.expect("bind");
    axum::serve(listener, app).await.expect("serve");
}
