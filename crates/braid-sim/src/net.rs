//! The discrete-event network: two hosts (client and server) joined by paths. Each path has two
//! links, one per direction, and each link is a drop-tail queue in front of a serialiser of fixed
//! rate, followed by a propagation delay.
//!
//! # Link model
//!
//! A packet handed to a link at time `t` goes through, in this order:
//! 1. path down → dropped (`down_drops`);
//! 2. larger than the MTU → dropped (`mtu_drops`);
//! 3. random loss with probability `loss` → dropped (`random_losses`); a lost packet takes no
//!    queue space and no serialisation time;
//! 4. drop-tail queue: the queue holds every accepted packet not yet completely serialised (the
//!    one on the wire included); if its bytes plus this packet's exceed the limit, the packet is
//!    dropped (`queue_drops`);
//! 5. serialisation: it starts when the link is free and lasts `len × 8 / rate`;
//! 6. propagation: it arrives `delay` after its last bit left;
//! 7. reordering: with probability `reorder` it is held back for an extra time uniform in
//!    `[0, delay]` after serialisation, so packets sent after it can overtake it;
//! 8. duplication: with probability `duplicate` a copy arrives right behind it.
//!
//! A path with a middlebox ([`Strip`]) rewrites each accepted packet before step 5: its MPTCP
//! options (TCP option kind 30) become NOPs (on SYNs only, or on every packet) and the TCP
//! checksum is fixed up; see [`strip_mptcp_options`]. Packets it changed are counted as
//! `mptcp_stripped`.
//!
//! # Shared links and cross traffic
//!
//! A path whose [`PathSpec::link`] names an earlier path has no links of its own: its packets
//! cross that path's two links (queue, serialiser, delay and randomness), so two subflows can
//! share one bottleneck. Further host pairs ([`Network::add_cross_pair`]) hang off the two ends
//! of one path's links and send across them beside the main hosts: competing traffic. Packets are
//! routed by destination address ([`addr`]); each carries the host it is for.
//!
//! When a path goes down, both its links drop every packet they hold — queued ones (the queue
//! is flushed) and those propagating (the wire is cut) — and every packet offered until it comes
//! up again; all are counted as `down_drops`.
//!
//! Every random draw of a link comes from the link's own [`Rng`], seeded from the run seed and
//! the link's index, so changing one path's parameters never changes another path's randomness.
//!
//! # Events
//!
//! Events are kept in a binary heap keyed by (time, insertion sequence), so ties are resolved in
//! the order they were scheduled and a run is a pure function of its inputs. Packets that are not
//! reordered leave a link in FIFO order, so each link keeps them in its own pipe and has at most
//! one "head arrives" event in the heap; reordered packets get an event of their own.

use crate::addr;
use crate::{PathSpec, Strip};
use braid_proto::rng::Rng;
use braid_proto::Instant;
use braid_wire::checksum;
use sha2::{Digest, Sha256};
use std::cmp::Ordering;
use std::collections::{BinaryHeap, VecDeque};

/// A simulated host: the engine (through a wrapper) or a scripted test node.
pub trait Node {
    /// One IP packet arrived from the network.
    fn handle_packet(&mut self, now: Instant, packet: &[u8]);
    /// The host's wake-up time (from `poll_timeout`) has been reached.
    fn handle_timeout(&mut self, now: Instant);
    /// When the host next wants `handle_timeout`.
    fn poll_timeout(&self) -> Option<Instant>;
    /// Writes the next IP packet to send into `buf` (clearing it first); false when none.
    fn poll_transmit(&mut self, now: Instant, buf: &mut Vec<u8>) -> bool;
    /// Application hook, run after every packet or timeout of this host, before its transmits
    /// are drained.
    fn run_app(&mut self, now: Instant) {
        let _ = now;
    }
}

/// A host: one of the two main hosts, or one of a cross-traffic pair.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum HostId {
    Client,
    Server,
    /// Cross-traffic pair `pair`'s host on the client side (`server == false`) or the server
    /// side of its path.
    Cross {
        pair: usize,
        server: bool,
    },
}

impl HostId {
    fn index(self) -> usize {
        match self {
            HostId::Client => 0,
            HostId::Server => 1,
            HostId::Cross { pair, server } => 2 + 2 * pair + usize::from(server),
        }
    }
}

/// Which way a link carries packets.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Direction {
    ClientToServer,
    ServerToClient,
}

/// What happened to the packets offered to one link.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct LinkStats {
    /// Packets handed to the link by the sending host.
    pub packets_offered: u64,
    /// Packets (duplicates included) that arrived at the receiving host.
    pub packets_delivered: u64,
    pub bytes_delivered: u64,
    /// Dropped by the full drop-tail queue.
    pub queue_drops: u64,
    /// Dropped by random loss.
    pub random_losses: u64,
    /// Dropped for exceeding the MTU.
    pub mtu_drops: u64,
    /// Dropped while the path was down (offered, queued or in flight).
    pub down_drops: u64,
    /// Packets held back by the reordering model.
    pub reordered: u64,
    /// Extra copies made by the duplication model.
    pub duplicated: u64,
    /// Packets whose MPTCP options the path's middlebox removed.
    pub mptcp_stripped: u64,
    /// Delivered packets that carried TCP payload.
    pub data_packets_delivered: u64,
}

