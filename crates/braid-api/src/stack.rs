//! [`Stack`]: the engine on its own thread over TUN paths (or the in-memory loopback).

use crate::core::{Cmd, ConnCore, ListenCore, ListenState, Phase, StackShared};
use crate::engine::{Engine, Route};
use crate::info::ConnStatus;
use crate::plane::{LoopbackPlane, Plane, TunPlane};
use crate::stream::{MptcpListener, MptcpStream};
use braid_io::{Driver, DriverConfig, PathSpec};
use braid_proto::mptcp::crypto::KeySource;
use braid_proto::{Endpoint, EndpointConfig};
use std::collections::VecDeque;
use std::io::{self, Read};
use std::net::{IpAddr, SocketAddr};
use std::os::unix::net::UnixStream;
use std::path::PathBuf;
use std::sync::mpsc::sync_channel;
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

/// How long a request to the engine thread (info, status) may take before it is given up.
pub(crate) const REPLY_TIMEOUT: Duration = Duration::from_secs(5);

/// How a [`Stack`] is built.
#[derive(Clone, Debug)]
pub struct StackConfig {
    /// The paths (one TUN device each). The first path of a destination's family (or the one
    /// whose prefix covers it) opens a connection; with MPTCP the path manager adds subflows
    /// from the others.
    pub paths: Vec<PathSpec>,
    /// The engine's settings (TCP, MPTCP: scheduler, path manager, checksums; congestion control).
    pub endpoint: EndpointConfig,
    /// Seeds initial sequence numbers and emulated loss (default: from the OS). MPTCP keys come
    /// from the OS's secure random source in any case.
    pub seed: Option<u64>,
    /// Write every packet of every path to this pcap file.
    pub pcap: Option<PathBuf>,
    /// Catch SIGINT/SIGTERM (see [`Stack::wait_interrupted`]) instead of dying at once.
    pub catch_signals: bool,
    /// How long `connect` waits for the handshake before failing with `TimedOut`.
    pub connect_timeout: Duration,
    /// Bytes each connection buffers per direction between the application and the engine
    /// (on top of the engine's own buffers).
    pub buffer: usize,
}

impl StackConfig {
    /// Defaults: MPTCP on, minrtt scheduler, fullmesh path manager, CUBIC, 30 s connect timeout.
    pub fn new(paths: Vec<PathSpec>) -> Self {
        let mut endpoint = EndpointConfig::default();
        // The engine's MSS is the IPv4 one (20 bytes less for IPv6): the smallest MTU decides.
        if let Some(mtu) = paths.iter().map(|p| p.mtu).min() {
            endpoint.tcp.mss = endpoint
                .tcp
                .mss
                .min(mtu.saturating_sub(40).min(u16::MAX as u32) as u16);
        }
        StackConfig {
            paths,
            endpoint,
            seed: None,
            pcap: None,
            catch_signals: false,
            connect_timeout: Duration::from_secs(30),
            buffer: 256 * 1024,
        }
    }
}

/// A random seed from the kernel.
fn random_seed() -> u64 {
    let mut b = [0u8; 8];
    if let Ok(mut f) = std::fs::File::open("/dev/urandom") {
        let _ = f.read_exact(&mut b);
    }
    u64::from_le_bytes(b)
}

struct Inner {
    shared: Arc<StackShared>,
    thread: Mutex<Option<JoinHandle<()>>>,
    paths: Vec<PathSpec>,
    locals: Vec<IpAddr>,
}

impl Drop for Inner {
    fn drop(&mut self) {
        self.shared.send(Cmd::Stop(Duration::ZERO));
        if let Some(t) = self.thread.lock().unwrap_or_else(|e| e.into_inner()).take() {
            let _ = t.join();
        }
    }
}

/// braid's userspace MPTCP stack: the engine runs on its own thread over the TUN paths; this
/// handle (cheap to clone) opens [`MptcpStream`]s and [`MptcpListener`]s on it.
///
/// The stack stops when [`Stack::shutdown`] is called or the last `Stack` handle is dropped
/// (streams and listeners do not keep it alive; once it stopped they fail with
/// `ConnectionAborted`). Its TUN devices disappear with it.
#[derive(Clone)]
pub struct Stack {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Stack {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Stack")
            .field("locals", &self.inner.locals)
            .finish_non_exhaustive()
    }
}

