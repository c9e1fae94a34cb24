//! The bulk-transfer scenario: the client writes `bytes` pseudo-random bytes to the server over
//! the simulated paths; the server reads them all and we check they arrived intact.
//!
//! Speed matters (a run may move gigabytes), so nothing is stored or hashed by default: the
//! receiving application regenerates the sender's stream from the seed as the bytes arrive and
//! compares them in place, byte for byte (an exact comparison proves at least what equal digests
//! would, and costs a fraction of a hash). SHA-256 of the received bytes only on request
//! ([`SimConfig::sha256`]).

use crate::addr;
use crate::cross::{CrossClient, CrossServer, CROSS_PORT};
use crate::net::{HostId, Network, Node, Tap};
use crate::series::{self, Sample, SampleEvent, SAMPLE_INTERVAL};
use crate::stream::{StreamCheck, StreamGen};
use crate::{
    CompetingReport, ConnMemory, EventReport, HostCounters, MemoryReport, Mode, Progress, Report,
    ReturnReport, SimConfig, SimError, SubflowReport,
};
use braid_proto::endpoint::CloseReason;
use braid_proto::rng::Rng;
use braid_proto::{ConnHandle, Endpoint, Error, Event, Instant, MpEvent, SubClose};
use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

/// The port the server listens on (iperf3's).
pub const SERVER_PORT: u16 = 5201;

/// Bytes the receiving application reads at most per `recv`.
const READ_BUF: usize = 64 * 1024;
/// IPv4 header + TCP header without options.
const IPV4_TCP_HEADERS: u32 = 40;
/// Smallest MTU accepted (IPv4's minimum, RFC 791).
const MIN_MTU: u32 = 68;
/// Most competing flows: each keeps its send buffer (the engine's default, 4 MiB) full, so the
/// limit bounds the memory a run can take.
pub const MAX_COMPETING: usize = 64;
/// Events at one instant after which the run is declared stuck.
const LIVELOCK_EVENTS: u64 = 10_000_000;

#[allow(clippy::disallowed_methods)] // the simulator reports its own speed; the engine never sees wall time
fn wall_now() -> std::time::Instant {
    std::time::Instant::now()
}

/// Runs the bulk transfer described by `cfg`. `progress` is called about once per wall-clock
/// second. Errors only for configurations that cannot be run; a transfer that fails or times
/// out is a report with `completed == false`.
pub fn run(
    cfg: &SimConfig,
    progress: Option<&mut dyn FnMut(&Progress)>,
) -> Result<Report, SimError> {
    run_with_tap(cfg, progress, None)
}

/// [`run`], showing every packet sent to `tap` (e.g. to write a capture file).
pub fn run_with_tap(
    cfg: &SimConfig,
    progress: Option<&mut dyn FnMut(&Progress)>,
    tap: Option<Tap>,
) -> Result<Report, SimError> {
    run_with(
        cfg,
        Hooks {
            progress,
            tap,
            sample: None,
        },
    )
}

/// What a caller of [`run_with`] may watch.
#[derive(Default)]
pub struct Hooks<'a> {
    /// Called about once per wall-clock second.
    pub progress: Option<&'a mut dyn FnMut(&Progress)>,
    /// Sees every packet sent.
    pub tap: Option<Tap>,
    /// Gets the time series: a sample every [`SAMPLE_INTERVAL`] of simulated time and at each
    /// event (see [`crate::series`]).
    pub sample: Option<&'a mut dyn FnMut(&Sample)>,
}

