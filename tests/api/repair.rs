//! `blogql check --repair`: damage made underneath the rules (as older code
//! sharing the database could) is listed, then fixed in budget-sized
//! transactions, and the store checks clean.

use blogql::cmd::Command;
use blogql::error::Result;
use blogql::model::{CommentDoc, PostDoc};
use blogql::model::{Id, PostId, UserId};
use blogql::store::Tx;
use bson::DateTime;
use serde_json::json;

use crate::helpers::{StoreHome, TestApp, data};

/// Writes every kind of damage straight through the transaction handle,
/// skipping the commands' rules.
struct Corrupt {
    ann: UserId,
    bob: UserId,
    post: PostId,
}

impl Command for Corrupt {
    type Output = ();
    const NAME: &'static str = "corrupt";

    async fn apply<T: Tx>(&self, tx: &mut T) -> Result<()> {
        let now = DateTime::now();
        let gone = UserId::new();
        let orphan = PostDoc {
            id: PostId::new(),
            title: "orphan".into(),
            body: String::new(),
            author: gone,
            liked_by: vec![],
            comment_count: 1,
            created_at: now,
            updated_at: now,
            deleting: None,
        };
        tx.insert(&orphan).await?;
        let comment = |post, author| CommentDoc { id: Id::new(), body: "c".into(), post, author, created_at: now };
        tx.insert(&comment(orphan.id, self.bob)).await?;
        tx.insert(&comment(PostId::new(), self.bob)).await?;
        tx.insert(&comment(self.post, gone)).await?;
        if let Some(mut post) = tx.post(self.post).await? {
            post.liked_by.extend([gone, self.bob, self.bob]);
            post.comment_count += 5;
            tx.replace(&post).await?;
        }
        if let Some(mut ann) = tx.user(self.ann).await? {
            ann.posts.push(PostId::new());
            ann.following.push(gone);
            ann.followers.push(self.bob); // one-sided: Bob does not follow Ann
            tx.replace(&ann).await?;
        }
        Ok(())
    }
}

/// Ann and Bob with a clean post, comment and like, then every kind of damage.
async fn damaged(app: &TestApp) -> (String, String, String) {
    let (ann, ann_id) = app.sign_up("Ann").await;
    let (bob, bob_id) = app.sign_up("Bob").await;
    let post = app.create_post(&ann, "kept").await;
    let comment = app.comment(&bob, &post, "kept too").await;
    app.ok_as(&ann, "mutation($p: ID!) { likePost(postId: $p) { id } }", json!({ "p": post })).await;
    app.assert_consistent().await;
    let (ann_oid, bob_oid, post_oid) = (Id::parse(&ann_id), Id::parse(&bob_id), Id::parse(&post));
    let ids = ann_oid.zip(bob_oid).zip(post_oid).expect("ids");
    app.store.run(Corrupt { ann: ids.0.0, bob: ids.0.1, post: ids.1 }).await.unwrap();
    (ann_id, post, comment)
}

/// The plan lists each damaged document once; applying it in transactions of
/// two documents leaves a store that checks clean, keeps every valid document,
/// and a second run finds nothing to do. Runs on both backends.
#[tokio::test]
async fn repair_fixes_damage_in_budget_sized_transactions() {
    let app = TestApp::spawn().await;
    let (ann_id, post, comment) = damaged(&app).await;
    let snap = app.snapshot().await;
    assert!(!blogql::check::violations(&snap).is_empty());
    let fixes = blogql::repair::plan(&snap);
    let listed: Vec<String> = fixes.iter().map(ToString::to_string).collect();
    // 3 bad comments, 1 orphan post, the damaged post, Ann.
    assert_eq!(fixes.len(), 6, "{listed:#?}");
    assert!(listed.iter().any(|f| f.starts_with("delete post") && f.contains("is missing")), "{listed:#?}");
    assert!(listed.iter().any(|f| f.starts_with(&format!("rewrite post {post}"))), "{listed:#?}");
    assert!(listed.iter().any(|f| f.starts_with(&format!("rewrite user {ann_id}"))), "{listed:#?}");

    let before = app.store.transactions().committed;
    let changed = blogql::repair::apply(&app.store, &fixes, 2).await.unwrap();
    assert_eq!(changed, 6);
    assert_eq!(app.store.transactions().committed - before, 3, "6 fixes in transactions of at most 2");
    app.assert_consistent().await;

    let after = app.snapshot().await;
    assert!(after.comments.iter().any(|c| c.id.to_hex() == comment), "the valid comment survives");
    let kept = after.posts.iter().find(|p| p.id.to_hex() == post).expect("the valid post survives");
    assert_eq!(
        (kept.comment_count, kept.liked_by.len()),
        (1, 2),
        "recounted; Ann and Bob once each, the missing liker gone"
    );
    assert_eq!(after.posts.len(), 1);
    assert!(blogql::repair::plan(&after).is_empty());
    assert_eq!(blogql::repair::apply(&app.store, &fixes, 2).await.unwrap(), 0, "applying again changes nothing");
    let resp = app.graphql("query($id: ID!) { post(id: $id) { commentCount likeCount } }", json!({ "id": post })).await;
    assert_eq!(data(&resp)["post"], json!({ "commentCount": 1, "likeCount": 2 }));
}

/// The command line: `check --repair` lists and changes nothing (exit 1);
/// `--apply` repairs and re-checks (exit 0). The binary opens the store the
/// test damaged, on whichever backend the suite runs.
#[tokio::test]
async fn check_repair_command_line() {
    let home = StoreHome::fresh();
    let app = TestApp::spawn_in(home, None).await;
    damaged(&app).await;
    let home = app.stop().await;
    let run = |extra: &[&str]| {
        std::process::Command::new(env!("CARGO_BIN_EXE_blogql"))
            .arg("check")
            .arg("--data-dir")
            .arg(home.path())
            .args(extra)
            .env_remove("MONGODB_URI")
            .envs(home.binary_env())
            .env("RUST_LOG", "off")
            .output()
            .unwrap()
    };
    let dry = run(&["--repair"]);
    let out = String::from_utf8_lossy(&dry.stdout);
    assert!(!dry.status.success());
    assert!(out.contains("repair: 6 document(s) to change") && out.contains("--apply"), "{out}");
    let again = run(&["--repair"]);
    assert_eq!(String::from_utf8_lossy(&again.stdout), out, "a dry run changes nothing");

    let applied = run(&["--repair", "--apply", "--cascade-budget-docs", "4"]);
    let out = String::from_utf8_lossy(&applied.stdout);
    assert!(applied.status.success(), "{out}");
    assert!(
        out.contains("changed 6 document(s) in transactions of at most 4")
            && out.contains("re-checked: 0 violation(s)"),
        "{out}"
    );
    assert!(run(&[]).status.success(), "plain check passes afterwards");
}