impl Stack {
    /// Opens the TUN devices (needs root or CAP_NET_ADMIN) and starts the engine thread.
    /// Errors name what was wrong: a bad engine setting, a device that cannot be made.
    pub fn open(config: StackConfig) -> io::Result<Stack> {
        Endpoint::validate_config(&config.endpoint)
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e.to_string()))?;
        let seed = config.seed.unwrap_or_else(random_seed);
        let keys = KeySource::os()
            .map_err(|e| io::Error::other(format!("no secure random source: {e}")))?;
        let endpoint = Endpoint::with_key_source(config.endpoint.clone(), seed, keys);
        let dc = DriverConfig {
            seed: seed.rotate_left(17) ^ 0x5eed,
            pcap: config.pcap.clone(),
            catch_signals: config.catch_signals,
        };
        let driver = Driver::open(endpoint, &config.paths, dc)?;
        let routes = config
            .paths
            .iter()
            .map(|p| Route {
                local: p.local,
                peer: p.peer,
                prefix: p.prefix,
            })
            .collect();
        Self::start(Box::new(TunPlane { driver }), routes, &config)
    }

    /// A stack without devices or root: one engine that owns `addrs` and delivers every packet
    /// it sends back to itself, so a connection from one of its addresses to another is
    /// accepted by its own listener. For tests, examples and trying the API.
    pub fn loopback(addrs: &[IpAddr], endpoint: EndpointConfig) -> io::Result<Stack> {
        Endpoint::validate_config(&endpoint)
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e.to_string()))?;
        if addrs.is_empty() {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "no address given",
            ));
        }
        let mut ep = Endpoint::new(endpoint.clone(), random_seed());
        for a in addrs {
            ep.add_local_addr(*a);
        }
        let routes = addrs
            .iter()
            .map(|&a| Route {
                local: a,
                peer: a,
                prefix: if a.is_ipv4() { 32 } else { 128 },
            })
            .collect();
        let mut config = StackConfig::new(Vec::new());
        config.endpoint = endpoint;
        let mut s = Self::start(Box::new(LoopbackPlane::new(ep)), routes, &config)?;
        if let Some(inner) = Arc::get_mut(&mut s.inner) {
            inner.locals = addrs.to_vec();
        }
        Ok(s)
    }

    fn start(plane: Box<dyn Plane>, routes: Vec<Route>, config: &StackConfig) -> io::Result<Stack> {
        let (wake_tx, wake_rx) = UnixStream::pair()?;
        wake_tx.set_nonblocking(true)?;
        wake_rx.set_nonblocking(true)?;
        let shared = Arc::new(StackShared::new(
            wake_tx,
            config.buffer.max(4096),
            config.connect_timeout,
        ));
        let engine = Engine::new(plane, shared.clone(), wake_rx, routes);
        let thread = std::thread::Builder::new()
            .name("braid-engine".into())
            .spawn(move || engine.run())?;
        Ok(Stack {
            inner: Arc::new(Inner {
                shared,
                thread: Mutex::new(Some(thread)),
                locals: config.paths.iter().map(|p| p.local).collect(),
                paths: config.paths.clone(),
            }),
        })
    }

    #[cfg_attr(not(feature = "tokio"), allow(dead_code))]
    pub(crate) fn shared(&self) -> &Arc<StackShared> {
        &self.inner.shared
    }

    /// The paths the stack runs over.
    pub fn paths(&self) -> &[PathSpec] {
        &self.inner.paths
    }

    /// braid's own addresses (one per path).
    pub fn local_addrs(&self) -> &[IpAddr] {
        &self.inner.locals
    }

    /// Opens a connection to `remote` and waits for the handshake (MPTCP, or plain TCP when the
    /// peer does not speak it), at most the configured connect timeout. Fails with
    /// `ConnectionRefused`, `TimedOut`, `ConnectionReset` or `NetworkUnreachable` (no path of
    /// the address family), each naming the destination.
    pub fn connect(&self, remote: SocketAddr) -> io::Result<MptcpStream> {
        self.connect_timeout(remote, self.inner.shared.connect_timeout)
    }

    /// [`Stack::connect`] with its own time limit.
    pub fn connect_timeout(
        &self,
        remote: SocketAddr,
        timeout: Duration,
    ) -> io::Result<MptcpStream> {
        let core = self.start_connect(remote, None, timeout);
        let mut st = core.lock();
        while st.phase == Phase::Connecting {
            st = core.wait(st, None).0;
        }
        let err = st.error.as_ref().map(|e| e.to_io());
        drop(st);
        // A failed attempt is released by this handle's drop, like a successful one.
        let stream = MptcpStream::new(core, self.inner.shared.clone());
        match err {
            Some(e) => Err(e),
            None => Ok(stream),
        }
    }

    /// Queues the connect request; the core's phase tells when the handshake is over.
    pub(crate) fn start_connect(
        &self,
        remote: SocketAddr,
        local: Option<IpAddr>,
        timeout: Duration,
    ) -> Arc<ConnCore> {
        let sh = &self.inner.shared;
        let core = ConnCore::new(sh.new_id(), Phase::Connecting, remote, sh.buffer);
        sh.send(Cmd::Connect {
            core: core.clone(),
            local,
            timeout,
        });
        core
    }

    /// Accepts connections to `port` on every path's address.
    pub fn listen(&self, port: u16) -> io::Result<MptcpListener> {
        if port == 0 {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "port 0: give a port number",
            ));
        }
        let core = Arc::new(ListenCore {
            port,
            state: Mutex::new(ListenState {
                queue: VecDeque::new(),
                error: None,
                waker: None,
            }),
            cv: Condvar::new(),
        });
        let (tx, rx) = sync_channel(1);
        self.inner.shared.send(Cmd::Listen {
            core: core.clone(),
            reply: tx,
        });
        match rx.recv_timeout(REPLY_TIMEOUT) {
            Ok(Ok(())) => Ok(MptcpListener::new(
                core,
                self.inner.shared.clone(),
                self.inner.locals.clone(),
            )),
            Ok(Err(e)) => Err(e.to_io()),
            Err(_) => Err(io::Error::new(
                io::ErrorKind::TimedOut,
                "the engine thread did not answer",
            )),
        }
    }

    /// Every connection the stack holds, with its subflows (what `braid status` shows).
    pub fn connections(&self) -> io::Result<Vec<ConnStatus>> {
        let (tx, rx) = sync_channel(1);
        self.inner.shared.send(Cmd::List(tx));
        rx.recv_timeout(REPLY_TIMEOUT)
            .map_err(|_| io::Error::new(io::ErrorKind::TimedOut, "the engine did not answer"))
    }

    /// The paths the stack runs over now (after `path` commands and devices that went away).
    pub fn current_paths(&self) -> io::Result<Vec<PathSpec>> {
        let (tx, rx) = sync_channel(1);
        self.inner.shared.send(Cmd::Paths(tx));
        rx.recv_timeout(REPLY_TIMEOUT)
            .map_err(|_| io::Error::new(io::ErrorKind::TimedOut, "the engine did not answer"))
    }

    /// Adds, removes or changes a path while the stack runs (what `braid path` asks): the
    /// result is the path's `tun`, `local` and `backup`; the error names what was wrong.
    pub fn path(&self, req: &crate::control::PathRequest) -> Result<serde_json::Value, String> {
        let (tx, rx) = sync_channel(1);
        self.inner.shared.send(Cmd::Path(req.clone(), tx));
        rx.recv_timeout(REPLY_TIMEOUT)
            .unwrap_or_else(|_| Err("the engine did not answer".to_string()))
    }

    /// Where the stack publishes its events (connections, subflows, paths): what
    /// `braid monitor` shows.
    pub fn monitor(&self) -> Arc<crate::control::Monitor> {
        self.inner.shared.monitor.clone()
    }

    /// The engine's counters (kernel MIB names for MPTCP).
    pub fn counters(&self) -> io::Result<Vec<(&'static str, u64)>> {
        let (tx, rx) = sync_channel(1);
        self.inner.shared.send(Cmd::Counters(tx));
        rx.recv_timeout(REPLY_TIMEOUT)
            .map_err(|_| io::Error::new(io::ErrorKind::TimedOut, "the engine did not answer"))
    }

    /// Waits until SIGINT/SIGTERM arrived (stacks with `catch_signals`), the stack stopped, or
    /// `timeout` passed. True when a signal arrived.
    pub fn wait_interrupted(&self, timeout: Option<Duration>) -> bool {
        let sh = &self.inner.shared;
        let mut i = sh.interrupted.lock().unwrap_or_else(|e| e.into_inner());
        let end = timeout.map(|t| crate::core::mono_now() + t);
        while !*i && !sh.is_stopped() {
            match end {
                None => i = sh.interrupt_cv.wait(i).unwrap_or_else(|e| e.into_inner()),
                Some(end) => {
                    let left = end.saturating_duration_since(crate::core::mono_now());
                    if left.is_zero() {
                        break;
                    }
                    i = sh
                        .interrupt_cv
                        .wait_timeout(i, left)
                        .unwrap_or_else(|e| e.into_inner())
                        .0;
                }
            }
        }
        *i
    }

    /// True once SIGINT/SIGTERM arrived.
    pub fn interrupted(&self) -> bool {
        *self
            .inner
            .shared
            .interrupted
            .lock()
            .unwrap_or_else(|e| e.into_inner())
    }

    /// Stops the stack: open connections are shut down in order (given up to `grace` to
    /// finish) — reset when `grace` is zero — listeners close, the last packets are sent and
    /// the devices removed. Returns when the engine thread has ended.
    pub fn shutdown(&self, grace: Duration) {
        self.inner.shared.send(Cmd::Stop(grace));
        if let Some(t) = self
            .inner
            .thread
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take()
        {
            let _ = t.join();
        }
    }
}