/// [`run`] with every hook.
pub fn run_with(cfg: &SimConfig, hooks: Hooks<'_>) -> Result<Report, SimError> {
    let Hooks {
        mut progress,
        tap,
        mut sample,
    } = hooks;
    validate(cfg)?;
    let wall_start = wall_now();
    let min_mtu = cfg.paths.iter().map(|p| p.mtu).min().unwrap_or(1500);
    let mss = u32::from(cfg.endpoint.tcp.mss).min(min_mtu - IPV4_TCP_HEADERS);
    let mut ep_cfg = cfg.endpoint.clone();
    ep_cfg.tcp.mss = u16::try_from(mss).unwrap_or(u16::MAX);
    ep_cfg.tcp.cc = cfg.cc.clone();
    // Plain TCP in tcp mode (exactly the engine without MPTCP); MPTCP offered/accepted otherwise.
    ep_cfg.mptcp.enabled = cfg.mode == Mode::Mptcp;
    Endpoint::validate_config(&ep_cfg).map_err(|e| match e {
        Error::InvalidConfig(s) => SimError::InvalidConfig(s),
        other => SimError::InvalidConfig(other.to_string()),
    })?;

    let mut client = Endpoint::new(ep_cfg.clone(), derive_seed(cfg.seed, 1));
    let mut server = Endpoint::new(ep_cfg, derive_seed(cfg.seed, 2));
    // Every path's address on each host: in mptcp mode the client's path manager joins from
    // each of its addresses (the connection itself starts on path 0).
    for (i, p) in cfg.paths.iter().enumerate() {
        client.add_local_addr_with(Instant::ZERO, addr::client_addr(i), p.backup);
        server.add_local_addr(addr::server_addr(i));
    }
    server
        .listen(SERVER_PORT)
        .map_err(|e| SimError::Engine(format!("listen on port {SERVER_PORT}: {e}")))?;

    let client = EngineHost {
        ep: client,
        app: App::Client(ClientApp::new(cfg)),
        packets_in: 0,
    };
    let server = EngineHost {
        ep: server,
        app: App::Server(ServerApp::new(StreamCheck::new(cfg.seed, cfg.sha256))),
        packets_in: 0,
    };
    let mut net = Network::new(&cfg.paths, cfg.seed, client, server);
    if cfg.competing > 0 {
        // Plain TCP with CUBIC and the engine's default buffers, as an ordinary application
        // on a Linux host would have, across the first path's links.
        let mut cross_cfg = braid_proto::EndpointConfig::default();
        cross_cfg.tcp.mss = u16::try_from(mss).unwrap_or(u16::MAX);
        cross_cfg.tcp.cc = "cubic".into();
        cross_cfg.mptcp.enabled = false;
        let mut c = Endpoint::new(cross_cfg.clone(), derive_seed(cfg.seed, 3));
        let mut s = Endpoint::new(cross_cfg, derive_seed(cfg.seed, 4));
        c.add_local_addr(addr::cross_client_addr(0));
        s.add_local_addr(addr::cross_server_addr(0));
        s.listen(CROSS_PORT)
            .map_err(|e| SimError::Engine(format!("listen on port {CROSS_PORT}: {e}")))?;
        let client = EngineHost {
            ep: c,
            app: App::CrossClient(CrossClient::new(cfg.competing)),
            packets_in: 0,
        };
        let server = EngineHost {
            ep: s,
            app: App::CrossServer(CrossServer::new()),
            packets_in: 0,
        };
        net.add_cross_pair(0, client, server);
    }
    if let Some(t) = tap {
        net.set_tap(t);
    }
    let mut next_tick = Duration::ZERO;
    let mut last_subflows: Vec<series::SubflowSample> = Vec::new();
    let limit = Instant::ZERO + cfg.time_limit;
    let mut last_progress = 0.0f64;
    let mut same_instant = (Instant::ZERO, 0u64);
    let mut failure: Option<String> = None;
    let mut timed_out = false;
    // Path returns (up after down, back after gone), in time order, and the data-packet count
    // on the path's client-to-server link when it came back.
    let mut returns = path_returns(cfg);
    let mut pending: Vec<(usize, u64)> = Vec::new();
    let mut next_return = 0;
    let mut last_check = Instant::ZERO;
    loop {
        let srv = net.host(HostId::Server).server();
        if srv.eof_at.is_some() {
            break;
        }
        if let Some(f) = net
            .host(HostId::Client)
            .client()
            .failure
            .as_ref()
            .or(srv.failure.as_ref())
        {
            failure = Some(f.clone());
            break;
        }
        match net.next_event_time() {
            None => {
                failure = Some("nothing left to happen before the transfer finished".into());
                break;
            }
            Some(t) if t > limit => {
                timed_out = true;
                failure = Some(format!(
                    "time limit of {:.3} s reached",
                    cfg.time_limit.as_secs_f64()
                ));
                break;
            }
            Some(t) => {
                if t == same_instant.0 {
                    same_instant.1 += 1;
                    if same_instant.1 > LIVELOCK_EVENTS {
                        failure = Some(format!(
                            "stuck: {LIVELOCK_EVENTS} events at {:.6} s without time advancing",
                            t.since_epoch().as_secs_f64()
                        ));
                        break;
                    }
                } else {
                    same_instant = (t, 0);
                }
            }
        }
        if let Some(cb) = sample.as_mut() {
            let t = net
                .next_event_time()
                .map_or(Duration::ZERO, |t| t.since_epoch());
            while next_tick <= t {
                cb(&take_sample(&net, next_tick, SampleEvent::Tick));
                next_tick += SAMPLE_INTERVAL;
            }
        }
        net.step();
        if next_return < returns.len() || !pending.is_empty() {
            let now = net.now();
            let due = next_return < returns.len()
                && now.since_epoch().as_secs_f64() >= returns[next_return].at;
            if due || (!pending.is_empty() && now >= last_check + Duration::from_millis(1)) {
                last_check = now;
                let links = net.link_reports();
                let data_on = |path: usize| {
                    links
                        .iter()
                        .find(|l| l.path == path && l.direction == crate::Direction::ClientToServer)
                        .map_or(0, |l| l.stats.data_packets_delivered)
                };
                while next_return < returns.len()
                    && now.since_epoch().as_secs_f64() >= returns[next_return].at
                {
                    pending.push((next_return, data_on(returns[next_return].path)));
                    next_return += 1;
                }
                pending.retain(|&(k, n0)| {
                    let r = &mut returns[k];
                    if data_on(r.path) > n0 {
                        r.first_data_ms = Some((now.since_epoch().as_secs_f64() - r.at) * 1e3);
                        false
                    } else {
                        true
                    }
                });
            }
        }
        if let Some(cb) = sample.as_mut() {
            let s = take_sample(&net, net.now().since_epoch(), SampleEvent::Tick);
            if let Some(event) = series::event_of(&last_subflows, &s.subflows) {
                last_subflows = s.subflows.clone();
                cb(&Sample { event, ..s });
            }
        }
        if net.events_processed() & 1023 == 0 {
            if let Some(cb) = progress.as_mut() {
                let wall = wall_now().duration_since(wall_start).as_secs_f64();
                if wall - last_progress >= 1.0 {
                    last_progress = wall;
                    let sim_time = net.now().since_epoch();
                    let delivered = net.host(HostId::Server).server().received;
                    cb(&Progress {
                        sim_time,
                        wall_seconds: wall,
                        bytes_delivered: delivered,
                        bytes_total: cfg.bytes,
                        goodput_mbps: mbps(delivered, sim_time),
                    });
                }
            }
        }
    }

    let eof_at = net.host(HostId::Server).server().eof_at;
    let completed = eof_at.is_some();
    let sim_time = match eof_at {
        Some(t) => t.since_epoch(),
        None if timed_out => cfg.time_limit,
        None => net.now().since_epoch(),
    };
    if let Some(cb) = sample.as_mut() {
        cb(&take_sample(&net, sim_time, SampleEvent::End));
    }
    let competing = competing_bytes(&net)
        .into_iter()
        .map(|(_, bytes)| CompetingReport {
            goodput_mbps: mbps(bytes, sim_time),
            bytes,
        })
        .collect();
    let received = net.host(HostId::Server).server().received;
    let check = &net.host(HostId::Server).server().check;
    let first_corrupt_byte = check.first_mismatch;
    let sha256 = check.sha256_hex();
    let intact = completed
        && received == cfg.bytes
        && check.checked == cfg.bytes
        && check.first_mismatch.is_none();

    let client_host = net.host(HostId::Client);
    let info = client_host
        .client()
        .conn
        .and_then(|c| client_host.ep.conn_info(c));
    let (subflows, fallback) = subflow_reports(cfg.mode, info.as_ref());
    let max_stall =
        net.host(HostId::Server)
            .server()
            .max_stall(if completed { None } else { Some(sim_time) });
    let server_host = net.host(HostId::Server);
    let server_info = server_host
        .server()
        .conn
        .and_then(|c| server_host.ep.conn_info(c));
    let memory = MemoryReport {
        client: conn_memory(info.as_ref()),
        server: conn_memory(server_info.as_ref()),
    };
    let counters = HostCounters {
        client: counter_map(&net.host(HostId::Client).ep),
        server: counter_map(&net.host(HostId::Server).ep),
    };

    Ok(Report {
        mode: cfg.mode,
        bytes: cfg.bytes,
        intact,
        sim_seconds: sim_time.as_secs_f64(),
        wall_seconds: wall_now().duration_since(wall_start).as_secs_f64(),
        goodput_mbps: if completed {
            mbps(cfg.bytes, sim_time)
        } else {
            0.0
        },
        seed: cfg.seed,
        subflows,
        competing,
        fallback,
        max_stall_ms: max_stall.as_secs_f64() * 1e3,
        completed,
        failure: if completed { None } else { failure },
        bytes_received: received,
        first_corrupt_byte,
        sha256,
        links: net.link_reports(),
        unroutable_packets: net.unroutable_packets(),
        trace_sha256: net.trace_sha256(),
        counters,
        memory,
        events: {
            let mut ev: Vec<EventReport> = net.host(HostId::Client).client().events.clone();
            ev.extend(net.host(HostId::Server).server().events.iter().cloned());
            ev.sort_by(|a, b| a.t.total_cmp(&b.t));
            ev
        },
        returns,
    })
}

