//! The usage write-ahead journal: a usage row survives `kill -9`.
//!
//! Usage records leave the hot path through memory (a channel, then a batch
//! writer), so a process killed mid-flight would lose the rows still queued
//! and the requests still in flight. The journal closes that gap:
//!
//! - **started** — before a request is sent upstream (each attempt), one
//!   JSON line names it: request id, tenant / user / key, alias, provider,
//!   deployment, the prompt estimate and its cost.
//! - **finished** — before the response's last bytes go to the client (a
//!   non-streamed body, or a stream's terminal event), the full usage row.
//!
//! Each line is one `write(2)` on a file opened `O_APPEND`, straight from
//! the I/O worker (a few hundred bytes into the page cache: about a
//! microsecond, no lock of ours, no thread hand-off). Once `write` returns
//! the record belongs to the kernel, which keeps it through the death of the
//! process; `fdatasync` runs on a timer (`governance.journal_fsync_interval`)
//! on the control thread, against power loss. The timer also bounds the
//! journal's dirty pages to about one interval of records, so the kernel's
//! dirty-page throttling (the one way such a `write` waits on the disk) only
//! applies when the disk cannot keep up with ~1 KB per request. Measured
//! outside the gateway (release build, a 2-core box at load 15): 7 µs per
//! request for both records (a row clone, two serde_json formats, two
//! 500-byte `write`s of about 2 µs each); on a quiet machine expect about
//! half. The benchmark's ladder steps 4 and 4j measure it in place.
//!
//! At start, before budgets are loaded, every segment left behind is
//! replayed: a finished record becomes its row; a request with a started
//! record and no finished one becomes an **estimated** row (the prompt
//! estimate at the deployment's price, status 499, error class
//! `interrupted`), so its budget is charged. Rows are idempotent by
//! `request_id` (`ON CONFLICT DO NOTHING`), so a replay repeated after a
//! crash, or a row the writer had already stored, changes nothing; segments
//! are removed only once their rows are in the database (or the fsync'd
//! spool).
//!
//! While running, the active segment is sealed once it is large or old and a
//! new one takes the writes. A sealed segment is removed when (1) no request
//! that wrote to it is still in flight (each request holds its segment, and
//! writes all its records there), and (2) every record queued to the usage
//! channel up to that moment is durable: the batch writer counts the rows it
//! has inserted or spooled ([`Durable`]), the channel is FIFO, and
//! [`Progress::queued`] counts what went in. A record the channel refused,
//! or rows the writer lost, keep their segments for the next start.
//! A line torn by a crash (the last one of a segment) is skipped.

use super::model::UsageRow;
use serde::{Deserialize, Serialize};
use std::borrow::Cow;
use std::io::{BufRead, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

/// What the batch writer has made durable (database or fsync'd spool), in
/// channel order.
#[derive(Debug, Default)]
pub struct Durable {
    /// Rows taken from the channel and inserted or spooled.
    pub rows: AtomicU64,
    /// Set when the writer gave up on rows: keep every segment for replay.
    pub lost: AtomicBool,
}

/// Counters shared by the hot path and the journal's upkeep.
#[derive(Debug, Default)]
pub struct Progress {
    /// Finished records handed to the usage channel.
    pub queued: AtomicU64,
}

/// Journal tuning.
#[derive(Debug, Clone)]
pub struct JournalConfig {
    pub dir: PathBuf,
    /// How often segments are fsync'd (and upkeep runs).
    pub fsync_interval: Duration,
    /// Seal the active segment beyond this size…
    pub segment_bytes: u64,
    /// …or this age (when it holds anything).
    pub segment_age: Duration,
}

impl JournalConfig {
    pub fn in_dir(dir: impl Into<PathBuf>) -> Self {
        JournalConfig {
            dir: dir.into(),
            fsync_interval: Duration::from_secs(1),
            segment_bytes: 16 * 1024 * 1024,
            segment_age: Duration::from_secs(60),
        }
    }
}

/// One journal file. Requests hold the segment they write to (see the
/// module doc); it is removed only when none does.
#[derive(Debug)]
pub struct Segment {
    path: PathBuf,
    file: std::fs::File,
    opened: Instant,
    /// Something in it may not reach the database this run: keep the file.
    keep: AtomicBool,
    progress: Arc<Progress>,
    warned: AtomicBool,
}

/// A started record (written per attempt; the last one wins at replay).
#[derive(Debug, Serialize, Deserialize, PartialEq)]
pub struct Started<'a> {
    pub request_id: Cow<'a, str>,
    pub ts: i64,
    pub tenant_id: Option<Cow<'a, str>>,
    pub user_id: Option<Cow<'a, str>>,
    pub key_id: Option<Cow<'a, str>>,
    pub alias: Cow<'a, str>,
    pub provider: Cow<'a, str>,
    pub deployment: Cow<'a, str>,
    pub upstream_model: Cow<'a, str>,
    pub ingress: Cow<'a, str>,
    pub stream: bool,
    /// The prompt estimate (tokens) and its cost at the deployment's price:
    /// what an interrupted request is charged.
    pub input_tokens: i64,
    pub cost: f64,
    pub attempt: i32,
    /// The deployment has no price of its own (see `UsageRow::unpriced`).
    #[serde(default)]
    pub unpriced: bool,
}

