//! Std-only test support shared by integration tests, benches and examples.
//!
//! Include it with
//! `#[path = "../tests/support/mod.rs"] mod support;` (benches/examples) or
//! `#[path = "support/mod.rs"] mod support;` / `mod support;` (tests).
//!
//! It provides:
//! * [`RedisServer`]: a private `redis-server` process on a free loopback
//!   port with its own temporary directory, which can be killed, paused
//!   (SIGSTOP), resumed (SIGCONT) and restarted on the same port.
//! * [`redis_url_for_tests`]: uses `$REDIS_URL` when set, otherwise starts a
//!   private server.
//! * [`redis_cmd`] and friends: a tiny RESP2 client so tests can read and
//!   write raw bytes without going through the library under test.
//!
//! Every test binary uses a subset of this module, hence the blanket
//! `dead_code` allowance.
#![allow(dead_code)]

use std::fmt;
use std::fs::{self, File};
use std::io::{self, BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::thread;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// How long to wait for a freshly started server to answer `PING`.
const STARTUP_TIMEOUT: Duration = Duration::from_secs(10);
/// Poll interval while waiting for the server.
const POLL_INTERVAL: Duration = Duration::from_millis(10);
/// Attempts with a fresh port when the chosen port turned out to be taken.
const PORT_ATTEMPTS: usize = 5;
/// Socket timeouts of the raw RESP client, so a paused server cannot hang a test forever.
const CLIENT_TIMEOUT: Duration = Duration::from_secs(10);

const NOT_FOUND_MSG: &str = "redis-server not found on PATH: install it with \
`sudo apt-get install -y redis-server` (Debian/Ubuntu) or run ./scripts/test.sh \
which installs it, or set REDIS_URL to an existing server";

// ---------------------------------------------------------------------------
// RedisServer
// ---------------------------------------------------------------------------

/// A private `redis-server` child process bound to 127.0.0.1 only.
///
/// Persistence is disabled (`--save "" --appendonly no`). Dropping the value
/// kills the process and removes its temporary directory.
pub struct RedisServer {
    pub port: u16,
    pub url: String,
    child: Option<Child>,
    dir: PathBuf,
    /// Extra arguments with `{dir}` already substituted; reused on restart.
    extra_args: Vec<String>,
}

/// Why a single start attempt failed.
enum StartError {
    /// The port was already in use (by another process or another test).
    PortTaken(String),
    /// Anything else; carries a human readable description.
    Other(String),
}

impl RedisServer {
    /// Starts a server on a free loopback port.
    pub fn start() -> RedisServer {
        Self::start_with_args(&[])
    }

    /// Starts a server on a free loopback port with extra command line
    /// arguments. The placeholder `{dir}` in any argument is replaced by the
    /// server's temporary directory, e.g.
    /// `&["--unixsocket", "{dir}/redis.sock", "--unixsocketperm", "700"]`.
    pub fn start_with_args(extra_args: &[&str]) -> RedisServer {
        let dir = fresh_temp_dir();
        let extra = substitute_dir(extra_args, &dir);
        let mut last_err = String::new();
        for _ in 0..PORT_ATTEMPTS {
            let port = free_port();
            match spawn_and_wait(port, &dir, &extra) {
                Ok(child) => return Self::from_parts(port, child, dir, extra),
                Err(StartError::PortTaken(msg)) => last_err = msg,
                Err(StartError::Other(msg)) => {
                    let _ = fs::remove_dir_all(&dir);
                    panic!("{msg}");
                }
            }
        }
        let _ = fs::remove_dir_all(&dir);
        panic!(
            "could not start redis-server after {PORT_ATTEMPTS} attempts (port taken):\n{last_err}"
        );
    }

    /// Starts a server with the `--unixsocket <dir>/redis.sock --unixsocketperm 700` options.
    pub fn start_with_unix_socket() -> RedisServer {
        Self::start_with_args(&[
            "--unixsocket",
            "{dir}/redis.sock",
            "--unixsocketperm",
            "700",
        ])
    }

    /// Starts a server on the given port (e.g. to bring a server back on the
    /// port of one that was dropped), with a fresh temporary directory.
    pub fn start_on_port(port: u16) -> RedisServer {
        Self::start_on_port_with_args(port, &[])
    }

    /// [`RedisServer::start_on_port`] with extra arguments (`{dir}` is substituted).
    pub fn start_on_port_with_args(port: u16, extra_args: &[&str]) -> RedisServer {
        let dir = fresh_temp_dir();
        let extra = substitute_dir(extra_args, &dir);
        match spawn_on_fixed_port(port, &dir, &extra) {
            Ok(child) => Self::from_parts(port, child, dir, extra),
            Err(msg) => {
                let _ = fs::remove_dir_all(&dir);
                panic!("{msg}");
            }
        }
    }

    fn from_parts(port: u16, child: Child, dir: PathBuf, extra_args: Vec<String>) -> RedisServer {
        let url = match requirepass(&extra_args) {
            Some(pass) => format!("redis://:{pass}@127.0.0.1:{port}/"),
            None => format!("redis://127.0.0.1:{port}/"),
        };
        RedisServer {
            port,
            url,
            child: Some(child),
            dir,
            extra_args,
        }
    }

    /// `redis://127.0.0.1:PORT/` (`redis://:PASSWORD@127.0.0.1:PORT/` when
    /// started with `--requirepass PASSWORD`).
    pub fn url(&self) -> String {
        self.url.clone()
    }

    /// The server's temporary directory (also holds `redis.log`).
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Path of the log file.
    pub fn log_path(&self) -> PathBuf {
        self.dir.join("redis.log")
    }

    /// The unix socket path if the server was started with `--unixsocket`.
    pub fn unix_socket_path(&self) -> Option<PathBuf> {
        self.extra_args
            .iter()
            .position(|a| a == "--unixsocket")
            .and_then(|i| self.extra_args.get(i + 1))
            .map(PathBuf::from)
    }

    /// OS process id of the running server, if any.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(|c| c.id())
    }

    /// Whether the server process is currently alive (a paused process counts as alive).
    pub fn is_running(&mut self) -> bool {
        match self.child.as_mut() {
            Some(c) => matches!(c.try_wait(), Ok(None)),
            None => false,
        }
    }

    /// Kills the server with SIGKILL and waits for it to exit. The temporary
    /// directory is kept so that [`RedisServer::restart`] can reuse it.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Suspends the server with SIGSTOP: connections stay open but nothing is answered.
    pub fn pause(&self) {
        self.signal("-STOP");
    }

    /// Resumes a server suspended with [`RedisServer::pause`] (SIGCONT).
    pub fn resume(&self) {
        self.signal("-CONT");
    }

    fn signal(&self, sig: &str) {
        let pid = self.pid().expect("redis-server is not running");
        let status = Command::new("kill")
            .arg(sig)
            .arg(pid.to_string())
            .status()
            .unwrap_or_else(|e| panic!("failed to run `kill {sig} {pid}`: {e}"));
        assert!(status.success(), "`kill {sig} {pid}` failed: {status}");
    }

    /// Kills the server (if running) and starts it again on the same port
    /// with the same directory and arguments. Data is not preserved
    /// (persistence is disabled).
    pub fn restart(&mut self) {
        self.kill();
        match spawn_on_fixed_port(self.port, &self.dir, &self.extra_args) {
            Ok(child) => self.child = Some(child),
            Err(msg) => panic!("{msg}"),
        }
    }

    /// Runs one command against this server with the raw RESP client
    /// (authenticating first if the server was started with `--requirepass`).
    pub fn cmd(&self, args: &[&[u8]]) -> RespValue {
        redis_cmd_url(&self.url, args)
    }

    /// The last `lines` lines of the server log (and stderr), for diagnostics.
    pub fn log_tail(&self, lines: usize) -> String {
        log_tail(&self.dir, lines)
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.kill();
        let _ = fs::remove_dir_all(&self.dir);
    }
}

