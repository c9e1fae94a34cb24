//! The real-time event loop: TUN devices in, engine, emulation, TUN devices out.
//!
//! One [`Driver::wait`] is one wake-up: it first sends whatever the engine has queued, sleeps in
//! ppoll(2) until a TUN device is readable, a signal arrives, the application's descriptor is
//! ready, or the earlier of the engine's timer and the emulation's next due packet; then it reads
//! every waiting packet (up to a batch per device), releases due emulated packets, runs the
//! engine's timers and sends again. The application works between calls, on `driver.endpoint`.
//!
//! Offloads: devices are opened with a `virtio_net_hdr` ([`Tun::open_offload`]) unless
//! `BRAID_OFFLOAD=0` is set. Then the engine leaves TCP checksums to the kernel and builds
//! super-segments of up to 64 KiB (TSO: one header, packets of one MSS), which one write
//! hands to the kernel; on receive the kernel's own super-segments and partial checksums are
//! taken whole. Where a path emulates delay, loss or rate, or a capture is on, super-segments
//! are cut into real packets with complete checksums in userspace first (both directions), so
//! that the emulation and the capture see what a wire would carry.

use crate::clock::Clock;
use crate::emu::{Dir, Emulator};
use crate::linkwatch::{LinkState, LinkWatch};
use crate::netconf;
use crate::pcap::PcapWriter;
use crate::signal::{self, SignalPipe};
use crate::spec::PathSpec;
use crate::tun::Tun;
use braid_proto::{Endpoint, Instant, Transmit, TxOffload, TSO_MAX_PAYLOAD};
use braid_wire::vnet::{self, VnetHdr};
use std::collections::{HashMap, VecDeque};
use std::fs::File;
use std::io::{self, BufWriter};
use std::net::{IpAddr, SocketAddr};
use std::os::fd::{AsRawFd, RawFd};
use std::path::PathBuf;
use std::time::Duration;

/// Packets read from one device per wake-up before the others get their turn.
const RX_BATCH: usize = 256;
/// Largest packet a TUN device hands us (a 64 KiB super-segment behind its virtio header).
const RX_BUF: usize = 65536 + vnet::HDR_LEN;
/// The environment variable that turns TUN offloads off (`0`, `off`, `no`, `false`).
pub const OFFLOAD_ENV: &str = "BRAID_OFFLOAD";

/// Offloads wanted: on unless [`OFFLOAD_ENV`] says otherwise.
pub fn offload_wanted() -> bool {
    !matches!(
        std::env::var(OFFLOAD_ENV)
            .as_deref()
            .map(str::to_ascii_lowercase)
            .as_deref(),
        Ok("0" | "off" | "no" | "false")
    )
}
/// Spare packet buffers kept for the emulation queues.
const POOL_MAX: usize = 8192;
/// How often link states are read where no netlink notification can be had.
const LINK_POLL: Duration = Duration::from_millis(50);
/// Path changes kept for [`Driver::take_path_events`]; older ones are dropped.
const PATH_EVENTS_MAX: usize = 256;

/// What happened to a path at run time.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PathChange {
    /// Added by [`Driver::add_path`].
    Added,
    /// Removed by [`Driver::remove_path`].
    Removed,
    /// Its device went down: its address was taken from the engine.
    Down,
    /// Its device came back up: its address was given to the engine again.
    Up,
    /// Its device disappeared (`ip link del`): the path is gone.
    Gone,
    /// Its backup flag was set ([`Driver::set_backup`]).
    Backup(bool),
}

/// One path change, for monitors.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PathEvent {
    pub at: Instant,
    pub change: PathChange,
    pub tun: String,
    pub local: IpAddr,
}

/// Driver settings.
#[derive(Clone, Debug, Default)]
pub struct DriverConfig {
    /// Seeds the emulation's loss draws (each path gets its own stream).
    pub seed: u64,
    /// Capture every packet of every path, both directions, at the TUN devices.
    pub pcap: Option<PathBuf>,
    /// Turn SIGINT/SIGTERM into [`Wake::interrupted`] instead of killing the process.
    pub catch_signals: bool,
}

/// What the data plane did, for reports.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct IoStats {
    pub rx_packets: u64,
    pub rx_bytes: u64,
    pub tx_packets: u64,
    pub tx_bytes: u64,
    /// TCP super-segments handed to the kernel whole (each counted in `tx_packets` as the
    /// packets it stands for).
    pub tx_super: u64,
    /// TCP super-segments the kernel handed over (each counted once in `rx_packets`).
    pub rx_super: u64,
    /// Writes to a TUN device that failed.
    pub tx_errors: u64,
    /// Engine packets whose source address is no path's `local`.
    pub unroutable: u64,
    /// Packets the emulation dropped at random.
    pub emu_lost: u64,
    /// Packets the emulation dropped because its queue was full.
    pub emu_queue_drops: u64,
    pub wakeups: u64,
}

