//! A full disk under the embedded store: writes are refused with
//! `SERVICE_UNAVAILABLE` (nothing half done), `/readyz` says not ready, and
//! the same process takes writes again once space is back.
//!
//! The store lives on a small tmpfs mounted for the test, so this needs root
//! (CI runs as root). Without it the test says so loudly and fails under CI.

use std::io::Write;
use std::path::Path;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::helpers::{StoreHome, TEST_SECRET, TestApp, data, error_code};

const CREATE: &str = "mutation($i: CreatePostInput!) { createPost(input: $i) { id } }";

/// A tmpfs mounted on a temp dir for the test's life.
struct Tmpfs(tempfile::TempDir);

impl Tmpfs {
    fn mount(mib: u32) -> Option<Tmpfs> {
        let dir = tempfile::tempdir().expect("temp dir");
        let size = format!("size={mib}m");
        let status = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", &size, "tmpfs"])
            .arg(dir.path())
            .stderr(std::process::Stdio::null())
            .status();
        matches!(status, Ok(s) if s.success()).then_some(Tmpfs(dir))
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount").arg("-l").arg(self.0.path()).status();
    }
}

/// Writes zeros into `path` until the filesystem refuses more.
fn fill(path: &Path) {
    let mut file = std::fs::File::create(path).expect("filler");
    let chunk = vec![0u8; 64 * 1024];
    while file.write_all(&chunk).is_ok() {}
    let _ = file.sync_all();
}

async fn ready(app: &TestApp) -> bool {
    let resp = app.client.get(app.url("/readyz")).send().await.expect("readyz");
    resp.status().is_success()
}

async fn create(app: &TestApp, token: &str, n: usize) -> Value {
    let body = "x".repeat(40_000);
    app.graphql_as(token, CREATE, json!({ "i": { "title": format!("post {n}"), "body": body } })).await
}

/// On a full disk writes answer SERVICE_UNAVAILABLE and never
/// INTERNAL_SERVER_ERROR, /readyz is not 200 while they do, reads go on,
/// and once space is back a write succeeds within 10 s in the same process.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_disk_refuses_writes_and_recovers_when_space_is_back() {
    let Some(tmpfs) = Tmpfs::mount(24) else {
        eprintln!(
            "!!!!! disk::a_full_disk_refuses_writes_and_recovers_when_space_is_back NOT RUN: mounting a tmpfs needs root !!!!!"
        );
        assert!(std::env::var_os("CI").is_none(), "CI runs as root and must run this test");
        return;
    };
    let store_dir = tempfile::Builder::new().tempdir_in(tmpfs.0.path()).expect("store dir");
    let filler = tmpfs.0.path().join("filler");
    let app = TestApp::spawn_in(StoreHome::embedded_in(store_dir), Some(TEST_SECRET)).await;
    let (token, _) = app.sign_up("Dee").await;
    let kept = crate::helpers::str_at(data(&create(&app, &token, 0).await), "/createPost/id");

    fill(&filler);
    // redb may still place a few writes in free pages inside its file.
    let mut refused = None;
    for n in 1..=200 {
        let resp = create(&app, &token, n).await;
        if resp.get("errors").is_some() {
            refused = Some(resp);
            break;
        }
    }
    let refused = refused.expect("some write on a full disk fails");
    assert_eq!(error_code(&refused), "SERVICE_UNAVAILABLE", "{refused}");
    assert!(refused["errors"][0]["extensions"]["retryAfterSeconds"].is_u64(), "{refused}");
    assert!(!refused.to_string().contains("space"), "no internal detail: {refused}");
    for _ in 0..3 {
        assert!(!ready(&app).await, "/readyz is not ready while writes fail");
        assert_eq!(error_code(&create(&app, &token, 999).await), "SERVICE_UNAVAILABLE");
        tokio::time::sleep(Duration::from_millis(400)).await;
    }
    let read = app.graphql(&format!("{{ post(id: \"{kept}\") {{ title }} }}"), json!({})).await;
    assert_eq!(read["data"]["post"]["title"], json!("post 0"), "reads go on: {read}");

    std::fs::remove_file(&filler).expect("free the space");
    let freed = Instant::now();
    let written = loop {
        let resp = create(&app, &token, 1000).await;
        if resp.get("errors").is_none() {
            break freed.elapsed();
        }
        assert_eq!(error_code(&resp), "SERVICE_UNAVAILABLE", "{resp}");
        assert!(freed.elapsed() < Duration::from_secs(10), "no write succeeded within 10 s of freeing space");
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    eprintln!("a write succeeded {written:?} after the space came back");
    assert!(ready(&app).await, "/readyz is ready again");
    app.assert_consistent().await;
    drop(app.stop().await);
    drop(tmpfs);
}