impl fmt::Debug for RedisServer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisServer")
            .field("port", &self.port)
            .field("url", &self.url)
            .field("pid", &self.pid())
            .field("dir", &self.dir)
            .finish()
    }
}

/// Returns a port that was free on 127.0.0.1 a moment ago.
pub fn free_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
    listener.local_addr().expect("local_addr").port()
}

fn fresh_temp_dir() -> PathBuf {
    static COUNTER: AtomicUsize = AtomicUsize::new(0);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    loop {
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        // Kept short: unix socket paths are limited to ~104 bytes.
        let dir =
            std::env::temp_dir().join(format!("cm-redis-{}-{}-{:x}", std::process::id(), n, nanos));
        match fs::create_dir(&dir) {
            Ok(()) => return dir,
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => continue,
            Err(e) => panic!("cannot create temp dir {}: {e}", dir.display()),
        }
    }
}

/// Value following `--requirepass` in the extra arguments, if any.
fn requirepass(extra: &[String]) -> Option<&str> {
    extra
        .iter()
        .position(|a| a == "--requirepass")
        .and_then(|i| extra.get(i + 1))
        .map(String::as_str)
}

fn substitute_dir(args: &[&str], dir: &Path) -> Vec<String> {
    let d = dir.to_string_lossy();
    args.iter().map(|a| a.replace("{dir}", &d)).collect()
}

