//! `fastest-config`: which serializer + compressor suits your data? Measures
//! every configuration compiled in through a real Redis and recommends one.
//!
//! ```text
//! cargo run --release -p cache-memoize-fastest-config -- \
//!     [--data FILE.json] [--seconds N] [--redis URL] [--out DIR] [--compress-threshold BYTES]
//! ```
//!
//! The rule: per dataset, the smallest configuration on the size/round-trip
//! Pareto front whose median round trip is within 10% of the fastest. The
//! method, the outputs and why this rule: `docs/choosing-a-codec.md`.

// The unit tests (`cargo test -p cache-memoize-fastest-config`) compile this
// file without calling `main`, so everything only `main` reaches would warn.
#![cfg_attr(test, allow(dead_code))]

#[path = "../../../benches/support/datasets.rs"]
mod datasets;
#[path = "../../../tests/support/mod.rs"]
mod support;

use std::fmt::Write as _;
use std::hint::black_box;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use cache_memoize::codec::{compressors, serializers};
use cache_memoize::{Cache, Codec};
use cpu_time::ThreadTime;
use datasets::{configurations, Dataset, Sample, Visit};
use plotters::prelude::*;
use serde::Serialize;
use tokio::runtime::Runtime;

const USAGE: &str = "\
usage: fastest-config [--data FILE.json] [--seconds N] [--redis URL] [--out DIR] [--compress-threshold BYTES]

  --data FILE.json          measure this JSON document instead of the built-in datasets
  --seconds N               time budget of the whole run (default 20)
  --redis URL               Redis to measure through (default: $REDIS_URL, else redis://127.0.0.1:6379,
                            else a private redis-server)
  --out DIR                 where the chart, CSV and JSON go (default target/fastest-config)
  --compress-threshold N    compress payloads of at least N bytes (default 0: always, to compare
                            the compressors; the cache's own default is 1024)";

/// The configuration the others are compared with: the cache's default.
const BASELINE: &str = "msgpack+zlib";
/// Prefix of the benchmark's keys in Redis.
const KEY_PREFIX: &str = "fastest_config";

struct Args {
    data: Option<PathBuf>,
    seconds: f64,
    redis: Option<String>,
    out: PathBuf,
    compress_threshold: usize,
}

fn parse_args(mut args: impl Iterator<Item = String>) -> Result<Option<Args>, String> {
    let mut parsed = Args {
        data: None,
        seconds: 20.0,
        redis: None,
        out: PathBuf::from("target/fastest-config"),
        compress_threshold: 0,
    };
    while let Some(flag) = args.next() {
        if flag == "-h" || flag == "--help" {
            return Ok(None);
        }
        let mut value = || args.next().ok_or(format!("{flag} needs a value"));
        match flag.as_str() {
            "--data" => parsed.data = Some(value()?.into()),
            "--redis" => parsed.redis = Some(value()?),
            "--out" => parsed.out = value()?.into(),
            "--seconds" => {
                let v = value()?;
                parsed.seconds = v
                    .parse()
                    .ok()
                    .filter(|s: &f64| s.is_finite() && *s > 0.0)
                    .ok_or(format!("--seconds takes a positive number, not {v:?}"))?;
            }
            "--compress-threshold" => {
                let v = value()?;
                parsed.compress_threshold = v
                    .parse()
                    .map_err(|_| format!("--compress-threshold takes a byte count, not {v:?}"))?;
            }
            other => return Err(format!("unknown argument {other:?}")),
        }
    }
    Ok(Some(parsed))
}

fn main() -> ExitCode {
    let started = Instant::now();
    let args = match parse_args(std::env::args().skip(1)) {
        Ok(Some(args)) => args,
        Ok(None) => {
            println!("{USAGE}");
            return ExitCode::SUCCESS;
        }
        Err(e) => {
            eprintln!("error: {e}\n\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    match run(&args, started) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

/// One serializer + compressor, with a cache that writes with it.
struct Config {
    label: String,
    codec: Codec,
    cache: Cache,
}

/// What one visit of a (dataset, configuration) pair measured, in µs.
struct Visited {
    encode: f64,
    decode: f64,
    write: f64,
    read: f64,
}

/// All the visits of one (dataset, configuration) pair.
#[derive(Default)]
struct Samples {
    encode: Vec<f64>,
    decode: Vec<f64>,
    write: Vec<f64>,
    read: Vec<f64>,
    roundtrip: Vec<f64>,
}

impl Samples {
    fn push(&mut self, v: &Visited) {
        self.encode.push(v.encode);
        self.decode.push(v.decode);
        self.write.push(v.write);
        self.read.push(v.read);
        self.roundtrip.push(v.write + v.read);
    }
}

/// A pair that passed its sanity check.
struct Cell {
    dataset: usize,
    config: usize,
    stored: usize,
    samples: Samples,
}

/// Count, median, mean, standard deviation and 99th percentile, in µs.
#[derive(Clone, Copy, Serialize)]
struct Stats {
    count: usize,
    median: f64,
    mean: f64,
    stddev: f64,
    p99: f64,
}

impl Stats {
    fn of(samples: &[f64]) -> Stats {
        let mut sorted = samples.to_vec();
        sorted.sort_by(f64::total_cmp);
        let n = sorted.len();
        if n == 0 {
            return Stats {
                count: 0,
                median: f64::NAN,
                mean: f64::NAN,
                stddev: f64::NAN,
                p99: f64::NAN,
            };
        }
        let median = if n % 2 == 1 {
            sorted[n / 2]
        } else {
            (sorted[n / 2 - 1] + sorted[n / 2]) / 2.0
        };
        let mean = sorted.iter().sum::<f64>() / n as f64;
        let var = sorted.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / (n.max(2) - 1) as f64;
        // Nearest rank.
        let p99 = sorted[((n as f64 * 0.99).ceil() as usize).clamp(1, n) - 1];
        Stats {
            count: n,
            median,
            mean,
            stddev: var.sqrt(),
            p99,
        }
    }
}

/// One row of the summary files.
#[derive(Serialize)]
struct Row<'a> {
    dataset: &'a str,
    configuration: &'a str,
    serializer: &'a str,
    compressor: &'a str,
    stored_bytes: usize,
    json_bytes: usize,
    roundtrip_us: Stats,
    write_us: Stats,
    read_us: Stats,
    encode_cpu_us: Stats,
    decode_cpu_us: Stats,
    /// No other configuration of the dataset is both as small and as fast.
    pareto_front: bool,
    /// The one configuration the recommendation rule picks for the dataset.
    recommended: bool,
}

fn run(args: &Args, started: Instant) -> Result<(), String> {
    let budget = Duration::from_secs_f64(args.seconds);
    let deadline = started + budget;
    let datasets = match &args.data {
        Some(path) => vec![Dataset::from_json_file(path)?],
        None => Dataset::builtin(),
    };
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("cannot start the tokio runtime: {e}"))?;
    let redis = connect_redis(&rt, args.redis.as_deref())?;
    println!("Redis: {}", redis.description);

    let configs = caches(&redis.url, args.compress_threshold)?;
    let serializer_count = serializers().len();
    let compressor_count = compressors().len();
    println!(
        "{} configurations ({serializer_count} serializers x {compressor_count} compressors), compress threshold {} bytes, budget {:.1} s",
        configs.len(),
        args.compress_threshold,
        args.seconds
    );

    println!("\nSanity check, decode(encode(x)) == x, before any timing:");
    let mut cells = Vec::new();
    for (d, dataset) in datasets.iter().enumerate() {
        let mut refused = Vec::new();
        for (c, config) in configs.iter().enumerate() {
            match dataset.visit(SanityCheck {
                codec: &config.codec,
            }) {
                Ok(stored) => cells.push(Cell {
                    dataset: d,
                    config: c,
                    stored,
                    samples: Samples::default(),
                }),
                Err(e) => refused.push(format!("    {}: {e}", config.label)),
            }
        }
        println!(
            "  {:<12} {:<45} {:>6} bytes as JSON: {} of {} configurations pass",
            dataset.name,
            dataset.about,
            dataset.json_len(),
            configs.len() - refused.len(),
            configs.len()
        );
        for line in &refused {
            println!("{line}  (left out)");
        }
    }
    if cells.is_empty() {
        return Err("no configuration round-trips this data".into());
    }

    let rounds = measure(&rt, &datasets, &configs, &mut cells, deadline)?;
    let run_time = started.elapsed();
    println!(
        "\n{rounds} measured rounds after 1 warm-up round, {:.1} s in all (budget {:.1} s)",
        run_time.as_secs_f64(),
        args.seconds
    );

    let rows = report(&datasets, &configs, &cells);
    write_outputs(&args.out, &datasets, &rows)?;
    cleanup(&rt, &configs, &datasets);
    Ok(())
}

/// The Redis to measure through, and how it was chosen.
struct RedisTarget {
    url: String,
    description: String,
    /// Kept alive for the run when this tool started the server.
    _private: Option<support::RedisServer>,
}

fn connect_redis(rt: &Runtime, flag: Option<&str>) -> Result<RedisTarget, String> {
    let answers = |url: &str| -> Result<(), String> {
        let cache = Cache::builder()
            .url(url)
            .connect_timeout(Duration::from_secs(2))
            .build()
            .map_err(|e| e.to_string())?;
        rt.block_on(cache.ping()).map_err(|e| e.to_string())
    };
    let (url, how) = match (flag, std::env::var("REDIS_URL").ok()) {
        (Some(url), _) => (url.to_string(), "from --redis"),
        (None, Some(url)) if !url.is_empty() => (url, "from $REDIS_URL"),
        _ => {
            let url = "redis://127.0.0.1:6379".to_string();
            if answers(&url).is_ok() {
                return Ok(RedisTarget {
                    description: format!(
                        "{url} (the local default; no --redis or $REDIS_URL given)"
                    ),
                    url,
                    _private: None,
                });
            }
            return start_private_redis(&url);
        }
    };
    answers(&url)
        .map_err(|e| format!("Redis at {} ({how}) does not answer: {e}", redacted(&url)))?;
    Ok(RedisTarget {
        description: format!("{} ({how})", redacted(&url)),
        url,
        _private: None,
    })
}

fn start_private_redis(default_url: &str) -> Result<RedisTarget, String> {
    let found = std::process::Command::new("redis-server")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    if !found {
        return Err(format!(
            "nothing answers at {default_url} and redis-server is not on PATH: pass --redis URL, \
             set REDIS_URL, or install redis-server (apt-get install redis-server)"
        ));
    }
    let server = std::panic::catch_unwind(support::RedisServer::start).map_err(|_| {
        "could not start a private redis-server (see the message above)".to_string()
    })?;
    Ok(RedisTarget {
        description: format!(
            "{} (a private redis-server started for this run: nothing answered at {default_url})",
            server.url()
        ),
        url: server.url(),
        _private: Some(server),
    })
}

/// The URL without its password, for printing.
fn redacted(url: &str) -> String {
    cache_memoize::RedactedUrl::new(url).to_string()
}

/// Every configuration, with a cache that writes with it.
fn caches(url: &str, threshold: usize) -> Result<Vec<Config>, String> {
    configurations(threshold)
        .into_iter()
        .map(|(label, codec)| {
            let cache = Cache::builder()
                .url(url)
                .prefix(KEY_PREFIX)
                .default_ttl(Some(Duration::from_secs(300)))
                .codec(codec.clone())
                .build()
                .map_err(|e| format!("cannot configure the cache for {label}: {e}"))?;
            Ok(Config {
                label,
                codec,
                cache,
            })
        })
        .collect()
}

/// decode(encode(x)) == x; the stored size.
struct SanityCheck<'a> {
    codec: &'a Codec,
}

impl Visit for SanityCheck<'_> {
    type Output = Result<usize, String>;
    fn visit<T: Sample>(self, value: &T) -> Result<usize, String> {
        let entry = self.codec.encode(value).map_err(|e| e.to_string())?;
        let back: T = self.codec.decode(&entry).map_err(|e| e.to_string())?;
        if &back != value {
            return Err("decodes to a different value".into());
        }
        Ok(entry.len())
    }
}

/// One timed visit of a pair.
struct Measure<'a> {
    rt: &'a Runtime,
    config: &'a Config,
    key: &'a str,
}

