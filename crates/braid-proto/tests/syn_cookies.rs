//! SYN cookies (endpoint/cookie.rs): a flood of spoofed SYNs fills the listener's half-open
//! queue and keeps memory bounded, and a legitimate client still gets its connection — plain TCP
//! with every option, and MPTCP v1 (the keys come back on the third ACK) — with its data intact.
//! A forged ACK gets a RST and no connection.
mod common;
use braid_proto::{EndpointConfig, Event};
use braid_wire::mptcp::{CapableFlags, MpCapable, MptcpOption};
use braid_wire::tcp::{TcpFlags, Timestamps};
use braid_wire::{IpRepr, TcpRepr};
use common::*;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::Duration;

const PORT: u16 = 80;
const BACKLOG: usize = 8;

fn server_cfg(cookies: bool) -> EndpointConfig {
    EndpointConfig {
        backlog: BACKLOG,
        syn_cookies: cookies,
        ..Default::default()
    }
}

/// A SYN from a spoofed source, as a client stack would send it (MP_CAPABLE v1 when `mptcp`).
fn spoofed_syn(i: u32, mptcp: bool) -> Vec<u8> {
    let src = IpAddr::V4(Ipv4Addr::new(203, 0, (i >> 8) as u8, i as u8));
    let mut r = TcpRepr {
        src_port: 10000 + (i % 50000) as u16,
        dst_port: PORT,
        seq: i.wrapping_mul(0x9e37_79b9),
        flags: TcpFlags(TcpFlags::SYN),
        window: 64240,
        ..Default::default()
    };
    r.options.mss = Some(1460);
    r.options.window_scale = Some(7);
    r.options.sack_permitted = true;
    r.options.timestamps = Some(Timestamps { tsval: i, tsecr: 0 });
    let mut body = [0u8; 40];
    if mptcp {
        let n = MptcpOption::MpCapable(MpCapable::syn(CapableFlags(CapableFlags::HMAC_SHA256)))
            .emit(&mut body);
        r.options
            .mptcp
            .push(braid_wire::tcp::kind::MPTCP, &body[..n]);
    }
    let ip = IpRepr::new_tcp(src, B, 0).unwrap();
    let mut out = Vec::new();
    braid_wire::emit_ip_tcp(&ip, &r, &mut out);
    out
}

fn counter(p: &Pair, name: &str) -> u64 {
    p.b.counters()
        .iter()
        .find(|(n, _)| *n == name)
        .map(|(_, v)| v)
        .unwrap_or_else(|| panic!("no counter {name}"))
}

/// Floods B's listener with `n` spoofed SYNs (half of them MP_CAPABLE) at 10 000 a second.
fn flood(p: &mut Pair, n: u32) {
    for i in 0..n {
        let syn = spoofed_syn(i, i % 2 == 0);
        p.deliver_now(Dir::AtoB, &syn);
        if i % 10 == 0 {
            p.run_for(Duration::from_millis(1));
        }
    }
}

/// Floods B, then A connects and moves 1 MiB each way. Returns the pair and whether B's side
/// of the connection fell back to TCP (`None`: not MPTCP at all).
fn flooded_then_connect(client: EndpointConfig) -> (Pair, Option<bool>) {
    let mut p = Pair::new(client, server_cfg(true), Duration::from_millis(10));
    p.keep_log = false;
    p.b.listen(PORT).unwrap();
    flood(&mut p, 5000);
    assert!(
        p.b.connection_count() <= BACKLOG,
        "the flood made {} connections",
        p.b.connection_count()
    );
    assert!(
        counter(&p, "SyncookiesSent") >= 4000,
        "{:?}",
        p.b.counters()
    );
    let ca =
        p.a.connect(p.now, A, SocketAddr::new(B, PORT))
            .expect("connect");
    let mut cb = None;
    let ok = p.run_until(Duration::from_secs(5), |p| {
        if cb.is_none() {
            cb = p.b.accept(PORT);
        }
        cb.is_some() && p.events_a.contains(&Event::Connected(ca))
    });
    assert!(ok, "the client got no connection: {:?}", p.b.counters());
    let cb = cb.unwrap();
    assert_eq!(counter(&p, "SyncookiesRecv"), 1);
    let up = pattern(1 << 20, 1);
    let got = p.transfer(ca, cb, &up, Duration::from_secs(30));
    assert!(
        got == up,
        "A→B: {} of {} bytes, or different",
        got.len(),
        up.len()
    );
    let down = pattern(1 << 20, 2);
    let got = p.transfer_dir(Dir::BtoA, cb, ca, &down, Duration::from_secs(30));
    assert!(got == down, "B→A: {} of {} bytes", got.len(), down.len());
    let info = p.b.conn_info(cb).unwrap();
    let fallback = info.mptcp.as_ref().map(|m| m.fallback);
    (p, fallback)
}

