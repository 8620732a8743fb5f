//! Pagination across page boundaries: complete, ordered, no duplicates.

use serde_json::{Value, json};

use crate::helpers::{TestApp, data};

/// Walks a connection page by page via `after = endCursor`, returning node ids per page.
async fn walk(app: &TestApp, query: &str, mut vars: Value, path: &str, first: i64) -> Vec<Vec<String>> {
    let mut pages = Vec::new();
    let mut after: Option<String> = None;
    loop {
        vars["first"] = json!(first);
        vars["after"] = json!(after);
        let resp = app.graphql(query, vars.clone()).await;
        let conn = data(&resp).pointer(path).unwrap().clone();
        let ids: Vec<String> =
            conn["edges"].as_array().unwrap().iter().map(|e| e["node"]["id"].as_str().unwrap().to_owned()).collect();
        let cursors: Vec<&str> =
            conn["edges"].as_array().unwrap().iter().map(|e| e["cursor"].as_str().unwrap()).collect();
        assert_eq!(conn["pageInfo"]["endCursor"].as_str(), cursors.last().copied());
        assert_eq!(conn["pageInfo"]["hasPreviousPage"], json!(after.is_some()));
        pages.push(ids);
        if conn["pageInfo"]["hasNextPage"] != json!(true) {
            return pages;
        }
        after = conn["pageInfo"]["endCursor"].as_str().map(str::to_owned);
        assert!(pages.len() < 100, "pagination does not terminate");
    }
}

/// 25 posts in pages of 10 come back as 10, 10, 5, newest first, each exactly once.
#[tokio::test]
async fn posts_page_across_boundaries() {
    let app = TestApp::spawn().await;
    let (ann, ann_id) = app.sign_up("Ann").await;
    let mut created = Vec::new();
    for i in 0..25 {
        created.push(app.create_post(&ann, &format!("post {i}")).await);
    }
    created.reverse();

    let q = "query($first: Int, $after: String) { posts(first: $first, after: $after) { edges { cursor node { id } } pageInfo { hasNextPage hasPreviousPage endCursor } } }";
    let pages = walk(&app, q, json!({}), "/posts", 10).await;
    assert_eq!(pages.iter().map(Vec::len).collect::<Vec<_>>(), vec![10, 10, 5]);
    assert_eq!(pages.concat(), created);

    let q = "query($id: ID!, $first: Int, $after: String) { user(id: $id) { posts(first: $first, after: $after) { edges { cursor node { id } } pageInfo { hasNextPage hasPreviousPage endCursor } } } }";
    let pages = walk(&app, q, json!({ "id": ann_id }), "/user/posts", 7).await;
    assert_eq!(pages.iter().map(Vec::len).collect::<Vec<_>>(), vec![7, 7, 7, 4]);
    assert_eq!(pages.concat(), created);

    // A page size equal to the total: one page, no next page.
    let pages = walk(&app, q, json!({ "id": ann_id }), "/user/posts", 25).await;
    assert_eq!(pages.len(), 1);

    // Default page size is 20.
    let resp = app.graphql("{ posts { edges { node { id } } pageInfo { hasNextPage } } }", json!({})).await;
    assert_eq!(data(&resp)["posts"]["edges"].as_array().unwrap().len(), 20);
    assert_eq!(data(&resp)["posts"]["pageInfo"]["hasNextPage"], json!(true));
}

/// A cursor stays valid after the item it points at is deleted.
#[tokio::test]
async fn cursor_survives_deletion_of_its_item() {
    let app = TestApp::spawn().await;
    let (ann, _) = app.sign_up("Ann").await;
    let mut created = Vec::new();
    for i in 0..5 {
        created.push(app.create_post(&ann, &format!("post {i}")).await);
    }
    created.reverse();
    let q = "query($after: String) { posts(first: 2, after: $after) { edges { cursor node { id } } pageInfo { endCursor } } }";
    let first = app.graphql(q, json!({ "after": null })).await;
    let end = data(&first)["posts"]["pageInfo"]["endCursor"].as_str().unwrap().to_owned();
    app.ok_as(&ann, "mutation($id: ID!) { deletePost(id: $id) { deletedPostId } }", json!({ "id": created[1] })).await;
    let next = app.graphql(q, json!({ "after": end })).await;
    let ids: Vec<&str> =
        data(&next)["posts"]["edges"].as_array().unwrap().iter().map(|e| e["node"]["id"].as_str().unwrap()).collect();
    assert_eq!(ids, vec![created[2].as_str(), created[3].as_str()]);
}

