use std::fs::File;
use std::os::unix::fs::FileExt;

use proptest::prelude::*;

use super::frame::{self, Batch, SYNCED};
use super::*;

impl Redo {
    /// The active log's generation: it changes at each switch (test only).
    fn generation(&self) -> u64 {
        self.log.lock().map(|log| log.generation).unwrap_or(0)
    }

    /// Waits for the running checkpoint (test only).
    fn settle(&self) -> io::Result<()> {
        self.log()?.finish_checkpoint()
    }
}

fn open_rw(path: &Path) -> File {
    OpenOptions::new().read(true).write(true).create(true).truncate(false).open(path).expect("open")
}

/// Appends one frame of `batch` to `log` at `at`; returns where the next goes.
fn append(log: &File, at: u64, batch: &mut Batch, generation: u64, flags: u32) -> u64 {
    let frame = batch.seal(generation, flags);
    log.write_all_at(frame, at).expect("append");
    let next = at + frame.len() as u64;
    batch.clear();
    next
}

fn logs(dir: &Path) -> [File; 2] {
    let [a, b] = log_paths(&dir.join("s.redb"));
    [open_rw(&a), open_rw(&b)]
}

/// Both logs and a one-page store file in `dir`.
fn fresh(dir: &Path) -> ([File; 2], File) {
    let store = open_rw(&dir.join("s.redb"));
    store.set_len(4096).expect("len");
    (logs(dir), store)
}

/// A frame read back applies exactly the writes, runs of zeros and resizes that went in.
#[test]
fn a_frame_applies_what_was_recorded() {
    let dir = tempfile::tempdir().expect("dir");
    let [log, _] = logs(dir.path());
    let mut batch = Batch::new(1 << 16);
    let mut page = vec![7u8; 4096];
    page[100..].fill(0);
    batch.push_set_len(3 * 4096);
    batch.push_write(4096, &page);
    batch.push_write(10, b"head");
    batch.push_set_len(2 * 4096);
    append(&log, 0, &mut batch, 1, SYNCED);

    let frame = frame::read_frame(&log, 0, None).expect("read").expect("a whole frame");
    assert_eq!((frame.generation, frame.flags, frame.next), (1, SYNCED, 4096));
    assert!(frame.payload.len() < 300, "the page's zero tail is not logged: {} bytes", frame.payload.len());
    let store = open_rw(&dir.path().join("s.redb"));
    store.write_all_at(&[9u8; 3 * 4096], 0).expect("old content");
    frame::apply(&frame.payload, &store).expect("apply");
    let mut want = vec![9u8; 2 * 4096];
    want[10..14].copy_from_slice(b"head");
    want[4096..].copy_from_slice(&page);
    let mut got = vec![0u8; 2 * 4096];
    store.read_exact_at(&mut got, 0).expect("read");
    assert_eq!(store.metadata().expect("len").len(), 2 * 4096);
    assert!(got == want, "the store file holds the frame's writes");
}

/// A torn frame ends the log, and a frame after the last synced one is not replayed.
#[test]
fn recovery_stops_at_a_torn_frame_and_skips_unsynced_ones() {
    let dir = tempfile::tempdir().expect("dir");
    let (logs, store) = fresh(dir.path());
    let mut batch = Batch::new(1 << 16);
    batch.push_write(0, b"one");
    let at = append(&logs[0], 0, &mut batch, 3, SYNCED);
    batch.push_write(0, b"two");
    let torn = append(&logs[0], at, &mut batch, 3, SYNCED);
    logs[0].write_all_at(b"X", at + frame::HEADER as u64).expect("tear the second frame");
    batch.push_write(0, b"new");
    append(&logs[0], torn, &mut batch, 3, SYNCED);
    let recovered = frame::recover(&store, &logs).expect("recover");
    assert_eq!(recovered, frame::Recovered { frames: 1, next_generation: 5 });
    let mut got = [0u8; 3];
    store.read_exact_at(&mut got, 0).expect("read");
    assert_eq!(&got, b"one");

    // An unsynced frame (a full buffer's) counts only once a synced one follows it.
    let second = tempfile::tempdir().expect("dir");
    let (logs, store) = fresh(second.path());
    batch.push_write(0, b"one");
    let at = append(&logs[0], 0, &mut batch, 1, SYNCED);
    batch.push_write(0, b"two");
    append(&logs[0], at, &mut batch, 1, 0);
    assert_eq!(frame::recover(&store, &logs).expect("recover").frames, 1);
    store.read_exact_at(&mut got, 0).expect("read");
    assert_eq!(&got, b"one");
    assert_eq!(frame::recover(&store, &logs).expect("again").frames, 0, "recovery marks the logs replayed");
}