/// Start on a port chosen by the caller; retries briefly while the port is busy
/// (e.g. a just-killed process still releasing it).
fn spawn_on_fixed_port(port: u16, dir: &Path, extra: &[String]) -> Result<Child, String> {
    let mut last_err = String::new();
    for attempt in 0..PORT_ATTEMPTS {
        if attempt > 0 {
            thread::sleep(Duration::from_millis(200));
        }
        match spawn_and_wait(port, dir, extra) {
            Ok(child) => return Ok(child),
            Err(StartError::PortTaken(msg)) => last_err = msg,
            Err(StartError::Other(msg)) => return Err(msg),
        }
    }
    Err(format!(
        "could not start redis-server on port {port} (port taken):\n{last_err}"
    ))
}

fn spawn_and_wait(port: u16, dir: &Path, extra: &[String]) -> Result<Child, StartError> {
    let log = dir.join("redis.log");
    let stderr_path = dir.join("stderr.log");
    // Fresh logs per attempt so failure detection only sees this attempt.
    let _ = fs::remove_file(&log);
    let stderr_file = File::create(&stderr_path)
        .map_err(|e| StartError::Other(format!("cannot create {}: {e}", stderr_path.display())))?;

    let bin = std::env::var("REDIS_SERVER_BIN").unwrap_or_else(|_| "redis-server".to_string());
    let mut cmd = Command::new(&bin);
    cmd.arg("--port")
        .arg(port.to_string())
        .args(["--bind", "127.0.0.1"])
        .args(["--save", ""])
        .args(["--appendonly", "no"])
        .arg("--dir")
        .arg(dir)
        .args(["--daemonize", "no"])
        .args(["--protected-mode", "yes"])
        .arg("--logfile")
        .arg(&log)
        .args(extra)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::from(stderr_file));

    let mut child = match cmd.spawn() {
        Ok(c) => c,
        Err(e) if e.kind() == io::ErrorKind::NotFound => panic!("{NOT_FOUND_MSG}"),
        Err(e) => return Err(StartError::Other(format!("failed to spawn {bin}: {e}"))),
    };
    let pid = child.id();

    let fail = |child: &mut Child, what: String| -> StartError {
        let _ = child.kill();
        let _ = child.wait();
        let tail = log_tail(dir, 30);
        let msg = format!("redis-server (port {port}, pid {pid}) {what}\n--- log tail ---\n{tail}");
        if tail.contains("Address already in use") || what.contains("another process") {
            StartError::PortTaken(msg)
        } else {
            StartError::Other(msg)
        }
    };

    let deadline = Instant::now() + STARTUP_TIMEOUT;
    loop {
        if let Ok(Some(status)) = child.try_wait() {
            return Err(fail(&mut child, format!("exited during startup: {status}")));
        }
        if ping(port) {
            // Make sure the PONG came from our process and not from some other
            // server that grabbed the port between free_port() and bind().
            match server_pid(port, requirepass(extra)) {
                Some(p) if p == pid => return Ok(child),
                Some(p) => {
                    return Err(fail(
                        &mut child,
                        format!("port is served by another process (pid {p})"),
                    ))
                }
                None => {} // e.g. still loading; keep polling
            }
        }
        if Instant::now() >= deadline {
            return Err(fail(
                &mut child,
                format!("did not answer PING within {STARTUP_TIMEOUT:?}"),
            ));
        }
        thread::sleep(POLL_INTERVAL);
    }
}

