//! The coherence checker's logs and their analysis (std-only).
//!
//! The promise checked (COHERENCE.md): once a writer's `invalidate` or
//! `refresh` (the "set") of a key has returned, no reader in any process
//! returns an older value of that key for longer than the staleness bound.
//!
//! The model: a source of truth holds a version per key; the writer bumps it
//! and then invalidates or refreshes the memoized entry, logging an [`Ack`]
//! `(key, version, ack time)` when that call returned. Readers call the
//! memoized function over and over and log [`Segment`]s: runs of
//! consecutive reads of one key that returned the same version. All times
//! are wall-clock nanoseconds since the Unix epoch ([`now_ns`]), read by
//! processes on one machine.
//!
//! Definitions ([`analyze`]):
//! * **Violation**: a read that started at `t` and returned version `w`
//!   while some version `v > w` of the same key had been acknowledged at
//!   `A ≤ t − bound`. Logs hold segments, not single reads; the last read
//!   of a segment started latest, so it is the one checked, and a segment
//!   counts as one violation however many of its reads were stale.
//! * **Ack → first observation** of version `v` acknowledged at `A`, for
//!   one reader: from `A` to the end of the first read of that key that
//!   started at or after `A` and returned `v` or newer. When the reader was
//!   already returning `v` or newer as the ack came back (a segment of such
//!   reads started before `A` and went on after it), the latency is 0.
//!   Acks before the reader's first read or after its last are not counted;
//!   acks no later read observed are counted as `unobserved`. The observing
//!   read is usually a miss (a GET, the body, a store: several round
//!   trips), so this latency includes its duration and the reader's own
//!   scheduling, not only the invalidation's journey.
//! * **Longest stale after an ack**: over the acks, the longest time from
//!   an ack of `v` to the start of a read that still returned an older
//!   version — how close the reader came to the bound. A violation is a
//!   value of at least the bound.
//!
//! Include next to `support/mod.rs` with
//! `#[path = "support/coherence.rs"] mod coherence;`.
#![allow(dead_code)]

use std::collections::HashMap;
use std::fmt::Write as _;
use std::fs;
use std::io;
use std::path::Path;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// The staleness bound of the local tier (COHERENCE.md: 5 ms by default).
pub const BOUND: Duration = Duration::from_millis(5);

/// Wall-clock nanoseconds since the Unix epoch: the one clock of every log.
pub fn now_ns() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("the clock is after 1970")
        .as_nanos() as u64
}

/// The writer acknowledged `version` of `key` at `ack_ns`: its
/// `invalidate` or `refresh` returned then (after the source of truth held
/// `version`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Ack {
    pub key: u32,
    pub version: u64,
    pub ack_ns: u64,
}

/// Consecutive reads of `key` by one reader that all returned `version`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Segment {
    pub key: u32,
    pub version: u64,
    /// Start and end of the first read of the run.
    pub first_start: u64,
    pub first_end: u64,
    /// Start and end of the last read of the run.
    pub last_start: u64,
    pub last_end: u64,
    /// Reads in the run.
    pub reads: u64,
}

/// What a reader's cache counted (`Cache::stats`), as `name=value` pairs.
pub type Counters = Vec<(String, u64)>;

/// Everything one reader logged.
#[derive(Clone, Debug, Default)]
pub struct ReaderLog {
    pub name: String,
    /// In the order the runs ended (per key: in time order).
    pub segments: Vec<Segment>,
    pub counters: Counters,
}

impl ReaderLog {
    /// One counter of the reader's cache, 0 when not logged.
    pub fn counter(&self, name: &str) -> u64 {
        self.counters
            .iter()
            .find(|(n, _)| n == name)
            .map_or(0, |&(_, v)| v)
    }
}

/// Builds a reader's segments read by read.
#[derive(Debug, Default)]
pub struct SegmentRecorder {
    open: HashMap<u32, Segment>,
    done: Vec<Segment>,
}