/// The older generation replays first, whichever file holds it, so the newer write wins.
#[test]
fn the_older_log_replays_first() {
    let dir = tempfile::tempdir().expect("dir");
    let (logs, store) = fresh(dir.path());
    let mut batch = Batch::new(1 << 16);
    batch.push_write(0, b"newer");
    append(&logs[0], 0, &mut batch, 8, SYNCED);
    batch.push_write(0, b"older");
    append(&logs[1], 0, &mut batch, 7, SYNCED);
    assert_eq!(frame::recover(&store, &logs).expect("recover"), frame::Recovered { frames: 2, next_generation: 10 });
    let mut got = [0u8; 5];
    store.read_exact_at(&mut got, 0).expect("read");
    assert_eq!(&got, b"newer");
}

/// Only one handle has a store's logs: a second open is refused as `WouldBlock`.
#[test]
fn a_second_handle_is_refused_while_the_first_has_the_logs() {
    let dir = tempfile::tempdir().expect("dir");
    let path = dir.path().join("s.redb");
    let first = Redo::open(&path, 1 << 20).expect("first");
    let second = Redo::open(&path, 1 << 20).expect_err("second");
    assert_eq!(second.kind(), io::ErrorKind::WouldBlock);
    drop(first);
    Redo::open(&path, 1 << 20).expect("free again once the first is gone");
}

/// A redb database over the redo log keeps what it committed through a drop
/// without a clean close, and through a clean close and reopen.
#[test]
fn a_database_over_the_log_keeps_its_commits() {
    let dir = tempfile::tempdir().expect("dir");
    let path = dir.path().join("s.redb");
    let table = redb::TableDefinition::<u64, &[u8]>::new("t");
    let db = redb::Database::builder().create_with_backend(Redo::open(&path, 64 << 10).expect("open")).expect("db");
    for i in 0..200u64 {
        let tx = db.begin_write().expect("tx");
        tx.open_table(table).expect("table").insert(i, vec![i as u8; 900].as_slice()).expect("insert");
        tx.commit().expect("commit");
    }
    drop(db);
    let db = redb::Database::builder().create_with_backend(Redo::open(&path, 64 << 10).expect("reopen")).expect("db");
    use redb::{ReadableDatabase, ReadableTableMetadata};
    assert_eq!(db.begin_read().expect("read").open_table(table).expect("table").len().expect("len"), 200);
}

#[derive(Debug, Clone)]
enum Op {
    Write {
        at: u16,
        len: u16,
        byte: u8,
    },
    SetLen {
        pages: u8,
    },
    Sync,
    /// A clean close and a reopen.
    Restart,
    /// A read, which must see every write so far.
    Read {
        at: u16,
        len: u16,
    },
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        6 => (any::<u16>(), 1u16..6000, any::<u8>()).prop_map(|(at, len, byte)| Op::Write { at, len, byte }),
        1 => (1u8..7).prop_map(|pages| Op::SetLen { pages }),
        2 => Just(Op::Sync),
        1 => Just(Op::Restart),
        3 => (any::<u16>(), 1u16..6000).prop_map(|(at, len)| Op::Read { at, len }),
    ]
}