/// Sends an inline `PING` and checks for `+PONG` (or `-NOAUTH` from a
/// password-protected server, which is just as alive).
fn ping(port: u16) -> bool {
    let attempt = || -> io::Result<bool> {
        let mut s = TcpStream::connect(("127.0.0.1", port))?;
        s.set_read_timeout(Some(Duration::from_secs(1)))?;
        s.set_write_timeout(Some(Duration::from_secs(1)))?;
        s.write_all(b"PING\r\n")?;
        let mut line = String::new();
        BufReader::new(s).read_line(&mut line)?;
        Ok(line.starts_with("+PONG") || line.starts_with("-NOAUTH"))
    };
    attempt().unwrap_or(false)
}

/// `process_id` from `INFO server`.
fn server_pid(port: u16, password: Option<&str>) -> Option<u32> {
    let mut conn = RespConnection::connect_port(port).ok()?;
    if let Some(pass) = password {
        if conn.try_cmd(&[b"AUTH", pass.as_bytes()]).ok()?.is_error() {
            return None;
        }
    }
    let info = conn.try_cmd(&[b"INFO", b"server"]).ok()?;
    let text = String::from_utf8(info.into_bytes()?).ok()?;
    text.lines()
        .find_map(|l| l.strip_prefix("process_id:"))
        .and_then(|v| v.trim().parse().ok())
}

fn log_tail(dir: &Path, lines: usize) -> String {
    let mut out = String::new();
    for name in ["redis.log", "stderr.log"] {
        let path = dir.join(name);
        let Ok(bytes) = fs::read(&path) else { continue };
        let text = String::from_utf8_lossy(&bytes);
        let all: Vec<&str> = text.lines().collect();
        if all.is_empty() {
            continue;
        }
        let start = all.len().saturating_sub(lines);
        out.push_str(&format!("[{}]\n", path.display()));
        for l in &all[start..] {
            out.push_str(l);
            out.push('\n');
        }
    }
    if out.is_empty() {
        out.push_str("(no log output)\n");
    }
    out
}

// ---------------------------------------------------------------------------
// TestRedis / REDIS_URL
// ---------------------------------------------------------------------------

/// A Redis server for a test: either an external one from `$REDIS_URL` or a
/// private [`RedisServer`] that lives as long as this value.
pub struct TestRedis {
    pub server: Option<RedisServer>,
    pub url: String,
}

impl TestRedis {
    pub fn url(&self) -> &str {
        &self.url
    }

    /// True when the server came from `$REDIS_URL` (shared, not ours to kill).
    pub fn is_external(&self) -> bool {
        self.server.is_none()
    }

    /// Runs one command with the raw RESP client (handles password/db in the URL).
    pub fn cmd(&self, args: &[&[u8]]) -> RespValue {
        redis_cmd_url(&self.url, args)
    }
}

/// Uses `$REDIS_URL` if set (and non-empty), otherwise starts a private server.
/// The redis-server of this test binary, shared by the tests running at the
/// same time and stopped when the last of them drops its handle. (A server
/// kept in a `static` is never dropped and would outlive the test process.)
/// Hold the returned `Arc` for the whole test: `let redis = shared_redis();`.
pub fn shared_redis() -> std::sync::Arc<TestRedis> {
    use std::sync::{Arc, Mutex, Weak};
    static SHARED: Mutex<Weak<TestRedis>> = Mutex::new(Weak::new());
    let mut shared = SHARED.lock().unwrap_or_else(|p| p.into_inner());
    if let Some(redis) = shared.upgrade() {
        return redis;
    }
    let redis = Arc::new(redis_url_for_tests());
    *shared = Arc::downgrade(&redis);
    redis
}

pub fn redis_url_for_tests() -> TestRedis {
    match std::env::var("REDIS_URL") {
        Ok(url) if !url.trim().is_empty() => TestRedis {
            server: None,
            url: url.trim().to_string(),
        },
        _ => {
            let server = RedisServer::start();
            let url = server.url();
            TestRedis {
                server: Some(server),
                url,
            }
        }
    }
}