impl Visit for Measure<'_> {
    type Output = Result<Visited, String>;
    fn visit<T: Sample>(self, value: &T) -> Result<Visited, String> {
        let codec = &self.config.codec;
        let cpu = ThreadTime::now();
        let entry = black_box(codec.encode(black_box(value)));
        let encode = cpu.elapsed();
        let entry = entry.map_err(|e| e.to_string())?;
        let cpu = ThreadTime::now();
        let back = black_box(codec.decode::<T>(black_box(&entry)));
        let decode = cpu.elapsed();
        drop(back);

        let cache = &self.config.cache;
        let (write, read, got) = self
            .rt
            .block_on(async {
                let t0 = Instant::now();
                cache.set(self.key, value, None).await?;
                let t1 = Instant::now();
                let got = cache.get::<T>(self.key).await?;
                Ok::<_, cache_memoize::Error>((t1 - t0, t1.elapsed(), got))
            })
            .map_err(|e| format!("{}: Redis failed: {e}", self.config.label))?;
        if got.as_ref() != Some(value) {
            return Err(format!(
                "{}: the value read back from Redis differs",
                self.config.label
            ));
        }
        let us = |d: Duration| d.as_secs_f64() * 1e6;
        Ok(Visited {
            encode: us(encode),
            decode: us(decode),
            write: us(write),
            read: us(read),
        })
    }
}

