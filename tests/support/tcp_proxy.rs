//! A TCP proxy on a free loopback port that can silently stop forwarding:
//! the fault of a network path that dies without closing anything (a
//! firewall dropping packets, a cable pulled on a switch), which a client
//! can only notice by a reply that never comes.
//!
//! Std-only (a thread to accept, two per connection to pump bytes), like
//! `support/mod.rs`. Include it with
//! `#[path = "support/tcp_proxy.rs"] mod tcp_proxy;`.
#![allow(dead_code)]

use std::io::{self, Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::{self, JoinHandle};
use std::time::Duration;

/// How long a pump waits for bytes before it looks at the stop flag again.
const POLL: Duration = Duration::from_millis(5);
/// How often a pump holding bytes looks whether forwarding has resumed.
const HOLD_POLL: Duration = Duration::from_millis(1);
/// A write to a peer that takes longer than this ends the connection.
const WRITE_TIMEOUT: Duration = Duration::from_secs(10);

/// Which directions are held.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
struct Held {
    /// Client to server (requests).
    requests: bool,
    /// Server to client (replies, pushes).
    replies: bool,
}

impl Held {
    fn holds(self, replies: bool) -> bool {
        if replies {
            self.replies
        } else {
            self.requests
        }
    }
}

/// What the accept thread and the pumps share.
#[derive(Default)]
struct Shared {
    /// While a direction is held, no byte and no close is passed on in it.
    /// Pumps hold this lock while they write, so once [`TcpProxy::stall`]
    /// returns nothing more gets through.
    held: Mutex<Held>,
    stop: AtomicBool,
    /// Both sockets of every proxied connection, shut down on drop.
    sockets: Mutex<Vec<TcpStream>>,
    pumps: Mutex<Vec<JoinHandle<()>>>,
}

/// Forwards every connection made to `127.0.0.1:port` to
/// `127.0.0.1:target`, in both directions, until dropped.
pub struct TcpProxy {
    /// The proxy's own port: point clients here.
    pub port: u16,
    /// The port it forwards to.
    pub target: u16,
    shared: Arc<Shared>,
    acceptor: Option<JoinHandle<()>>,
}

impl TcpProxy {
    /// Starts forwarding from a free loopback port to `127.0.0.1:target`.
    pub fn start(target: u16) -> TcpProxy {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0 for the proxy");
        listener
            .set_nonblocking(true)
            .expect("a non-blocking listener");
        let port = listener.local_addr().expect("the proxy's address").port();
        let shared = Arc::new(Shared::default());
        let acceptor = {
            let shared = shared.clone();
            thread::Builder::new()
                .name(format!("proxy-{port}-accept"))
                .spawn(move || accept_loop(listener, target, &shared))
                .expect("spawn the proxy's accept thread")
        };
        TcpProxy {
            port,
            target,
            shared,
            acceptor: Some(acceptor),
        }
    }

    /// `redis://127.0.0.1:{port}/`: the proxy as a Redis URL.
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/", self.port)
    }

    /// Stops forwarding in both directions: connections stay open, bytes
    /// already sent are held (in the proxy or in the kernel's buffers),
    /// closes are not passed on. New connections are accepted and held too.
    pub fn stall(&self) {
        *lock(&self.shared.held) = Held {
            requests: true,
            replies: true,
        };
    }

    /// Stops forwarding from the server to the clients only: requests still
    /// reach the server (and are executed), their replies are held — a
    /// reply path that loses packets until the sender retransmits.
    pub fn stall_replies(&self) {
        *lock(&self.shared.held) = Held {
            requests: false,
            replies: true,
        };
    }

    /// Forwards again in both directions, starting with whatever was held.
    pub fn resume(&self) {
        *lock(&self.shared.held) = Held::default();
    }

    /// Whether anything is held ([`stall`](Self::stall) or
    /// [`stall_replies`](Self::stall_replies) in force).
    pub fn is_stalled(&self) -> bool {
        *lock(&self.shared.held) != Held::default()
    }

    /// Connections accepted so far.
    pub fn connections(&self) -> usize {
        lock(&self.shared.sockets).len() / 2
    }
}

impl Drop for TcpProxy {
    /// Closes every proxied connection (both sides see it) and stops the
    /// threads.
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::SeqCst);
        for socket in lock(&self.shared.sockets).iter() {
            let _ = socket.shutdown(Shutdown::Both);
        }
        if let Some(acceptor) = self.acceptor.take() {
            let _ = acceptor.join();
        }
        let pumps = std::mem::take(&mut *lock(&self.shared.pumps));
        for pump in pumps {
            let _ = pump.join();
        }
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|p| p.into_inner())
}

fn accept_loop(listener: TcpListener, target: u16, shared: &Arc<Shared>) {
    while !shared.stop.load(Ordering::SeqCst) {
        match listener.accept() {
            Ok((client, _)) => {
                if let Err(e) = proxy_connection(client, target, shared) {
                    eprintln!("tcp proxy: cannot forward a connection to port {target}: {e}");
                }
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => thread::sleep(POLL),
            Err(e) => {
                eprintln!("tcp proxy: accept failed: {e}");
                thread::sleep(POLL);
            }
        }
    }
}

/// Connects to the target and starts the two pumps of one connection.
fn proxy_connection(client: TcpStream, target: u16, shared: &Arc<Shared>) -> io::Result<()> {
    client.set_nonblocking(false)?;
    let server = TcpStream::connect(("127.0.0.1", target))?;
    for socket in [&client, &server] {
        socket.set_nodelay(true)?;
        socket.set_read_timeout(Some(POLL))?;
        socket.set_write_timeout(Some(WRITE_TIMEOUT))?;
    }
    {
        let mut sockets = lock(&shared.sockets);
        sockets.push(client.try_clone()?);
        sockets.push(server.try_clone()?);
    }
    let pairs = [
        (client.try_clone()?, server.try_clone()?, false),
        (server, client, true),
    ];
    let mut pumps = lock(&shared.pumps);
    for (from, to, replies) in pairs {
        let shared = shared.clone();
        pumps.push(
            thread::Builder::new()
                .name("proxy-pump".into())
                .spawn(move || pump(from, to, replies, &shared))?,
        );
    }
    Ok(())
}

/// Copies bytes from `from` to `to` until either side closes or the proxy
/// stops; while its direction (`replies`: server to client) is held it
/// holds what it read (and reads nothing more).
fn pump(mut from: TcpStream, mut to: TcpStream, replies: bool, shared: &Shared) {
    let mut buf = vec![0u8; 64 * 1024];
    while !shared.stop.load(Ordering::SeqCst) {
        // Nothing more is read while stalled: the bytes wait in the kernel.
        if lock(&shared.held).holds(replies) {
            thread::sleep(HOLD_POLL);
            continue;
        }
        let n = match from.read(&mut buf) {
            Ok(n) => n,
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                ) =>
            {
                continue
            }
            Err(_) => 0,
        };
        // Bytes read (or a close seen) just as the stall began are held too.
        loop {
            if shared.stop.load(Ordering::SeqCst) {
                return;
            }
            let held = lock(&shared.held);
            if held.holds(replies) {
                drop(held);
                thread::sleep(HOLD_POLL);
                continue;
            }
            if n == 0 {
                let _ = to.shutdown(Shutdown::Write);
                return;
            }
            let written = to.write_all(&buf[..n]);
            drop(held);
            if written.is_err() {
                let _ = from.shutdown(Shutdown::Read);
                return;
            }
            break;
        }
    }
}