#[test]
fn plain_tcp_client_served_through_a_syn_flood() {
    let mut c = EndpointConfig::default();
    c.mptcp.enabled = false;
    let (p, mp) = flooded_then_connect(c);
    assert_eq!(mp, None);
    assert_eq!(counter(&p, "SyncookiesFailed"), 0);
}

#[test]
fn mptcp_client_served_through_a_syn_flood() {
    let (p, mp) = flooded_then_connect(EndpointConfig::default());
    // The connection is MPTCP (did not fall back): the keys came back on the third ACK.
    assert_eq!(mp, Some(false));
    assert_eq!(counter(&p, "SyncookiesFailed"), 0);
}

#[test]
fn mptcp_with_checksums_served_through_a_syn_flood() {
    let mut c = EndpointConfig::default();
    c.mptcp.checksum = true;
    let (_p, mp) = flooded_then_connect(c);
    assert_eq!(mp, Some(false));
}

#[test]
fn without_cookies_the_flood_locks_the_client_out() {
    let mut p = Pair::new(
        EndpointConfig::default(),
        server_cfg(false),
        Duration::from_millis(10),
    );
    p.keep_log = false;
    p.b.listen(PORT).unwrap();
    flood(&mut p, 2000);
    let ca =
        p.a.connect(p.now, A, SocketAddr::new(B, PORT))
            .expect("connect");
    p.run_for(Duration::from_secs(3));
    assert!(
        !p.events_a.contains(&Event::Connected(ca)),
        "connected although the half-open queue was full"
    );
    assert_eq!(counter(&p, "SyncookiesSent"), 0);
    assert!(counter(&p, "ListenOverflows") > 0);
}

#[test]
fn forged_ack_to_a_listener_gets_a_rst_and_no_connection() {
    let mut p = Pair::new(
        EndpointConfig::default(),
        server_cfg(true),
        Duration::from_millis(10),
    );
    p.b.listen(PORT).unwrap();
    flood(&mut p, 100);
    let before = p.b.connection_count();
    let rst_before = counter(&p, "RstSent");
    for i in 0..50u32 {
        let src = IpAddr::V4(Ipv4Addr::new(203, 0, 113, i as u8));
        let r = TcpRepr {
            src_port: 20000 + i as u16,
            dst_port: PORT,
            seq: 1000 + i,
            ack: i.wrapping_mul(0x0101_0101).wrapping_add(1),
            flags: TcpFlags(TcpFlags::ACK),
            window: 1000,
            ..Default::default()
        };
        let ip = IpRepr::new_tcp(src, B, 0).unwrap();
        let mut out = Vec::new();
        braid_wire::emit_ip_tcp(&ip, &r, &mut out);
        p.deliver_now(Dir::AtoB, &out);
    }
    assert_eq!(p.b.connection_count(), before);
    assert_eq!(counter(&p, "SyncookiesFailed"), 50);
    assert_eq!(counter(&p, "SyncookiesRecv"), 0);
    assert_eq!(counter(&p, "RstSent") - rst_before, 50);
}