fn key_of(dataset: &Dataset, config: &Config) -> String {
    format!("{}:{}", dataset.name, config.label)
}

/// Rounds of every cell in random order until the deadline; the number of
/// measured rounds.
fn measure(
    rt: &Runtime,
    datasets: &[Dataset],
    configs: &[Config],
    cells: &mut [Cell],
    deadline: Instant,
) -> Result<usize, String> {
    let mut rng = fastrand::Rng::new();
    let mut order: Vec<usize> = (0..cells.len()).collect();
    let keys: Vec<String> = cells
        .iter()
        .map(|c| key_of(&datasets[c.dataset], &configs[c.config]))
        .collect();
    let mut longest = Duration::ZERO;
    let mut round = 0;
    loop {
        let round_start = Instant::now();
        // Round 0 is the warm-up; stop before a round that would overrun.
        if round > 0 && round_start + longest > deadline {
            break;
        }
        rng.shuffle(&mut order);
        for &i in &order {
            let cell = &mut cells[i];
            let visited = datasets[cell.dataset].visit(Measure {
                rt,
                config: &configs[cell.config],
                key: &keys[i],
            })?;
            if round > 0 {
                cell.samples.push(&visited);
            }
        }
        longest = longest.max(round_start.elapsed());
        round += 1;
    }
    if round < 2 {
        return Err(format!(
            "the budget left no time after the warm-up round ({:.1} s); give more --seconds",
            longest.as_secs_f64()
        ));
    }
    Ok(round - 1)
}