/// The counters of one link, for reports.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct LinkReport {
    /// The path that owns the link (paths crossing another path's link have none of their own).
    pub path: usize,
    pub direction: Direction,
    #[serde(flatten)]
    pub stats: LinkStats,
}

/// Salt mixed into the run seed for the per-link generators.
const LINK_SEED_SALT: u64 = 0x6c69_6e6b_5f72_6e67;

/// One direction of one path.
#[derive(Debug)]
struct Link {
    rate_bps: u64,
    delay_ns: u64,
    loss: f64,
    reorder: f64,
    duplicate: f64,
    mtu: usize,
    queue_limit: u64,
    strip: Strip,
    up: bool,
    /// When the serialiser finishes the last accepted packet (ns).
    busy_until: u64,
    /// (serialisation end, length) of accepted packets, pruned lazily: the drop-tail queue.
    queue: VecDeque<(u64, u32)>,
    queued_bytes: u64,
    /// Packets in FIFO order of arrival time (serialised or not), not reordered.
    pipe: VecDeque<InFlight>,
    /// Bumped when the path goes down: events of an older generation are dead.
    gen: u32,
    rng: Rng,
    stats: LinkStats,
}

impl Link {
    fn new(spec: &PathSpec, seed: u64, index: usize) -> Link {
        let delay_ns = u64::try_from(spec.delay.as_nanos()).unwrap_or(u64::MAX / 4);
        let mtu = spec.mtu as usize;
        let queue_limit = spec.queue_bytes.unwrap_or_else(|| {
            let bdp = u128::from(spec.rate_bps) * 2 * u128::from(delay_ns) / 8_000_000_000;
            (u64::try_from(bdp).unwrap_or(u64::MAX)).max(8 * mtu as u64)
        });
        let link_seed = seed ^ LINK_SEED_SALT.wrapping_mul(index as u64 + 1);
        Link {
            rate_bps: spec.rate_bps.max(1),
            delay_ns,
            loss: spec.loss,
            reorder: spec.reorder,
            duplicate: spec.duplicate,
            mtu,
            queue_limit,
            strip: spec.strip,
            up: true,
            busy_until: 0,
            queue: VecDeque::new(),
            queued_bytes: 0,
            pipe: VecDeque::new(),
            gen: 0,
            rng: Rng::new(link_seed),
            stats: LinkStats::default(),
        }
    }

    /// Serialisation time of `len` bytes, rounded up to the nanosecond.
    fn serialisation_ns(&self, len: usize) -> u64 {
        (len as u64 * 8_000_000_000).div_ceil(self.rate_bps)
    }
}

/// A packet on its way through a link.
#[derive(Debug)]
struct InFlight {
    arrive: u64,
    /// The host it is for.
    to: usize,
    /// [`packet_digest`] of the bytes, taken when the packet entered the link (while its bytes
    /// were still in the CPU cache).
    digest: u64,
    buf: Vec<u8>,
}

/// A scheduled event; ordered so that the heap pops the earliest (time, seq) first.
#[derive(Debug)]
struct Scheduled {
    time: u64,
    seq: u64,
    ev: Ev,
}

#[derive(Debug)]
enum Ev {
    /// A host's wake-up time.
    Timer {
        host: usize,
    },
    /// The head of a link's pipe arrives.
    LinkHead {
        link: usize,
        gen: u32,
    },
    /// A reordered packet (or its duplicate) arrives.
    Deliver {
        link: usize,
        gen: u32,
        packet: InFlight,
    },
    PathDown {
        path: usize,
    },
    PathUp {
        path: usize,
    },
}

impl PartialEq for Scheduled {
    fn eq(&self, other: &Self) -> bool {
        (self.time, self.seq) == (other.time, other.seq)
    }
}
impl Eq for Scheduled {}
impl PartialOrd for Scheduled {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Scheduled {
    fn cmp(&self, other: &Self) -> Ordering {
        // Reversed: BinaryHeap is a max-heap.
        (other.time, other.seq).cmp(&(self.time, self.seq))
    }
}

#[derive(Debug)]
struct HostSlot<N> {
    node: N,
    /// Earliest pending timer event in the heap for this host (later ones may also be pending;
    /// a timer event only checks `poll_timeout`, so extra ones are harmless).
    wake: Option<u64>,
}

/// Packet buffers kept for reuse, so steady state allocates nothing per packet.
const POOL_LIMIT: usize = 1 << 16;

/// Sees every packet a host hands to the network (before any loss, like a capture on the
/// sending host): the time, the link (`2 × path + direction`, 0 = client to server) and the
/// packet.
pub struct Tap(pub Box<TapFn>);

/// What a [`Tap`] calls: (time, link, packet).
pub type TapFn = dyn FnMut(Instant, usize, &[u8]);

impl std::fmt::Debug for Tap {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Tap")
    }
}