/// Comments, followers and likers page across boundaries too.
#[tokio::test]
async fn relations_page_across_boundaries() {
    let app = TestApp::spawn().await;
    let (ann, ann_id) = app.sign_up("Ann").await;
    let post = app.create_post(&ann, "popular").await;
    let mut fans = Vec::new();
    for i in 0..7 {
        let (token, id) = app.sign_up(&format!("Fan{i}")).await;
        app.comment(&token, &post, &format!("comment {i}")).await;
        app.ok_as(&token, "mutation($p: ID!) { likePost(postId: $p) { id } }", json!({ "p": post })).await;
        app.ok_as(&token, "mutation($u: ID!) { followUser(userId: $u) { followee { id } } }", json!({ "u": ann_id }))
            .await;
        fans.push(id);
    }
    fans.reverse();

    let page_info = "pageInfo { hasNextPage hasPreviousPage endCursor }";
    let q = format!(
        "query($id: ID!, $first: Int, $after: String) {{ post(id: $id) {{ comments(first: $first, after: $after) {{ edges {{ cursor node {{ id }} }} {page_info} }} }} }}"
    );
    let pages = walk(&app, &q, json!({ "id": post }), "/post/comments", 3).await;
    assert_eq!(pages.iter().map(Vec::len).collect::<Vec<_>>(), vec![3, 3, 1]);
    let snap = app.snapshot().await;
    let mut expected: Vec<_> = snap.comments.iter().collect();
    expected.sort_by_key(|c| std::cmp::Reverse((c.created_at, c.id)));
    assert_eq!(pages.concat(), expected.iter().map(|c| c.id.to_hex()).collect::<Vec<_>>());

    let q = format!(
        "query($id: ID!, $first: Int, $after: String) {{ post(id: $id) {{ likedBy(first: $first, after: $after) {{ edges {{ cursor node {{ id }} }} {page_info} }} }} }}"
    );
    let pages = walk(&app, &q, json!({ "id": post }), "/post/likedBy", 3).await;
    assert_eq!(pages.concat(), fans, "likers newest account first");

    let q = format!(
        "query($id: ID!, $first: Int, $after: String) {{ user(id: $id) {{ followers(first: $first, after: $after) {{ edges {{ cursor node {{ id }} }} {page_info} }} }} }}"
    );
    let pages = walk(&app, &q, json!({ "id": ann_id }), "/user/followers", 2).await;
    assert_eq!(pages.iter().map(Vec::len).collect::<Vec<_>>(), vec![2, 2, 2, 1]);
    assert_eq!(pages.concat(), fans);

    let q = format!(
        "query($first: Int, $after: String) {{ users(first: $first, after: $after) {{ edges {{ cursor node {{ id }} }} {page_info} }} }}"
    );
    let pages = walk(&app, &q, json!({}), "/users", 3).await;
    let mut all = fans.clone();
    all.push(ann_id);
    assert_eq!(pages.concat(), all);
}

/// Every item id of one page, and its `pageInfo`.
fn page_of(conn: &Value) -> (Vec<String>, Value) {
    let ids = conn["edges"].as_array().unwrap().iter().map(|e| e["node"]["id"].as_str().unwrap().to_owned()).collect();
    (ids, conn["pageInfo"].clone())
}

/// Walks a connection from its end via `last`/`before = startCursor`; returns the whole list in listing order.
async fn walk_back(app: &TestApp, query: &str, mut vars: Value, path: &str, last: i64) -> Vec<String> {
    let mut pages: Vec<Vec<String>> = Vec::new();
    let mut before: Option<String> = None;
    loop {
        vars["last"] = json!(last);
        vars["before"] = json!(before);
        vars["first"] = Value::Null;
        vars["after"] = Value::Null;
        let resp = app.graphql(query, vars.clone()).await;
        let conn = data(&resp).pointer(path).unwrap().clone();
        let (ids, info) = page_of(&conn);
        let cursors: Vec<&str> =
            conn["edges"].as_array().unwrap().iter().map(|e| e["cursor"].as_str().unwrap()).collect();
        assert_eq!(info["startCursor"].as_str(), cursors.first().copied(), "startCursor is the first edge's");
        assert_eq!(info["hasNextPage"], json!(before.is_some()));
        assert!(ids.len() <= last as usize);
        pages.push(ids);
        if info["hasPreviousPage"] != json!(true) {
            break;
        }
        before = info["startCursor"].as_str().map(str::to_owned);
        assert!(pages.len() < 100, "backward pagination does not terminate");
    }
    pages.reverse();
    pages.concat()
}