/// Every return of a path in `cfg` (up after a down, back after gone), by time.
fn path_returns(cfg: &SimConfig) -> Vec<ReturnReport> {
    let mut r = Vec::new();
    for (i, p) in cfg.paths.iter().enumerate() {
        let ups = std::iter::once(p.up_at)
            .chain(p.later_outages.iter().map(|o| o.1))
            .chain(std::iter::once(p.back_at))
            .flatten();
        for up in ups {
            r.push(ReturnReport {
                path: i,
                at: up.as_secs_f64(),
                first_data_ms: None,
            });
        }
    }
    r.sort_by(|a, b| a.at.total_cmp(&b.at));
    r
}

/// Most events a run reports.
const MAX_EVENTS: usize = 10_000;

/// `ev` as a report entry of `host` at `now`.
fn event_report(host: &'static str, now: Instant, ev: &Event) -> Option<EventReport> {
    let mut r = EventReport {
        t: now.since_epoch().as_secs_f64(),
        host,
        event: "",
        path: None,
        reason: None,
        reset_reason: None,
        backup: None,
        id: None,
        addr: None,
        port: None,
    };
    match *ev {
        Event::Connected(_) | Event::Incoming { .. } => r.event = "created",
        Event::Closed(_, reason) => {
            r.event = "closed";
            r.reason = Some(format!("{reason:?}").to_lowercase());
        }
        Event::Mptcp { event, .. } => match event {
            MpEvent::Established => r.event = "established",
            MpEvent::Announced { id, addr, port } => {
                r.event = "announced";
                r.id = Some(id);
                r.addr = Some(addr.to_string());
                r.port = port;
                r.path = addr::path_of(addr);
            }
            MpEvent::Removed { id } => {
                r.event = "removed";
                r.id = Some(id);
            }
            MpEvent::SubEstablished { local, backup, .. } => {
                r.event = "sub_established";
                r.path = addr::path_of(local.ip());
                r.backup = Some(backup);
            }
            MpEvent::SubClosed { local, reason, .. } => {
                r.event = "sub_closed";
                r.path = addr::path_of(local.ip());
                r.reason = Some(
                    match reason {
                        SubClose::Reset(code) => {
                            r.reset_reason = code;
                            "reset"
                        }
                        SubClose::Timeout => "timeout",
                        SubClose::PeerRemoved => "peer_removed",
                        SubClose::LocalGone => "local_gone",
                        SubClose::Closed => "closed",
                    }
                    .to_string(),
                );
            }
            MpEvent::SubPriority { local, backup, .. } => {
                r.event = "sub_priority";
                r.path = addr::path_of(local.ip());
                r.backup = Some(backup);
            }
        },
        _ => return None,
    }
    Some(r)
}