/// The simulated network with its two hosts.
#[derive(Debug)]
pub struct Network<N: Node> {
    tap: Option<Tap>,
    now: u64,
    seq: u64,
    heap: BinaryHeap<Scheduled>,
    /// The client, the server, then the cross-traffic pairs (client side, server side).
    hosts: Vec<HostSlot<N>>,
    /// Two links (client to server, then back) per path that has links of its own.
    links: Vec<Link>,
    /// Per path: the index of its link pair (`links[2 × pair + direction]`).
    pair_of_path: Vec<usize>,
    /// The path whose link pair each link pair is.
    path_of_pair: Vec<usize>,
    /// Per cross-traffic pair: its link pair.
    cross_pairs: Vec<usize>,
    pool: Vec<Vec<u8>>,
    unroutable: u64,
    trace: Sha256,
    events: u64,
}

impl<N: Node> Network<N> {
    /// A network of `paths` between `client` and `server`; both hosts get a wake-up at time 0.
    /// A path whose `link` names another path crosses that path's links (its own shape is
    /// ignored); `link` must name an earlier path.
    pub fn new(paths: &[PathSpec], seed: u64, client: N, server: N) -> Self {
        assert!(paths.len() <= addr::MAX_PATHS, "too many paths");
        let mut links = Vec::with_capacity(paths.len() * 2);
        let mut pair_of_path = Vec::with_capacity(paths.len());
        let mut path_of_pair = Vec::new();
        for (i, spec) in paths.iter().enumerate() {
            if let Some(k) = spec.link {
                assert!(
                    k < i,
                    "path {i} crosses the link of path {k}, not an earlier path"
                );
                pair_of_path.push(pair_of_path[k]);
                continue;
            }
            pair_of_path.push(path_of_pair.len());
            path_of_pair.push(i);
            // Seeded by the path's index, so adding a sharing path changes no other link.
            links.push(Link::new(spec, seed, 2 * i));
            links.push(Link::new(spec, seed, 2 * i + 1));
        }
        let mut net = Network {
            tap: None,
            now: 0,
            seq: 0,
            heap: BinaryHeap::new(),
            hosts: vec![
                HostSlot {
                    node: client,
                    wake: Some(0),
                },
                HostSlot {
                    node: server,
                    wake: Some(0),
                },
            ],
            links,
            pair_of_path,
            path_of_pair,
            cross_pairs: Vec::new(),
            pool: Vec::new(),
            unroutable: 0,
            trace: Sha256::new(),
            events: 0,
        };
        net.push(0, Ev::Timer { host: 0 });
        net.push(0, Ev::Timer { host: 1 });
        for (i, spec) in paths.iter().enumerate().filter(|(_, p)| p.link.is_none()) {
            if let Some(down) = spec.down_at {
                let outages =
                    std::iter::once((down, spec.up_at)).chain(spec.later_outages.iter().copied());
                for (down, up) in outages {
                    net.push(nanos(down), Ev::PathDown { path: i });
                    if let Some(up) = up.filter(|&up| up > down) {
                        net.push(nanos(up), Ev::PathUp { path: i });
                    }
                }
            }
        }
        net
    }

    /// Adds a pair of hosts at the two ends of `path`'s links (the client side host gets
    /// [`addr::cross_client_addr`], the other [`addr::cross_server_addr`]): their packets to
    /// each other cross that path's links beside the main hosts'. Both get a wake-up now.
    /// Returns the pair's number.
    pub fn add_cross_pair(&mut self, path: usize, client: N, server: N) -> usize {
        let pair = self.cross_pairs.len();
        assert!(pair < addr::MAX_CROSS_PAIRS, "too many cross-traffic pairs");
        self.cross_pairs.push(self.pair_of_path[path]);
        for node in [client, server] {
            let host = self.hosts.len();
            self.hosts.push(HostSlot {
                node,
                wake: Some(self.now),
            });
            self.push(self.now, Ev::Timer { host });
        }
        pair
    }

    /// Shows every packet sent from now on to `tap`.
    pub fn set_tap(&mut self, tap: Tap) {
        self.tap = Some(tap);
    }

    /// The time of the last event processed.
    pub fn now(&self) -> Instant {
        Instant::from_nanos(self.now)
    }

    /// The time of the next event, if any is left.
    pub fn next_event_time(&self) -> Option<Instant> {
        self.heap.peek().map(|s| Instant::from_nanos(s.time))
    }

    /// Events processed so far.
    pub fn events_processed(&self) -> u64 {
        self.events
    }

    pub fn host(&self, host: HostId) -> &N {
        &self.hosts[host.index()].node
    }

    /// The host, if the network has it (cross-traffic hosts exist once added).
    pub fn try_host(&self, host: HostId) -> Option<&N> {
        self.hosts.get(host.index()).map(|h| &h.node)
    }

    pub fn host_mut(&mut self, host: HostId) -> &mut N {
        &mut self.hosts[host.index()].node
    }

    /// Runs a host's application hook, drains its transmits and reschedules its timer at the
    /// current time: call after changing a node from outside.
    pub fn wake(&mut self, host: HostId) {
        self.activity(host.index());
    }