impl IoStats {
    /// Name/value pairs, for printing beside the engine's counters.
    pub fn iter(&self) -> impl Iterator<Item = (&'static str, u64)> {
        [
            ("TunRxPackets", self.rx_packets),
            ("TunRxBytes", self.rx_bytes),
            ("TunTxPackets", self.tx_packets),
            ("TunTxBytes", self.tx_bytes),
            ("TunTxSuper", self.tx_super),
            ("TunRxSuper", self.rx_super),
            ("TunTxErrors", self.tx_errors),
            ("Unroutable", self.unroutable),
            ("EmuLost", self.emu_lost),
            ("EmuQueueDrops", self.emu_queue_drops),
            ("Wakeups", self.wakeups),
        ]
        .into_iter()
    }
}

/// Why [`Driver::wait`] returned.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Wake {
    /// The application's descriptor is readable (or at EOF / in error).
    pub app_ready: bool,
    /// SIGINT or SIGTERM arrived (only with `catch_signals`).
    pub interrupted: bool,
    /// Bit `i`: descriptor `i` of [`Driver::wait_fds`] is readable (or at EOF / in error).
    pub ready: u64,
    /// The wake descriptor ([`Driver::set_wake_fd`]) is readable: another thread asked for
    /// attention. The caller drains it.
    pub woken: bool,
}

struct PathIo {
    spec: PathSpec,
    tun: Tun,
    emu: Emulator,
    /// Packets are cut to real size in userspace (emulation or capture, or a device without
    /// the virtio header).
    cut: bool,
    /// The device is up: its address is the engine's.
    up: bool,
    /// Index of the namespace's link watch in `Driver::watches`.
    watch: Option<usize>,
}

type Pcap = PcapWriter<BufWriter<File>>;

/// Everything one packet write needs, borrowed apart from the engine.
struct Out<'a> {
    clock: &'a Clock,
    pcap: &'a mut Option<Pcap>,
    pcap_error: &'a mut Option<io::Error>,
    stats: &'a mut IoStats,
    scratch: &'a mut Vec<u8>,
}

impl Out<'_> {
    fn capture(&mut self, now: Instant, packet: &[u8]) {
        if let Some(p) = self.pcap.as_mut() {
            if let Err(e) = p.write_packet(self.clock.wall(now), packet) {
                *self.pcap_error = Some(e);
                *self.pcap = None;
            }
        }
    }

    fn write(&mut self, tun: &Tun, now: Instant, packet: &[u8]) {
        self.capture(now, packet);
        match tun.write(packet) {
            Ok(_) => {
                self.stats.tx_packets += 1;
                self.stats.tx_bytes += packet.len() as u64;
            }
            Err(_) => self.stats.tx_errors += 1,
        }
    }

    /// Writes what the engine built, whole, behind its virtio header: the kernel completes the
    /// checksum and cuts a super-segment.
    fn write_offloaded(&mut self, tun: &Tun, packet: &[u8], t: &Transmit) {
        let hdr = if t.csum_partial {
            VnetHdr::for_tcp(packet, t.gso_size).unwrap_or_default()
        } else {
            VnetHdr::default()
        };
        match tun.write_vnet(&hdr, packet) {
            Ok(_) => {
                let n = if hdr.is_gso() {
                    self.stats.tx_super += 1;
                    let h = usize::from(hdr.hdr_len);
                    packet
                        .len()
                        .saturating_sub(h)
                        .div_ceil(usize::from(t.gso_size)) as u64
                } else {
                    1
                };
                self.stats.tx_packets += n;
                self.stats.tx_bytes += packet.len() as u64;
            }
            Err(_) => self.stats.tx_errors += 1,
        }
    }
}

/// Cuts what the engine built into real packets with complete checksums (`f` sees each); a
/// packet that needs nothing done is passed as it is.
fn cut_tx(packet: &[u8], t: &Transmit, scratch: &mut Vec<u8>, mut f: impl FnMut(&[u8])) {
    if !t.csum_partial && t.gso_size == 0 {
        f(packet);
        return;
    }
    // The engine built it: it parses (a failure would leave nothing worth sending).
    let _ = vnet::split(packet, usize::from(t.gso_size), scratch, f);
}

