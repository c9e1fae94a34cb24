//! `braid proxy`: a SOCKS5 server (RFC 1928, RFC 1929 with --auth) whose CONNECTs become MPTCP
//! connections over braid's paths (plain TCP when the destination does not speak MPTCP).
//!
//! The success reply goes out only after the handshake to the destination completed; refused,
//! unreachable and timed-out destinations get reply 5, 3/4 and 4 at once. BIND and UDP
//! ASSOCIATE get 7. Then bytes are relayed both ways, half-closes included, until both sides
//! are done. Each client is a task; a client that stalls in the negotiation is closed after
//! [`HANDSHAKE_TIMEOUT`].

use crate::app::{self, failure, usage_error};
use crate::net::NetArgs;
use crate::socks::{self, Bad, Command, Reply, Target};
use crate::units::parse_time;
use braid_api::aio::AsyncMptcpStream;
use braid_api::Stack;
use clap::Args;
use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::process::ExitCode;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// Longest a client may take from its first byte to its request.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// Longest a name lookup may take.
const RESOLVE_TIMEOUT: Duration = Duration::from_secs(10);
/// Clients served at once; more wait in the kernel's accept queue.
const MAX_CLIENTS: usize = 4096;

const PROXY_HELP: &str = "\
Each SOCKS5 CONNECT becomes a Multipath TCP connection from braid's paths to the destination
(plain TCP when the destination has no MPTCP). Domain names are resolved by the host's resolver.
The success reply is sent after the handshake; refused → 5, no path → 3, unreachable or timed
out → 4; BIND and UDP ASSOCIATE → 7. Runs until SIGINT/SIGTERM (or --timeout).
e.g. curl --socks5-hostname 127.0.0.1:1080 http://10.77.1.2:8000/file";

/// Arguments of `braid proxy`.
#[derive(Args, Debug)]
#[command(after_help = PROXY_HELP)]
pub struct ProxyArgs {
    #[command(flatten)]
    net: NetArgs,
    /// Where the SOCKS5 server listens.
    #[arg(long, value_name = "ADDR:PORT", default_value = "127.0.0.1:1080")]
    socks: SocketAddr,
    /// Require RFC 1929 username/password authentication.
    #[arg(long, value_name = "USER:PASS")]
    auth: Option<String>,
    /// How long a CONNECT waits for the destination's handshake.
    #[arg(long, value_name = "TIME", default_value = "30s", value_parser = parse_time)]
    connect_timeout: Duration,
}

/// Opens connections for the proxy: braid's stack, or (in tests) anything else.
pub trait Connector: Send + Sync + 'static {
    type Stream: AsyncRead + AsyncWrite + Unpin + Send + 'static;
    /// Connects; returns the stream and its local address (for the reply's BND.ADDR).
    fn connect(
        &self,
        to: SocketAddr,
    ) -> impl Future<Output = io::Result<(Self::Stream, SocketAddr)>> + Send;
}

/// MPTCP over braid's paths.
pub struct StackConnector {
    pub stack: Stack,
    pub timeout: Duration,
}

impl Connector for StackConnector {
    type Stream = AsyncMptcpStream;
    fn connect(
        &self,
        to: SocketAddr,
    ) -> impl Future<Output = io::Result<(AsyncMptcpStream, SocketAddr)>> + Send {
        let f = self.stack.connect_async_from(to, None, self.timeout);
        async move {
            let s = f.await?;
            let local = s.local_addr()?;
            Ok((s, local))
        }
    }
}

/// The proxy's settings.
#[derive(Clone, Debug)]
pub struct ProxyConfig {
    /// RFC 1929 credentials to require.
    pub auth: Option<(Vec<u8>, Vec<u8>)>,
    /// Log each failed request on stderr.
    pub verbose: bool,
    /// Longest a client may take to negotiate ([`HANDSHAKE_TIMEOUT`]).
    pub handshake_timeout: Duration,
}

/// Counts for the log and tests.
#[derive(Debug, Default)]
pub struct ProxyStats {
    pub clients: AtomicU64,
    pub connected: AtomicU64,
    pub failed: AtomicU64,
    pub active: AtomicU64,
}