    /// Processes the next event; false when nothing is left to happen.
    pub fn step(&mut self) -> bool {
        let Some(Scheduled { time, ev, .. }) = self.heap.pop() else {
            return false;
        };
        debug_assert!(time >= self.now);
        self.now = time;
        self.events += 1;
        match ev {
            Ev::Timer { host } => {
                let slot = &mut self.hosts[host];
                if slot.wake.is_some_and(|w| w <= time) {
                    slot.wake = None;
                }
                if slot
                    .node
                    .poll_timeout()
                    .is_some_and(|t| t.as_nanos() <= time)
                {
                    slot.node.handle_timeout(Instant::from_nanos(time));
                }
                self.activity(host);
            }
            Ev::LinkHead { link, gen } => {
                let l = &mut self.links[link];
                if gen != l.gen || l.pipe.front().is_none_or(|p| p.arrive > time) {
                    return true;
                }
                let packet = l.pipe.pop_front().expect("checked non-empty");
                if let Some(next) = l.pipe.front() {
                    let next = next.arrive;
                    self.push(next, Ev::LinkHead { link, gen });
                }
                self.deliver(link, packet);
            }
            Ev::Deliver { link, gen, packet } => {
                if gen != self.links[link].gen {
                    self.links[link].stats.down_drops += 1;
                    self.recycle(packet.buf);
                } else {
                    self.deliver(link, packet);
                }
            }
            Ev::PathDown { path } => {
                let pair = self.pair_of_path[path];
                for link in [2 * pair, 2 * pair + 1] {
                    let l = &mut self.links[link];
                    l.up = false;
                    l.gen = l.gen.wrapping_add(1);
                    l.queue.clear();
                    l.queued_bytes = 0;
                    l.busy_until = time;
                    l.stats.down_drops += l.pipe.len() as u64;
                    while let Some(p) = l.pipe.pop_front() {
                        if self.pool.len() < POOL_LIMIT {
                            self.pool.push(p.buf);
                        }
                    }
                }
            }
            Ev::PathUp { path } => {
                let pair = self.pair_of_path[path];
                self.links[2 * pair].up = true;
                self.links[2 * pair + 1].up = true;
            }
        }
        true
    }

    /// Processes every event up to and including time `until`.
    pub fn run_until(&mut self, until: Instant) {
        while self.heap.peek().is_some_and(|s| s.time <= until.as_nanos()) {
            self.step();
        }
    }

    /// Per-link counters, in path order, client-to-server first (paths that cross another
    /// path's links have none of their own).
    pub fn link_reports(&self) -> Vec<LinkReport> {
        self.links
            .iter()
            .enumerate()
            .map(|(i, l)| LinkReport {
                path: self.path_of_pair[i / 2],
                direction: if i % 2 == 0 {
                    Direction::ClientToServer
                } else {
                    Direction::ServerToClient
                },
                stats: l.stats.clone(),
            })
            .collect()
    }

    /// Packets dropped because their destination is on no path.
    pub fn unroutable_packets(&self) -> u64 {
        self.unroutable
    }

    /// Hex SHA-256 over every delivery so far: (time, link, length, 64-bit digest of the bytes).
    pub fn trace_sha256(&self) -> String {
        let digest = self.trace.clone().finalize();
        digest.iter().map(|b| format!("{b:02x}")).collect()
    }

    fn push(&mut self, time: u64, ev: Ev) {
        self.seq += 1;
        self.heap.push(Scheduled {
            time,
            seq: self.seq,
            ev,
        });
    }

    fn recycle(&mut self, buf: Vec<u8>) {
        if self.pool.len() < POOL_LIMIT {
            self.pool.push(buf);
        }
    }

    fn take_buf(&mut self) -> Vec<u8> {
        self.pool.pop().unwrap_or_else(|| Vec::with_capacity(2048))
    }

    /// A packet reached the far end of `link`.
    fn deliver(&mut self, link: usize, packet: InFlight) {
        let InFlight {
            digest, buf, to, ..
        } = packet;
        let l = &mut self.links[link];
        l.stats.packets_delivered += 1;
        l.stats.bytes_delivered += buf.len() as u64;
        if tcp_payload_len(&buf) > 0 {
            l.stats.data_packets_delivered += 1;
        }
        let mut rec = [0u8; 24];
        rec[..8].copy_from_slice(&self.now.to_le_bytes());
        rec[8..12].copy_from_slice(&(link as u32).to_le_bytes());
        rec[12..16].copy_from_slice(&(buf.len() as u32).to_le_bytes());
        rec[16..].copy_from_slice(&digest.to_le_bytes());
        self.trace.update(rec);
        let host = to;
        self.hosts[host]
            .node
            .handle_packet(Instant::from_nanos(self.now), &buf);
        self.recycle(buf);
        self.activity(host);
    }

