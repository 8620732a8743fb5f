//! The redo log's frames on disk, and replaying them.
//!
//! A frame is what one `sync_data` (or one full buffer) appends: a 32-byte
//! header, then records, padded with zeros to 4 KiB so the next frame never
//! rewrites a page this one's sync made durable.
//!
//! - header: magic `u32`, flags `u32` (bit 0: the frame ends a sync), the
//!   log's generation `u64`, the payload's length `u64`, a CRC-32 of the
//!   generation, flags, length and payload `u32`, four reserved bytes;
//! - a record: kind `u8`, then two `u64`: a write's offset and length
//!   (followed by its bytes), a run of zeros' offset and length, or a
//!   resize's new length and zero. A write's trailing zeros are logged as a
//!   run of zeros: B-tree pages keep their free space at the end, so this
//!   leaves out some 40% of the bytes the write mix logs.
//!
//! All integers are little-endian. A frame counts only if its magic,
//! generation and checksum hold, so a torn append, or the previous use of a
//! reused log file, ends the scan.

use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;

/// Bytes before a frame's payload.
pub(super) const HEADER: usize = 32;
/// Frames start on this boundary.
pub(super) const ALIGN: u64 = 4096;
/// Flag: this frame's append was synced as a `sync_data`, so it and every
/// frame before it in the log are durable writes.
pub(super) const SYNCED: u32 = 1;

const MAGIC: u32 = 0x3144_5242; // "BRD1"
const WRITE: u8 = 1;
const SET_LEN: u8 = 2;
const ZEROS: u8 = 3;
const RECORD: usize = 17;

/// Records collected since the last append, with room for the header in
/// front. The frame starts on a 4 KiB boundary in memory, so it can go to a
/// log opened with `O_DIRECT` as it is.
pub(super) struct Batch {
    buf: Vec<u8>,
    /// Where the frame starts in `buf`.
    start: usize,
}

impl Batch {
    /// An empty batch with room for `capacity` bytes before it reallocates.
    pub(super) fn new(capacity: usize) -> Self {
        let mut buf = Vec::<u8>::with_capacity(capacity + ALIGN as usize);
        let start = buf.as_ptr().align_offset(ALIGN as usize);
        buf.resize(start + HEADER, 0);
        Batch { buf, start }
    }

    /// Whether no record was added since the last [`Batch::seal`].
    pub(super) fn is_empty(&self) -> bool {
        self.len() == HEADER
    }

    /// Bytes held, header included.
    pub(super) fn len(&self) -> usize {
        self.buf.len() - self.start
    }

    pub(super) fn push_write(&mut self, offset: u64, data: &[u8]) {
        let kept = nonzero_len(data);
        if kept > 0 {
            self.record(WRITE, offset, kept as u64);
            self.buf.extend_from_slice(&data[..kept]);
        }
        if kept < data.len() {
            self.record(ZEROS, offset + kept as u64, (data.len() - kept) as u64);
        }
    }

    pub(super) fn push_set_len(&mut self, len: u64) {
        self.record(SET_LEN, len, 0);
    }

    fn record(&mut self, kind: u8, a: u64, b: u64) {
        self.buf.push(kind);
        self.buf.extend_from_slice(&a.to_le_bytes());
        self.buf.extend_from_slice(&b.to_le_bytes());
    }

    /// The frame to append: header filled in, zero padding added, aligned
    /// in memory (a batch that outgrew its allocation is moved once).
    pub(super) fn seal(&mut self, generation: u64, flags: u32) -> &[u8] {
        if self.buf[self.start..].as_ptr().align_offset(ALIGN as usize) != 0 {
            let mut moved = Batch::new(self.buf.len() - self.start);
            moved.buf.extend_from_slice(&self.buf[self.start + HEADER..]);
            *self = moved;
        }
        let frame = &mut self.buf[self.start..];
        let payload_len = (frame.len() - HEADER) as u64;
        let crc = checksum(generation, flags, payload_len, &frame[HEADER..]);
        frame[0..4].copy_from_slice(&MAGIC.to_le_bytes());
        frame[4..8].copy_from_slice(&flags.to_le_bytes());
        frame[8..16].copy_from_slice(&generation.to_le_bytes());
        frame[16..24].copy_from_slice(&payload_len.to_le_bytes());
        frame[24..28].copy_from_slice(&crc.to_le_bytes());
        let padded = self.start + padded((self.buf.len() - self.start) as u64) as usize;
        self.buf.resize(padded, 0);
        &self.buf[self.start..]
    }

    /// Empties the batch after its frame was appended (keeping the allocation).
    pub(super) fn clear(&mut self) {
        self.buf.truncate(self.start + HEADER);
        self.buf[self.start..].fill(0);
    }
}

/// The length of `data` without its trailing zeros.
fn nonzero_len(data: &[u8]) -> usize {
    let mut end = data.len();
    while end >= 16 && data[end - 16..end] == [0u8; 16] {
        end -= 16;
    }
    while end > 0 && data[end - 1] == 0 {
        end -= 1;
    }
    end
}

fn padded(len: u64) -> u64 {
    len.div_ceil(ALIGN) * ALIGN
}

fn checksum(generation: u64, flags: u32, payload_len: u64, payload: &[u8]) -> u32 {
    let mut hasher = crc32fast::Hasher::new();
    hasher.update(&generation.to_le_bytes());
    hasher.update(&flags.to_le_bytes());
    hasher.update(&payload_len.to_le_bytes());
    hasher.update(payload);
    hasher.finalize()
}