/// Where an op's `at` and `len` fall in a file of `file_len` (not 0) bytes.
fn span(file_len: usize, at: u16, len: u16) -> (usize, usize) {
    let start = at as usize % file_len;
    (start, (start + len as usize).min(file_len))
}

/// A plain file's bytes, as the model the log must reproduce.
fn apply_model(file: &mut Vec<u8>, op: &Op) -> Option<(usize, usize, u8)> {
    match *op {
        Op::Write { at, len, byte } if !file.is_empty() => {
            let (start, end) = span(file.len(), at, len);
            file[start..end].fill(byte);
            Some((start, end, byte))
        }
        Op::SetLen { pages } => {
            file.resize(pages as usize * 1024, 0);
            None
        }
        _ => None,
    }
}

fn read_all(path: &Path) -> Vec<u8> {
    std::fs::read(path).expect("read the store file")
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    /// Whatever writes, resizes, syncs and restarts run, and however the logs switch:
    /// every read sees the bytes a plain file would hold then;
    /// losing every store-file write after the last checkpoint (a power cut)
    /// still recovers exactly what the last sync covered; and after a crash
    /// that keeps the page cache, each byte is either that or a value
    /// written after the last sync, as in a plain file.
    #[test]
    fn a_crash_recovers_what_the_last_sync_covered(ops in proptest::collection::vec(op(), 1..60), power_cut in any::<bool>()) {
        let dir = tempfile::tempdir().expect("dir");
        let path = dir.path().join("s.redb");
        let mut redo = Redo::open(&path, 16 << 10).expect("open");
        let (mut model, mut synced, mut checkpointed) = (Vec::new(), Vec::new(), Vec::new());
        let mut since_sync: Vec<Option<(usize, usize, u8)>> = Vec::new();
        let mut shrunk_since_sync = usize::MAX;
        for op in &ops {
            let written = apply_model(&mut model, op);
            match (op, written) {
                (Op::Write { .. }, Some((start, end, byte))) => {
                    redo.write(start as u64, &vec![byte; end - start]).expect("write");
                    since_sync.push(Some((start, end, byte)));
                }
                (Op::SetLen { .. }, _) => {
                    redo.set_len(model.len() as u64).expect("set_len");
                    shrunk_since_sync = shrunk_since_sync.min(model.len());
                    since_sync.push(None);
                }
                (Op::Restart, _) => {
                    redo.sync_data().expect("sync");
                    redo.settle().expect("checkpoint");
                    redo.close().expect("close");
                    drop(redo);
                    redo = Redo::open(&path, 16 << 10).expect("reopen");
                    (synced, checkpointed) = (model.clone(), model.clone());
                    since_sync.clear();
                    shrunk_since_sync = usize::MAX;
                }
                (Op::Sync, _) => {
                    let generation = redo.generation();
                    redo.sync_data().expect("sync");
                    synced = model.clone();
                    since_sync.clear();
                    shrunk_since_sync = usize::MAX;
                    if redo.generation() != generation {
                        checkpointed = synced.clone();
                    }
                }
                (Op::Read { at, len }, _) if !model.is_empty() => {
                    let (start, end) = span(model.len(), *at, *len);
                    let mut got = vec![0xEE; end - start];
                    redo.read(start as u64, &mut got).expect("read");
                    prop_assert!(got == model[start..end], "read {start}..{end} differs from the file's bytes");
                }
                _ => {}
            }
        }
        redo.settle().expect("the checkpoint");
        drop(redo);
        if power_cut {
            std::fs::write(&path, &checkpointed).expect("lose what followed the checkpoint");
        }
        drop(Redo::open(&path, 16 << 10).expect("recover"));
        let got = read_all(&path);
        if power_cut {
            prop_assert!(got == synced, "recovered {} bytes, the last sync covered {}", got.len(), synced.len());
        } else {
            let mut lens = vec![synced.len()];
            lens.extend(ops.iter().rev().take_while(|op| !matches!(op, Op::Sync | Op::Restart)).filter_map(|op| match op {
                Op::SetLen { pages } => Some(*pages as usize * 1024),
                _ => None,
            }));
            prop_assert!(lens.contains(&got.len()), "length {} not in {:?}", got.len(), lens);
            for (i, &b) in got.iter().enumerate() {
                let synced_byte = synced.get(i) == Some(&b);
                let regrown = b == 0 && (i >= shrunk_since_sync || i >= synced.len());
                let later = since_sync.iter().flatten().any(|&(s, e, v)| s <= i && i < e && v == b);
                prop_assert!(synced_byte || regrown || later, "byte {i} is {b}");
            }
        }
    }
}