/// The memory figures of one connection (zero when it is gone).
fn conn_memory(info: Option<&braid_proto::ConnInfo>) -> ConnMemory {
    info.map_or_else(ConnMemory::default, |i| ConnMemory {
        peak_bytes: i.buffers.peak,
        final_bytes: i.buffers.allocated,
        send_buffer: i.buffers.send_buffer,
        recv_buffer: i.buffers.recv_buffer,
    })
}

/// The competing flows in the order they were opened: (connection on the sending host, bytes
/// their receiver read).
fn competing_bytes(net: &Network<EngineHost>) -> Vec<(ConnHandle, u64)> {
    let (c, s) = (
        HostId::Cross {
            pair: 0,
            server: false,
        },
        HostId::Cross {
            pair: 0,
            server: true,
        },
    );
    let (Some(client), Some(server)) = (net.try_host(c), net.try_host(s)) else {
        return Vec::new();
    };
    let (App::CrossClient(cc), App::CrossServer(cs)) = (&client.app, &server.app) else {
        return Vec::new();
    };
    cc.conns
        .iter()
        .map(|&h| {
            let port = client.ep.conn_info(h).map_or(0, |i| i.local.port());
            (h, cs.bytes_from(port))
        })
        .collect()
}

/// The transfer's state at `t` (the state after the last event processed).
fn take_sample(net: &Network<EngineHost>, t: Duration, event: SampleEvent) -> Sample {
    let client = net.host(HostId::Client);
    let server = net.host(HostId::Server);
    let info = client.client().conn.and_then(|c| client.ep.conn_info(c));
    let recv_queue = server
        .server()
        .conn
        .and_then(|c| server.ep.conn_info(c))
        .map_or(0, |i| i.recv_queue);
    let cross = net.try_host(HostId::Cross {
        pair: 0,
        server: false,
    });
    Sample {
        t: t.as_secs_f64(),
        event,
        subflows: info
            .as_ref()
            .map_or_else(Vec::new, |i| series::subflow_samples(i, &addr::path_of)),
        send_queue: info.as_ref().map_or(0, |i| i.send_queue),
        recv_queue,
        bytes_read: server.server().received,
        competing: competing_bytes(net)
            .into_iter()
            .map(|(h, bytes)| {
                series::competing_sample(cross.and_then(|c| c.ep.conn_info(h)), bytes)
            })
            .collect(),
    }
}