/// The Linux data plane around one engine.
pub struct Driver {
    /// The engine; the application calls it directly between [`Driver::wait`]s.
    pub endpoint: Endpoint,
    paths: Vec<PathIo>,
    clock: Clock,
    pcap: Option<Pcap>,
    pcap_error: Option<io::Error>,
    signals: Option<SignalPipe>,
    pool: Vec<Vec<u8>>,
    rx: Vec<u8>,
    tx: Vec<u8>,
    /// Packets cut from one super-segment, waiting for the engine or the emulation.
    cut: Vec<Vec<u8>>,
    scratch: Vec<u8>,
    pollfds: Vec<libc::pollfd>,
    stats: IoStats,
    wake_fd: Option<RawFd>,
    /// Seeds the emulation of paths added later.
    seed: u64,
    paths_opened: u64,
    /// One link watch per namespace braid's devices live in.
    watches: Vec<LinkWatch>,
    /// Link states are read at this time (no netlink) or when a notification came.
    next_link_poll: Option<Instant>,
    path_events: VecDeque<PathEvent>,
    /// Device names of every local address a path ever had (for naming events after a path
    /// is gone).
    names: HashMap<IpAddr, String>,
    /// The smallest MTU of the paths at start (the engine's MSS was made from it).
    min_mtu: u32,
    /// Flows (our address and port, theirs) whose packets came in on a path that does not
    /// own our address (a peer's subflow from its second address to our first): their
    /// packets go back out on that path, and when they were last seen. A peer whose subflow
    /// is bound to its device (Linux `ip mptcp endpoint ... dev X`) answers a SYN/ACK that
    /// comes in on another device with a RST.
    cross: HashMap<(SocketAddr, SocketAddr), (usize, Instant)>,
}

/// Most flows [`Driver::cross`] holds: when full, those not seen for [`CROSS_IDLE`] go; new
/// ones are not learned while it stays full.
const CROSS_MAX: usize = 4096;
const CROSS_IDLE: Duration = Duration::from_secs(120);

/// (source, destination) of an IPv4 or IPv6 TCP packet (no IPv6 extension headers).
fn tcp_flow(packet: &[u8]) -> Option<(SocketAddr, SocketAddr)> {
    let (src, dst, l4) = match packet.first()? >> 4 {
        4 => {
            let ihl = usize::from(packet.first()? & 0x0f) * 4;
            if packet.len() < ihl.max(20) + 4 || packet[9] != 6 {
                return None;
            }
            let a: [u8; 4] = packet[12..16].try_into().ok()?;
            let b: [u8; 4] = packet[16..20].try_into().ok()?;
            (IpAddr::from(a), IpAddr::from(b), &packet[ihl..])
        }
        6 => {
            if packet.len() < 44 || packet[6] != 6 {
                return None;
            }
            let a: [u8; 16] = packet[8..24].try_into().ok()?;
            let b: [u8; 16] = packet[24..40].try_into().ok()?;
            (IpAddr::from(a), IpAddr::from(b), &packet[40..])
        }
        _ => return None,
    };
    let sport = u16::from_be_bytes([l4[0], l4[1]]);
    let dport = u16::from_be_bytes([l4[2], l4[3]]);
    Some((SocketAddr::new(src, sport), SocketAddr::new(dst, dport)))
}

impl std::fmt::Debug for Driver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Driver")
            .field(
                "paths",
                &self.paths.iter().map(|p| &p.spec).collect::<Vec<_>>(),
            )
            .field("stats", &self.stats)
            .finish_non_exhaustive()
    }
}

impl Driver {
    /// Opens and configures one TUN device per path and gives the engine the paths' `local`
    /// addresses. Devices disappear again when the driver is dropped.
    pub fn open(
        mut endpoint: Endpoint,
        specs: &[PathSpec],
        config: DriverConfig,
    ) -> io::Result<Self> {
        if specs.is_empty() {
            return Err(io::Error::new(io::ErrorKind::InvalidInput, "no path given"));
        }
        for (i, a) in specs.iter().enumerate() {
            for b in &specs[..i] {
                if a.tun == b.tun {
                    return Err(io::Error::new(
                        io::ErrorKind::InvalidInput,
                        format!("two paths use the device {}", a.tun),
                    ));
                }
                if a.local == b.local {
                    return Err(io::Error::new(
                        io::ErrorKind::InvalidInput,
                        format!("two paths use the local address {}", a.local),
                    ));
                }
            }
        }
        let signals = if config.catch_signals {
            Some(SignalPipe::install()?)
        } else {
            None
        };
        let mut paths = Vec::with_capacity(specs.len());
        let offload = offload_wanted();
        let clock = Clock::new();
        let mut watches = Vec::new();
        for (i, spec) in specs.iter().enumerate() {
            let mut path = open_path(spec, config.pcap.is_some(), config.seed, i as u64)?;
            path.watch = watch_for(&mut watches, spec.netns.as_deref());
            if spec.backup {
                endpoint.add_local_addr_with(clock.now(), spec.local, true);
            } else {
                endpoint.add_local_addr(spec.local);
            }
            paths.push(path);
        }
        // Checksums and segmentation for the kernel to do: wherever a path cuts in userspace,
        // the cut completes them.
        if offload && paths.iter().any(|p| p.tun.vnet()) {
            endpoint.set_tx_offload(TxOffload {
                csum: true,
                tso: TSO_MAX_PAYLOAD,
            });
        }
        let pcap =
            match &config.pcap {
                Some(p) => Some(PcapWriter::create(p).map_err(|e| {
                    io::Error::new(e.kind(), format!("creating {}: {e}", p.display()))
                })?),
                None => None,
            };
        Ok(Driver {
            endpoint,
            paths,
            clock,
            pcap,
            pcap_error: None,
            signals,
            pool: Vec::new(),
            cross: HashMap::new(),
            rx: vec![0; RX_BUF],
            tx: Vec::with_capacity(RX_BUF),
            cut: Vec::new(),
            scratch: Vec::with_capacity(2048),
            pollfds: Vec::new(),
            stats: IoStats::default(),
            wake_fd: None,
            seed: config.seed,
            paths_opened: specs.len() as u64,
            next_link_poll: watches
                .iter()
                .any(|w| w.fd().is_none())
                .then(|| clock.now() + LINK_POLL),
            watches,
            path_events: VecDeque::new(),
            names: specs.iter().map(|s| (s.local, s.tun.clone())).collect(),
            min_mtu: specs.iter().map(|s| s.mtu).min().unwrap_or(1500),
        })
    }