/// A journal line.
#[derive(Debug, Deserialize)]
enum Line {
    #[serde(rename = "s")]
    Started(Started<'static>),
    #[serde(rename = "f")]
    Finished(UsageRow),
}

thread_local! {
    /// Each thread's line buffer: a record is formatted without allocating.
    static LINE: std::cell::RefCell<Vec<u8>> = const { std::cell::RefCell::new(Vec::new()) };
}

impl Segment {
    /// Append a started record.
    pub fn started(&self, s: &Started<'_>) {
        self.append(|out| {
            out.extend_from_slice(b"{\"s\":");
            serde_json::to_writer(&mut *out, s)?;
            out.extend_from_slice(b"}\n");
            Ok(())
        });
    }

    /// Append a finished record (the row as it will be stored).
    pub fn finished(&self, row: &UsageRow) {
        self.append(|out| {
            out.extend_from_slice(b"{\"f\":");
            serde_json::to_writer(&mut *out, row)?;
            out.extend_from_slice(b"}\n");
            Ok(())
        });
    }

    /// The finished record just written is going to the usage channel.
    pub fn queued(&self) {
        self.progress.queued.fetch_add(1, Ordering::SeqCst);
    }

    /// … and the channel refused it: keep this segment for the next start.
    pub fn not_queued(&self) {
        self.progress.queued.fetch_sub(1, Ordering::SeqCst);
        self.keep.store(true, Ordering::Relaxed);
    }

    fn append(&self, format: impl FnOnce(&mut Vec<u8>) -> serde_json::Result<()>) {
        let res = LINE.with(|b| {
            let mut b = match b.try_borrow_mut() {
                Ok(b) => b,
                // Re-entered (cannot happen: formatting does not journal).
                Err(_) => return Err(std::io::Error::other("journal buffer busy")),
            };
            b.clear();
            format(&mut b).map_err(std::io::Error::other)?;
            // One write(2) on an O_APPEND file: the line lands whole, after
            // whatever the other workers wrote.
            let r = (&self.file).write_all(&b);
            if b.capacity() > 64 * 1024 {
                *b = Vec::new();
            }
            r
        });
        if let Err(e) = res {
            self.keep.store(true, Ordering::Relaxed);
            if !self.warned.swap(true, Ordering::Relaxed) {
                tracing::error!(error = %e, path = %self.path.display(), "cannot append to the usage journal");
            }
        }
    }
}

/// The journal: the active segment, and the sealed ones not yet removed.
#[derive(Debug)]
pub struct Journal {
    cfg: JournalConfig,
    current: RwLock<Arc<Segment>>,
    sealed: Mutex<Vec<(Arc<Segment>, Option<u64>)>>,
    next_seq: AtomicU64,
    progress: Arc<Progress>,
    durable: Arc<Durable>,
}

/// What was left by a previous process.
#[derive(Debug, Default)]
pub struct Leftover {
    /// One row per request, in journal order.
    pub rows: Vec<UsageRow>,
    /// Rows made from a started record alone (estimated).
    pub interrupted: usize,
    /// Lines that could not be read (a torn tail).
    pub skipped: usize,
    /// The files to remove once `rows` are durable.
    pub files: Vec<PathBuf>,
}

impl Leftover {
    /// Remove the replayed files (their rows are durable).
    pub fn remove(&self) {
        for f in &self.files {
            if let Err(e) = std::fs::remove_file(f) {
                if e.kind() != std::io::ErrorKind::NotFound {
                    tracing::error!(error = %e, path = %f.display(), "cannot remove a replayed usage journal segment");
                }
            }
        }
    }
}

const PREFIX: &str = "usage-";
const SUFFIX: &str = ".journal";

fn seq_of(path: &Path) -> Option<u64> {
    let name = path.file_name()?.to_str()?;
    name.strip_prefix(PREFIX)?
        .strip_suffix(SUFFIX)?
        .parse()
        .ok()
}

impl Journal {
    /// Read what a previous process left in `cfg.dir` and open a new
    /// segment after it. The caller stores `Leftover::rows` and then calls
    /// `Leftover::remove`.
    pub fn open(cfg: JournalConfig, durable: Arc<Durable>) -> std::io::Result<(Journal, Leftover)> {
        std::fs::create_dir_all(&cfg.dir)?;
        let mut old: Vec<(u64, PathBuf)> = std::fs::read_dir(&cfg.dir)?
            .filter_map(|e| e.ok())
            .map(|e| e.path())
            .filter_map(|p| seq_of(&p).map(|s| (s, p)))
            .collect();
        old.sort();
        let leftover = read_segments(old.iter().map(|(_, p)| p.as_path()))?;
        let next = old.last().map_or(1, |(s, _)| s + 1);
        let progress = Arc::new(Progress::default());
        let first = new_segment(&cfg.dir, next, &progress)?;
        Ok((
            Journal {
                cfg,
                current: RwLock::new(Arc::new(first)),
                sealed: Mutex::new(Vec::new()),
                next_seq: AtomicU64::new(next + 1),
                progress,
                durable,
            },
            Leftover {
                files: old.into_iter().map(|(_, p)| p).collect(),
                ..leftover
            },
        ))
    }