/// Every connection pages backward with `last`/`before` to exactly the list
/// forward paging gives, with `hasPreviousPage` exact, and reports the list's
/// `totalCount` on every page.
#[tokio::test]
async fn every_connection_pages_backward_and_counts() {
    let app = TestApp::spawn().await;
    let (ann, ann_id) = app.sign_up("Ann").await;
    let first_post = app.create_post(&ann, "first").await;
    let post = app.create_post(&ann, "popular").await;
    for i in 0..6 {
        let (token, _) = app.sign_up(&format!("Fan{i}")).await;
        app.comment(&token, &post, &format!("comment {i}")).await;
        app.comment(&token, &first_post, "also").await;
        app.create_post(&token, &format!("fan post {i}")).await;
        app.ok_as(&token, "mutation($p: ID!) { likePost(postId: $p) { id } }", json!({ "p": post })).await;
        app.ok_as(&token, "mutation($u: ID!) { followUser(userId: $u) { followee { id } } }", json!({ "u": ann_id }))
            .await;
        app.ok_as(
            &ann,
            "mutation($u: ID!) { followUser(userId: $u) { followee { id } } }",
            json!({ "u": id_of(&app, &token).await }),
        )
        .await;
    }
    for i in 0..5 {
        app.comment(&ann, &post, &format!("ann {i}")).await;
        app.create_post(&ann, &format!("more {i}")).await;
    }
    let page = "edges { cursor node { id } } pageInfo { hasNextPage hasPreviousPage startCursor endCursor } totalCount";
    let args = "first: $first, after: $after, last: $last, before: $before";
    let vars = "$first: Int, $after: String, $last: Int, $before: String";
    let cases = [
        (format!("query({vars}) {{ posts({args}) {{ {page} }} }}"), json!({}), "/posts"),
        (format!("query({vars}) {{ users({args}) {{ {page} }} }}"), json!({}), "/users"),
        (
            format!("query($id: ID, {vars}) {{ posts(authorId: $id, {args}) {{ {page} }} }}"),
            json!({ "id": ann_id }),
            "/posts",
        ),
        (
            format!("query($id: ID!, {vars}) {{ user(id: $id) {{ posts({args}) {{ {page} }} }} }}"),
            json!({ "id": ann_id }),
            "/user/posts",
        ),
        (
            format!("query($id: ID!, {vars}) {{ user(id: $id) {{ comments({args}) {{ {page} }} }} }}"),
            json!({ "id": ann_id }),
            "/user/comments",
        ),
        (
            format!("query($id: ID!, {vars}) {{ user(id: $id) {{ followers({args}) {{ {page} }} }} }}"),
            json!({ "id": ann_id }),
            "/user/followers",
        ),
        (
            format!("query($id: ID!, {vars}) {{ user(id: $id) {{ following({args}) {{ {page} }} }} }}"),
            json!({ "id": ann_id }),
            "/user/following",
        ),
        (
            format!("query($id: ID!, {vars}) {{ post(id: $id) {{ comments({args}) {{ {page} }} }} }}"),
            json!({ "id": post }),
            "/post/comments",
        ),
        (
            format!("query($id: ID!, {vars}) {{ post(id: $id) {{ likedBy({args}) {{ {page} }} }} }}"),
            json!({ "id": post }),
            "/post/likedBy",
        ),
    ];
    let mut saw_counts = Vec::new();
    for (q, vars, path) in cases {
        let forward = walk(&app, &q, vars.clone(), path, 4).await.concat();
        assert!(forward.len() >= 5, "{path}: the fixture should span pages");
        let backward = walk_back(&app, &q, vars.clone(), path, 4).await;
        assert_eq!(backward, forward, "{path}: backward pages differ from forward pages");
        let mut one = vars.clone();
        one["first"] = json!(1);
        let resp = app.graphql(&q, one).await;
        let total = data(&resp).pointer(path).unwrap()["totalCount"].as_i64().unwrap();
        assert_eq!(total as usize, forward.len(), "{path}: totalCount");
        saw_counts.push(total);

        // `after` and `before` together bound the page from both sides, in either direction.
        let (lo, hi) = (1, forward.len() - 2);
        let cursor_at = |i: usize| {
            let app = &app;
            let (q, vars) = (q.clone(), vars.clone());
            async move {
                let mut v = vars;
                v["first"] = json!(i + 1);
                let resp = app.graphql(&q, v).await;
                data(&resp).pointer(path).unwrap()["edges"][i]["cursor"].as_str().unwrap().to_owned()
            }
        };
        let (after, before) = (cursor_at(lo).await, cursor_at(hi).await);
        for dir in ["first", "last"] {
            let mut v = vars.clone();
            v[dir] = json!(100);
            v["after"] = json!(after);
            v["before"] = json!(before);
            let resp = app.graphql(&q, v).await;
            let (ids, _) = page_of(data(&resp).pointer(path).unwrap());
            assert_eq!(ids, forward[lo + 1..hi].to_vec(), "{path}: {dir} between two cursors");
        }
    }
    assert!(saw_counts.iter().all(|n| *n > 0));
}

/// The id of the account behind `token`.
async fn id_of(app: &TestApp, token: &str) -> String {
    let me = app.ok_as(token, "{ viewer { id } }", json!({})).await;
    me["viewer"]["id"].as_str().unwrap().to_owned()
}

/// `first` with `last`, an out-of-range `last` and a foreign `before` are each `BAD_USER_INPUT` on that argument.
#[tokio::test]
async fn backward_arguments_are_validated() {
    let app = TestApp::spawn().await;
    for (args, field) in
        [("first: 1, last: 1", "last"), ("last: 101", "last"), ("last: -1", "last"), ("before: \"nope\"", "before")]
    {
        let resp = app.graphql(&format!("{{ posts({args}) {{ totalCount }} }}"), json!({})).await;
        crate::helpers::expect_error(&resp, "BAD_USER_INPUT");
        assert_eq!(resp["errors"][0]["extensions"]["field"], json!(field), "{args}: {resp}");
    }
}