    /// After a host did something: its application runs, its packets go out, its timer is set.
    fn activity(&mut self, host: usize) {
        let now = Instant::from_nanos(self.now);
        self.hosts[host].node.run_app(now);
        loop {
            let mut buf = self.take_buf();
            if !self.hosts[host].node.poll_transmit(now, &mut buf) {
                self.recycle(buf);
                break;
            }
            self.send(host, buf);
        }
        let slot = &mut self.hosts[host];
        if let Some(t) = slot.node.poll_timeout() {
            let t = t.as_nanos().max(self.now);
            if slot.wake.is_none_or(|w| t < w) {
                slot.wake = Some(t);
                self.push(t, Ev::Timer { host });
            }
        }
    }

    /// The link a packet from `host` takes and the host it is for, by its destination address:
    /// the main hosts reach each other on every path, a cross-traffic host only its partner.
    fn route(&self, host: usize, buf: &[u8]) -> Option<(usize, usize)> {
        let side = host % 2; // 0: client side (sends client to server), 1: server side
        if host < 2 {
            let path = addr::route(buf).filter(|&p| p < self.pair_of_path.len())?;
            Some((2 * self.pair_of_path[path] + side, 1 - host))
        } else {
            let pair = (host - 2) / 2;
            (addr::cross_route(buf)? == pair)
                .then(|| (2 * self.cross_pairs[pair] + side, host - side + (1 - side)))
        }
    }

    /// A host hands a packet to the network.
    fn send(&mut self, host: usize, mut buf: Vec<u8>) {
        let Some((link, to)) = self.route(host, &buf) else {
            self.unroutable += 1;
            self.recycle(buf);
            return;
        };
        let now = self.now;
        if let Some(t) = self.tap.as_mut() {
            (t.0)(Instant::from_nanos(now), link, &buf);
        }
        let l = &mut self.links[link];
        l.stats.packets_offered += 1;
        if !l.up {
            l.stats.down_drops += 1;
            return self.recycle(buf);
        }
        if buf.len() > l.mtu {
            l.stats.mtu_drops += 1;
            return self.recycle(buf);
        }
        if l.rng.chance(l.loss) {
            l.stats.random_losses += 1;
            return self.recycle(buf);
        }
        while l.queue.front().is_some_and(|&(done, _)| done <= now) {
            let (_, len) = l.queue.pop_front().expect("checked non-empty");
            l.queued_bytes -= u64::from(len);
        }
        let len = buf.len() as u64;
        if l.queued_bytes + len > l.queue_limit {
            l.stats.queue_drops += 1;
            return self.recycle(buf);
        }
        let done = l.busy_until.max(now) + l.serialisation_ns(buf.len());
        l.busy_until = done;
        l.queue.push_back((done, buf.len() as u32));
        l.queued_bytes += len;
        let mut arrive = done + l.delay_ns;
        let reordered = l.rng.chance(l.reorder);
        if reordered {
            l.stats.reordered += 1;
            arrive += l.rng.below(l.delay_ns + 1);
        }
        let duplicated = l.rng.chance(l.duplicate);
        let gen = l.gen;
        if l.strip != Strip::None && strip_mptcp_options(&mut buf, l.strip == Strip::Syn) {
            l.stats.mptcp_stripped += 1;
        }
        let digest = packet_digest(&buf);
        let copy = if duplicated {
            l.stats.duplicated += 1;
            let mut c = self.pool.pop().unwrap_or_default();
            c.clear();
            c.extend_from_slice(&buf);
            Some(InFlight {
                arrive,
                to,
                digest,
                buf: c,
            })
        } else {
            None
        };
        let packet = InFlight {
            arrive,
            to,
            digest,
            buf,
        };
        let l = &mut self.links[link];
        if reordered {
            self.push(arrive, Ev::Deliver { link, gen, packet });
            if let Some(c) = copy {
                self.push(
                    arrive,
                    Ev::Deliver {
                        link,
                        gen,
                        packet: c,
                    },
                );
            }
        } else {
            let was_empty = l.pipe.is_empty();
            l.pipe.push_back(packet);
            if let Some(c) = copy {
                l.pipe.push_back(c);
            }
            if was_empty {
                self.push(arrive, Ev::LinkHead { link, gen });
            }
        }
    }
}

/// TCP payload bytes of an IP packet (0 when it is not a well-formed TCP packet).
fn tcp_payload_len(p: &[u8]) -> usize {
    let (ip_hdr, total) = match p.first().map(|b| b >> 4) {
        Some(4) if p.len() >= 20 => (
            usize::from(p[0] & 15) * 4,
            usize::from(u16::from_be_bytes([p[2], p[3]])),
        ),
        Some(6) if p.len() >= 40 => (40, 40 + usize::from(u16::from_be_bytes([p[4], p[5]]))),
        _ => return 0,
    };
    let Some(&doff) = p.get(ip_hdr + 12) else {
        return 0;
    };
    total.saturating_sub(ip_hdr + usize::from(doff >> 4) * 4)
}

