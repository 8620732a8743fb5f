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
/// reproducible query. Each `node` selection ends with `__typename`: with
/// `force`, as a second `node` selection, which the executor merges into the
/// first and the plain path leaves to it; else in a fragment (see [`twins`]).
struct Picks {
    state: u64,
    force: bool,
    /// The named fragments the query spreads, appended to it.
    fragments: Vec<String>,
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

    /// `fields` of an object of type `ty` as selected, or wrapped in a
    /// fragment of one of the kinds clients write (inline, with or without a
    /// type condition, on the `Node` interface, or named), sometimes with
    /// one of them selected outside it too.
    fn fragment(&mut self, ty: &str, fields: String) -> String {
        let first = fields.split(' ').next().filter(|key| !key.ends_with(':'));
        let again = match first {
            Some(key) if self.next(3) == 0 => format!("{key} "),
            _ => String::new(),
        };
        let wrapped = match self.next(6) {
            0 => format!("... on {ty} {{ {fields} }}"),
            1 => format!("... {{ {fields} }}"),
            2 => format!("... on Node {{ id }} {fields}"),
            3 => {
                let name = format!("F{}", self.fragments.len());
                self.fragments.push(format!("fragment {name} on {ty} {{ {fields} }}"));
                format!("...{name}")
            }
            _ => return fields,
        };
        format!("{again}{wrapped}")
    }

    fn user(&mut self) -> String {
        let fields = self.scalars(USER_FIELDS);
        format!("{{ {} }}", self.fragment("User", fields))
    }

    fn comment(&mut self) -> String {
        let author = if self.next(2) == 0 { format!(" author {}", self.user()) } else { String::new() };
        let fields = self.scalars(COMMENT_FIELDS) + &author;
        format!("{{ {} }}", self.fragment("Comment", fields))
    }

    /// A connection selection: edges (with a cursor sometimes) over `node`, and
    /// sometimes `pageInfo` and `totalCount` beside them.
    fn connection(&mut self, node: String) -> String {
        let cursor = ["", " cursor", " __typename"][self.next(3)];
        let extra = ["", " totalCount", " pageInfo { hasNextPage endCursor }"][self.next(3)];
        let node = twins(&node)[usize::from(self.force)].clone();
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
        format!("{{ {} }}", self.fragment("Post", out))
    }

    /// A whole query over one of the lists, with the fragments it spreads.
    fn query(&mut self) -> String {
        let query = self.operation();
        [query].into_iter().chain(self.fragments.drain(..)).collect::<Vec<_>>().join(" ")
    }

    fn operation(&mut self) -> String {
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

/// Two selections for `node { sel }` with the same answer: `{ sel ... {
/// __typename } }`, which is plain if `sel` is, and `{ sel } node { __typename
/// }`, which the executor merges into the same object (a key selected again
/// keeps its first place) and the plain path leaves to the executor, since
/// `node`, which has a sub-selection, is selected twice. Both keep each
/// field selected once in the query's look-ahead, so the same pages are
/// loaded ahead and every field is ready at once, in selection order.
fn twins(sel: &str) -> [String; 2] {
    let inner = sel.trim_end().strip_suffix('}').expect("a selection set");
    [format!("{inner} ... {{ __typename }} }}"), format!("{sel} node {{ __typename }}")]
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

/// Eighty generated list selections (scalars, aliases, authors loaded ahead,
/// nested comment pages, cursors, `__typename`, fragments of every kind, keys
/// selected twice) answer the same bytes plainly as through the executor,
/// and the plain path answers lists in each.
#[tokio::test]
async fn plain_lists_answer_what_the_executor_does() {
    let app = TestApp::spawn().await;
    seed(&app).await;
    for seed in 0..80 {
        let query = Picks { state: seed, force: false, fragments: Vec::new() }.query();
        let plain_before = lists(&app, "plain").await;
        let plain = raw(&app, &query).await;
        assert!(plain.contains("\"data\":{") && !plain.contains("\"errors\""), "{query}: {plain}");
        assert!(lists(&app, "plain").await > plain_before, "no list of {query} was answered plainly");
        let forced = Picks { state: seed, force: true, fragments: Vec::new() }.query();
        let (plain_before, executor_before) = (lists(&app, "plain").await, lists(&app, "executor").await);
        let executed = raw(&app, &forced).await;
        assert_eq!(lists(&app, "plain").await, plain_before, "{forced} was answered plainly");
        assert!(lists(&app, "executor").await > executor_before, "{forced} did not reach the executor");
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
    let deep = |first: &str, force: bool| {
        let node = twins("{ body author { name postCount } }")[usize::from(force)].clone();
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

/// The fragments Apollo and Relay clients write (inline, named, nested, on
/// the `Node` interface, without a type condition, on an edge, repeating a
/// key selected beside them) keep a list plain, and it answers what the
/// executor does.
#[tokio::test]
async fn fragments_keep_a_list_plain() {
    let app = TestApp::spawn().await;
    seed(&app).await;
    let frags = "fragment P on Post { title author { ...U } } fragment U on User { name ... on Node { id } }";
    for (edge, node, fragments) in [
        ("", "{ ... on Post { id title } }", ""),
        ("", "{ id ...P }", frags),
        ("", "{ id ... on Node { id } __typename }", ""),
        ("", "{ title ... { title body } }", ""),
        ("... on PostEdge { cursor } ", "{ id }", ""),
        ("", "{ ...P title }", frags),
    ] {
        let [node, forced] = twins(node);
        let query = |node: &str| format!("{{ posts(first: 4) {{ edges {{ {edge}node {node} }} }} }} {fragments}");
        let (plain_before, executor_before) = (lists(&app, "plain").await, lists(&app, "executor").await);
        let plain = raw(&app, &query(&node)).await;
        assert!(plain.contains("\"data\":{\"posts\"") && !plain.contains("\"errors\""), "{node}: {plain}");
        assert_eq!(lists(&app, "plain").await, plain_before + 1, "{node} was not answered plainly");
        assert_eq!(lists(&app, "executor").await, executor_before, "{node}");
        assert_eq!(plain, raw(&app, &query(&forced)).await, "{node}");
    }
}

/// What `plain` leaves to the executor (a key with a sub-selection selected
/// twice, fields that need the viewer, arguments or a load, also inside a
/// fragment) goes through it.
#[tokio::test]
async fn what_is_not_plain_goes_through_the_executor() {
    let app = TestApp::spawn().await;
    seed(&app).await;
    for node in [
        "{ author { name } ... on Post { author { id } } }",
        "{ ...P }",
        "{ author { name } author { id } }",
        "{ author { email } }",
        "{ viewerHasLiked }",
        "{ likedBy(first: 2) { totalCount } }",
    ] {
        let fragment = if node.contains("...P") { " fragment P on Post { title viewerHasLiked }" } else { "" };
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