    /// Adds a path at run time: opens and configures its device as [`Driver::open`] does and
    /// gives the engine its address (existing connections join from it, or announce it).
    /// Refuses a device name or local address another path has.
    pub fn add_path(&mut self, spec: &PathSpec) -> io::Result<()> {
        check_new(self.paths.iter().map(|p| &p.spec), spec)?;
        if spec.mtu < self.min_mtu {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!(
                    "mtu {} of {} is below the {} braid started with (its segment size)",
                    spec.mtu, spec.tun, self.min_mtu
                ),
            ));
        }
        let mut path = open_path(spec, self.pcap.is_some(), self.seed, self.paths_opened)?;
        self.paths_opened += 1;
        path.watch = watch_for(&mut self.watches, spec.netns.as_deref());
        if self.watches.iter().any(|w| w.fd().is_none()) && self.next_link_poll.is_none() {
            self.next_link_poll = Some(self.clock.now() + LINK_POLL);
        }
        let now = self.clock.now();
        self.endpoint
            .add_local_addr_with(now, spec.local, spec.backup);
        self.names.insert(spec.local, spec.tun.clone());
        self.paths.push(path);
        self.note(now, PathChange::Added, spec);
        self.flush_at(now);
        Ok(())
    }

    /// Removes the path on device `tun`: the engine closes its subflows (and tells the peer
    /// with REMOVE_ADDR on the others), the last packets go out, then the device is closed
    /// (and disappears). Returns its spec.
    pub fn remove_path(&mut self, tun: &str) -> io::Result<PathSpec> {
        let i = self.path_index(tun)?;
        let now = self.clock.now();
        let local = self.paths[i].spec.local;
        if self.paths[i].up {
            self.endpoint.remove_local_addr(now, local);
        }
        self.flush_at(now);
        let path = self.paths.remove(i);
        // Path indices moved: flows learned on a path are learned again from their packets.
        self.cross.clear();
        self.note(now, PathChange::Removed, &path.spec);
        Ok(path.spec)
    }

    /// Makes the path on device `tun` a backup path or a regular one (MP_PRIO on its subflows).
    pub fn set_backup(&mut self, tun: &str, backup: bool) -> io::Result<()> {
        let i = self.path_index(tun)?;
        let now = self.clock.now();
        let path = &mut self.paths[i];
        path.spec.backup = backup;
        let (local, up) = (path.spec.local, path.up);
        let spec = path.spec.clone();
        if up {
            self.endpoint.set_local_backup(now, local, backup);
        }
        self.note(now, PathChange::Backup(backup), &spec);
        self.flush_at(now);
        Ok(())
    }

    fn path_index(&self, tun: &str) -> io::Result<usize> {
        self.paths
            .iter()
            .position(|p| p.spec.tun == tun)
            .ok_or_else(|| {
                let names: Vec<&str> = self.paths.iter().map(|p| p.spec.tun.as_str()).collect();
                io::Error::new(
                    io::ErrorKind::NotFound,
                    format!(
                        "no path on device {tun:?} (paths: {})",
                        if names.is_empty() {
                            "none".to_string()
                        } else {
                            names.join(", ")
                        }
                    ),
                )
            })
    }

    fn note(&mut self, at: Instant, change: PathChange, spec: &PathSpec) {
        if self.path_events.len() >= PATH_EVENTS_MAX {
            self.path_events.pop_front();
        }
        self.path_events.push_back(PathEvent {
            at,
            change,
            tun: spec.tun.clone(),
            local: spec.local,
        });
    }

    /// Path changes since the last call (added, removed, devices down, up or gone), oldest
    /// first; at most the last 256 are kept.
    pub fn take_path_events(&mut self) -> impl Iterator<Item = PathEvent> + '_ {
        self.path_events.drain(..)
    }

    /// The device name of the path that has (or last had) the local address `ip`.
    pub fn path_name(&self, ip: IpAddr) -> Option<&str> {
        self.names.get(&ip).map(String::as_str)
    }

    /// True while the path on device `tun` is up (its address is the engine's).
    pub fn path_up(&self, tun: &str) -> Option<bool> {
        self.paths.iter().find(|p| p.spec.tun == tun).map(|p| p.up)
    }

    /// Reads every device's state and tells the engine of addresses that went or came back.
    fn check_links(&mut self, now: Instant) {
        for w in &self.watches {
            w.drain();
        }
        let mut i = 0;
        while i < self.paths.len() {
            let p = &self.paths[i];
            let state = match p.watch {
                Some(w) => self.watches[w].state(&p.spec.tun),
                None => LinkState::Up,
            };
            let spec = p.spec.clone();
            match (state, p.up) {
                (LinkState::Gone, up) => {
                    if up {
                        self.endpoint.remove_local_addr(now, spec.local);
                    }
                    self.flush_at(now);
                    self.paths.remove(i);
                    self.cross.clear();
                    self.note(now, PathChange::Gone, &spec);
                    continue;
                }
                (LinkState::Down, true) => {
                    self.paths[i].up = false;
                    self.endpoint.remove_local_addr(now, spec.local);
                    self.note(now, PathChange::Down, &spec);
                }
                (LinkState::Up, false) => {
                    self.paths[i].up = true;
                    // An IPv6 address goes with the link; the route of either comes back with
                    // its address.
                    let _ = netconf::readdress(&spec.tun, &spec);
                    self.endpoint
                        .add_local_addr_with(now, spec.local, spec.backup);
                    self.note(now, PathChange::Up, &spec);
                }
                _ => {}
            }
            i += 1;
        }
    }

    /// Now, in the engine's time.
    pub fn now(&self) -> Instant {
        self.clock.now()
    }

    /// The wall-clock time (since the Unix epoch) of an engine instant.
    pub fn wall(&self, t: Instant) -> Duration {
        self.clock.wall(t)
    }

    /// A descriptor every wait also watches for readability (besides the application's),
    /// reported as [`Wake::woken`]: the read end of a pipe or socket pair through which other
    /// threads wake the loop. The driver never reads it; the owner keeps it open.
    pub fn set_wake_fd(&mut self, fd: Option<RawFd>) {
        self.wake_fd = fd;
    }

    pub fn paths(&self) -> impl Iterator<Item = &PathSpec> {
        self.paths.iter().map(|p| &p.spec)
    }

    /// The path whose `local` address is `ip`.
    pub fn path_of(&self, ip: IpAddr) -> Option<&PathSpec> {
        self.paths
            .iter()
            .find(|p| p.spec.local == ip)
            .map(|p| &p.spec)
    }

    pub fn stats(&self) -> IoStats {
        let mut s = self.stats;
        for p in &self.paths {
            s.emu_lost += p.emu.stats.lost;
            s.emu_queue_drops += p.emu.stats.queue_drops;
        }
        s
    }

    /// A SIGINT or SIGTERM has arrived.
    pub fn interrupted(&self) -> bool {
        self.signals.is_some() && signal::interrupted()
    }

    /// No emulated packet is still on its way.
    pub fn emulation_idle(&self) -> bool {
        self.paths.iter().all(|p| p.emu.is_idle())
    }

    /// Sends everything the engine has to send now: onto the devices, or into the emulation.
    pub fn flush(&mut self) {
        let now = self.clock.now();
        self.flush_at(now);
    }

    fn flush_at(&mut self, now: Instant) {
        let mut out = Out {
            clock: &self.clock,
            pcap: &mut self.pcap,
            pcap_error: &mut self.pcap_error,
            stats: &mut self.stats,
            scratch: &mut self.scratch,
        };
        while let Some(t) = self.endpoint.poll_transmit(now, &mut self.tx) {
            let packet = &self.tx[..t.len.min(self.tx.len())];
            let back = if self.cross.is_empty() {
                None
            } else {
                tcp_flow(packet)
                    .and_then(|f| self.cross.get(&f))
                    .map(|&(i, _)| i)
            };
            let path = match back {
                Some(i) => self.paths.get_mut(i),
                None => self.paths.iter_mut().find(|p| p.spec.local == t.src),
            };
            let Some(path) = path else {
                out.stats.unroutable += 1;
                continue;
            };
            if !path.cut {
                out.write_offloaded(&path.tun, packet, &t);
            } else if path.emu.is_passthrough() {
                let mut scratch = std::mem::take(out.scratch);
                cut_tx(packet, &t, &mut scratch, |p| out.write(&path.tun, now, p));
                *out.scratch = scratch;
            } else {
                let pool = &mut self.pool;
                let emu = &mut path.emu;
                cut_tx(packet, &t, out.scratch, |p| {
                    emu.offer(Dir::Egress, now, p, || {
                        pool.pop().unwrap_or_else(|| Vec::with_capacity(2048))
                    });
                });
            }
        }
    }

    /// One wake-up of the loop (see the module documentation). `max_wait` bounds the sleep;
    /// `app_fd` is a descriptor of the application to watch for readability.
    pub fn wait(&mut self, max_wait: Option<Duration>, app_fd: Option<RawFd>) -> io::Result<Wake> {
        let fds: &[RawFd] = match &app_fd {
            Some(fd) => std::slice::from_ref(fd),
            None => &[],
        };
        let w = self.wait_fds(max_wait, fds)?;
        Ok(Wake {
            app_ready: w.ready & 1 != 0,
            ..w
        })
    }

    /// [`Driver::wait`] watching several application descriptors (at most 64; bit `i` of
    /// [`Wake::ready`] tells about `fds[i]`).
    pub fn wait_fds(&mut self, max_wait: Option<Duration>, fds: &[RawFd]) -> io::Result<Wake> {
        self.wait_rw(max_wait, fds, &[])
    }

    /// [`Driver::wait_fds`] that also wakes when one of `write_fds` becomes writable (bit
    /// `fds.len() + j` of [`Wake::ready`] for `write_fds[j]`; only the first 64 have bits).
    pub fn wait_rw(
        &mut self,
        max_wait: Option<Duration>,
        fds: &[RawFd],
        write_fds: &[RawFd],
    ) -> io::Result<Wake> {
        self.flush();
        let now = self.clock.now();
        let mut deadline = self.endpoint.poll_timeout();
        for p in &self.paths {
            deadline = min_opt(deadline, p.emu.next_due());
        }
        if let Some(m) = max_wait {
            deadline = min_opt(deadline, Some(now + m));
        }
        deadline = min_opt(deadline, self.next_link_poll);
        self.pollfds.clear();
        for p in &self.paths {
            self.pollfds.push(pollfd(p.tun.as_raw_fd()));
        }
        let links_first = self.pollfds.len();
        for fd in self.watches.iter().filter_map(LinkWatch::fd) {
            self.pollfds.push(pollfd(fd));
        }
        let links_end = self.pollfds.len();
        let sig_idx = self.signals.as_ref().map(|s| {
            self.pollfds.push(pollfd(s.fd()));
            self.pollfds.len() - 1
        });
        let wake_idx = self.wake_fd.map(|fd| {
            self.pollfds.push(pollfd(fd));
            self.pollfds.len() - 1
        });
        let app_first = self.pollfds.len();
        for &fd in fds {
            self.pollfds.push(pollfd(fd));
        }
        for &fd in write_fds {
            self.pollfds.push(libc::pollfd {
                fd,
                events: libc::POLLOUT,
                revents: 0,
            });
        }
        let ts = deadline.map(|d| {
            let left = d.saturating_duration_since(now);
            libc::timespec {
                tv_sec: left.as_secs().min(i32::MAX as u64) as libc::time_t,
                tv_nsec: left.subsec_nanos() as libc::c_long,
            }
        });
        let ts_ptr = ts
            .as_ref()
            .map_or(std::ptr::null(), |t| t as *const libc::timespec);
        // SAFETY: `pollfds` is a live array of `len` pollfd entries; `ts_ptr` is null or points
        // at `ts`, alive for the call; a null sigmask leaves the mask alone.
        let r = unsafe {
            libc::ppoll(
                self.pollfds.as_mut_ptr(),
                self.pollfds.len() as libc::nfds_t,
                ts_ptr,
                std::ptr::null(),
            )
        };
        if r < 0 {
            let e = io::Error::last_os_error();
            if e.kind() != io::ErrorKind::Interrupted {
                return Err(e);
            }
        }
        self.stats.wakeups += 1;
        let mut wake = Wake::default();
        if let (Some(i), Some(s)) = (sig_idx, self.signals.as_ref()) {
            if self.pollfds[i].revents != 0 {
                s.drain();
            }
            wake.interrupted = signal::interrupted();
        }
        for (i, p) in self.pollfds[app_first..].iter().enumerate().take(64) {
            if p.revents != 0 {
                wake.ready |= 1 << i;
            }
        }
        wake.app_ready = wake.ready != 0;
        if let Some(i) = wake_idx {
            wake.woken = self.pollfds[i].revents != 0;
        }
        let links_changed = self.pollfds[links_first..links_end]
            .iter()
            .any(|p| p.revents != 0);
        self.receive();
        self.release_due();
        let now = self.clock.now();
        if self.endpoint.poll_timeout().is_some_and(|t| t <= now) {
            self.endpoint.handle_timeout(now);
        }
        let poll_due = self.next_link_poll.is_some_and(|t| t <= now);
        if poll_due {
            self.next_link_poll = Some(now + LINK_POLL);
        }
        if links_changed || poll_due {
            self.check_links(now);
        }
        self.flush();
        Ok(wake)
    }

    /// Reads the waiting packets of every device into the engine (or the emulation). The
    /// engine's answers go out after every read, so ACKs keep their per-segment clocking; a
    /// super-segment the kernel handed over is one read, taken whole (one ACK for the burst,
    /// as Linux's GRO receiver does), unless the path cuts it into real packets first.
    fn receive(&mut self) {
        let now = self.clock.now();
        let mut rx = std::mem::take(&mut self.rx);
        let mut cut = std::mem::take(&mut self.cut);
        for i in 0..self.paths.len() {
            if self.pollfds.get(i).is_some_and(|p| p.revents == 0) {
                continue;
            }
            for _ in 0..RX_BATCH {
                let path = &mut self.paths[i];
                let n = match path.tun.read(&mut rx[..]) {
                    Ok(0) => break,
                    Ok(n) => n,
                    Err(_) => break, // WouldBlock, or a device gone: nothing to read.
                };
                let (hdr, packet) = if path.tun.vnet() {
                    match VnetHdr::parse(&rx[..n]) {
                        Ok(h) => (h, &rx[vnet::HDR_LEN..n]),
                        Err(_) => continue,
                    }
                } else {
                    (VnetHdr::default(), &rx[..n])
                };
                let cut_here = path.cut;
                self.stats.rx_packets += 1;
                self.stats.rx_bytes += packet.len() as u64;
                if hdr.is_gso() {
                    self.stats.rx_super += 1;
                }
                let trusted = hdr.needs_csum() || hdr.flags & vnet::F_DATA_VALID != 0;
                if !cut_here || !(hdr.is_gso() || hdr.needs_csum()) {
                    self.deliver(i, now, packet, trusted && !cut_here);
                    continue;
                }
                // Real packets with complete checksums, for the emulation and the capture.
                let gso = if hdr.is_gso() { hdr.gso_size } else { 0 };
                let mut k = 0;
                let pool = &mut self.pool;
                let cut_ok = vnet::split(packet, usize::from(gso), &mut self.scratch, |p| {
                    if k == cut.len() {
                        cut.push(pool.pop().unwrap_or_default());
                    }
                    cut[k].clear();
                    cut[k].extend_from_slice(p);
                    k += 1;
                });
                if cut_ok.is_err() {
                    // Not TCP the engine could take: let it count the packet as it is.
                    self.deliver(i, now, packet, false);
                }
                for b in &cut[..k] {
                    self.deliver(i, now, b, false);
                }
            }
        }
        self.rx = rx;
        self.cut = cut;
    }

    /// One packet read from path `i`: captured, then into the engine (its answers sent at
    /// once) or the emulation. `trusted`: the device vouches for its TCP checksum.
    fn deliver(&mut self, i: usize, now: Instant, packet: &[u8], trusted: bool) {
        self.learn_cross(i, now, packet);
        if let Some(p) = self.pcap.as_mut() {
            if let Err(e) = p.write_packet(self.clock.wall(now), packet) {
                self.pcap_error = Some(e);
                self.pcap = None;
            }
        }
        let path = &mut self.paths[i];
        if path.emu.is_passthrough() {
            if trusted {
                self.endpoint.handle_packet_trusted(now, packet);
            } else {
                self.endpoint.handle_packet(now, packet);
            }
            self.flush_at(now);
        } else {
            let pool = &mut self.pool;
            path.emu.offer(Dir::Ingress, now, packet, || {
                pool.pop().unwrap_or_else(|| Vec::with_capacity(2048))
            });
        }
    }

    /// Remembers a flow whose packet came in on path `i` although our address in it is not
    /// that path's (see [`Driver::cross`]).
    fn learn_cross(&mut self, i: usize, now: Instant, packet: &[u8]) {
        let Some((theirs, ours)) = tcp_flow(packet) else {
            return;
        };
        if self.paths[i].spec.local == ours.ip() {
            return;
        }
        let key = (ours, theirs);
        if let Some(e) = self.cross.get_mut(&key) {
            *e = (i, now);
            return;
        }
        if self.cross.len() >= CROSS_MAX {
            self.cross.retain(|_, (_, seen)| now - *seen < CROSS_IDLE);
            if self.cross.len() >= CROSS_MAX {
                return;
            }
        }
        self.cross.insert(key, (i, now));
    }

    /// Moves emulated packets that are due: ingress into the engine, egress onto the devices.
    fn release_due(&mut self) {
        let now = self.clock.now();
        for i in 0..self.paths.len() {
            while let Some(buf) = self.paths[i].emu.pop_due(Dir::Ingress, now) {
                self.endpoint.handle_packet(now, &buf);
                if self.pool.len() < POOL_MAX {
                    self.pool.push(buf);
                }
                self.flush_at(now);
            }
            let path = &mut self.paths[i];
            let mut out = Out {
                clock: &self.clock,
                pcap: &mut self.pcap,
                pcap_error: &mut self.pcap_error,
                stats: &mut self.stats,
                scratch: &mut self.scratch,
            };
            while let Some(buf) = path.emu.pop_due(Dir::Egress, now) {
                out.write(&path.tun, now, &buf);
                if self.pool.len() < POOL_MAX {
                    self.pool.push(buf);
                }
            }
        }
    }

    /// Keeps the loop running until the emulation has delivered everything in flight (so that
    /// the last ACK or FIN reaches the peer) or `limit` has passed.
    pub fn drain(&mut self, limit: Duration) -> io::Result<()> {
        let end = self.clock.now() + limit;
        self.flush();
        while !self.emulation_idle() {
            let now = self.clock.now();
            if now >= end {
                break;
            }
            self.wait(Some(end - now), None)?;
        }
        Ok(())
    }

    /// Flushes the capture file; reports the first capture error, if any.
    pub fn finish_capture(&mut self) -> io::Result<()> {
        if let Some(e) = self.pcap_error.take() {
            return Err(e);
        }
        match self.pcap.as_mut() {
            Some(p) => p.flush(),
            None => Ok(()),
        }
    }
}

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.finish_capture();
    }
}