impl SegmentRecorder {
    /// Records one read of `key` that started at `start`, ended at `end`
    /// and returned `version`.
    pub fn read(&mut self, key: u32, version: u64, start: u64, end: u64) {
        match self.open.get_mut(&key) {
            Some(seg) if seg.version == version => {
                seg.last_start = start;
                seg.last_end = end;
                seg.reads += 1;
            }
            _ => {
                let seg = Segment {
                    key,
                    version,
                    first_start: start,
                    first_end: end,
                    last_start: start,
                    last_end: end,
                    reads: 1,
                };
                if let Some(old) = self.open.insert(key, seg) {
                    self.done.push(old);
                }
            }
        }
    }

    /// Every segment, the open ones last.
    pub fn finish(mut self) -> Vec<Segment> {
        let mut open: Vec<Segment> = self.open.into_values().collect();
        open.sort_by_key(|s| s.first_start);
        self.done.extend(open);
        self.done
    }
}

// ---------------------------------------------------------------------------
// The log files: one record a line.
//   ack <key> <version> <ack_ns>
//   seg <key> <version> <first_start> <first_end> <last_start> <last_end> <reads>
//   counter <name> <value>
// ---------------------------------------------------------------------------

/// The writer's log as text.
pub fn format_acks(acks: &[Ack]) -> String {
    let mut out = String::with_capacity(acks.len() * 40);
    for a in acks {
        let _ = writeln!(out, "ack {} {} {}", a.key, a.version, a.ack_ns);
    }
    out
}

/// A reader's log as text.
pub fn format_reader(segments: &[Segment], counters: &[(String, u64)]) -> String {
    let mut out = String::with_capacity(segments.len() * 80);
    for s in segments {
        let _ = writeln!(
            out,
            "seg {} {} {} {} {} {} {}",
            s.key, s.version, s.first_start, s.first_end, s.last_start, s.last_end, s.reads
        );
    }
    for (name, value) in counters {
        let _ = writeln!(out, "counter {name} {value}");
    }
    out
}

fn numbers<const N: usize>(fields: &[&str], line: &str) -> io::Result<[u64; N]> {
    let bad = || io::Error::new(io::ErrorKind::InvalidData, format!("bad log line {line:?}"));
    if fields.len() != N {
        return Err(bad());
    }
    let mut out = [0u64; N];
    for (slot, field) in out.iter_mut().zip(fields) {
        *slot = field.parse().map_err(|_| bad())?;
    }
    Ok(out)
}

/// Parses a writer's log.
pub fn parse_acks(text: &str) -> io::Result<Vec<Ack>> {
    let mut acks = Vec::new();
    for line in text.lines().filter(|l| !l.trim().is_empty()) {
        let fields: Vec<&str> = line.split_whitespace().collect();
        match fields[0] {
            "ack" => {
                let [key, version, ack_ns] = numbers::<3>(&fields[1..], line)?;
                acks.push(Ack {
                    key: key as u32,
                    version,
                    ack_ns,
                });
            }
            _ => {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    format!("not a writer's line: {line:?}"),
                ))
            }
        }
    }
    Ok(acks)
}

/// Parses a reader's log.
pub fn parse_reader(name: &str, text: &str) -> io::Result<ReaderLog> {
    let mut log = ReaderLog {
        name: name.to_owned(),
        ..ReaderLog::default()
    };
    for line in text.lines().filter(|l| !l.trim().is_empty()) {
        let fields: Vec<&str> = line.split_whitespace().collect();
        match fields[0] {
            "seg" => {
                let [key, version, first_start, first_end, last_start, last_end, reads] =
                    numbers::<7>(&fields[1..], line)?;
                log.segments.push(Segment {
                    key: key as u32,
                    version,
                    first_start,
                    first_end,
                    last_start,
                    last_end,
                    reads,
                });
            }
            "counter" if fields.len() == 3 => {
                let [value] = numbers::<1>(&fields[2..], line)?;
                log.counters.push((fields[1].to_owned(), value));
            }
            _ => {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    format!("not a reader's line: {line:?}"),
                ))
            }
        }
    }
    Ok(log)
}