fn u64_at(bytes: &[u8], at: usize) -> u64 {
    let mut word = [0u8; 8];
    word.copy_from_slice(&bytes[at..at + 8]);
    u64::from_le_bytes(word)
}

fn u32_at(bytes: &[u8], at: usize) -> u32 {
    let mut word = [0u8; 4];
    word.copy_from_slice(&bytes[at..at + 4]);
    u32::from_le_bytes(word)
}

/// One valid frame read back.
pub(super) struct Frame {
    pub(super) generation: u64,
    pub(super) flags: u32,
    pub(super) payload: Vec<u8>,
    /// Where the next frame would start.
    pub(super) next: u64,
}

/// The frame at `at` in `log`, if one is there whole (and of `generation`,
/// when given); `None` ends the log.
pub(super) fn read_frame(log: &File, at: u64, generation: Option<u64>) -> io::Result<Option<Frame>> {
    let size = log.metadata()?.len();
    if at + HEADER as u64 > size {
        return Ok(None);
    }
    let mut header = [0u8; HEADER];
    log.read_exact_at(&mut header, at)?;
    let (flags, frame_generation, payload_len) = (u32_at(&header, 4), u64_at(&header, 8), u64_at(&header, 16));
    if u32_at(&header, 0) != MAGIC
        || generation.is_some_and(|g| g != frame_generation)
        || payload_len > size - at - HEADER as u64
    {
        return Ok(None);
    }
    let mut payload = vec![0u8; payload_len as usize];
    log.read_exact_at(&mut payload, at + HEADER as u64)?;
    if checksum(frame_generation, flags, payload_len, &payload) != u32_at(&header, 24) {
        return Ok(None);
    }
    let next = at + padded(HEADER as u64 + payload_len);
    Ok(Some(Frame { generation: frame_generation, flags, payload, next }))
}

/// Applies a frame's records to the store file, in order.
pub(super) fn apply(payload: &[u8], store: &File) -> io::Result<()> {
    let corrupt = || io::Error::new(io::ErrorKind::InvalidData, "a redo log record runs past its frame");
    let mut at = 0;
    while at < payload.len() {
        let head = payload.get(at..at + RECORD).ok_or_else(corrupt)?;
        let (kind, a, b) = (head[0], u64_at(head, 1), u64_at(head, 9));
        at += RECORD;
        match kind {
            WRITE => {
                let end = usize::try_from(b).ok().and_then(|len| at.checked_add(len)).ok_or_else(corrupt)?;
                store.write_all_at(payload.get(at..end).ok_or_else(corrupt)?, a)?;
                at = end;
            }
            ZEROS => {
                let zeros = [0u8; ALIGN as usize];
                let (mut offset, mut left) = (a, b);
                while left > 0 {
                    let n = left.min(ALIGN);
                    store.write_all_at(&zeros[..n as usize], offset)?;
                    (offset, left) = (offset + n, left - n);
                }
            }
            SET_LEN => store.set_len(a)?,
            _ => return Err(io::Error::new(io::ErrorKind::InvalidData, "an unknown redo log record")),
        }
    }
    Ok(())
}

/// The offset just past the last frame of `log` that ends a sync, and the
/// log's generation, or `None` for a log with no valid first frame.
fn synced_end(log: &File) -> io::Result<Option<(u64, u64)>> {
    let Some(first) = read_frame(log, 0, None)? else { return Ok(None) };
    let generation = first.generation;
    let (mut end, mut frame) = (0, Some(first));
    while let Some(f) = frame {
        if f.flags & SYNCED != 0 {
            end = f.next;
        }
        frame = read_frame(log, f.next, Some(generation))?;
    }
    Ok(Some((generation, end)))
}

/// What [`recover`] did.
#[derive(Debug, PartialEq, Eq)]
pub(super) struct Recovered {
    /// Frames applied to the store file.
    pub(super) frames: usize,
    /// The generation the next log should use: above every one in either file.
    pub(super) next_generation: u64,
}

/// Makes `log` replay nothing, durably: an empty, unsynced frame of
/// `generation` at its start. Frames an earlier use left further on stay,
/// so `generation` must be above all of them, and a later run's above it;
/// that is why a log is marked rather than zeroed, which would forget the
/// generations it held (and let a later run reach them again).
pub(super) fn mark(log: &File, generation: u64) -> io::Result<()> {
    let mut batch = Batch::new(0);
    log.write_all_at(batch.seal(generation, 0), 0)?;
    log.sync_data()
}

/// Replays `logs` into `store`: every frame up to each log's last synced
/// frame, the older generation first; then syncs the store file and marks
/// both logs, so a second recovery finds nothing to do.
///
/// Each file's first frame carries the highest generation in it (a log is
/// reused from its start, with a generation above the last), so the next
/// generation is above every frame on disk.
pub(super) fn recover(store: &File, logs: &[File; 2]) -> io::Result<Recovered> {
    let mut found = Vec::with_capacity(2);
    let mut highest = 0;
    for log in logs {
        if let Some((generation, end)) = synced_end(log)? {
            highest = highest.max(generation);
            found.push((generation, end, log));
        }
    }
    found.sort_by_key(|(generation, ..)| *generation);
    let mut frames = 0;
    for (generation, end, log) in &found {
        let mut at = 0;
        while at < *end {
            let Some(frame) = read_frame(log, at, Some(*generation))? else { break };
            apply(&frame.payload, store)?;
            frames += 1;
            at = frame.next;
        }
    }
    if frames > 0 {
        store.sync_data()?;
    }
    for log in logs {
        mark(log, highest + 1)?;
    }
    Ok(Recovered { frames, next_generation: highest + 2 })
}
