//! Group commit's rollback: a failed job leaves nothing and the rest commit.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::sync::atomic::AtomicUsize;

use proptest::prelude::*;
use redb::{ReadableDatabase, ReadableTable, TableDefinition};

use super::*;
use crate::store::embedded::FileOptions;

const CELLS: TableDefinition<u32, u32> = TableDefinition::new("group_test_cells");

/// What a test job does after writing its cell.
#[derive(Debug, Clone, Copy)]
enum End {
    Succeed,
    Fail,
    /// Fails as a write on a full disk does (`SERVICE_UNAVAILABLE`).
    FailOnIo,
    Panic,
}

/// A writer thread over a fresh file, opened as the server opens it (redo log included).
fn writer() -> (tempfile::TempDir, Arc<Disk>, tokio::sync::mpsc::Sender<Job>) {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("group.redb");
    let options = FileOptions { cache_bytes: 1 << 20, ..FileOptions::default() };
    let db = crate::store::embedded::upgrade::open_or_upgrade(&path, options).expect("create");
    let disk = Arc::new(Disk::new(path, options, db));
    let jobs = start_writer(&disk, Arc::default(), Arc::default()).expect("writer");
    (dir, disk, jobs)
}

/// A job that blocks the writer thread (on its first run only) until
/// the returned sender is dropped, so what is sent meanwhile queues into
/// one group; it writes cell 0 and counts its runs.
fn gate(runs: Arc<AtomicUsize>) -> (Job, std::sync::mpsc::Sender<()>) {
    let (open, wait) = std::sync::mpsc::channel::<()>();
    let wait = Mutex::new(Some(wait));
    let (job, _answer) = queued(
        move |group: &mut Group| {
            if let Some(wait) = wait.lock().ok().and_then(|mut w| w.take()) {
                let _ = wait.recv();
            }
            runs.fetch_add(1, Ordering::SeqCst);
            group.tx()?.open_table(CELLS)?.insert(0, 0)?;
            Ok(())
        },
        |_| {},
    );
    (job, open)
}

/// A job that reads cell `key`, writes `value` to it, then ends as told;
/// its answer is what it read.
fn cell_job(key: u32, value: u32, end: End) -> (Job, tokio::sync::oneshot::Receiver<Result<Option<u32>>>) {
    queued(
        move |group: &mut Group| {
            let tx = group.tx()?;
            let mut cells = tx.open_table(CELLS)?;
            let seen = cells.get(key)?.map(|v| v.value());
            cells.insert(key, value)?;
            match end {
                End::Succeed => Ok(seen),
                End::Fail => Err(Error::internal("told to fail")),
                End::FailOnIo => Err(Error::unavailable("told to fail as on I/O")),
                End::Panic => panic!("told to panic"),
            }
        },
        |_| {},
    )
}

/// Queues `jobs` behind a gate, opens it, and returns their answers,
/// the committed cells, and how often the gate job ran.
async fn run_group(jobs: &[(u32, u32, End)]) -> (Vec<Result<Option<u32>>>, BTreeMap<u32, u32>, usize) {
    let (_dir, disk, writer) = writer();
    run_group_on(&disk, &writer, jobs).await
}

/// [`run_group`] on a given writer thread.
async fn run_group_on(
    disk: &Disk,
    writer: &tokio::sync::mpsc::Sender<Job>,
    jobs: &[(u32, u32, End)],
) -> (Vec<Result<Option<u32>>>, BTreeMap<u32, u32>, usize) {
    let runs = Arc::new(AtomicUsize::new(0));
    let (gate, open) = gate(Arc::clone(&runs));
    writer.send(gate).await.expect("send the gate");
    let mut answers = Vec::new();
    for &(key, value, end) in jobs {
        let (job, answer) = cell_job(key, value, end);
        writer.send(job).await.expect("send");
        answers.push(answer);
    }
    drop(open);
    let mut out = Vec::new();
    for answer in answers {
        out.push(answer.await.expect("answered"));
    }
    (out, cells(disk), runs.load(Ordering::SeqCst))
}

/// The committed cells but the gate's.
fn cells(disk: &Disk) -> BTreeMap<u32, u32> {
    let db = disk.db().expect("db");
    let read = db.begin_read().expect("read");
    let Ok(cells) = read.open_table(CELLS) else { return BTreeMap::new() };
    cells
        .iter()
        .expect("iter")
        .map(|e| e.map(|(k, v)| (k.value(), v.value())).expect("entry"))
        .filter(|(k, _)| *k != 0)
        .collect()
}

/// A job that fails or panics after writing leaves nothing, while the
/// job before it in the same group runs again and commits, and the jobs
/// after it see only committed writes.
#[tokio::test]
async fn a_failed_job_rolls_back_alone() {
    let (answers, state, gate_runs) =
        run_group(&[(1, 10, End::Succeed), (2, 20, End::Fail), (2, 21, End::Succeed), (3, 30, End::Panic)]).await;
    assert_eq!(answers[0].as_ref().ok(), Some(&None));
    assert!(answers[1].is_err());
    assert_eq!(answers[2].as_ref().ok(), Some(&None), "the failed job's write was seen");
    assert!(matches!(answers[3], Err(Error::Internal { .. })));
    assert_eq!(state, BTreeMap::from([(1, 10), (2, 21)]));
    assert_eq!(gate_runs, 2, "the gate succeeded before the failure, so it ran again");
}

/// A write that fails on I/O fails its whole group: the write before it is
/// answered `SERVICE_UNAVAILABLE` and nothing of the group commits; the
/// write after it is refused while the store is failing; once a probe
/// commits (after the recovery interval) writes are taken again.
#[tokio::test]
async fn an_io_failure_fails_the_whole_group_and_the_store_recovers() {
    let (_dir, disk, writer) = writer();
    let (answers, state, gate_runs) =
        run_group_on(&disk, &writer, &[(1, 10, End::Succeed), (2, 20, End::FailOnIo), (3, 30, End::Succeed)]).await;
    for (i, answer) in answers.iter().enumerate() {
        assert!(matches!(answer, Err(Error::Unavailable { .. })), "write {i}: {answer:?}");
    }
    assert!(disk.failing());
    assert_eq!(state, BTreeMap::new());
    assert_eq!(gate_runs, 1, "nothing runs again after an I/O failure");
    tokio::time::sleep(super::super::disk::RECOVERY_INTERVAL + std::time::Duration::from_millis(100)).await;
    let (job, answer) = cell_job(4, 40, End::Succeed);
    writer.send(job).await.expect("send");
    assert_eq!(answer.await.expect("answered").ok(), Some(None));
    assert!(!disk.failing());
    assert_eq!(cells(&disk), BTreeMap::from([(4, 40)]));
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]
    /// Any mix of succeeding and failing jobs queued together answers
    /// and commits exactly what running only the succeeding ones, one
    /// at a time, would.
    #[test]
    fn groups_commit_what_one_at_a_time_would(
        jobs in proptest::collection::vec((1u32..6, any::<u32>(), prop_oneof![4 => Just(End::Succeed), 1 => Just(End::Fail)]), 1..40)
    ) {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
        let (answers, state, _) = rt.block_on(run_group(&jobs));
        let mut model = BTreeMap::new();
        for (i, &(key, value, end)) in jobs.iter().enumerate() {
            match end {
                End::Succeed => {
                    prop_assert_eq!(answers[i].as_ref().ok(), Some(&model.get(&key).copied()), "job {}", i);
                    model.insert(key, value);
                }
                _ => prop_assert!(answers[i].is_err(), "job {}", i),
            }
        }
        prop_assert_eq!(state, model);
    }
}
