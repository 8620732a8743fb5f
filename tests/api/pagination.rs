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