    pub fn config(&self) -> &JournalConfig {
        &self.cfg
    }

    /// The segment a new request writes to (held for its whole life).
    pub fn current(&self) -> Arc<Segment> {
        match self.current.read() {
            Ok(s) => s.clone(),
            Err(p) => p.into_inner().clone(),
        }
    }

    /// Upkeep (blocking: run it off the I/O workers): fsync, seal the active
    /// segment when due, remove sealed segments whose rows are durable.
    pub fn tick(&self) {
        let cur = self.current();
        if let Err(e) = cur.file.sync_data() {
            tracing::error!(error = %e, "cannot fsync the usage journal");
        }
        let len = cur.file.metadata().map(|m| m.len()).unwrap_or(0);
        if len >= self.cfg.segment_bytes
            || (len > 0 && cur.opened.elapsed() >= self.cfg.segment_age)
        {
            drop(cur);
            self.rotate();
        }
        self.sweep(false);
    }

    /// Seal the active segment; new requests go to a fresh one.
    pub fn rotate(&self) {
        let seq = self.next_seq.fetch_add(1, Ordering::Relaxed);
        let fresh = match new_segment(&self.cfg.dir, seq, &self.progress) {
            Ok(s) => Arc::new(s),
            Err(e) => {
                tracing::error!(error = %e, "cannot open a new usage journal segment; keeping the current one");
                return;
            }
        };
        let old = match self.current.write() {
            Ok(mut c) => std::mem::replace(&mut *c, fresh),
            Err(p) => std::mem::replace(&mut *p.into_inner(), fresh),
        };
        if let Ok(mut s) = self.sealed.lock() {
            s.push((old, None));
        }
    }

    /// Remove the sealed segments that are no longer needed. `last`: the
    /// writer has finished (shutdown).
    fn sweep(&self, last: bool) {
        let mut sealed = match self.sealed.lock() {
            Ok(s) => s,
            Err(p) => p.into_inner(),
        };
        let lost = self.durable.lost.load(Ordering::SeqCst);
        sealed.retain_mut(|(seg, mark)| {
            if Arc::strong_count(seg) > 1 {
                // A request still holds it (and may write to it).
                let _ = seg.file.sync_data();
                return true;
            }
            // Everything written to it happened before the holders let go.
            std::sync::atomic::fence(Ordering::Acquire);
            if mark.is_none() {
                let _ = seg.file.sync_data();
                *mark = Some(self.progress.queued.load(Ordering::SeqCst));
            }
            let durable = self.durable.rows.load(Ordering::SeqCst);
            let done = mark.is_some_and(|m| durable >= m);
            if lost || seg.keep.load(Ordering::Relaxed) || !done {
                if last {
                    tracing::warn!(path = %seg.path.display(), "usage journal segment kept for replay at the next start");
                }
                return true;
            }
            if let Err(e) = std::fs::remove_file(&seg.path) {
                if e.kind() != std::io::ErrorKind::NotFound {
                    tracing::error!(error = %e, path = %seg.path.display(), "cannot remove a usage journal segment");
                    return true;
                }
            }
            false
        });
    }