fn report<'a>(datasets: &'a [Dataset], configs: &'a [Config], cells: &[Cell]) -> Vec<Row<'a>> {
    let mut rows = Vec::new();
    for (d, dataset) in datasets.iter().enumerate() {
        let mut mine: Vec<&Cell> = cells.iter().filter(|c| c.dataset == d).collect();
        mine.sort_by(|a, b| {
            Stats::of(&a.samples.roundtrip)
                .median
                .total_cmp(&Stats::of(&b.samples.roundtrip).median)
        });
        let json_bytes = dataset.json_len();
        println!(
            "\n== {}: {} ({json_bytes} bytes as JSON) ==",
            dataset.name, dataset.about
        );
        println!(
            "{:>2}  {:<16} {:>8} {:>6} | {:>9} {:>9} {:>8} {:>9} {:>5} | {:>8} {:>8} | {:>8} {:>8}",
            "#",
            "configuration",
            "stored",
            "%json",
            "rt med",
            "rt mean",
            "rt sd",
            "rt p99",
            "n",
            "write",
            "read",
            "enc cpu",
            "dec cpu"
        );
        println!(
            "{:>2}  {:<16} {:>8} {:>6} | {:^45} | {:^17} | {:^17}",
            "", "", "bytes", "", "round trip µs", "median µs", "median µs"
        );
        // This dataset's rows are the ones pushed from here on.
        let start = rows.len();
        for (rank, cell) in mine.iter().enumerate() {
            let config = &configs[cell.config];
            let row = Row {
                dataset: &dataset.name,
                configuration: &config.label,
                serializer: config.codec.serializer().name(),
                compressor: config.codec.compressor().name(),
                stored_bytes: cell.stored,
                json_bytes,
                roundtrip_us: Stats::of(&cell.samples.roundtrip),
                write_us: Stats::of(&cell.samples.write),
                read_us: Stats::of(&cell.samples.read),
                encode_cpu_us: Stats::of(&cell.samples.encode),
                decode_cpu_us: Stats::of(&cell.samples.decode),
                pareto_front: false,
                recommended: false,
            };
            let rt = row.roundtrip_us;
            println!(
                "{:>2}  {:<16} {:>8} {:>5.1}% | {:>9.1} {:>9.1} {:>8.1} {:>9.1} {:>5} | {:>8.1} {:>8.1} | {:>8.1} {:>8.1}",
                rank + 1,
                row.configuration,
                row.stored_bytes,
                100.0 * row.stored_bytes as f64 / json_bytes as f64,
                rt.median,
                rt.mean,
                rt.stddev,
                rt.p99,
                rt.count,
                row.write_us.median,
                row.read_us.median,
                row.encode_cpu_us.median,
                row.decode_cpu_us.median
            );
            rows.push(row);
        }
        let mine: Vec<&Row> = rows[start..].iter().collect();
        let bars = |title: &str, unit: &str, value: &dyn Fn(&Row) -> f64| {
            let mut sorted = mine.clone();
            sorted.sort_by(|a, b| value(a).total_cmp(&value(b)));
            let entries: Vec<(&str, f64)> =
                sorted.iter().map(|r| (r.configuration, value(r))).collect();
            print!(
                "\n{title} — {}, {unit}\n{}",
                dataset.name,
                ascii_bars(&entries)
            );
        };
        bars("Best medians (shorter better)", "round trip µs", &|r| {
            r.roundtrip_us.median
        });
        bars("Size of data saved (shorter better)", "bytes", &|r| {
            r.stored_bytes as f64
        });
        mark_pareto_and_recommend(&dataset.name, &mut rows[start..]);
    }
    print_overall(datasets, &rows);
    rows
}

/// Sets `pareto_front` and `recommended` on one dataset's rows and prints
/// the front and the recommendation.
fn mark_pareto_and_recommend(dataset: &str, rows: &mut [Row]) {
    let points: Vec<(f64, f64)> = rows
        .iter()
        .map(|r| (r.stored_bytes as f64, r.roundtrip_us.median))
        .collect();
    let front = pareto_front(&points);
    for &i in &front {
        rows[i].pareto_front = true;
    }
    let names: Vec<&str> = front.iter().map(|&i| rows[i].configuration).collect();
    println!(
        "\nPareto front — {dataset}, smallest first: {}",
        names.join(", ")
    );
    let Some(pick) = recommend(&points) else {
        println!("recommendation for {dataset}: none (no configuration was measured)");
        return;
    };
    rows[pick].recommended = true;
    let best = front
        .iter()
        .map(|&i| points[i].1)
        .fold(f64::INFINITY, f64::min);
    let row = &rows[pick];
    println!(
        "recommendation for {dataset}: {} ({} bytes, {:.1} µs round trip; on the Pareto front, \
         round trip within {:.0}% of the fastest ({best:.1} µs), smallest among those)",
        row.configuration,
        row.stored_bytes,
        row.roundtrip_us.median,
        RECOMMEND_SLACK * 100.0
    );
}