/// The report's subflow list and fallback flag for the client connection. A plain TCP
/// connection (tcp mode, or no MPTCP state) is one subflow on path 0; in mptcp mode a connection
/// without MPTCP state or marked as fallen back counts as a fallback.
fn subflow_reports(mode: Mode, info: Option<&braid_proto::ConnInfo>) -> (Vec<SubflowReport>, bool) {
    let ms = |d: Option<Duration>| d.map_or(0.0, |d| d.as_secs_f64() * 1e3);
    let Some(info) = info else {
        return (Vec::new(), false);
    };
    let mptcp = info.mptcp.as_ref().filter(|_| mode == Mode::Mptcp);
    let fallback = mode == Mode::Mptcp && mptcp.is_none_or(|m| m.fallback);
    match mptcp {
        Some(m) if !m.subflows.is_empty() => {
            let subflows = m
                .subflows
                .iter()
                .map(|sf| SubflowReport {
                    // Every local address of the client is a path's client address.
                    path: addr::path_of(sf.local.ip()).unwrap_or(usize::MAX),
                    bytes_sent: sf.bytes_sent,
                    retransmitted_bytes: sf.bytes_retransmitted,
                    srtt_ms: ms(sf.srtt),
                })
                .collect();
            (subflows, fallback)
        }
        _ => (
            vec![SubflowReport {
                path: addr::path_of(info.local.ip()).unwrap_or(0),
                bytes_sent: info.bytes_sent,
                retransmitted_bytes: info.bytes_retransmitted,
                srtt_ms: ms(info.srtt),
            }],
            fallback,
        ),
    }
}