    /// After the usage writer has drained: seal the active segment and
    /// remove everything that is durable.
    pub fn close(&self) {
        self.rotate();
        self.sweep(true);
        // The segment `rotate` opened is empty: nothing to replay.
        let cur = self.current();
        if cur.file.metadata().map(|m| m.len()).unwrap_or(1) == 0 {
            let _ = std::fs::remove_file(&cur.path);
        }
    }

    /// Files currently on disk (tests).
    pub fn files(&self) -> Vec<PathBuf> {
        let mut v: Vec<PathBuf> = std::fs::read_dir(&self.cfg.dir)
            .map(|d| {
                d.filter_map(|e| e.ok())
                    .map(|e| e.path())
                    .filter(|p| seq_of(p).is_some())
                    .collect()
            })
            .unwrap_or_default();
        v.sort();
        v
    }
}

fn new_segment(dir: &Path, seq: u64, progress: &Arc<Progress>) -> std::io::Result<Segment> {
    let path = dir.join(format!("{PREFIX}{seq:012}{SUFFIX}"));
    let file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&path)?;
    // The new file's directory entry must survive power loss too.
    if let Ok(d) = std::fs::File::open(dir) {
        let _ = d.sync_all();
    }
    Ok(Segment {
        path,
        file,
        opened: Instant::now(),
        keep: AtomicBool::new(false),
        progress: progress.clone(),
        warned: AtomicBool::new(false),
    })
}