/// Indices of the Pareto front of `points`, `(size, time)` pairs where
/// smaller is better for both: the points no other point dominates, i.e. no
/// other point is at most as large and at most as slow and strictly better
/// on one of the two. Exact ties (same size and time) do not dominate each
/// other, so all of them stay: the measurement cannot tell them apart. A
/// point with a non-finite coordinate (the median of no samples) is neither
/// on the front nor dominates. Sorted by size, then time, then index: the
/// order the front's line is drawn in and the recommendation scans.
fn pareto_front(points: &[(f64, f64)]) -> Vec<usize> {
    let finite = |p: (f64, f64)| p.0.is_finite() && p.1.is_finite();
    let dominates = |a: (f64, f64), b: (f64, f64)| {
        finite(a) && a.0 <= b.0 && a.1 <= b.1 && (a.0 < b.0 || a.1 < b.1)
    };
    let mut front: Vec<usize> = (0..points.len())
        .filter(|&i| finite(points[i]) && !points.iter().any(|&p| dominates(p, points[i])))
        .collect();
    front.sort_by(|&a, &b| {
        (points[a].0.total_cmp(&points[b].0))
            .then(points[a].1.total_cmp(&points[b].1))
            .then(a.cmp(&b))
    });
    front
}

/// How much slower than the fastest round trip a recommendation may be: a
/// difference this small is within the noise of a loaded machine.
const RECOMMEND_SLACK: f64 = 0.10;

/// Index of the recommended point of `points` (`(size, time)`, as for
/// [`pareto_front`]): on the front, time within [`RECOMMEND_SLACK`] of the
/// fastest, smallest among those. `None` when nothing was measured.
fn recommend(points: &[(f64, f64)]) -> Option<usize> {
    let front = pareto_front(points);
    let fastest = front
        .iter()
        .map(|&i| points[i].1)
        .fold(f64::INFINITY, f64::min);
    // The front is in size order, so the first one fast enough is the
    // smallest (and of equal sizes, the faster).
    front
        .into_iter()
        .find(|&i| points[i].1 <= fastest * (1.0 + RECOMMEND_SLACK))
}

/// Bars scaled to the largest value, 50 characters wide.
fn ascii_bars(entries: &[(&str, f64)]) -> String {
    const WIDTH: f64 = 50.0;
    let max = entries.iter().map(|e| e.1).fold(0.0, f64::max);
    let mut out = String::new();
    for (label, value) in entries {
        let len = if max > 0.0 {
            (value / max * WIDTH).round().max(1.0) as usize
        } else {
            1
        };
        let _ = writeln!(out, "{label:<16} {} {value:.1}", "█".repeat(len));
    }
    out
}

/// Geometric means over the datasets of each configuration's round trip and
/// size relative to the baseline.
fn print_overall(datasets: &[Dataset], rows: &[Row]) {
    let mut labels: Vec<&str> = rows.iter().map(|r| r.configuration).collect();
    labels.sort_unstable();
    labels.dedup();
    let mut overall = Vec::new();
    for label in labels {
        let (mut time, mut size, mut n) = (0.0, 0.0, 0);
        for dataset in datasets {
            let find = |l: &str| {
                rows.iter()
                    .find(|r| r.dataset == dataset.name && r.configuration == l)
            };
            if let (Some(row), Some(base)) = (find(label), find(BASELINE)) {
                time += (row.roundtrip_us.median / base.roundtrip_us.median).ln();
                size += (row.stored_bytes as f64 / base.stored_bytes as f64).ln();
                n += 1;
            }
        }
        if n > 0 {
            overall.push((label, (time / n as f64).exp(), (size / n as f64).exp(), n));
        }
    }
    if overall.is_empty() {
        return;
    }
    overall.sort_by(|a, b| a.1.total_cmp(&b.1));
    println!("\n== Overall: geometric mean over datasets, relative to {BASELINE} (1.00 = same; lower is better) ==");
    println!(
        "{:>2}  {:<16} {:>10} {:>10} {:>9}",
        "#", "configuration", "round trip", "size", "datasets"
    );
    for (rank, (label, time, size, n)) in overall.iter().enumerate() {
        println!(
            "{:>2}  {:<16} {:>10.2} {:>10.2} {:>9}",
            rank + 1,
            label,
            time,
            size,
            n
        );
    }
}