/// Refuses a new path whose device name or local address another path has.
fn check_new<'a>(mut old: impl Iterator<Item = &'a PathSpec>, new: &PathSpec) -> io::Result<()> {
    old.try_for_each(|b| {
        if new.tun == b.tun {
            return Err(io::Error::new(
                io::ErrorKind::AlreadyExists,
                format!("a path on device {} exists already", new.tun),
            ));
        }
        if new.local == b.local {
            return Err(io::Error::new(
                io::ErrorKind::AlreadyExists,
                format!(
                    "the local address {} is the path {}'s already",
                    new.local, b.tun
                ),
            ));
        }
        Ok(())
    })
}

/// Opens and configures one path's device (its address is not yet the engine's).
fn open_path(spec: &PathSpec, pcap: bool, seed: u64, n: u64) -> io::Result<PathIo> {
    let tun = if offload_wanted() && spec.offload {
        Tun::open_offload(&spec.tun)?
    } else {
        Tun::open(&spec.tun)?
    };
    netconf::configure(tun.name(), spec)
        .map_err(|e| io::Error::new(e.kind(), format!("configuring {}: {e}", spec.tun)))?;
    let seed = seed ^ (n + 1).wrapping_mul(0x9e37_79b9_7f4a_7c15);
    Ok(PathIo {
        emu: Emulator::new(spec.emu.clone(), seed),
        spec: spec.clone(),
        cut: !tun.vnet() || !spec.emu.is_passthrough() || pcap,
        tun,
        up: true,
        watch: None,
    })
}