/// Rows from journal segments, oldest first: each request's finished
/// record, else its last started record as an estimated row. Unreadable
/// lines (a torn tail) are skipped.
pub fn read_segments<'p>(paths: impl Iterator<Item = &'p Path>) -> std::io::Result<Leftover> {
    let mut index: crate::FastMap<String, usize> = crate::FastMap::default();
    let mut slots: Vec<(Option<UsageRow>, Option<Started<'static>>)> = Vec::new();
    let mut skipped = 0usize;
    for path in paths {
        let mut f = std::io::BufReader::new(std::fs::File::open(path)?);
        let mut line = Vec::new();
        let mut offset = 0u64;
        loop {
            line.clear();
            let n = f.read_until(b'\n', &mut line)?;
            if n == 0 {
                break;
            }
            offset += n as u64;
            let text = line.trim_ascii();
            if text.is_empty() {
                continue;
            }
            let parsed = match serde_json::from_slice::<Line>(text) {
                Ok(l) => l,
                Err(e) => {
                    skipped += 1;
                    tracing::warn!(path = %path.display(), offset = offset - n as u64, error = %e, "skipping an unreadable usage journal line (torn write)");
                    continue;
                }
            };
            let id = match &parsed {
                Line::Started(s) => s.request_id.as_ref(),
                Line::Finished(r) => r.request_id.as_str(),
            };
            let i = match index.get(id) {
                Some(&i) => i,
                None => {
                    index.insert(id.to_owned(), slots.len());
                    slots.push((None, None));
                    slots.len() - 1
                }
            };
            match parsed {
                Line::Started(s) => slots[i].1 = Some(s),
                Line::Finished(r) => {
                    // The first finished record stands (a request records once).
                    if slots[i].0.is_none() {
                        slots[i].0 = Some(r);
                    }
                }
            }
        }
    }
    let mut out = Leftover {
        skipped,
        ..Leftover::default()
    };
    for slot in slots {
        match slot {
            (Some(row), _) => out.rows.push(row),
            (None, Some(s)) => {
                out.interrupted += 1;
                out.rows.push(interrupted_row(s));
            }
            (None, None) => {}
        }
    }
    Ok(out)
}

/// The row of a request that was in flight when the process died: the
/// prompt estimate, charged at the deployment's price, flagged estimated.
pub fn interrupted_row(s: Started<'static>) -> UsageRow {
    UsageRow {
        request_id: s.request_id.into_owned(),
        ts: s.ts,
        tenant_id: s.tenant_id.map(Cow::into_owned),
        user_id: s.user_id.map(Cow::into_owned),
        key_id: s.key_id.map(Cow::into_owned),
        alias: s.alias.into_owned(),
        provider: s.provider.into_owned(),
        deployment: s.deployment.into_owned(),
        upstream_model: s.upstream_model.into_owned(),
        ingress: s.ingress.into_owned(),
        input_tokens: s.input_tokens,
        output_tokens: 0,
        cached_input_tokens: 0,
        cost: s.cost,
        estimated: true,
        latency_ms: 0.0,
        ttft_ms: None,
        status: 499,
        error_class: Some("interrupted".to_owned()),
        cache_hit: false,
        attempts: s.attempt,
        stream: s.stream,
        unpriced: s.unpriced,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(id: &str, cost: f64) -> UsageRow {
        UsageRow {
            request_id: id.to_owned(),
            ts: 1_700_000_000_000,
            tenant_id: Some("t1".into()),
            user_id: None,
            key_id: Some("k1".into()),
            alias: "gpt".into(),
            provider: "oai".into(),
            deployment: "oai/gpt-4o".into(),
            upstream_model: "gpt-4o".into(),
            ingress: "openai".into(),
            input_tokens: 10,
            output_tokens: 5,
            cached_input_tokens: 0,
            cost,
            estimated: false,
            latency_ms: 12.5,
            ttft_ms: None,
            status: 200,
            error_class: None,
            cache_hit: false,
            attempts: 1,
            stream: false,
            unpriced: false,
        }
    }

    fn started(id: &str) -> Started<'_> {
        Started {
            request_id: Cow::Borrowed(id),
            ts: 1_700_000_000_000,
            tenant_id: Some(Cow::Borrowed("t1")),
            user_id: None,
            key_id: Some(Cow::Borrowed("k\"1")),
            alias: Cow::Borrowed("gpt"),
            provider: Cow::Borrowed("oai"),
            deployment: Cow::Borrowed("oai/gpt-4o"),
            upstream_model: Cow::Borrowed("gpt-4o"),
            ingress: Cow::Borrowed("openai"),
            stream: true,
            input_tokens: 42,
            cost: 0.25,
            attempt: 1,
            unpriced: false,
        }
    }

    fn tmp(name: &str) -> PathBuf {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or_default();
        let d = std::env::temp_dir().join(format!(
            "switchyard-journal-{name}-{}-{nanos}",
            std::process::id()
        ));
        let _ = std::fs::remove_dir_all(&d);
        d
    }

    #[test]
    fn replay_pairs_started_and_finished_and_estimates_the_rest() {
        let dir = tmp("pairs");
        let (j, left) = Journal::open(JournalConfig::in_dir(&dir), Arc::default()).unwrap();
        assert!(left.rows.is_empty() && left.files.is_empty());
        let seg = j.current();
        seg.started(&started("a"));
        seg.started(&started("b"));
        seg.finished(&row("a", 0.5));
        seg.started(&started("c"));
        // A retry: the last started record wins.
        let mut again = started("c");
        again.attempt = 2;
        again.deployment = Cow::Borrowed("oai/other");
        seg.started(&again);
        seg.finished(&row("d", 0.1)); // refused before upstream: no started record
        drop((seg, j));
        let (_j2, left) = Journal::open(JournalConfig::in_dir(&dir), Arc::default()).unwrap();
        assert_eq!(left.files.len(), 1);
        assert_eq!(left.interrupted, 2);
        assert_eq!(left.skipped, 0);
        let ids: Vec<&str> = left.rows.iter().map(|r| r.request_id.as_str()).collect();
        assert_eq!(ids, ["a", "b", "c", "d"]);
        assert_eq!(left.rows[0], row("a", 0.5));
        let b = &left.rows[1];
        assert!(b.estimated);
        assert_eq!((b.input_tokens, b.cost, b.status), (42, 0.25, 499));
        assert_eq!(b.error_class.as_deref(), Some("interrupted"));
        assert_eq!(b.key_id.as_deref(), Some("k\"1"));
        assert_eq!(left.rows[2].deployment, "oai/other");
        assert_eq!(left.rows[2].attempts, 2);
        left.remove();
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn a_torn_last_line_is_skipped_and_the_complete_records_replay() {
        let dir = tmp("torn");
        let (j, _) = Journal::open(JournalConfig::in_dir(&dir), Arc::default()).unwrap();
        let seg = j.current();
        seg.started(&started("a"));
        seg.finished(&row("a", 0.5));
        seg.started(&started("b"));
        seg.finished(&row("b", 0.7));
        let path = seg.path.clone();
        drop((seg, j));
        // Cut the file in the middle of the last record (b's finished line).
        let bytes = std::fs::read(&path).unwrap();
        let cut = bytes.len() - 40;
        std::fs::write(&path, &bytes[..cut]).unwrap();
        let (j2, left) = Journal::open(JournalConfig::in_dir(&dir), Arc::default()).unwrap();
        assert_eq!(left.skipped, 1);
        assert_eq!(left.rows.len(), 2);
        assert_eq!(left.rows[0], row("a", 0.5));
        // b lost its finished line: it is billed from its started record.
        assert!(left.rows[1].estimated);
        assert_eq!(left.rows[1].request_id, "b");
        // The new process appends to a new segment, never after the torn line.
        let seg = j2.current();
        assert_ne!(seg.path, path);
        seg.finished(&row("c", 0.1));
        left.remove();
        drop(seg);
        drop(j2);
        let (_j3, left) = Journal::open(JournalConfig::in_dir(&dir), Arc::default()).unwrap();
        assert_eq!(left.rows.len(), 1);
        assert_eq!(left.rows[0].request_id, "c");
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn sealed_segments_go_only_when_released_and_durable() {
        let dir = tmp("sweep");
        let durable = Arc::new(Durable::default());
        let (j, _) = Journal::open(JournalConfig::in_dir(&dir), durable.clone()).unwrap();
        // A request in flight holds the first segment.
        let held = j.current();
        held.started(&started("a"));
        let other = j.current();
        other.finished(&row("z", 0.0));
        other.queued();
        drop(other);
        j.rotate();
        j.tick();
        assert_eq!(j.files().len(), 2, "held: kept");
        held.finished(&row("a", 0.1));
        held.queued();
        drop(held);
        j.tick();
        assert_eq!(j.files().len(), 2, "released but not durable: kept");
        durable.rows.store(1, Ordering::SeqCst);
        j.tick();
        assert_eq!(j.files().len(), 2, "one of two rows durable: kept");
        durable.rows.store(2, Ordering::SeqCst);
        j.tick();
        assert_eq!(j.files().len(), 1, "durable: removed");
        // A refused record keeps its segment through close.
        let seg = j.current();
        seg.finished(&row("b", 0.1));
        seg.queued();
        seg.not_queued();
        drop(seg);
        j.close();
        assert_eq!(j.files().len(), 1);
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn close_removes_everything_durable() {
        let dir = tmp("close");
        let durable = Arc::new(Durable::default());
        let (j, _) = Journal::open(JournalConfig::in_dir(&dir), durable.clone()).unwrap();
        let seg = j.current();
        seg.started(&started("a"));
        seg.finished(&row("a", 0.1));
        seg.queued();
        drop(seg);
        durable.rows.store(1, Ordering::SeqCst);
        j.close();
        assert!(j.files().is_empty(), "{:?}", j.files());
        let _ = std::fs::remove_dir_all(&dir);
    }

    /// The hot-path cost: one started and one finished record per request.
    #[test]
    fn append_cost_is_microseconds() {
        let dir = tmp("cost");
        let (j, _) = Journal::open(JournalConfig::in_dir(&dir), Arc::default()).unwrap();
        let seg = j.current();
        let r = row("0123456789abcdef0123456789abcdef", 0.001);
        let s = started("0123456789abcdef0123456789abcdef");
        let n = 2_000;
        let t = Instant::now();
        for _ in 0..n {
            seg.started(&s);
            seg.finished(&r);
        }
        let per = t.elapsed() / n;
        eprintln!("journal: {per:?} per request (started + finished)");
        // Generous bound for a loaded CI box; typically 2-4 µs.
        assert!(per < Duration::from_millis(1), "{per:?}");
        let _ = std::fs::remove_dir_all(&dir);
    }
}