fn write_outputs(out: &Path, datasets: &[Dataset], rows: &[Row]) -> Result<(), String> {
    std::fs::create_dir_all(out).map_err(|e| format!("cannot create {}: {e}", out.display()))?;
    let write = |name: &str, contents: &[u8]| {
        let path = out.join(name);
        std::fs::write(&path, contents)
            .map_err(|e| format!("cannot write {}: {e}", path.display()))?;
        Ok::<_, String>(path)
    };
    let mut csv = String::from(
        "dataset,configuration,serializer,compressor,stored_bytes,json_bytes,count,\
         roundtrip_median_us,roundtrip_mean_us,roundtrip_stddev_us,roundtrip_p99_us,\
         write_median_us,read_median_us,encode_cpu_median_us,decode_cpu_median_us\n",
    );
    for r in rows {
        let _ = writeln!(
            csv,
            "{},{},{},{},{},{},{},{:.2},{:.2},{:.2},{:.2},{:.2},{:.2},{:.2},{:.2}",
            r.dataset,
            r.configuration,
            r.serializer,
            r.compressor,
            r.stored_bytes,
            r.json_bytes,
            r.roundtrip_us.count,
            r.roundtrip_us.median,
            r.roundtrip_us.mean,
            r.roundtrip_us.stddev,
            r.roundtrip_us.p99,
            r.write_us.median,
            r.read_us.median,
            r.encode_cpu_us.median,
            r.decode_cpu_us.median
        );
    }
    let csv_path = write("summary.csv", csv.as_bytes())?;
    let json = serde_json::to_vec_pretty(rows).map_err(|e| e.to_string())?;
    let json_path = write("summary.json", &json)?;
    let svg_path = out.join("fastest-config.svg");
    draw_chart(&svg_path, &chart_data(datasets, rows))
        .map_err(|e| format!("cannot draw {}: {e}", svg_path.display()))?;
    println!(
        "\nWrote {}, {} and {}",
        svg_path.display(),
        csv_path.display(),
        json_path.display()
    );
    Ok(())
}

/// One configuration as the chart sees it.
struct Point {
    config: String,
    stored_bytes: usize,
    /// Median round trip (write + read, wall clock).
    roundtrip_us: f64,
}

/// What the chart draws of one dataset: plain data, so that the chart can
/// be drawn without a Redis run.
struct DatasetPoints {
    name: String,
    points: Vec<Point>,
}

/// The chart's data: per dataset, in order, its rows' size and round trip.
fn chart_data(datasets: &[Dataset], rows: &[Row]) -> Vec<DatasetPoints> {
    datasets
        .iter()
        .map(|dataset| DatasetPoints {
            name: dataset.name.clone(),
            points: rows
                .iter()
                .filter(|r| r.dataset == dataset.name)
                .map(|r| Point {
                    config: r.configuration.to_string(),
                    stored_bytes: r.stored_bytes,
                    roundtrip_us: r.roundtrip_us.median,
                })
                .collect(),
        })
        .collect()
}

/// One row per dataset: median round trip and stored bytes, as horizontal
/// bars sorted shortest first, and beside them size against round trip with
/// the Pareto front; the baseline in another colour.
fn draw_chart(path: &Path, data: &[DatasetPoints]) -> Result<(), Box<dyn std::error::Error>> {
    const ROW_HEIGHT: u32 = 16;
    const PANEL_WIDTH: u32 = 700;
    // The scatter panel needs some height even when there are few bars.
    const MIN_HEIGHT: u32 = 420;
    let heights: Vec<u32> = data
        .iter()
        .map(|d| (90 + ROW_HEIGHT * d.points.len() as u32).max(MIN_HEIGHT))
        .collect();
    let root = SVGBackend::new(path, (3 * PANEL_WIDTH, heights.iter().sum())).into_drawing_area();
    root.fill(&WHITE)?;
    let mut rest = root.clone();
    for (dataset, &height) in data.iter().zip(&heights) {
        let (band, below) = rest.split_vertically(height);
        rest = below;
        let (left, right) = band.split_horizontally(PANEL_WIDTH);
        let (middle, right) = right.split_horizontally(PANEL_WIDTH);
        let time: Vec<(String, f64)> = dataset
            .points
            .iter()
            .map(|p| (p.config.clone(), p.roundtrip_us))
            .collect();
        let size: Vec<(String, f64)> = dataset
            .points
            .iter()
            .map(|p| (p.config.clone(), p.stored_bytes as f64))
            .collect();
        bar_panel(
            &left,
            &format!(
                "{}: median round trip (µs), shorter is better",
                dataset.name
            ),
            time,
        )?;
        bar_panel(
            &middle,
            &format!("{}: stored bytes, shorter is better", dataset.name),
            size,
        )?;
        scatter_panel(&right, dataset)?;
    }
    root.present()?;
    Ok(())
}