/// Reads a log file written by [`format_acks`] or [`format_reader`].
pub fn read_log(path: &Path) -> String {
    fs::read_to_string(path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()))
}

// ---------------------------------------------------------------------------
// Analysis
// ---------------------------------------------------------------------------

/// A stale read: `seen` was returned by a read that started at `read_start`
/// although `newer` had been acknowledged at `acked_at ≤ read_start − bound`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Violation {
    pub key: u32,
    pub seen: u64,
    /// The newest version acknowledged at or before `read_start − bound`.
    pub newer: u64,
    /// When the first version newer than `seen` was acknowledged.
    pub acked_at: u64,
    pub read_start: u64,
    /// Reads in the segment (some of the first ones may have been in time).
    pub reads: u64,
}

impl Violation {
    /// How long after the first newer ack the stale read started.
    pub fn stale_for(&self) -> Duration {
        Duration::from_nanos(self.read_start.saturating_sub(self.acked_at))
    }
}

/// What one reader saw.
#[derive(Clone, Debug, Default)]
pub struct ReaderReport {
    pub reader: String,
    pub reads: u64,
    pub local_hits: u64,
    /// Ack → first observation, sorted.
    pub latencies: Vec<Duration>,
    /// Acks in the reader's time span that no later read observed.
    pub unobserved: usize,
    /// The longest time from an ack to the start of a read that still
    /// returned an older version (zero when none did).
    pub longest_stale: Duration,
    pub violations: Vec<Violation>,
    pub counters: Counters,
}

impl ReaderReport {
    /// Share of reads answered from the local tier, in percent.
    pub fn local_hit_percent(&self) -> f64 {
        if self.reads == 0 {
            0.0
        } else {
            100.0 * self.local_hits as f64 / self.reads as f64
        }
    }

    /// The `p`-th percentile (nearest rank) of the ack → first observation
    /// latencies, `None` when nothing was observed.
    pub fn latency_percentile(&self, p: f64) -> Option<Duration> {
        if self.latencies.is_empty() {
            return None;
        }
        let rank = ((p / 100.0) * self.latencies.len() as f64).ceil() as usize;
        Some(self.latencies[rank.clamp(1, self.latencies.len()) - 1])
    }

    /// The longest ack → first observation.
    pub fn max_latency(&self) -> Option<Duration> {
        self.latencies.last().copied()
    }

    /// One counter of the reader's cache, 0 when not logged.
    pub fn counter(&self, name: &str) -> u64 {
        self.counters
            .iter()
            .find(|(n, _)| n == name)
            .map_or(0, |&(_, v)| v)
    }
}

/// Per key, acks in time order with the newest version acked so far.
struct AckIndex {
    /// (ack time, version, max version acked up to and including it)
    by_key: HashMap<u32, Vec<(u64, u64, u64)>>,
}

impl AckIndex {
    fn new(acks: &[Ack]) -> AckIndex {
        let mut by_key: HashMap<u32, Vec<(u64, u64, u64)>> = HashMap::new();
        let mut sorted = acks.to_vec();
        sorted.sort_by_key(|a| a.ack_ns);
        for a in sorted {
            let list = by_key.entry(a.key).or_default();
            let max = list.last().map_or(a.version, |&(_, _, m)| m.max(a.version));
            list.push((a.ack_ns, a.version, max));
        }
        AckIndex { by_key }
    }

    /// The newest version of `key` acknowledged at or before `t`.
    fn newest_at(&self, key: u32, t: u64) -> Option<u64> {
        let list = self.by_key.get(&key)?;
        let n = list.partition_point(|&(at, _, _)| at <= t);
        (n > 0).then(|| list[n - 1].2)
    }