/// A log an unclean stop left behind is replayed even when the next run
/// turns the log off, and then removed.
#[test]
fn a_log_left_behind_is_replayed_with_the_log_turned_off() {
    let dir = tempfile::tempdir().expect("dir");
    let path = dir.path().join("s.redb");
    let redo = Redo::open(&path, 1 << 20).expect("open");
    redo.set_len(4096).expect("len");
    redo.write(0, b"kept").expect("write");
    redo.sync_data().expect("sync");
    drop(redo);
    std::fs::write(&path, b"").expect("a power cut loses the store file's unsynced pages");
    replay_leftover(&path).expect("replay");
    assert_eq!(&read_all(&path)[..4], b"kept");
    assert!(log_paths(&path).iter().all(|p| !p.exists()), "the logs are removed");
    replay_leftover(&path).expect("nothing to do");
}

/// Frames an earlier run left deeper in a reused log file are never
/// replayed: a run after a clean close, then a crash, recovers its own writes.
#[test]
fn frames_of_an_earlier_run_are_never_replayed() {
    let dir = tempfile::tempdir().expect("dir");
    let path = dir.path().join("s.redb");
    let redo = Redo::open(&path, 1 << 20).expect("open");
    redo.set_len(4096).expect("len");
    for round in 0..3u8 {
        redo.write(0, &[b'A', round]).expect("write");
        redo.sync_data().expect("sync");
    }
    redo.close().expect("a clean close");
    drop(redo);

    // The second run's first frame lands where the first run's did, with the frames after it still there.
    let redo = Redo::open(&path, 1 << 20).expect("second run");
    redo.write(0, b"B!").expect("write");
    redo.sync_data().expect("sync");
    drop(redo);
    drop(Redo::open(&path, 1 << 20).expect("recover"));
    assert_eq!(&read_all(&path)[..2], b"B!", "a frame of the first run was replayed over the second's");
}

/// A switch leaves the log it moves to only once the store file holds every
/// page that log held: a backend that keeps pages back from the store file
/// (stop 44's experiment) must still have written them all by the next switch.
#[test]
fn a_reused_log_is_all_in_the_store_file() {
    let dir = tempfile::tempdir().expect("dir");
    let path = dir.path().join("s.redb");
    let redo = Redo::open(&path, 8 << 10).expect("open");
    redo.set_len(64 << 10).expect("len");
    let fill = |round: u8| {
        for i in 0..20u64 {
            redo.write((u64::from(round) * 20 + i) * 1024, &[round + 1; 512]).expect("write");
        }
        let generation = redo.generation();
        redo.sync_data().expect("sync");
        assert_ne!(redo.generation(), generation, "20 writes of 512 bytes fill an 8 KiB log");
    };
    fill(0);
    // A sync between the switches: a backend that writes held pages out a few per sync writes only some here.
    redo.write(63 << 10, &[9; 16]).expect("write");
    redo.sync_data().expect("sync");
    fill(1);
    redo.settle().expect("checkpoint");
    let file = read_all(&path);
    for i in 0..20 {
        assert_eq!(&file[i * 1024..i * 1024 + 512], &[1; 512][..], "round 0's page {i} is not in the store file");
    }
}
