//! Atomicity: a command that fails at any write leaves the store exactly as it was.

use blogql::cmd::{Command, CreateComment, CreatePost, DeletePost, DeleteUser};
use blogql::domain::{CommentBody, PostBody, Title};
use blogql::error::Error;
use blogql::model::{Id, PostId, UserId};
use serde_json::json;

use crate::faults::FailAt;
use crate::helpers::TestApp;

/// Builds a user with posts, comments both ways, likes and follows; returns Ann's id and her first post.
async fn populated(app: &TestApp) -> (UserId, PostId) {
    let (ann, ann_id) = app.sign_up("Ann").await;
    let (bob, bob_id) = app.sign_up("Bob").await;
    let p1 = app.create_post(&ann, "ann 1").await;
    app.create_post(&ann, "ann 2").await;
    let q1 = app.create_post(&bob, "bob 1").await;
    app.comment(&bob, &p1, "bob on ann").await;
    app.comment(&ann, &q1, "ann on bob").await;
    app.ok_as(&ann, "mutation($p: ID!) { likePost(postId: $p) { id } }", json!({ "p": q1 })).await;
    app.ok_as(&bob, "mutation($p: ID!) { likePost(postId: $p) { id } }", json!({ "p": p1 })).await;
    app.ok_as(&ann, "mutation($u: ID!) { followUser(userId: $u) { followee { id } } }", json!({ "u": bob_id })).await;
    app.ok_as(&bob, "mutation($u: ID!) { followUser(userId: $u) { followee { id } } }", json!({ "u": ann_id })).await;
    (oid(&ann_id), oid(&p1))
}

fn oid<D>(hex: &str) -> Id<D> {
    Id::parse(hex).expect("an id")
}

/// Fails `cmd` at each of its writes in turn, checking that each failure is an
/// internal error that left the store unchanged; returns how many writes it has.
async fn fail_each_write<C: Command + Clone>(app: &TestApp, cmd: &C) -> usize {
    let before = app.snapshot().await;
    for write in 1.. {
        match app.store.run(FailAt { write, cmd: cmd.clone() }).await {
            Ok(_) => return write - 1,
            Err(err) => {
                assert!(matches!(err, Error::Internal { .. }), "{} at write {write}: {err:?}", C::NAME);
                assert_eq!(
                    app.snapshot().await,
                    before,
                    "{} changed the store after failing at write {write}",
                    C::NAME
                );
            }
        }
        assert!(write < 50, "{} never succeeded", C::NAME);
    }
    unreachable!("the loop returns")
}

/// deleteUser failing at each of its seven writes rolls back completely each
/// time; unarmed, it then deletes exactly what it should.
#[tokio::test]
async fn delete_user_is_all_or_nothing_at_every_step() {
    let app = TestApp::spawn().await;
    let (ann, _) = populated(&app).await;
    let cmd = DeleteUser { actor: ann, id: ann, expected_plan: None, budget: usize::MAX };
    let before = app.snapshot().await;
    // The run past the last write committed; check what it removed.
    assert_eq!(fail_each_write(&app, &cmd).await, 7, "deleteUser's seven writes were each failed once");
    let after = app.snapshot().await;
    assert_ne!(after, before);
    assert!(after.users.iter().all(|u| u.id != ann));
    assert_eq!((after.posts.len(), after.comments.len()), (1, 0));
    app.assert_consistent().await;
}

/// A staged deleteUser writes two documents whatever its fan-out (the
/// tombstone, the job); failing either leaves the store as it was and
/// publishes no job to the readers' hidden set.
#[tokio::test]
async fn a_staged_delete_user_writes_two_documents_all_or_nothing() {
    let app = TestApp::spawn_with(|s| s.store.reap_deletions = false).await;
    let (ann, _) = populated(&app).await;
    let cmd = DeleteUser { actor: ann, id: ann, expected_plan: None, budget: 1 };
    assert_eq!(fail_each_write(&app, &cmd).await, 2, "replace user (the tombstone), insert job");
    assert_eq!(app.store.hidden().current().map(|s| s.jobs().count()), Some(1), "only the committed job");
    assert_eq!(app.snapshot().await.jobs.len(), 1);
    app.assert_consistent().await;
}

/// deletePost, createComment and createPost roll back completely when any of their writes fails.
#[tokio::test]
async fn post_and_comment_writes_are_all_or_nothing() {
    let app = TestApp::spawn().await;
    let (ann, p1) = populated(&app).await;
    let body = CommentBody::parse("x").expect("body");
    let comment = CreateComment { author: ann, post: p1, body };
    // Touch the post's author, touch the commenter, insert, count.
    assert_eq!(fail_each_write(&app, &comment).await, 4);
    let post =
        CreatePost { author: ann, title: Title::parse("t").expect("title"), body: PostBody::parse("b").expect("b") };
    assert_eq!(fail_each_write(&app, &post).await, 2);
    assert_eq!(
        fail_each_write(&app, &DeletePost { actor: ann, id: p1, expected_plan: None, budget: usize::MAX }).await,
        3
    );
    app.assert_consistent().await;
}