    /// When a version newer than `version` of `key` was first acknowledged.
    fn first_newer(&self, key: u32, version: u64) -> Option<u64> {
        self.by_key
            .get(&key)?
            .iter()
            .find(|&&(_, v, _)| v > version)
            .map(|&(at, _, _)| at)
    }
}

/// Checks one reader's segments against the writer's acks (see the module
/// documentation for the definitions).
pub fn analyze_reader(acks: &[Ack], log: &ReaderLog, bound: Duration) -> ReaderReport {
    let index = AckIndex::new(acks);
    let bound_ns = bound.as_nanos() as u64;
    let mut report = ReaderReport {
        reader: log.name.clone(),
        reads: log.segments.iter().map(|s| s.reads).sum(),
        local_hits: log.counter("local_hits"),
        counters: log.counters.clone(),
        ..ReaderReport::default()
    };
    for seg in &log.segments {
        let Some(checked_at) = seg.last_start.checked_sub(bound_ns) else {
            continue;
        };
        match index.newest_at(seg.key, checked_at) {
            Some(newest) if newest > seg.version => report.violations.push(Violation {
                key: seg.key,
                seen: seg.version,
                newer: newest,
                acked_at: index
                    .first_newer(seg.key, seg.version)
                    .unwrap_or(checked_at),
                read_start: seg.last_start,
                reads: seg.reads,
            }),
            _ => {}
        }
    }
    report.violations.sort_by_key(|v| v.read_start);

    let mut by_key: HashMap<u32, Vec<&Segment>> = HashMap::new();
    for seg in &log.segments {
        by_key.entry(seg.key).or_default().push(seg);
    }
    for list in by_key.values_mut() {
        list.sort_by_key(|s| s.first_start);
    }
    let span = (
        log.segments.iter().map(|s| s.first_start).min(),
        log.segments.iter().map(|s| s.last_start).max(),
    );
    let (Some(first_read), Some(last_read)) = span else {
        return report;
    };
    for ack in acks {
        if let Some(list) = by_key.get(&ack.key) {
            for s in list.iter().filter(|s| s.version < ack.version) {
                if s.last_start >= ack.ack_ns {
                    let stale = Duration::from_nanos(s.last_start - ack.ack_ns);
                    report.longest_stale = report.longest_stale.max(stale);
                }
            }
        }
        if ack.ack_ns < first_read || ack.ack_ns > last_read {
            continue;
        }
        let seen = by_key.get(&ack.key).and_then(|list| {
            list.iter()
                .find(|s| s.version >= ack.version && s.last_start >= ack.ack_ns)
        });
        match seen {
            Some(s) if s.first_start >= ack.ack_ns => report
                .latencies
                .push(Duration::from_nanos(s.first_end - ack.ack_ns)),
            Some(_) => report.latencies.push(Duration::ZERO),
            None => report.unobserved += 1,
        }
    }
    report.latencies.sort();
    report
}

/// One scenario's result: every reader checked against the writer's acks.
#[derive(Clone, Debug)]
pub struct CoherenceReport {
    pub scenario: String,
    /// No fault was injected: the latency bound is asserted too.
    pub quiet: bool,
    pub bound: Duration,
    pub acks: usize,
    pub readers: Vec<ReaderReport>,
    /// What the scenario did and when, from the start of the run.
    pub events: Vec<String>,
}

impl CoherenceReport {
    /// Checks every reader's log against the writer's.
    pub fn analyze(
        scenario: &str,
        quiet: bool,
        bound: Duration,
        acks: &[Ack],
        readers: &[ReaderLog],
        events: Vec<String>,
    ) -> CoherenceReport {
        CoherenceReport {
            scenario: scenario.to_owned(),
            quiet,
            bound,
            acks: acks.len(),
            readers: readers
                .iter()
                .map(|log| analyze_reader(acks, log, bound))
                .collect(),
            events,
        }
    }

