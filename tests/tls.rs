//! `rediss://` with a private CA and an ACL user, against a real redis-server
//! started with `--tls-port` and certificates made here with `openssl`; and
//! no password in `Debug`, `Display` or logs.
#![cfg(feature = "tls")]

#[path = "support/mod.rs"]
mod support;

#[path = "support/captured_logs.rs"]
mod captured_logs;

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use cache_memoize::Cache;

const PASSWORD: &str = "tls-acl-Pw-83jd";
const WRONG_PASSWORD: &str = "wrong-Pw-q7Lx2";

/// A redis-server that only speaks TLS (`--port 0`), with the default user
/// off and one ACL user `app`.
struct TlsRedis {
    port: u16,
    dir: PathBuf,
    child: Child,
}

impl TlsRedis {
    fn start() -> TlsRedis {
        let dir = std::env::temp_dir().join(format!(
            "cm-tls-{}-{}",
            std::process::id(),
            support::free_port()
        ));
        fs::create_dir_all(&dir).unwrap();
        make_certificates(&dir);
        let port = support::free_port();
        let path = |name: &str| dir.join(name).display().to_string();
        let child = Command::new("redis-server")
            .args(["--port", "0", "--bind", "127.0.0.1"])
            .args(["--tls-port", &port.to_string()])
            .args(["--tls-cert-file", &path("server.crt")])
            .args(["--tls-key-file", &path("server.key")])
            .args(["--tls-ca-cert-file", &path("ca.crt")])
            .args(["--tls-auth-clients", "no"])
            .args(["--save", "", "--appendonly", "no"])
            .args(["--dir", &dir.display().to_string()])
            .args(["--logfile", &path("redis.log")])
            .args(["--user", "default", "off"])
            .args([
                "--user",
                "app",
                "on",
                &format!(">{PASSWORD}"),
                "~*",
                "+@all",
            ])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("redis-server not found on PATH (scripts/test.sh installs it)");
        let mut server = TlsRedis { port, dir, child };
        server.wait_until_ready();
        server
    }

    fn wait_until_ready(&mut self) {
        let log = self.dir.join("redis.log");
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let text = fs::read_to_string(&log).unwrap_or_default();
            if text.contains("Ready to accept connections") {
                return;
            }
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!(
                    "redis-server with TLS exited ({status}); does this build support TLS?\n{text}"
                );
            }
            assert!(
                Instant::now() < deadline,
                "redis-server with TLS did not start:\n{text}"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn url(&self, password: &str) -> String {
        format!("rediss://app:{password}@127.0.0.1:{}/", self.port)
    }

    fn ca_file(&self) -> PathBuf {
        self.dir.join("ca.crt")
    }
}

impl Drop for TlsRedis {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = fs::remove_dir_all(&self.dir);
    }
}

/// A CA and a server certificate for 127.0.0.1 signed by it (P-256 keys,
/// valid for a day).
fn make_certificates(dir: &Path) {
    let openssl = |args: &[&str]| {
        let out = Command::new("openssl")
            .args(args)
            .current_dir(dir)
            .output()
            .expect("openssl not found on PATH: apt-get install -y openssl");
        assert!(
            out.status.success(),
            "openssl {args:?} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    let key = [
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:prime256v1",
        "-nodes",
    ];
    openssl(
        &[
            &["req", "-x509"][..],
            &key,
            &["-keyout", "ca.key", "-out", "ca.crt", "-days", "1"],
            &["-subj", "/CN=cache-memoize test CA"],
            &["-addext", "basicConstraints=critical,CA:TRUE"],
            &["-addext", "keyUsage=critical,keyCertSign,cRLSign"],
        ]
        .concat(),
    );
    openssl(
        &[
            &["req"][..],
            &key,
            &["-keyout", "server.key", "-out", "server.csr"],
            &["-subj", "/CN=127.0.0.1"],
        ]
        .concat(),
    );
    fs::write(
        dir.join("server.ext"),
        "subjectAltName=IP:127.0.0.1,DNS:localhost\nbasicConstraints=CA:FALSE\n\
         keyUsage=digitalSignature,keyEncipherment\nextendedKeyUsage=serverAuth\n",
    )
    .unwrap();
    openssl(&[
        "x509",
        "-req",
        "-in",
        "server.csr",
        "-CA",
        "ca.crt",
        "-CAkey",
        "ca.key",
        "-CAcreateserial",
        "-out",
        "server.crt",
        "-days",
        "1",
        "-extfile",
        "server.ext",
    ]);
}

fn tls_cache(server: &TlsRedis, password: &str) -> Cache {
    Cache::builder()
        .url(server.url(password))
        .tls_ca_file(server.ca_file())
        .prefix("tls-test")
        .build()
        .expect("a valid TLS cache configuration")
}

#[tokio::test]
async fn rediss_with_a_ca_file_and_an_acl_user_works() {
    let server = TlsRedis::start();
    let cache = tls_cache(&server, PASSWORD);
    cache.ping().await.expect("PING over TLS as user app");
    cache.set("greeting", "hello over TLS", None).await.unwrap();
    assert_eq!(
        cache.get::<String>("greeting").await.unwrap().as_deref(),
        Some("hello over TLS")
    );
    let n: u64 = cache.get_or_compute("answer", None, || async { 42 }).await;
    let again: u64 = cache.get_or_compute("answer", None, || async { 0 }).await;
    assert_eq!((n, again), (42, 42));
    assert_eq!(cache.stats().hits, 1);
    assert_eq!(
        cache.describe_backend(),
        format!("redis at rediss://app:****@127.0.0.1:{}/", server.port)
    );
    assert!(!format!("{cache:?}").contains(PASSWORD));
}

#[tokio::test]
async fn without_the_ca_file_the_server_is_not_trusted() {
    let server = TlsRedis::start();
    let cache = Cache::builder().url(server.url(PASSWORD)).build().unwrap();
    let error = cache
        .ping()
        .await
        .expect_err("a certificate of an unknown CA");
    let message = error.to_string();
    assert!(message.contains("cannot connect"), "{message}");
    assert!(!message.contains(PASSWORD), "{message}");
}

#[tokio::test]
async fn a_missing_ca_file_is_a_configuration_error() {
    let error = Cache::builder()
        .url("rediss://app:pw@127.0.0.1:1/")
        .tls_ca_file("/nonexistent/ca.pem")
        .build()
        .expect_err("the CA file does not exist");
    assert!(error.to_string().contains("/nonexistent/ca.pem"), "{error}");
}

#[tokio::test]
async fn a_wrong_password_never_shows_in_errors_or_logs() {
    let server = TlsRedis::start();
    let logs = captured_logs::global_logs(tracing::Level::TRACE);
    let cache = tls_cache(&server, WRONG_PASSWORD);
    // The fail-open path computes, counts and logs the error.
    let n: u64 = cache.get_or_compute("k", None, || async { 7 }).await;
    assert_eq!(n, 7);
    assert!(cache.stats().errors >= 1);
    // The strict path returns it.
    let error = cache.get::<u64>("k").await.expect_err("wrong password");

    let shown = [
        error.to_string(),
        format!("{error:?}"),
        format!("{cache:?}"),
        cache.describe_backend(),
        logs.text(),
    ];
    for text in &shown {
        assert!(!text.contains(WRONG_PASSWORD), "password leaked: {text}");
        assert!(!text.contains(PASSWORD), "password leaked: {text}");
    }
    let logged = logs.text();
    assert!(
        logged.contains("WARN") && logged.contains("rediss://app:****@127.0.0.1"),
        "the failure was logged with the redacted URL: {logged}"
    );
}