/// The bars' and points' colour: the baseline stands out.
fn config_color(label: &str) -> RGBColor {
    if label == BASELINE {
        RGBColor(214, 96, 77)
    } else {
        RGBColor(67, 147, 195)
    }
}

fn bar_panel(
    area: &DrawingArea<SVGBackend, plotters::coord::Shift>,
    title: &str,
    mut bars: Vec<(String, f64)>,
) -> Result<(), Box<dyn std::error::Error>> {
    bars.sort_by(|a, b| a.1.total_cmp(&b.1));
    let max = bars.iter().map(|b| b.1).fold(1.0, f64::max);
    let mut chart = ChartBuilder::on(area)
        .caption(title, ("sans-serif", 16))
        .margin(8)
        .x_label_area_size(24)
        .y_label_area_size(120)
        .build_cartesian_2d(0.0..max * 1.05, (0..bars.len()).into_segmented())?;
    // Shortest on top: the segmented axis counts from the bottom.
    bars.reverse();
    let labels: Vec<String> = bars.iter().map(|b| b.0.clone()).collect();
    chart
        .configure_mesh()
        .disable_y_mesh()
        .y_labels(bars.len())
        .y_label_formatter(&|v| match v {
            SegmentValue::CenterOf(i) => labels.get(*i).cloned().unwrap_or_default(),
            _ => String::new(),
        })
        .x_label_formatter(&|x| format!("{x:.0}"))
        .label_style(("sans-serif", 11))
        .draw()?;
    chart.draw_series(bars.iter().enumerate().map(|(i, (label, value))| {
        let mut bar = Rectangle::new(
            [
                (0.0, SegmentValue::Exact(i)),
                (*value, SegmentValue::Exact(i + 1)),
            ],
            config_color(label).filled(),
        );
        bar.set_margin(2, 2, 0, 0);
        bar
    }))?;
    Ok(())
}

/// The legend text of a dataset's Pareto series: one per dataset in the SVG,
/// which is how the test finds it.
fn pareto_label(dataset: &str) -> String {
    format!("Pareto front: {dataset}")
}

/// Stored bytes (x) against median round trip (y), one labelled point per
/// configuration; the Pareto front as a line in size order through ringed
/// points, one series named by [`pareto_label`].
fn scatter_panel(
    area: &DrawingArea<SVGBackend, plotters::coord::Shift>,
    dataset: &DatasetPoints,
) -> Result<(), Box<dyn std::error::Error>> {
    const PARETO: RGBColor = RGBColor(230, 97, 1);
    let xy: Vec<(f64, f64)> = dataset
        .points
        .iter()
        .map(|p| (p.stored_bytes as f64, p.roundtrip_us))
        .collect();
    // Log scales: sizes and times span orders of magnitude (xz against no
    // compression), which on linear axes crowds the front into a corner.
    // The points go at their logarithms on linear axes, whose ticks are
    // labelled with the values: plotters' own log axes label only the powers
    // of ten and what follows them, so none of a range between two.
    let log = |(x, y): (f64, f64)| {
        (x.is_finite() && y.is_finite() && x > 0.0 && y > 0.0).then(|| (x.log10(), y.log10()))
    };
    let drawn: Vec<(&str, (f64, f64))> = dataset
        .points
        .iter()
        .zip(&xy)
        .filter_map(|(point, &p)| Some((point.config.as_str(), log(p)?)))
        .collect();
    let front: Vec<(f64, f64)> = pareto_front(&xy)
        .into_iter()
        .filter_map(|i| log(xy[i]))
        .collect();
    // More room on the right: the names are written right of their point.
    let x_range = padded_range(drawn.iter().map(|d| d.1 .0), 0.05, 0.2);
    let y_range = padded_range(drawn.iter().map(|d| d.1 .1), 0.08, 0.08);
    let mut chart = ChartBuilder::on(area)
        .caption(
            format!(
                "{}: stored bytes vs median round trip, lower left is better",
                dataset.name
            ),
            ("sans-serif", 16),
        )
        .margin(8)
        .x_label_area_size(36)
        .y_label_area_size(56)
        .build_cartesian_2d(x_range, y_range)?;
    chart
        .configure_mesh()
        .x_desc("stored bytes (log scale)")
        .y_desc("round trip µs (log scale)")
        .x_label_formatter(&|x| two_digits(10f64.powf(*x)))
        .y_label_formatter(&|y| two_digits(10f64.powf(*y)))
        .label_style(("sans-serif", 11))
        .draw()?;
    chart.draw_series(drawn.iter().map(|&(config, p)| {
        EmptyElement::at(p)
            + Circle::new((0, 0), 3, config_color(config).filled())
            + Text::new(config.to_string(), (5, -10), ("sans-serif", 10))
    }))?;
    let style = PARETO.stroke_width(2);
    chart
        .draw_series(LineSeries::new(front.iter().copied(), style))?
        .label(pareto_label(&dataset.name))
        .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], style));
    // Rings, so that each front point keeps its own colour inside.
    chart.draw_series(front.iter().map(|&p| Circle::new(p, 6, style)))?;
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperRight)
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK)
        .label_font(("sans-serif", 11))
        .draw()?;
    Ok(())
}