    /// Violations over every reader.
    pub fn violations(&self) -> usize {
        self.readers.iter().map(|r| r.violations.len()).sum()
    }

    /// The longest ack → first observation over every reader.
    pub fn max_latency(&self) -> Option<Duration> {
        self.readers.iter().filter_map(|r| r.max_latency()).max()
    }

    /// Lines for people: the scenario, its events, a line per reader and
    /// the first violations.
    pub fn summary(&self) -> String {
        let mut out = format!(
            "{}: {} acks, bound {:?}, {} violations\n",
            self.scenario,
            self.acks,
            self.bound,
            self.violations()
        );
        for event in &self.events {
            let _ = writeln!(out, "  event: {event}");
        }
        for r in &self.readers {
            let _ = writeln!(
                out,
                "  {}: {} reads, {:.1}% local hits, ack→first observation p50 {} p99 {} max {}, \
                 longest stale after an ack {:.2?}, {} unobserved, {} violations; counters {}",
                r.reader,
                r.reads,
                r.local_hit_percent(),
                show(r.latency_percentile(50.0)),
                show(r.latency_percentile(99.0)),
                show(r.max_latency()),
                r.longest_stale,
                r.unobserved,
                r.violations.len(),
                r.counters
                    .iter()
                    .map(|(n, v)| format!("{n}={v}"))
                    .collect::<Vec<_>>()
                    .join(" "),
            );
            for v in r.violations.iter().take(5) {
                let _ = writeln!(
                    out,
                    "    violation: key {} returned v{} by a read started {:?} after a newer \
                     version was first acked (newest acked a bound before the read: v{}; \
                     {} reads in the run)",
                    v.key,
                    v.seen,
                    v.stale_for(),
                    v.newer,
                    v.reads
                );
            }
        }
        out
    }

    /// One Markdown table row per reader (see [`TABLE_HEADER`]).
    pub fn rows(&self) -> Vec<String> {
        self.readers
            .iter()
            .map(|r| {
                format!(
                    "| {} | {} | {} | {:.1} | {} | {} | {} | {:.2?} | {} |",
                    self.scenario,
                    r.reader,
                    r.reads,
                    r.local_hit_percent(),
                    show(r.latency_percentile(50.0)),
                    show(r.latency_percentile(99.0)),
                    show(r.max_latency()),
                    r.longest_stale,
                    r.violations.len()
                )
            })
            .collect()
    }

    /// The rows as one string.
    pub fn row(&self) -> String {
        self.rows().join("\n")
    }

    /// 0 violations and every reader read. When quiet, also: every ack in
    /// a reader's time span observed, and the median ack → first
    /// observation within the bound. (Its maximum is reported, not
    /// asserted: a timing, which includes the observing read's own round
    /// trips and the processes' wait for a core.)
    pub fn assert_coherent(&self) {
        assert_eq!(self.violations(), 0, "stale reads:\n{}", self.summary());
        assert!(
            self.readers.iter().all(|r| r.reads > 0),
            "every reader read:\n{}",
            self.summary()
        );
        if self.quiet {
            for r in &self.readers {
                assert_eq!(r.unobserved, 0, "{}", self.summary());
                let p50 = r.latency_percentile(50.0).expect("acks were observed");
                assert!(
                    p50 <= self.bound,
                    "{}: ack → first observation p50 {p50:?} > {:?}:\n{}",
                    r.reader,
                    self.bound,
                    self.summary()
                );
            }
        }
    }
}

/// The header of [`CoherenceReport::rows`]'s table.
pub const TABLE_HEADER: &str = "| scenario | reader | reads | local hit % | ack→first observation p50 | p99 | max | longest stale after an ack | violations |\n|---|---|---|---|---|---|---|---|---|";

fn show(d: Option<Duration>) -> String {
    d.map_or("-".into(), |d| format!("{d:.2?}"))
}