// ---------------------------------------------------------------------------
// Minimal RESP2 client
// ---------------------------------------------------------------------------

/// A RESP2 reply. Nil bulk strings and nil arrays both map to [`RespValue::Nil`].
#[derive(Clone, PartialEq, Eq)]
pub enum RespValue {
    Simple(String),
    Error(String),
    Integer(i64),
    Bulk(Vec<u8>),
    Array(Vec<RespValue>),
    Nil,
}

impl RespValue {
    pub fn is_nil(&self) -> bool {
        matches!(self, RespValue::Nil)
    }

    pub fn is_error(&self) -> bool {
        matches!(self, RespValue::Error(_))
    }

    /// Bytes of a bulk or simple string; `None` for anything else.
    pub fn as_bytes(&self) -> Option<&[u8]> {
        match self {
            RespValue::Bulk(b) => Some(b),
            RespValue::Simple(s) => Some(s.as_bytes()),
            _ => None,
        }
    }

    pub fn into_bytes(self) -> Option<Vec<u8>> {
        match self {
            RespValue::Bulk(b) => Some(b),
            RespValue::Simple(s) => Some(s.into_bytes()),
            _ => None,
        }
    }

    /// UTF-8 (lossy) text of a bulk or simple string.
    pub fn as_str(&self) -> Option<String> {
        self.as_bytes()
            .map(|b| String::from_utf8_lossy(b).into_owned())
    }

    pub fn as_int(&self) -> Option<i64> {
        match self {
            RespValue::Integer(i) => Some(*i),
            _ => None,
        }
    }

    pub fn as_array(&self) -> Option<&[RespValue]> {
        match self {
            RespValue::Array(a) => Some(a),
            _ => None,
        }
    }

    /// Panics unless the reply is `+OK`.
    pub fn expect_ok(&self) {
        assert!(
            matches!(self, RespValue::Simple(s) if s == "OK"),
            "expected +OK, got {self:?}"
        );
    }
}

impl fmt::Debug for RespValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RespValue::Simple(s) => write!(f, "+{s}"),
            RespValue::Error(s) => write!(f, "-{s}"),
            RespValue::Integer(i) => write!(f, ":{i}"),
            RespValue::Bulk(b) => write!(f, "${:?}", EscapedBytes(b)),
            RespValue::Array(a) => f.debug_list().entries(a).finish(),
            RespValue::Nil => write!(f, "(nil)"),
        }
    }
}

/// Debug helper printing bytes like a Rust byte string (`b"ab\x00"`).
pub struct EscapedBytes<'a>(pub &'a [u8]);

impl fmt::Debug for EscapedBytes<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "b\"")?;
        for &b in self.0 {
            for c in std::ascii::escape_default(b) {
                write!(f, "{}", c as char)?;
            }
        }
        write!(f, "\"")
    }
}

/// Encodes a command as a RESP array of bulk strings (binary safe).
pub fn encode_command(args: &[&[u8]]) -> Vec<u8> {
    let mut out = Vec::with_capacity(16 + args.iter().map(|a| a.len() + 16).sum::<usize>());
    out.extend_from_slice(format!("*{}\r\n", args.len()).as_bytes());
    for a in args {
        out.extend_from_slice(format!("${}\r\n", a.len()).as_bytes());
        out.extend_from_slice(a);
        out.extend_from_slice(b"\r\n");
    }
    out
}

fn invalid(msg: impl Into<String>) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, msg.into())
}

/// Reads one `\r\n`-terminated header line (without the terminator).
fn read_line_crlf<R: BufRead>(r: &mut R) -> io::Result<Vec<u8>> {
    let mut buf = Vec::new();
    let n = r.read_until(b'\n', &mut buf)?;
    if n == 0 {
        return Err(io::Error::new(
            io::ErrorKind::UnexpectedEof,
            "connection closed",
        ));
    }
    if !buf.ends_with(b"\r\n") {
        return Err(invalid(format!(
            "line not terminated by CRLF: {:?}",
            EscapedBytes(&buf)
        )));
    }
    buf.truncate(buf.len() - 2);
    Ok(buf)
}