/// Refuses configurations that cannot be simulated.
fn validate(cfg: &SimConfig) -> Result<(), SimError> {
    if cfg.paths.is_empty() {
        return Err(SimError::InvalidConfig("no paths".into()));
    }
    if cfg.paths.len() > addr::MAX_PATHS {
        return Err(SimError::InvalidConfig(format!(
            "{} paths (at most {})",
            cfg.paths.len(),
            addr::MAX_PATHS
        )));
    }
    for (i, p) in cfg.paths.iter().enumerate() {
        let bad = |what: String| Err(SimError::InvalidConfig(format!("path {i}: {what}")));
        if p.rate_bps == 0 {
            return bad("rate must be positive".into());
        }
        for (name, v) in [
            ("loss", p.loss),
            ("reorder", p.reorder),
            ("duplicate", p.duplicate),
        ] {
            if !(0.0..=1.0).contains(&v) {
                return bad(format!("{name} probability {v} outside [0, 1]"));
            }
        }
        if p.mtu < MIN_MTU {
            return bad(format!("mtu {} below the minimum of {MIN_MTU}", p.mtu));
        }
        if let (Some(down), Some(up)) = (p.down_at, p.up_at) {
            if up <= down {
                return bad(format!("up time {up:?} is not after down time {down:?}"));
            }
        }
        if p.up_at.is_some() && p.down_at.is_none() {
            return bad("up time given without a down time".into());
        }
        if !p.later_outages.is_empty() && p.down_at.is_none() {
            return bad("later outages given without a first down time".into());
        }
        let mut prev_up = p.up_at;
        for &(down, up) in &p.later_outages {
            match prev_up {
                None => return bad("an outage follows one that never ends".into()),
                Some(u) if down <= u => {
                    return bad(format!(
                        "down time {down:?} is not after the up time {u:?} before it"
                    ))
                }
                _ => {}
            }
            if let Some(up) = up.filter(|&up| up <= down) {
                return bad(format!("up time {up:?} is not after down time {down:?}"));
            }
            prev_up = up;
        }
        if let (Some(g), Some(b)) = (p.gone_at, p.back_at) {
            if b <= g {
                return bad(format!("back time {b:?} is not after gone time {g:?}"));
            }
        }
        if p.back_at.is_some() && p.gone_at.is_none() {
            return bad("back time given without a gone time".into());
        }
        if i == 0 && (p.backup || p.gone_at.is_some()) && cfg.paths.len() == 1 {
            return bad("backup/gone on the only path: nothing else would carry the data".into());
        }
        if let Some(k) = p.link {
            if k >= i {
                return bad(match i {
                    0 => format!("link={k}: the first path has a link of its own"),
                    1 => format!("link={k} must name an earlier path (0)"),
                    _ => format!("link={k} must name an earlier path (0..{})", i - 1),
                });
            }
            // The shared link's shape is the other path's: only its rate and delay may be
            // repeated here (for readability), nothing else may differ.
            let owner = &cfg.paths[k];
            let shape = crate::PathSpec {
                link: Some(k),
                ..crate::PathSpec::new(owner.rate_bps, owner.delay)
            };
            if p.rate_bps != owner.rate_bps || p.delay != owner.delay {
                return bad(format!(
                    "crosses path {k}'s link, so its rate and delay are path {k}'s ({} bit/s, {:?}), not {} bit/s, {:?}",
                    owner.rate_bps, owner.delay, p.rate_bps, p.delay
                ));
            }
            if *p != shape {
                return bad(format!(
                    "crosses path {k}'s link: loss, queue, down/up, reorder, dup, mtu and strip are properties of that link (give them on path {k})"
                ));
            }
        }
    }
    if cfg.competing > MAX_COMPETING {
        return Err(SimError::InvalidConfig(format!(
            "{} competing flows (at most {MAX_COMPETING})",
            cfg.competing
        )));
    }
    if cfg.endpoint.tcp.mss == 0 {
        return Err(SimError::InvalidConfig("mss must be positive".into()));
    }
    Ok(())
}

/// Mbit/s of `bytes` over `t` (0 for zero time).
fn mbps(bytes: u64, t: Duration) -> f64 {
    let s = t.as_secs_f64();
    if s > 0.0 {
        bytes as f64 * 8.0 / s / 1e6
    } else {
        0.0
    }
}

/// A seed for one consumer of the run seed.
fn derive_seed(seed: u64, which: u64) -> u64 {
    Rng::new(seed ^ which.wrapping_mul(0x9e37_79b9_7f4a_7c15)).next_u64()
}

fn counter_map(ep: &Endpoint) -> BTreeMap<String, u64> {
    ep.counters()
        .iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect()
}

/// Every this many packets a host receives, one has its TCP checksum verified (see
/// [`EngineHost::handle_packet`]).
const VERIFY_EVERY: u64 = 16;

/// A host running the real engine plus the scenario's application.
pub(crate) struct EngineHost {
    ep: Endpoint,
    app: App,
    /// Packets received so far.
    packets_in: u64,
}

enum App {
    Client(ClientApp),
    Server(ServerApp),
    CrossClient(CrossClient),
    CrossServer(CrossServer),
}

