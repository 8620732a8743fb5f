//! Plain list selections (`graphql::plain`) answer byte for byte what the
//! executor does, and are taken for the selections they cover.

use serde_json::json;

use crate::helpers::{TestApp, data, str_at};

/// Fields of each type that `plain` answers, and some it leaves to the executor.
const POST_FIELDS: &[&str] =
    &["id", "cursor", "title", "body", "createdAt", "updatedAt", "commentCount", "likeCount", "__typename"];
const USER_FIELDS: &[&str] =
    &["id", "name", "bio", "createdAt", "postCount", "followerCount", "followingCount", "__typename"];
const COMMENT_FIELDS: &[&str] = &["id", "cursor", "body", "createdAt", "__typename"];

/// A small deterministic generator of queries, so a failure names a
/// reproducible query. With `wrap`, every `node` selection is wrapped in an
/// inline fragment (`node { ... { title } }`): the same query to the
/// executor, but not plain, so every list goes through the executor.
struct Picks {
    state: u64,
    wrap: bool,
}

impl Picks {
    fn next(&mut self, below: usize) -> usize {
        self.state = self.state.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1_442_695_040_888_963_407);
        ((self.state >> 33) as usize) % below
    }

    /// One to four of `fields`, in a random order, some under an alias.
    fn scalars(&mut self, fields: &[&str]) -> String {
        let mut out = Vec::new();
        for _ in 0..1 + self.next(4) {
            let field = fields[self.next(fields.len())];
            if out.iter().any(|f: &String| f.ends_with(field)) {
                continue;
            }
            out.push(if self.next(4) == 0 { format!("a{}: {field}", out.len()) } else { field.to_string() });
        }
        out.join(" ")
    }

    fn user(&mut self) -> String {
        format!("{{ {} }}", self.scalars(USER_FIELDS))
    }

    fn comment(&mut self) -> String {
        let author = if self.next(2) == 0 { format!(" author {}", self.user()) } else { String::new() };
        format!("{{ {}{author} }}", self.scalars(COMMENT_FIELDS))
    }

    /// A connection selection: edges (with a cursor sometimes) over `node`, and
    /// sometimes `pageInfo` and `totalCount` beside them.
    fn connection(&mut self, node: String) -> String {
        let cursor = ["", " cursor", " __typename"][self.next(3)];
        let extra = ["", " totalCount", " pageInfo { hasNextPage endCursor }"][self.next(3)];
        let node = if self.wrap { format!("{{ ... {node} }}") } else { node };
        format!("{{ edges {{{cursor} node {node} }}{extra} }}")
    }

    fn post(&mut self) -> String {
        let mut out = self.scalars(POST_FIELDS);
        if self.next(2) == 0 {
            out += &format!(" author {}", self.user());
        }
        if self.next(3) == 0 {
            let node = self.comment();
            out += &format!(" comments(first: {}) {}", 1 + self.next(3), self.connection(node));
        }
        format!("{{ {out} }}")
    }

    /// A whole query over one of the lists.
    fn query(&mut self) -> String {
        match self.next(4) {
            0 => {
                let node = self.user();
                format!("{{ users(first: 4) {} }}", self.connection(node))
            }
            1 => {
                let node = self.post();
                let posts = self.connection(node);
                format!("{{ users(first: 3) {{ edges {{ node {{ name posts(first: 3) {posts} }} }} }} }}")
            }
            _ => {
                let node = self.post();
                format!("{{ posts(first: {}) {} }}", 2 + self.next(6), self.connection(node))
            }
        }
    }
}

/// Four users (one with a bio), posts with comments, likes and a follow.
async fn seed(app: &TestApp) {
    let mut users = Vec::new();
    for name in ["Ann", "Bob", "Cy", "Dee"] {
        users.push(app.sign_up(name).await);
    }
    app.graphql_as(&users[0].0, "mutation { updateProfile(input: {bio: \"hi \\\"there\\\"\"}) { id } }", json!({}))
        .await;
    app.graphql_as(
        &users[1].0,
        "mutation($u: ID!) { followUser(userId: $u) { __typename } }",
        json!({"u": users[0].1}),
    )
    .await;
    for i in 0..6 {
        let post = app.create_post(&users[i % 4].0, &format!("post {i} ünï \u{1F600}")).await;
        for j in 0..i % 3 {
            app.comment(&users[(i + j + 1) % 4].0, &post, &format!("comment {j} on {i}")).await;
        }
        if i % 2 == 0 {
            let liked = app
                .graphql_as(&users[3].0, "mutation($p: ID!) { likePost(postId: $p) { id } }", json!({"p": post}))
                .await;
            assert_eq!(str_at(data(&liked), "/likePost/id"), post);
        }
    }
}

/// The raw body the server answers `query` with.
async fn raw(app: &TestApp, query: &str) -> String {
    raw_with(app, query, json!({})).await
}

/// The raw body the server answers `query` with, given `variables`.
async fn raw_with(app: &TestApp, query: &str, variables: serde_json::Value) -> String {
    let body = json!({ "query": query, "variables": variables });
    let resp = app.client.post(app.url("/graphql")).json(&body).send().await.expect("request");
    resp.text().await.expect("body")
}