fn parse_int(bytes: &[u8]) -> io::Result<i64> {
    std::str::from_utf8(bytes)
        .ok()
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| invalid(format!("bad integer {:?}", EscapedBytes(bytes))))
}

/// Parses one RESP2 value from a reader.
pub fn read_resp<R: BufRead>(r: &mut R) -> io::Result<RespValue> {
    let line = read_line_crlf(r)?;
    let (&kind, rest) = line
        .split_first()
        .ok_or_else(|| invalid("empty reply line"))?;
    match kind {
        b'+' => Ok(RespValue::Simple(
            String::from_utf8_lossy(rest).into_owned(),
        )),
        b'-' => Ok(RespValue::Error(String::from_utf8_lossy(rest).into_owned())),
        b':' => Ok(RespValue::Integer(parse_int(rest)?)),
        b'$' => {
            let len = parse_int(rest)?;
            if len < 0 {
                return Ok(RespValue::Nil);
            }
            let mut data = vec![0u8; len as usize + 2];
            r.read_exact(&mut data)?;
            if !data.ends_with(b"\r\n") {
                return Err(invalid("bulk string not terminated by CRLF"));
            }
            data.truncate(len as usize);
            Ok(RespValue::Bulk(data))
        }
        b'*' => {
            let len = parse_int(rest)?;
            if len < 0 {
                return Ok(RespValue::Nil);
            }
            let mut items = Vec::with_capacity(len.min(1024) as usize);
            for _ in 0..len {
                items.push(read_resp(r)?);
            }
            Ok(RespValue::Array(items))
        }
        other => Err(invalid(format!(
            "unknown RESP type byte {:?}",
            other as char
        ))),
    }
}

/// Parses exactly one RESP2 value from a byte slice.
pub fn parse_resp(bytes: &[u8]) -> io::Result<RespValue> {
    let mut cur = io::Cursor::new(bytes);
    let v = read_resp(&mut cur)?;
    if cur.position() as usize != bytes.len() {
        return Err(invalid("trailing bytes after RESP value"));
    }
    Ok(v)
}

/// A blocking connection for several raw commands in a row.
pub struct RespConnection {
    reader: BufReader<TcpStream>,
    writer: TcpStream,
}

impl RespConnection {
    /// Connects to 127.0.0.1:`port`.
    pub fn connect_port(port: u16) -> io::Result<RespConnection> {
        Self::connect_addr("127.0.0.1", port)
    }

    pub fn connect_addr(host: &str, port: u16) -> io::Result<RespConnection> {
        let stream = TcpStream::connect((host, port))?;
        stream.set_read_timeout(Some(CLIENT_TIMEOUT))?;
        stream.set_write_timeout(Some(CLIENT_TIMEOUT))?;
        stream.set_nodelay(true)?;
        let writer = stream.try_clone()?;
        Ok(RespConnection {
            reader: BufReader::new(stream),
            writer,
        })
    }

    /// Connects using a `redis://[user:password@]host[:port][/db]` URL,
    /// sending AUTH / SELECT as needed.
    pub fn connect_url(url: &str) -> io::Result<RespConnection> {
        let info = parse_redis_url(url)?;
        let mut conn = Self::connect_addr(&info.host, info.port)?;
        if let Some(pass) = &info.password {
            let reply = match &info.username {
                Some(user) => conn.try_cmd(&[b"AUTH", user.as_bytes(), pass.as_bytes()])?,
                None => conn.try_cmd(&[b"AUTH", pass.as_bytes()])?,
            };
            if reply.is_error() {
                return Err(io::Error::new(
                    io::ErrorKind::PermissionDenied,
                    format!("AUTH: {reply:?}"),
                ));
            }
        }
        if info.db != 0 {
            let db = info.db.to_string();
            let reply = conn.try_cmd(&[b"SELECT", db.as_bytes()])?;
            if reply.is_error() {
                return Err(invalid(format!("SELECT {db}: {reply:?}")));
            }
        }
        Ok(conn)
    }