/// The finite values' range, widened by the given fractions of its span on
/// each side; 0.1 either side of a lone value, 0..1 when there is none.
fn padded_range(values: impl Iterator<Item = f64>, low: f64, high: f64) -> std::ops::Range<f64> {
    let (min, max) = values
        .filter(|v| v.is_finite())
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), v| {
            (lo.min(v), hi.max(v))
        });
    if min > max {
        0.0..1.0
    } else if min == max {
        min - 0.1..max + 0.1
    } else {
        let span = max - min;
        min - span * low..max + span * high
    }
}

/// `v` rounded to two significant digits: the label of a tick of a log
/// axis, which falls on no round number.
fn two_digits(v: f64) -> String {
    if !(v.is_finite() && v > 0.0) {
        return String::new();
    }
    let exponent = v.log10().floor() as i32 - 1;
    let step = 10f64.powi(exponent);
    let decimals = usize::try_from(-exponent).unwrap_or(0);
    format!("{:.*}", decimals, (v / step).round() * step)
}

/// Deletes the benchmark's keys (they would expire within 5 minutes anyway).
fn cleanup(rt: &Runtime, configs: &[Config], datasets: &[Dataset]) {
    rt.block_on(async {
        for config in configs {
            for dataset in datasets {
                let _ = config.cache.delete(&key_of(dataset, config)).await;
            }
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pareto_front_excludes_dominated_and_keeps_ties() {
        let points = [
            (100.0, 10.0),    // 0: on the front
            (200.0, 5.0),     // 1: on the front, the fastest
            (150.0, 12.0),    // 2: dominated by 0 on both
            (100.0, 10.0),    // 3: an exact tie with 0, kept
            (100.0, 11.0),    // 4: as small as 0 but slower
            (300.0, 5.0),     // 5: as fast as 1 but larger
            (50.0, f64::NAN), // 6: no samples, never on the front
        ];
        assert_eq!(pareto_front(&points), vec![0, 3, 1]);
        assert_eq!(pareto_front(&[]), Vec::<usize>::new());
    }

    #[test]
    fn recommend_takes_the_smallest_within_the_slack() {
        // 0 is within 10% of the fastest (1) and smaller.
        assert_eq!(
            recommend(&[(100.0, 10.5), (200.0, 10.0), (50.0, 30.0)]),
            Some(0)
        );
        // 0 is too slow, so the fastest wins.
        assert_eq!(recommend(&[(100.0, 12.0), (200.0, 10.0)]), Some(1));
        assert_eq!(recommend(&[]), None);
    }

    #[test]
    fn two_digits_rounds_log_axis_labels() {
        assert_eq!(two_digits(15_848.9), "16000");
        assert_eq!(two_digits(199.5), "200");
        assert_eq!(two_digits(0.5012), "0.50");
        assert_eq!(two_digits(f64::NAN), "");
    }

    #[test]
    fn chart_has_one_pareto_series_per_dataset() {
        let point = |config: &str, stored_bytes: usize, roundtrip_us: f64| Point {
            config: config.to_string(),
            stored_bytes,
            roundtrip_us,
        };
        // "small" is a prefix of "small-nested": the count must not mix them.
        let data = vec![
            DatasetPoints {
                name: "small".into(),
                points: vec![
                    point("msgpack+zlib", 120, 80.0),
                    point("msgpack+none", 200, 60.0),
                    point("json+none", 260, 90.0),
                ],
            },
            DatasetPoints {
                name: "small-nested".into(),
                points: vec![
                    point("msgpack+zstd", 900, 150.0),
                    point("cbor+lz4", 1400, 110.0),
                    point("json+zlib", 1000, 170.0),
                    point("json+none", 5000, 120.0),
                ],
            },
            DatasetPoints {
                name: "single".into(),
                points: vec![point("postcard+none", 40, 30.0)],
            },
        ];
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos());
        let path = std::env::temp_dir().join(format!(
            "fastest-config-test-{}-{nanos}.svg",
            std::process::id()
        ));
        let drawn = draw_chart(&path, &data);
        let svg = std::fs::read_to_string(&path);
        let _ = std::fs::remove_file(&path);
        drawn.expect("the chart draws");
        let svg = svg.expect("the chart was written");
        // plotters writes the text of a <text> element (a legend label) on
        // a line of its own; whole lines, so "small" is not "small-nested".
        let count = |label: &str| svg.lines().filter(|l| l.trim() == label).count();
        for dataset in &data {
            let label = pareto_label(&dataset.name);
            assert_eq!(count(&label), 1, "{label:?} in the SVG");
        }
        assert_eq!(svg.matches("Pareto front: ").count(), data.len());
    }
}