/// Accepts clients until the listener fails.
pub async fn serve<C: Connector>(
    listener: TcpListener,
    connector: Arc<C>,
    cfg: Arc<ProxyConfig>,
    stats: Arc<ProxyStats>,
) {
    let slots = Arc::new(tokio::sync::Semaphore::new(MAX_CLIENTS));
    loop {
        let Ok(permit) = slots.clone().acquire_owned().await else {
            return;
        };
        let (sock, peer) = match listener.accept().await {
            Ok(x) => x,
            Err(e) => {
                // Out of descriptors and the like: wait a little, keep serving.
                if cfg.verbose {
                    eprintln!("braid: proxy accept: {e}");
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let (connector, cfg, stats) = (connector.clone(), cfg.clone(), stats.clone());
        stats.clients.fetch_add(1, Ordering::Relaxed);
        tokio::spawn(async move {
            stats.active.fetch_add(1, Ordering::Relaxed);
            let r = client(sock, &*connector, &cfg, &stats).await;
            stats.active.fetch_sub(1, Ordering::Relaxed);
            if let Err(e) = r {
                if cfg.verbose {
                    eprintln!("braid: socks client {peer}: {e}");
                }
            }
            drop(permit);
        });
    }
}

/// Sends `bytes` and ends the client with `why`.
async fn refuse<W: AsyncWrite + Unpin>(w: &mut W, bytes: &[u8], why: String) -> String {
    let _ = w.write_all(bytes).await;
    let _ = w.shutdown().await;
    why
}

/// Answers a malformed message as the RFC says (or just closes); returns why.
async fn bad<W: AsyncWrite + Unpin>(w: &mut W, b: Bad) -> String {
    match b.reply {
        Some(r) => {
            let why = format!("{} (reply {})", b.why, r as u8);
            refuse(w, &socks::reply(r, None), why).await
        }
        None => b.why,
    }
}

/// The negotiation: methods, authentication, request. Returns the target on CONNECT.
async fn negotiate(sock: &mut TcpStream, cfg: &ProxyConfig) -> Result<Target, String> {
    let methods = match socks::read_greeting(sock).await {
        Ok(m) => m,
        Err(b) => return Err(bad(sock, b).await),
    };
    let want = if cfg.auth.is_some() {
        socks::METHOD_USERPASS
    } else {
        socks::METHOD_NONE
    };
    if !methods.contains(&want) {
        return Err(refuse(
            sock,
            &[socks::VERSION, socks::METHOD_NO_ACCEPTABLE],
            format!("no acceptable method among {methods:?}"),
        )
        .await);
    }
    sock.write_all(&[socks::VERSION, want])
        .await
        .map_err(|e| e.to_string())?;
    if let Some((user, pass)) = &cfg.auth {
        let (u, p) = match socks::read_userpass(sock).await {
            Ok(x) => x,
            Err(b) => return Err(bad(sock, b).await),
        };
        if &u != user || &p != pass {
            return Err(refuse(
                sock,
                &[socks::AUTH_VERSION, 1],
                "wrong username or password".into(),
            )
            .await);
        }
        sock.write_all(&[socks::AUTH_VERSION, 0])
            .await
            .map_err(|e| e.to_string())?;
    }
    let (cmd, target) = match socks::read_request(sock).await {
        Ok(x) => x,
        Err(b) => return Err(bad(sock, b).await),
    };
    if cmd != Command::Connect {
        return Err(refuse(
            sock,
            &socks::reply(Reply::CommandNotSupported, None),
            format!("{cmd:?} {target} not supported (reply 7)"),
        )
        .await);
    }
    Ok(target)
}

/// Addresses for a target: the host's resolver for names.
async fn resolve(t: &Target) -> io::Result<Vec<SocketAddr>> {
    match t {
        Target::Addr(a) => Ok(vec![*a]),
        Target::Domain(name, port) => {
            let look = tokio::net::lookup_host((name.as_str(), *port));
            let found: Vec<SocketAddr> = tokio::time::timeout(RESOLVE_TIMEOUT, look)
                .await
                .map_err(|_| {
                    io::Error::new(
                        io::ErrorKind::TimedOut,
                        format!("resolving {name}: timed out"),
                    )
                })?
                .map_err(|e| {
                    io::Error::new(
                        io::ErrorKind::HostUnreachable,
                        format!("resolving {name}: {e}"),
                    )
                })?
                .collect();
            if found.is_empty() {
                return Err(io::Error::new(
                    io::ErrorKind::HostUnreachable,
                    format!("resolving {name}: no address"),
                ));
            }
            Ok(found)
        }
    }
}

/// One client, from greeting to the end of the relay.
async fn client<C: Connector>(
    mut sock: TcpStream,
    connector: &C,
    cfg: &ProxyConfig,
    stats: &ProxyStats,
) -> Result<(), String> {
    let _ = sock.set_nodelay(true);
    let target = match tokio::time::timeout(cfg.handshake_timeout, negotiate(&mut sock, cfg)).await
    {
        Ok(Ok(t)) => t,
        Ok(Err(e)) => return Err(e),
        Err(_) => return Err("negotiation timed out".into()),
    };
    let addrs = match resolve(&target).await {
        Ok(a) => a,
        Err(e) => {
            stats.failed.fetch_add(1, Ordering::Relaxed);
            let r = socks::reply_for(&e);
            let why = format!("CONNECT {target}: {e} (reply {})", r as u8);
            return Err(refuse(&mut sock, &socks::reply(r, None), why).await);
        }
    };
    // Each address in turn; a refusal is final (the host is there and said no).
    let mut last = None;
    let mut up = None;
    for a in addrs {
        match connector.connect(a).await {
            Ok(s) => {
                up = Some(s);
                break;
            }
            Err(e) => {
                let refused = e.kind() == io::ErrorKind::ConnectionRefused;
                last = Some(e);
                if refused {
                    break;
                }
            }
        }
    }
    let Some((mut upstream, bound)) = up else {
        stats.failed.fetch_add(1, Ordering::Relaxed);
        let e = last.unwrap_or_else(|| io::Error::other("no address"));
        let r = socks::reply_for(&e);
        let why = format!("CONNECT {target}: {e} (reply {})", r as u8);
        return Err(refuse(&mut sock, &socks::reply(r, None), why).await);
    };
    stats.connected.fetch_add(1, Ordering::Relaxed);
    sock.write_all(&socks::reply(Reply::Succeeded, Some(bound)))
        .await
        .map_err(|e| format!("CONNECT {target}: writing the reply: {e}"))?;
    // Both directions, each shut down (FIN) when its source ends.
    match tokio::io::copy_bidirectional(&mut sock, &mut upstream).await {
        Ok(_) => Ok(()),
        Err(e) => Err(format!("relay with {target}: {e}")),
    }
}

/// `USER:PASS` → the two byte strings (1..=255 bytes each, RFC 1929).
fn parse_auth(s: &str) -> Result<(Vec<u8>, Vec<u8>), String> {
    let Some((u, p)) = s.split_once(':') else {
        return Err(format!("--auth {s:?}: expected USER:PASS"));
    };
    for (what, v) in [("username", u), ("password", p)] {
        if v.is_empty() || v.len() > 255 {
            return Err(format!("--auth: the {what} must be 1 to 255 bytes"));
        }
    }
    Ok((u.as_bytes().to_vec(), p.as_bytes().to_vec()))
}

/// Runs `braid proxy`.
pub fn main(args: ProxyArgs) -> ExitCode {
    let net = &args.net;
    let auth = match args.auth.as_deref().map(parse_auth).transpose() {
        Ok(a) => a,
        Err(e) => return usage_error(&e),
    };
    if args.connect_timeout.is_zero() {
        return usage_error("--connect-timeout must be above zero");
    }
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => return failure(&format!("starting the runtime: {e}")),
    };
    // The SOCKS port first: a busy port fails before any device is made.
    let listener = match rt.block_on(TcpListener::bind(args.socks)) {
        Ok(l) => l,
        Err(e) => return failure(&format!("SOCKS listen on {}: {e}", args.socks)),
    };
    let mut config = app::stack_config(net);
    config.connect_timeout = args.connect_timeout;
    let stack = match app::open_stack(config) {
        Ok(s) => s,
        Err(code) => return code,
    };
    let control = match app::open_control(net, "proxy", Arc::new(stack.clone())) {
        Ok(c) => c,
        Err(code) => {
            stack.shutdown(Duration::ZERO);
            return code;
        }
    };
    if !net.quiet {
        let paths: Vec<String> = stack.local_addrs().iter().map(|a| a.to_string()).collect();
        eprintln!(
            "braid: SOCKS5 proxy listening on {}{} (paths from {})",
            args.socks,
            if auth.is_some() {
                ", username/password required"
            } else {
                ""
            },
            paths.join(", ")
        );
    }
    let stats = Arc::new(ProxyStats::default());
    let connector = Arc::new(StackConnector {
        stack: stack.clone(),
        timeout: args.connect_timeout,
    });
    let cfg = Arc::new(ProxyConfig {
        auth,
        verbose: !net.quiet,
        handshake_timeout: HANDSHAKE_TIMEOUT,
    });
    let server = rt.spawn(serve(listener, connector, cfg, stats.clone()));
    let why = app::wait_for_stop(&stack, net.timeout);
    server.abort();
    if !net.quiet {
        eprintln!(
            "braid: proxy stopping ({why}): {} clients, {} connected, {} failed",
            stats.clients.load(Ordering::Relaxed),
            stats.connected.load(Ordering::Relaxed),
            stats.failed.load(Ordering::Relaxed)
        );
    }
    drop(control);
    stack.shutdown(app::EXIT_GRACE);
    rt.shutdown_timeout(Duration::from_secs(1));
    match why {
        "stack stopped" => failure("the stack stopped unexpectedly"),
        // --timeout: "give up (exit 1)", as for every command that takes it.
        "timeout" => failure("timed out (--timeout)"),
        _ => ExitCode::SUCCESS,
    }
}

#[cfg(test)]
mod tests {
    //! The proxy against bad and good clients, with the host's TCP as the connector (no root):
    //! the same server code `braid proxy` runs.
    use super::*;
    use tokio::io::AsyncReadExt;

    const TEST_HANDSHAKE: Duration = Duration::from_millis(300);

    struct KernelTcp;
    impl Connector for KernelTcp {
        type Stream = TcpStream;
        async fn connect(&self, to: SocketAddr) -> io::Result<(TcpStream, SocketAddr)> {
            let s = tokio::time::timeout(Duration::from_secs(2), TcpStream::connect(to))
                .await
                .map_err(|_| io::Error::new(io::ErrorKind::TimedOut, "timed out"))??;
            let l = s.local_addr()?;
            Ok((s, l))
        }
    }

    /// Always fails with one error kind.
    struct Failing(io::ErrorKind);
    impl Connector for Failing {
        type Stream = TcpStream;
        fn connect(
            &self,
            _to: SocketAddr,
        ) -> impl Future<Output = io::Result<(TcpStream, SocketAddr)>> + Send {
            let k = self.0;
            async move { Err(io::Error::new(k, "test")) }
        }
    }

    async fn start<C: Connector>(
        c: C,
        auth: Option<(&str, &str)>,
    ) -> (SocketAddr, Arc<ProxyStats>) {
        let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let a = l.local_addr().unwrap();
        let stats = Arc::new(ProxyStats::default());
        let cfg = Arc::new(ProxyConfig {
            auth: auth.map(|(u, p)| (u.as_bytes().to_vec(), p.as_bytes().to_vec())),
            verbose: false,
            handshake_timeout: TEST_HANDSHAKE,
        });
        tokio::spawn(serve(l, Arc::new(c), cfg, stats.clone()));
        (a, stats)
    }

    /// Sends `bytes`, half-closes, returns everything the proxy answered before closing.
    async fn exchange(proxy: SocketAddr, bytes: &[u8]) -> Vec<u8> {
        let mut s = TcpStream::connect(proxy).await.unwrap();
        s.write_all(bytes).await.unwrap();
        s.shutdown().await.unwrap();
        let mut out = Vec::new();
        tokio::time::timeout(Duration::from_secs(15), s.read_to_end(&mut out))
            .await
            .expect("the proxy neither answered nor closed")
            .ok();
        out
    }

    fn rt() -> tokio::runtime::Runtime {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap()
    }

    /// An echo server that closes its side after the client's FIN.
    async fn echo() -> SocketAddr {
        let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let a = l.local_addr().unwrap();
        tokio::spawn(async move {
            loop {
                let (mut s, _) = l.accept().await.unwrap();
                tokio::spawn(async move {
                    let mut v = Vec::new();
                    let _ = s.read_to_end(&mut v).await;
                    let _ = s.write_all(&v).await;
                    let _ = s.shutdown().await;
                });
            }
        });
        a
    }

    fn connect_req(a: SocketAddr) -> Vec<u8> {
        let mut v = vec![5, 1, 0];
        match a {
            SocketAddr::V4(x) => {
                v.push(1);
                v.extend_from_slice(&x.ip().octets());
            }
            SocketAddr::V6(x) => {
                v.push(4);
                v.extend_from_slice(&x.ip().octets());
            }
        }
        v.extend_from_slice(&a.port().to_be_bytes());
        v
    }

    #[test]
    fn connect_relays_with_half_close() {
        rt().block_on(async {
            let (p, stats) = start(KernelTcp, None).await;
            let e = echo().await;
            let mut m = vec![5, 1, 0];
            m.extend(connect_req(e));
            m.extend_from_slice(b"hello through socks");
            let out = exchange(p, &m).await;
            assert_eq!(&out[..2], &[5, 0]);
            assert_eq!(&out[2..4], &[5, 0], "reply: {out:?}");
            assert_eq!(&out[12..], b"hello through socks");
            // By name: "localhost" through the host's resolver.
            let mut m = vec![5, 1, 0, 5, 1, 0, 3, 9];
            m.extend_from_slice(b"localhost");
            m.extend_from_slice(&e.port().to_be_bytes());
            m.extend_from_slice(b"named");
            let out = exchange(p, &m).await;
            assert_eq!(&out[2..4], &[5, 0], "reply: {out:?}");
            assert!(out.ends_with(b"named"));
            assert_eq!(stats.connected.load(Ordering::Relaxed), 2);
        });
    }

    #[test]
    fn failures_get_their_reply_codes_at_once() {
        rt().block_on(async {
            for (kind, code) in [
                (io::ErrorKind::ConnectionRefused, 5u8),
                (io::ErrorKind::TimedOut, 4),
                (io::ErrorKind::HostUnreachable, 4),
                (io::ErrorKind::NetworkUnreachable, 3),
                (io::ErrorKind::ConnectionReset, 1),
            ] {
                let (p, _) = start(Failing(kind), None).await;
                let mut m = vec![5, 1, 0];
                m.extend(connect_req("10.1.1.1:80".parse().unwrap()));
                let out = exchange(p, &m).await;
                assert_eq!(
                    out,
                    [&[5u8, 0][..], &[5, code, 0, 1, 0, 0, 0, 0, 0, 0]].concat(),
                    "{kind:?}"
                );
            }
            // A name that does not resolve: host unreachable.
            let (p, _) = start(KernelTcp, None).await;
            let mut m = vec![5, 1, 0, 5, 1, 0, 3, 20];
            m.extend_from_slice(b"no-such-host.invalid");
            m.extend_from_slice(&[0, 80]);
            let out = exchange(p, &m).await;
            assert_eq!(&out[2..4], &[5, 4], "{out:?}");
        });
    }

    #[test]
    fn malformed_input_gets_the_rfc_reply_or_a_close() {
        rt().block_on(async {
            let (p, stats) = start(KernelTcp, None).await;
            let cases: Vec<(&str, Vec<u8>, Vec<u8>)> = vec![
                (
                    "HTTP instead of SOCKS",
                    b"GET / HTTP/1.1\r\n\r\n".to_vec(),
                    vec![],
                ),
                ("SOCKS4", vec![4, 1, 0, 80, 10, 0, 0, 1, 0], vec![]),
                ("empty", vec![], vec![]),
                ("truncated greeting", vec![5, 3, 0], vec![]),
                ("no acceptable method", vec![5, 1, 2], vec![5, 0xff]),
                ("zero methods", vec![5, 0], vec![5, 0xff]),
                (
                    "request version",
                    vec![5, 1, 0, 4, 1, 0, 1, 1, 2, 3, 4, 0, 80],
                    vec![5, 0],
                ),
                (
                    "truncated request",
                    vec![5, 1, 0, 5, 1, 0, 1, 10, 0],
                    vec![5, 0],
                ),
                (
                    "BIND",
                    [&[5, 1, 0][..], &[5, 2, 0, 1, 1, 2, 3, 4, 0, 80]].concat(),
                    [&[5, 0][..], &socks::reply(Reply::CommandNotSupported, None)].concat(),
                ),
                (
                    "UDP ASSOCIATE",
                    [&[5, 1, 0][..], &[5, 3, 0, 1, 1, 2, 3, 4, 0, 80]].concat(),
                    [&[5, 0][..], &socks::reply(Reply::CommandNotSupported, None)].concat(),
                ),
                (
                    "unknown command",
                    [&[5, 1, 0][..], &[5, 0x7f, 0, 1, 1, 2, 3, 4, 0, 80]].concat(),
                    [&[5, 0][..], &socks::reply(Reply::CommandNotSupported, None)].concat(),
                ),
                (
                    "unknown address type",
                    [&[5, 1, 0][..], &[5, 1, 0, 7, 1, 2, 3, 4, 0, 80]].concat(),
                    [
                        &[5, 0][..],
                        &socks::reply(Reply::AddressTypeNotSupported, None),
                    ]
                    .concat(),
                ),
                (
                    "empty domain",
                    [&[5, 1, 0][..], &[5, 1, 0, 3, 0, 0, 80]].concat(),
                    [&[5, 0][..], &socks::reply(Reply::GeneralFailure, None)].concat(),
                ),
                (
                    "domain with NUL",
                    [&[5, 1, 0][..], &[5, 1, 0, 3, 2, b'a', 0, 0, 80]].concat(),
                    [&[5, 0][..], &socks::reply(Reply::HostUnreachable, None)].concat(),
                ),
            ];
            for (name, input, want) in cases {
                let out = exchange(p, &input).await;
                assert_eq!(out, want, "{name}");
            }
            let mut long = vec![5, 1, 0, 5, 1, 0, 3, 255];
            long.extend(std::iter::repeat_n(b'x', 255));
            long.extend_from_slice(&[0, 80]);
            let out = exchange(p, &long).await;
            assert_eq!(&out[2..4], &[5, 4], "oversized name");
            // Random garbage: never a hang, never a crash.
            let mut x = 0x1234_5678_9abc_def0u64;
            for _ in 0..200 {
                let n = (x % 40) as usize;
                let mut g = vec![5u8];
                for _ in 0..n {
                    x ^= x << 13;
                    x ^= x >> 7;
                    x ^= x << 17;
                    g.push(x as u8);
                }
                exchange(p, &g).await;
            }
            assert_eq!(stats.connected.load(Ordering::Relaxed), 0);
            // Every client task ended.
            for _ in 0..100 {
                if stats.active.load(Ordering::Relaxed) == 0 {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            assert_eq!(stats.active.load(Ordering::Relaxed), 0);
        });
    }

    #[test]
    fn username_password() {
        rt().block_on(async {
            let (p, _) = start(KernelTcp, Some(("alice", "s3cret"))).await;
            let e = echo().await;
            // No user/pass method offered.
            assert_eq!(exchange(p, &[5, 1, 0]).await, vec![5, 0xff]);
            // Wrong password.
            let mut m = vec![5, 1, 2, 1, 5];
            m.extend_from_slice(b"alice");
            m.push(5);
            m.extend_from_slice(b"wrong");
            assert_eq!(exchange(p, &m).await, vec![5, 2, 1, 1]);
            // Right one.
            let mut m = vec![5, 1, 2, 1, 5];
            m.extend_from_slice(b"alice");
            m.push(6);
            m.extend_from_slice(b"s3cret");
            m.extend(connect_req(e));
            m.extend_from_slice(b"ok");
            let out = exchange(p, &m).await;
            assert_eq!(&out[..6], &[5, 2, 1, 0, 5, 0], "{out:?}");
            assert!(out.ends_with(b"ok"));
        });
    }

    #[test]
    fn a_silent_client_is_closed_and_a_vanished_one_frees_its_task() {
        rt().block_on(async {
            let (p, stats) = start(KernelTcp, None).await;
            let mut s = TcpStream::connect(p).await.unwrap();
            s.write_all(&[5]).await.unwrap();
            let mut b = Vec::new();
            let t = tokio::time::timeout(Duration::from_secs(5), s.read_to_end(&mut b)).await;
            assert!(t.is_ok(), "a silent client was not closed");
            assert!(b.is_empty());
            // A client that connects through and vanishes mid-relay.
            let e = echo().await;
            let mut c = TcpStream::connect(p).await.unwrap();
            let mut m = vec![5, 1, 0];
            m.extend(connect_req(e));
            c.write_all(&m).await.unwrap();
            let mut r = [0u8; 12];
            c.read_exact(&mut r).await.unwrap();
            drop(c);
            for _ in 0..200 {
                if stats.active.load(Ordering::Relaxed) == 0 {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            assert_eq!(stats.active.load(Ordering::Relaxed), 0);
        });
    }

    #[test]
    fn auth_argument() {
        assert!(parse_auth("a:b").is_ok());
        assert!(parse_auth("ab").is_err());
        assert!(parse_auth(":b").is_err());
        assert!(parse_auth("a:").is_err());
    }
}