    /// Sends one command and reads its reply. Redis errors are returned as
    /// `Ok(RespValue::Error(..))`; only I/O and protocol problems are `Err`.
    pub fn try_cmd(&mut self, args: &[&[u8]]) -> io::Result<RespValue> {
        self.writer.write_all(&encode_command(args))?;
        self.writer.flush()?;
        read_resp(&mut self.reader)
    }

    /// Like [`RespConnection::try_cmd`] but panics on I/O errors.
    pub fn cmd(&mut self, args: &[&[u8]]) -> RespValue {
        self.try_cmd(args)
            .unwrap_or_else(|e| panic!("raw redis command {:?} failed: {e}", display_args(args)))
    }
}

fn display_args(args: &[&[u8]]) -> Vec<String> {
    args.iter()
        .map(|a| String::from_utf8_lossy(a).into_owned())
        .collect()
}

/// Host, port, credentials and database from a `redis://` URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RedisUrlInfo {
    pub host: String,
    pub port: u16,
    pub username: Option<String>,
    pub password: Option<String>,
    pub db: i64,
}

/// Parses `redis://[[user]:password@]host[:port][/db]` (no percent-decoding, no TLS).
pub fn parse_redis_url(url: &str) -> io::Result<RedisUrlInfo> {
    let rest = url
        .strip_prefix("redis://")
        .ok_or_else(|| invalid(format!("unsupported redis url (need redis://): {url}")))?;
    let (authority, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i + 1..]),
        None => (rest, ""),
    };
    let (userinfo, hostport) = match authority.rfind('@') {
        Some(i) => (Some(&authority[..i]), &authority[i + 1..]),
        None => (None, authority),
    };
    let (username, password) = match userinfo {
        None => (None, None),
        Some(ui) => match ui.find(':') {
            Some(i) => {
                let user = &ui[..i];
                let pass = &ui[i + 1..];
                (
                    (!user.is_empty()).then(|| user.to_string()),
                    (!pass.is_empty()).then(|| pass.to_string()),
                )
            }
            // Standard URL semantics (as in redis-rs): no colon means username only.
            None => ((!ui.is_empty()).then(|| ui.to_string()), None),
        },
    };
    let (host, port) = if let Some(stripped) = hostport.strip_prefix('[') {
        // [ipv6]:port
        let end = stripped
            .find(']')
            .ok_or_else(|| invalid(format!("bad host in {url}")))?;
        let host = &stripped[..end];
        let port = stripped[end + 1..].strip_prefix(':');
        (host.to_string(), port)
    } else {
        match hostport.rfind(':') {
            Some(i) => (hostport[..i].to_string(), Some(&hostport[i + 1..])),
            None => (hostport.to_string(), None),
        }
    };
    let port = match port {
        Some(p) if !p.is_empty() => p
            .parse()
            .map_err(|_| invalid(format!("bad port in {url}")))?,
        _ => 6379,
    };
    let host = if host.is_empty() {
        "127.0.0.1".to_string()
    } else {
        host
    };
    let db_str = path.split('?').next().unwrap_or("");
    let db = if db_str.is_empty() {
        0
    } else {
        db_str
            .parse()
            .map_err(|_| invalid(format!("bad db in {url}")))?
    };
    Ok(RedisUrlInfo {
        host,
        port,
        username,
        password,
        db,
    })
}

/// Runs one raw command against 127.0.0.1:`port` on a fresh connection.
/// Panics on I/O errors; Redis errors come back as [`RespValue::Error`].
pub fn redis_cmd(port: u16, args: &[&[u8]]) -> RespValue {
    RespConnection::connect_port(port)
        .unwrap_or_else(|e| panic!("cannot connect to redis at 127.0.0.1:{port}: {e}"))
        .cmd(args)
}

/// Fallible variant of [`redis_cmd`].
pub fn try_redis_cmd(port: u16, args: &[&[u8]]) -> io::Result<RespValue> {
    RespConnection::connect_port(port)?.try_cmd(args)
}

/// Runs one raw command against the server of a `redis://` URL.
pub fn redis_cmd_url(url: &str, args: &[&[u8]]) -> RespValue {
    RespConnection::connect_url(url)
        .unwrap_or_else(|e| panic!("cannot connect to redis at {url}: {e}"))
        .cmd(args)
}
