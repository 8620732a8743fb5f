//! Per-request read snapshots. The embedded store always pins them; on
//! MongoDB the same check is `mongo::tier3_a_request_reads_one_snapshot_until_it_writes`,
//! because mongoeco has no snapshot reads at a cluster time.

use blogql::cmd::{CreatePost, DeleteUser, SignUp};
use blogql::domain::{Email, Page, PostBody, Title, UserName};
use blogql::store::Store;
use blogql::store::embedded::EmbeddedStore;

/// A request's reads share one snapshot, so a page and the authors loaded for
/// it agree even if the author is deleted in between; the request's own write
/// renews the snapshot.
#[tokio::test]
async fn a_request_reads_one_snapshot_until_it_writes() {
    let dir = tempfile::tempdir().unwrap();
    check_request_snapshot(EmbeddedStore::open(dir.path()).unwrap().into()).await;
}

fn sign_up(name: &str) -> SignUp {
    let email = format!("{}@x.io", name.to_lowercase());
    SignUp { name: UserName::parse(name).unwrap(), email: Email::parse(&email).unwrap(), password_hash: "h".into() }
}

fn post(author: blogql::model::UserId) -> CreatePost {
    CreatePost { author, title: Title::parse("t").unwrap(), body: PostBody::parse("b").unwrap() }
}

/// The snapshot check, on any (empty) store.
pub async fn check_request_snapshot(store: Store) {
    let ann = store.run(sign_up("Ann")).await.unwrap().id;
    let bob = store.run(sign_up("Bob")).await.unwrap().id;
    store.run(post(ann)).await.unwrap();

    let request = store.per_request();
    let page = request.posts_page(&Page::newest(10)).await.unwrap().docs;
    assert_eq!(page.len(), 1);
    // Another request deletes the author after our page was read.
    store.run(DeleteUser { actor: ann, id: ann, expected_plan: None, budget: usize::MAX }).await.unwrap();
    assert!(store.users_by_ids(&[ann]).await.unwrap().is_empty(), "the deletion committed");
    assert_eq!(request.users_by_ids(&[page[0].author]).await.unwrap().len(), 1, "this request still sees its snapshot");

    // After the request writes, it reads the present.
    request.run(post(bob)).await.unwrap();
    assert!(request.users_by_ids(&[ann]).await.unwrap().is_empty());
    assert_eq!(request.posts_page(&Page::newest(10)).await.unwrap().docs.len(), 1);
}