impl EngineHost {
    fn client(&self) -> &ClientApp {
        match &self.app {
            App::Client(c) => c,
            _ => unreachable!("host 0 is the client"),
        }
    }
    fn server(&self) -> &ServerApp {
        match &self.app {
            App::Server(s) => s,
            _ => unreachable!("host 1 is the server"),
        }
    }
}

impl Node for EngineHost {
    /// The simulated links never corrupt a packet (a middlebox that rewrites options fixes the
    /// checksum as it goes), so checking every TCP checksum would only cost time: the first
    /// packet and every [`VERIFY_EVERY`]th after it go through the full check (which still
    /// catches a sender that gets its checksums wrong: its packets would count as
    /// `BadChecksum` and be dropped), the others through the engine's path for packets whose
    /// checksum the device vouches for. Everything else (IPv4 header checksum, lengths) is
    /// checked on every packet.
    fn handle_packet(&mut self, now: Instant, packet: &[u8]) {
        if self.packets_in.is_multiple_of(VERIFY_EVERY) {
            self.ep.handle_packet(now, packet);
        } else {
            self.ep.handle_packet_trusted(now, packet);
        }
        self.packets_in += 1;
    }
    fn handle_timeout(&mut self, now: Instant) {
        self.ep.handle_timeout(now);
    }
    fn poll_timeout(&self) -> Option<Instant> {
        let app = match &self.app {
            App::Client(c) => c.actions.first().map(|a| a.0),
            _ => None,
        };
        match (self.ep.poll_timeout(), app) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }
    fn poll_transmit(&mut self, now: Instant, buf: &mut Vec<u8>) -> bool {
        self.ep.poll_transmit(now, buf).is_some()
    }
    fn run_app(&mut self, now: Instant) {
        match &mut self.app {
            App::Client(c) => c.run(&mut self.ep, now),
            App::Server(s) => s.run(&mut self.ep, now),
            App::CrossClient(c) => c.run(&mut self.ep, now),
            App::CrossServer(s) => s.run(&mut self.ep),
        }
    }
}

/// Connects at time 0 from path 0 and writes the stream as fast as the send buffer takes it.
struct ClientApp {
    local: IpAddr,
    remote: SocketAddr,
    started: bool,
    conn: Option<ConnHandle>,
    connected: bool,
    data: StreamGen,
    total: u64,
    written: u64,
    shut: bool,
    failure: Option<String>,
    /// Local addresses going away (`false`) and coming back (`true`, with the backup flag), by
    /// time (`/gone=`, `/back=`).
    actions: Vec<(Instant, IpAddr, bool, bool)>,
    /// Path 0's address is a backup: set once connected (MP_PRIO).
    first_backup: bool,
    events: Vec<EventReport>,
}

impl ClientApp {
    fn new(cfg: &SimConfig) -> Self {
        ClientApp {
            local: addr::client_addr(0),
            remote: SocketAddr::new(addr::server_addr(0), SERVER_PORT),
            started: false,
            conn: None,
            connected: false,
            data: StreamGen::new(cfg.seed),
            total: cfg.bytes,
            written: 0,
            shut: false,
            failure: None,
            actions: {
                let mut a = Vec::new();
                for (i, p) in cfg.paths.iter().enumerate() {
                    let at = |d: Duration| Instant::ZERO + d;
                    if let Some(g) = p.gone_at {
                        a.push((at(g), addr::client_addr(i), false, p.backup));
                    }
                    if let Some(b) = p.back_at {
                        a.push((at(b), addr::client_addr(i), true, p.backup));
                    }
                }
                a.sort_by_key(|x| x.0);
                a
            },
            first_backup: cfg.paths.first().is_some_and(|p| p.backup),
            events: Vec::new(),
        }
    }