/// Sixty generated list selections (scalars, aliases, authors loaded ahead,
/// nested comment pages, cursors, `__typename`) answer the same bytes plainly
/// as through the executor, and the plain path answers lists in each.
#[tokio::test]
async fn plain_lists_answer_what_the_executor_does() {
    let app = TestApp::spawn().await;
    seed(&app).await;
    for seed in 0..60 {
        let query = Picks { state: seed, wrap: false }.query();
        let plain_before = lists(&app, "plain").await;
        let plain = raw(&app, &query).await;
        assert!(plain.contains("\"data\":{") && !plain.contains("\"errors\""), "{query}: {plain}");
        assert!(lists(&app, "plain").await > plain_before, "no list of {query} was answered plainly");
        let wrapped = Picks { state: seed, wrap: true }.query();
        let (plain_before, executor_before) = (lists(&app, "plain").await, lists(&app, "executor").await);
        let executed = raw(&app, &wrapped).await;
        assert_eq!(lists(&app, "plain").await, plain_before, "{wrapped} was answered plainly");
        assert!(lists(&app, "executor").await > executor_before, "{wrapped} did not reach the executor");
        assert_eq!(plain, executed, "{query}");
    }
}

/// A flat list with authors is answered plainly at every level: no list of
/// it reaches the executor.
#[tokio::test]
async fn a_list_with_its_authors_is_plain_throughout() {
    let app = TestApp::spawn().await;
    seed(&app).await;
    let (plain_before, executor_before) = (lists(&app, "plain").await, lists(&app, "executor").await);
    let answer = raw(&app, "{ posts(first: 5) { edges { cursor node { id title author { name } } } } }").await;
    assert!(answer.contains("\"author\":{\"name\":"), "{answer}");
    assert_eq!(lists(&app, "plain").await, plain_before + 1);
    assert_eq!(lists(&app, "executor").await, executor_before);
}

/// Posts with their comment pages (loaded ahead by the posts list) are one
/// plain list, with the page's size from a literal or a sent variable, and
/// answer what the executor does; a variable left to its default is the
/// executor's to read, so that posts list goes through it.
#[tokio::test]
async fn comment_pages_loaded_ahead_are_plain() {
    let app = TestApp::spawn().await;
    seed(&app).await;
    let deep = |first: &str, wrap: bool| {
        let node = "{ body author { name postCount } }";
        let node = if wrap { format!("{{ ... {node} }}") } else { node.to_string() };
        format!(
            "query{} {{ posts(first: 6) {{ edges {{ node {{ title comments(first: {first}) \
             {{ totalCount pageInfo {{ hasNextPage hasPreviousPage startCursor endCursor }} \
             edges {{ cursor node {node} }} }} }} }} }} }}",
            if first == "$n" { "($n: Int = 1)" } else { "" }
        )
    };
    for (first, variables, plain_lists) in [("2", json!({}), 1), ("$n", json!({"n": 2}), 1), ("$n", json!({}), 0)] {
        let (plain_before, executor_before) = (lists(&app, "plain").await, lists(&app, "executor").await);
        let plain = raw_with(&app, &deep(first, false), variables.clone()).await;
        assert!(plain.contains("\"comments\":{\"totalCount\":") && !plain.contains("\"errors\""), "{plain}");
        if plain_lists == 1 {
            assert_eq!(lists(&app, "plain").await, plain_before + 1, "{first} {variables}");
            assert_eq!(lists(&app, "executor").await, executor_before, "{first} {variables}");
        } else {
            assert!(lists(&app, "executor").await > executor_before, "{first} {variables}");
        }
        assert_eq!(plain, raw_with(&app, &deep(first, true), variables.clone()).await, "{first} {variables}");
    }
}

/// What `plain` leaves to the executor (fragments, a key selected twice,
/// fields that need the viewer, arguments or a load) goes through it.
#[tokio::test]
async fn what_is_not_plain_goes_through_the_executor() {
    let app = TestApp::spawn().await;
    seed(&app).await;
    for node in [
        "{ ... on Post { title } }",
        "{ ...P }",
        "{ title title }",
        "{ author { email } }",
        "{ viewerHasLiked }",
        "{ likedBy(first: 2) { totalCount } }",
    ] {
        let fragment = if node.contains("...P") { " fragment P on Post { title author { name } }" } else { "" };
        let query = format!("{{ posts(first: 4) {{ edges {{ node {node} }} }} }}{fragment}");
        let (plain_before, executor_before) = (lists(&app, "plain").await, lists(&app, "executor").await);
        let answer = raw(&app, &query).await;
        assert!(answer.contains("\"data\":{\"posts\""), "{query}: {answer}");
        assert_eq!(lists(&app, "plain").await, plain_before, "{query} was answered plainly");
        assert_eq!(lists(&app, "executor").await, executor_before + 1, "{query}");
    }
}

/// How many edge lists were answered by `path` (`plain` or `executor`).
async fn lists(app: &TestApp, path: &str) -> i64 {
    app.metric(&format!("blogql_edge_lists_total{{path=\"{path}\"}}")).await
}
