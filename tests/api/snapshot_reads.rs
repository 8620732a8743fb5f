//! Per-request read snapshots. The embedded store always pins them; on
//! MongoDB the same check is `mongo::tier3_a_request_reads_one_snapshot_until_it_writes`,
//! because mongoeco has no snapshot reads at a cluster time.

use std::sync::Arc;

use blogql::cascade;
use blogql::model::PageQuery;
use blogql::store::embedded::EmbeddedStore;
use blogql::store::{DynStore, transact};

/// A request's reads share one snapshot, so a page and the authors loaded for
/// it agree even if the author is deleted in between; the request's own write
/// renews the snapshot.
#[tokio::test]
async fn a_request_reads_one_snapshot_until_it_writes() {
    let dir = tempfile::tempdir().unwrap();
    check_request_snapshot(Arc::new(EmbeddedStore::open(dir.path()).unwrap())).await;
}

/// The snapshot check, on any (empty) store.
pub async fn check_request_snapshot(store: DynStore) {
    let ann = transact(store.as_ref(), |tx| Box::pin(cascade::sign_up(tx, "Ann".into(), "a@x.io".into(), "h".into())))
        .await
        .unwrap();
    let bob = transact(store.as_ref(), |tx| Box::pin(cascade::sign_up(tx, "Bob".into(), "b@x.io".into(), "h".into())))
        .await
        .unwrap();
    let (ann_id, bob_id) = (ann.id, bob.id);
    transact(store.as_ref(), move |tx| Box::pin(cascade::create_post(tx, ann_id, "t".into(), "b".into())))
        .await
        .unwrap();

    let request = DynStore::clone(&store).per_request();
    let page = request.posts_page(&PageQuery { first: 10, after: None }).await.unwrap();
    assert_eq!(page.len(), 1);
    // Another request deletes the author after our page was read.
    transact(store.as_ref(), move |tx| Box::pin(cascade::delete_user(tx, ann_id, ann_id))).await.unwrap();
    assert!(store.users_by_ids(&[ann_id]).await.unwrap().is_empty(), "the deletion committed");
    assert_eq!(request.users_by_ids(&[page[0].author]).await.unwrap().len(), 1, "this request still sees its snapshot");

    // After the request writes, it reads the present.
    transact(request.as_ref(), move |tx| Box::pin(cascade::create_post(tx, bob_id, "t".into(), "b".into())))
        .await
        .unwrap();
    assert!(request.users_by_ids(&[ann_id]).await.unwrap().is_empty());
    assert_eq!(request.posts_page(&PageQuery { first: 10, after: None }).await.unwrap().len(), 1);
}