/// The middlebox of [`Strip`]: overwrites every MPTCP option (TCP option kind 30) of an IPv4 or
/// IPv6 TCP packet with NOPs, in place, and fixes the TCP checksum incrementally (RFC 1624 eqn.
/// 3), so a packet whose checksum was wrong stays wrong. With `syn_only`, packets without SYN
/// pass untouched. Returns true when the packet was changed. Anything that is not a well-formed
/// TCP header (other protocols, fragments, bad lengths) passes untouched; the option walk stops
/// at an end-of-list or malformed option (RFC 9293 §3.1), as the receiver's parser would.
pub fn strip_mptcp_options(packet: &mut [u8], syn_only: bool) -> bool {
    let Some((start, end)) = tcp_segment(packet) else {
        return false;
    };
    let seg = &mut packet[start..end];
    if seg.len() < 20 {
        return false;
    }
    let hl = usize::from(seg[12] >> 4) * 4;
    if hl < 20 || hl > seg.len() || (syn_only && seg[13] & 0x02 == 0) {
        return false;
    }
    let old_sum = checksum::ones_complement_sum(&seg[20..hl]);
    let mut changed = false;
    let mut i = 20;
    while i < hl {
        match seg[i] {
            0 => break,
            1 => i += 1,
            kind => {
                let Some(&len) = seg.get(i + 1).filter(|&&l| l >= 2) else {
                    break;
                };
                let len = usize::from(len);
                if i + len > hl {
                    break;
                }
                if kind == 30 {
                    seg[i..i + len].fill(1);
                    changed = true;
                }
                i += len;
            }
        }
    }
    if changed {
        // The option area starts at an even offset and has an even length, so its 16-bit words
        // are words of the checksum: HC' = ~(~HC + ~m + m').
        let new_sum = checksum::ones_complement_sum(&seg[20..hl]);
        let hc = u16::from_be_bytes([seg[16], seg[17]]);
        let sum = checksum::combine(
            checksum::combine(u32::from(!hc), u32::from(!(old_sum as u16))),
            new_sum,
        );
        seg[16..18].copy_from_slice(&checksum::finish(sum).to_be_bytes());
    }
    changed
}

/// The byte range of the TCP segment inside an unfragmented IPv4 or IPv6 packet (no extension
/// headers), if the packet is one.
fn tcp_segment(packet: &[u8]) -> Option<(usize, usize)> {
    match packet.first()? >> 4 {
        4 => {
            let ihl = usize::from(packet[0] & 0x0f) * 4;
            let total = usize::from(u16::from_be_bytes([*packet.get(2)?, *packet.get(3)?]));
            let frag = u16::from_be_bytes([*packet.get(6)?, *packet.get(7)?]);
            // Protocol TCP, no fragment offset, no more-fragments flag.
            (ihl >= 20 && total >= ihl && total <= packet.len())
                .then_some(())
                .filter(|()| packet[9] == 6 && frag & 0x3fff == 0)
                .map(|()| (ihl, total))
        }
        6 => {
            let payload = usize::from(u16::from_be_bytes([*packet.get(4)?, *packet.get(5)?]));
            (packet.len() >= 40 + payload && packet[6] == 6).then_some((40, 40 + payload))
        }
        _ => None,
    }
}

fn nanos(d: std::time::Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}