/// The index of the link watch of `netns` in `watches`, made when missing (None when it cannot
/// be made: the path is then taken as always up).
fn watch_for(watches: &mut Vec<LinkWatch>, netns: Option<&str>) -> Option<usize> {
    if let Some(i) = watches.iter().position(|w| w.netns() == netns) {
        return Some(i);
    }
    let w = LinkWatch::open(netns).ok()?;
    watches.push(w);
    Some(watches.len() - 1)
}

fn pollfd(fd: RawFd) -> libc::pollfd {
    libc::pollfd {
        fd,
        events: libc::POLLIN,
        revents: 0,
    }
}

fn min_opt(a: Option<Instant>, b: Option<Instant>) -> Option<Instant> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, None) => a,
        (None, b) => b,
    }
}

#[cfg(test)]
mod tests {
    use super::tcp_flow;
    use std::net::SocketAddr;

    fn sa(s: &str) -> SocketAddr {
        s.parse().unwrap()
    }

    #[test]
    fn tcp_flow_reads_addresses_and_ports_and_refuses_the_rest() {
        let mut v4 = vec![0u8; 40];
        v4[0] = 0x45;
        v4[9] = 6;
        v4[12..16].copy_from_slice(&[10, 0, 0, 2]);
        v4[16..20].copy_from_slice(&[10, 0, 0, 1]);
        v4[20..24].copy_from_slice(&[0x9c, 0x40, 0x1b, 0x58]);
        assert_eq!(
            tcp_flow(&v4),
            Some((sa("10.0.0.2:40000"), sa("10.0.0.1:7000")))
        );
        let mut v6 = vec![0u8; 60];
        v6[0] = 0x60;
        v6[6] = 6;
        v6[23] = 2;
        v6[39] = 1;
        v6[40..44].copy_from_slice(&[0x9c, 0x40, 0x1b, 0x58]);
        assert_eq!(tcp_flow(&v6), Some((sa("[::2]:40000"), sa("[::1]:7000"))));
        // UDP, truncated, empty, not IP: nothing, and no panic.
        let mut udp = v4.clone();
        udp[9] = 17;
        assert_eq!(tcp_flow(&udp), None);
        for n in 0..24 {
            assert_eq!(tcp_flow(&v4[..n]), None, "{n} bytes");
        }
        assert_eq!(tcp_flow(&v6[..43]), None);
        assert_eq!(tcp_flow(&[0x15; 64]), None);
        // A header length below 20 reads inside the header but stays in bounds.
        let mut short = v4.clone();
        short[0] = 0x41;
        assert!(tcp_flow(&short).is_some());
    }
}