    fn run(&mut self, ep: &mut Endpoint, now: Instant) {
        while let Some(&(at, a, back, backup)) = self.actions.first() {
            if at > now {
                break;
            }
            self.actions.remove(0);
            if back {
                ep.add_local_addr_with(now, a, backup);
            } else {
                ep.remove_local_addr(now, a);
            }
        }
        if !self.started {
            self.started = true;
            match ep.connect(now, self.local, self.remote) {
                Ok(c) => self.conn = Some(c),
                Err(e) => self.failure = Some(format!("client connect: {e}")),
            }
        }
        while let Some(ev) = ep.poll_event() {
            if self.events.len() < MAX_EVENTS {
                if let Some(r) = event_report("client", now, &ev) {
                    self.events.push(r);
                }
            }
            match ev {
                Event::Connected(c) if Some(c) == self.conn => {
                    self.connected = true;
                    if self.first_backup {
                        ep.set_local_backup(now, self.local, true);
                    }
                }
                Event::Closed(c, reason)
                    if Some(c) == self.conn && reason != CloseReason::Normal =>
                {
                    self.failure
                        .get_or_insert_with(|| format!("client connection closed: {reason:?}"));
                }
                _ => {}
            }
        }
        let Some(conn) = self.conn.filter(|_| self.connected && !self.shut) else {
            return;
        };
        if self.failure.is_some() {
            return;
        }
        while self.written < self.total && ep.send_capacity(conn) > 0 {
            let chunk = self.data.peek();
            let n = chunk
                .len()
                .min(usize::try_from(self.total - self.written).unwrap_or(usize::MAX));
            match ep.send(conn, &chunk[..n]) {
                Ok(k) => {
                    self.data.consume(k);
                    self.written += k as u64;
                    if k < n || k == 0 {
                        break;
                    }
                }
                Err(Error::WouldBlock) => break,
                Err(e) => {
                    self.failure = Some(format!("client send: {e}"));
                    return;
                }
            }
        }
        if self.written == self.total {
            self.shut = true;
            if let Err(e) = ep.shutdown(now, conn) {
                self.failure = Some(format!("client shutdown: {e}"));
            }
        }
    }
}

/// Accepts one connection on [`SERVER_PORT`] and reads it to EOF, comparing the bytes with
/// the sender's stream as they come.
struct ServerApp {
    conn: Option<ConnHandle>,
    buf: Vec<u8>,
    received: u64,
    check: StreamCheck,
    eof_at: Option<Instant>,
    failure: Option<String>,
    /// When the application last read new bytes (None before the first).
    last_progress: Option<Instant>,
    /// Longest gap between two reads of new bytes.
    max_gap: Duration,
    events: Vec<EventReport>,
}

impl ServerApp {
    fn new(check: StreamCheck) -> Self {
        ServerApp {
            conn: None,
            buf: vec![0; READ_BUF],
            received: 0,
            check,
            eof_at: None,
            failure: None,
            last_progress: None,
            max_gap: Duration::ZERO,
            events: Vec::new(),
        }
    }

    /// The longest stall between the first and the last byte read, also counting the time from
    /// the last byte to `end` when given (a run that did not complete).
    fn max_stall(&self, end: Option<Duration>) -> Duration {
        let tail = match (self.last_progress, end) {
            (Some(last), Some(end)) => end.saturating_sub(last.since_epoch()),
            _ => Duration::ZERO,
        };
        self.max_gap.max(tail)
    }

    fn run(&mut self, ep: &mut Endpoint, now: Instant) {
        while let Some(ev) = ep.poll_event() {
            if self.events.len() < MAX_EVENTS {
                if let Some(r) = event_report("server", now, &ev) {
                    self.events.push(r);
                }
            }
            if let Event::Closed(c, reason) = ev {
                if Some(c) == self.conn && reason != CloseReason::Normal && self.eof_at.is_none() {
                    self.failure
                        .get_or_insert_with(|| format!("server connection closed: {reason:?}"));
                }
            }
        }
        if self.conn.is_none() {
            self.conn = ep.accept(SERVER_PORT);
        }
        let Some(conn) = self.conn else { return };
        if self.eof_at.is_some() || self.failure.is_some() {
            return;
        }
        loop {
            match ep.recv(conn, &mut self.buf) {
                Ok(0) => {
                    self.eof_at = Some(now);
                    return;
                }
                Ok(n) => {
                    self.check.feed(&self.buf[..n]);
                    self.received += n as u64;
                    if let Some(last) = self.last_progress {
                        self.max_gap = self.max_gap.max(now.since_epoch() - last.since_epoch());
                    }
                    self.last_progress = Some(now);
                }
                Err(Error::WouldBlock) => return,
                Err(e) => {
                    self.failure = Some(format!("server recv: {e}"));
                    return;
                }
            }
        }
    }
}