/// A fast 64-bit digest of a packet for the trace hash: every 16-byte block, keyed by its
/// position, goes through one 64×64→128-bit multiply whose halves are folded and summed (the
/// multiplies are independent, so they overlap in the CPU). Not cryptographic, only meant to
/// tell different packets apart.
fn packet_digest(bytes: &[u8]) -> u64 {
    const K0: u64 = 0x243f_6a88_85a3_08d3;
    const K1: u64 = 0x1319_8a2e_0370_7344;
    const STEP: u64 = 0x9e37_79b9_7f4a_7c15;
    fn fold(a: u64, b: u64) -> u64 {
        let p = u128::from(a) * u128::from(b);
        (p as u64) ^ ((p >> 64) as u64)
    }
    let word = |b: &[u8]| u64::from_le_bytes(b.try_into().expect("8 bytes"));
    let mut acc = (bytes.len() as u64).wrapping_mul(STEP);
    let mut key = K0;
    let mut blocks = bytes.chunks_exact(16);
    for b in &mut blocks {
        acc = acc.wrapping_add(fold(
            word(&b[..8]) ^ key,
            word(&b[8..]) ^ K1 ^ key.rotate_left(32),
        ));
        key = key.wrapping_add(STEP);
    }
    let mut tail = [0u8; 16];
    let rest = blocks.remainder();
    tail[..rest.len()].copy_from_slice(rest);
    acc = acc.wrapping_add(fold(
        word(&tail[..8]) ^ key,
        word(&tail[8..]) ^ K1 ^ key.rotate_left(32),
    ));
    fold(acc ^ K1, STEP)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_pop_in_time_then_insertion_order() {
        let mut heap = BinaryHeap::new();
        for (seq, time) in [(1, 5), (2, 3), (3, 5), (4, 3), (5, 0)] {
            heap.push(Scheduled {
                time,
                seq,
                ev: Ev::PathUp { path: 0 },
            });
        }
        let order: Vec<(u64, u64)> = std::iter::from_fn(|| heap.pop())
            .map(|s| (s.time, s.seq))
            .collect();
        assert_eq!(order, [(0, 5), (3, 2), (3, 4), (5, 1), (5, 3)]);
    }

    #[test]
    fn digest_tells_single_byte_changes_apart() {
        let base: Vec<u8> = (0..1500u32).map(|i| (i * 7) as u8).collect();
        let d0 = packet_digest(&base);
        for pos in [0, 1, 31, 32, 1000, 1499] {
            let mut p = base.clone();
            p[pos] ^= 1;
            assert_ne!(packet_digest(&p), d0, "change at {pos}");
        }
        assert_ne!(packet_digest(&base[..1499]), d0);
        assert_ne!(packet_digest(&[0]), packet_digest(&[0, 0]));
    }

    #[test]
    fn default_queue_is_one_bdp_but_at_least_eight_packets() {
        let spec = PathSpec::new(100_000_000, std::time::Duration::from_millis(10));
        // 100 Mbit/s × 20 ms = 250 000 bytes.
        assert_eq!(Link::new(&spec, 1, 0).queue_limit, 250_000);
        let tiny = PathSpec::new(1_000_000, std::time::Duration::from_micros(100));
        assert_eq!(Link::new(&tiny, 1, 0).queue_limit, 8 * 1500);
    }

    /// A scripted host: sends the packets queued in `outbox` at its first wake-up and keeps
    /// whatever arrives.
    #[derive(Debug, Default)]
    struct FakeNode {
        outbox: VecDeque<Vec<u8>>,
        inbox: Vec<Vec<u8>>,
    }

    impl Node for FakeNode {
        fn handle_packet(&mut self, _now: Instant, packet: &[u8]) {
            self.inbox.push(packet.to_vec());
        }
        fn handle_timeout(&mut self, _now: Instant) {}
        fn poll_timeout(&self) -> Option<Instant> {
            None
        }
        fn poll_transmit(&mut self, _now: Instant, buf: &mut Vec<u8>) -> bool {
            let Some(p) = self.outbox.pop_front() else {
                return false;
            };
            buf.clear();
            buf.extend_from_slice(&p);
            true
        }
    }

    const PAYLOAD: &[u8] = b"payload bytes that must arrive unchanged";
    /// MP_CAPABLE v1 as in a SYN (RFC 8684 §3.1): subtype 0, version 1, flags A|H.
    const MPC_SYN: &[u8] = &[0x01, 0x81];
    /// A DSS with an 8-byte DATA_ACK (RFC 8684 §3.3).
    const DSS_ACK: &[u8] = &[0x20, 0x05, 0, 0, 0, 0, 0, 0, 0, 42];

    /// A checksummed IPv4 TCP packet on path 0 with MSS, timestamps and the given MPTCP
    /// options and flags.
    fn crafted(from_client: bool, flags: u8, mptcp: &[&'static [u8]], payload: &[u8]) -> Vec<u8> {
        use braid_wire::{IpRepr, Ipv4Repr, TcpFlags, TcpRepr, Timestamps};
        let (src, dst) = (addr::client_addr(0), addr::server_addr(0));
        let (src, dst) = if from_client { (src, dst) } else { (dst, src) };
        let (std::net::IpAddr::V4(src), std::net::IpAddr::V4(dst)) = (src, dst) else {
            unreachable!("IPv4 paths")
        };
        let ip = IpRepr::V4(Ipv4Repr {
            src,
            dst,
            protocol: braid_wire::IPPROTO_TCP,
            payload_len: 0,
            ttl: 64,
            tos: 0,
            ident: 7,
            dont_fragment: true,
        });
        let mut tcp = TcpRepr {
            src_port: 40000,
            dst_port: 5201,
            seq: 1000,
            ack: 2000,
            flags: TcpFlags(flags),
            window: 65535,
            payload,
            ..TcpRepr::default()
        };
        tcp.options.mss = Some(1460);
        tcp.options.timestamps = Some(Timestamps {
            tsval: 11,
            tsecr: 22,
        });
        for body in mptcp {
            assert!(tcp.options.mptcp.push(30, body));
        }
        let mut buf = Vec::new();
        braid_wire::emit_ip_tcp(&ip, &tcp, &mut buf);
        buf
    }

    /// Sends `packets` from the client over one path with `strip` and returns what the server
    /// received and the client-to-server link's stripped count.
    fn through(strip: Strip, packets: &[Vec<u8>]) -> (Vec<Vec<u8>>, u64) {
        let mut spec = PathSpec::new(10_000_000, std::time::Duration::from_millis(1));
        spec.strip = strip;
        let client = FakeNode {
            outbox: packets.iter().cloned().collect(),
            ..FakeNode::default()
        };
        let mut net = Network::new(&[spec], 1, client, FakeNode::default());
        while net.step() {}
        let stripped = net.link_reports()[0].stats.mptcp_stripped;
        (net.host(HostId::Server).inbox.clone(), stripped)
    }

    /// Parses with the real codec (which verifies both checksums) and returns (SYN set, MPTCP
    /// options, payload, packet length).
    fn inspect(p: &[u8]) -> (bool, usize, Vec<u8>, usize) {
        let (_, tcp) = braid_wire::parse_ip_tcp(p).expect("valid packet, checksums included");
        assert_eq!(tcp.options.mss, Some(1460), "other options survive");
        assert!(tcp.options.timestamps.is_some(), "other options survive");
        (
            tcp.flags.syn(),
            tcp.options.mptcp.len(),
            tcp.payload.to_vec(),
            p.len(),
        )
    }

    const SYN: u8 = 0x02;
    const SYN_ACK: u8 = 0x12;
    const ACK: u8 = 0x10;

    fn sample() -> Vec<Vec<u8>> {
        vec![
            crafted(true, SYN, &[MPC_SYN], b""),
            crafted(true, SYN_ACK, &[MPC_SYN], b""),
            crafted(true, ACK, &[DSS_ACK], PAYLOAD),
            crafted(true, ACK, &[DSS_ACK, MPC_SYN], PAYLOAD),
            crafted(true, ACK, &[], PAYLOAD),
        ]
    }

    #[test]
    fn no_middlebox_leaves_mptcp_options_alone() {
        let sent = sample();
        let (got, stripped) = through(Strip::None, &sent);
        assert_eq!(got, sent);
        assert_eq!(stripped, 0);
    }

    #[test]
    fn strip_syn_removes_options_from_syns_only() {
        let sent = sample();
        let (got, stripped) = through(Strip::Syn, &sent);
        assert_eq!(got.len(), sent.len());
        assert_eq!(stripped, 2);
        let seen: Vec<_> = got.iter().map(|p| inspect(p)).collect();
        let want_mptcp = [0, 0, 1, 2, 0];
        for (i, (syn, mptcp, payload, len)) in seen.into_iter().enumerate() {
            assert_eq!(syn, i < 2, "packet {i}");
            assert_eq!(mptcp, want_mptcp[i], "packet {i}");
            assert_eq!(len, sent[i].len(), "NOPs keep the size");
            let want: &[u8] = if i < 2 { b"" } else { PAYLOAD };
            assert_eq!(payload, want, "packet {i}");
        }
        // Untouched packets are byte for byte the same.
        assert_eq!(got[2..], sent[2..]);
    }

    #[test]
    fn strip_all_removes_options_from_every_packet() {
        let sent = sample();
        let (got, stripped) = through(Strip::All, &sent);
        assert_eq!(
            stripped, 4,
            "the packet without MPTCP options is not counted"
        );
        for (i, p) in got.iter().enumerate() {
            let (_, mptcp, payload, len) = inspect(p);
            assert_eq!(mptcp, 0, "packet {i}");
            assert_eq!(len, sent[i].len());
            let want: &[u8] = if i < 2 { b"" } else { PAYLOAD };
            assert_eq!(payload, want);
        }
        assert_eq!(got[4], sent[4]);
    }

    #[test]
    fn strip_works_on_the_return_direction_too() {
        let mut spec = PathSpec::new(10_000_000, std::time::Duration::from_millis(1));
        spec.strip = Strip::All;
        let server = FakeNode {
            outbox: [crafted(false, SYN_ACK, &[MPC_SYN], b"")].into(),
            ..FakeNode::default()
        };
        let mut net = Network::new(&[spec], 1, FakeNode::default(), server);
        while net.step() {}
        let got = &net.host(HostId::Client).inbox;
        assert_eq!(got.len(), 1);
        assert_eq!(inspect(&got[0]).1, 0);
        assert_eq!(net.link_reports()[1].stats.mptcp_stripped, 1);
    }

    #[test]
    fn strip_keeps_a_bad_checksum_bad_and_ignores_garbage() {
        let mut p = crafted(true, SYN, &[MPC_SYN], b"");
        p[20 + 14] ^= 0x40; // corrupt the window field
        assert!(braid_wire::parse_ip_tcp(&p).is_err());
        assert!(strip_mptcp_options(&mut p, false));
        assert!(
            braid_wire::parse_ip_tcp(&p).is_err(),
            "an incremental update must not repair a corrupt packet"
        );
        for len in 0..60 {
            let mut g: Vec<u8> = (0..len as u8).map(|b| b.wrapping_mul(37) | 0x40).collect();
            let _ = strip_mptcp_options(&mut g, false);
        }
        // A truncated option list (length running past the header) is left as it is.
        let mut q = crafted(true, SYN, &[MPC_SYN], b"");
        q[20 + 20 + 1] = 200;
        let before = q.clone();
        assert!(!strip_mptcp_options(&mut q, false));
        assert_eq!(q, before);
    }

    #[test]
    fn serialisation_time_rounds_up() {
        let spec = PathSpec::new(100_000_000, std::time::Duration::ZERO);
        let l = Link::new(&spec, 1, 0);
        assert_eq!(l.serialisation_ns(1000), 80_000);
        let odd = Link::new(&PathSpec::new(3_000_000, std::time::Duration::ZERO), 1, 0);
        assert_eq!(odd.serialisation_ns(1), 2667);
    }
}
