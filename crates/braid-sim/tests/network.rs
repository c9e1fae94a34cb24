//! The network model, tested with scripted hosts (no TCP engine involved).

mod common;

use braid_sim::addr::{client_addr, server_addr};
use braid_sim::{Direction, HostId, Network, PathSpec};
use common::{foreign_addr, id_of, ms, packet, us, ScriptNode};
use std::time::Duration;

const MBIT: u64 = 1_000_000;

fn run(
    paths: &[PathSpec],
    seed: u64,
    client: ScriptNode,
    server: ScriptNode,
) -> Network<ScriptNode> {
    let mut net = Network::new(paths, seed, client, server);
    while net.step() {}
    net
}

/// A client sending `n` packets of `len` bytes to the server on path 0, one every `gap`.
fn client_sending(n: u32, len: usize, gap: Duration) -> ScriptNode {
    let mut c = ScriptNode::new();
    for i in 0..n {
        c.send_at(gap * i, packet(server_addr(0), len, i));
    }
    c
}

fn received(net: &Network<ScriptNode>) -> &ScriptNode {
    net.host(HostId::Server)
}

#[test]
fn arrival_is_serialisation_plus_delay() {
    let path = PathSpec::new(100 * MBIT, ms(10));
    let mut c = ScriptNode::new();
    c.send_at(Duration::ZERO, packet(server_addr(0), 1000, 0));
    c.send_at(ms(50), packet(server_addr(0), 500, 1));
    let net = run(&[path], 1, c, ScriptNode::new());
    // 1000 bytes at 100 Mbit/s = 80 µs; 500 bytes = 40 µs; plus 10 ms propagation.
    assert_eq!(received(&net).times(), [10_080_000, 60_040_000]);
    assert_eq!(received(&net).ids(), [0, 1]);
    let links = net.link_reports();
    assert_eq!(links[0].direction, Direction::ClientToServer);
    assert_eq!(links[0].stats.packets_delivered, 2);
    assert_eq!(links[0].stats.bytes_delivered, 1500);
    assert_eq!(links[1].stats.packets_delivered, 0);
}

#[test]
fn back_to_back_packets_are_spaced_by_serialisation_time() {
    let path = PathSpec::new(100 * MBIT, ms(10));
    let net = run(
        &[path],
        1,
        client_sending(5, 1000, Duration::ZERO),
        ScriptNode::new(),
    );
    let want: Vec<u64> = (1..=5).map(|k| 10_000_000 + k * 80_000).collect();
    assert_eq!(received(&net).times(), want);
    assert_eq!(received(&net).ids(), [0, 1, 2, 3, 4]);
}

#[test]
fn queue_overflow_drops_exactly_what_exceeds_the_limit() {
    let mut path = PathSpec::new(100 * MBIT, ms(1));
    path.queue_bytes = Some(10_000);
    let net = run(
        &[path.clone()],
        1,
        client_sending(25, 1000, Duration::ZERO),
        ScriptNode::new(),
    );
    assert_eq!(received(&net).ids(), (0..10).collect::<Vec<_>>());
    assert_eq!(net.link_reports()[0].stats.queue_drops, 15);

    // Mixed sizes against a 2500-byte queue: 1000 + 1000 fit, 600 would make 2600, 500 fits.
    path.queue_bytes = Some(2500);
    let mut c = ScriptNode::new();
    for (i, len) in [1000, 1000, 600, 500].into_iter().enumerate() {
        c.send_at(Duration::ZERO, packet(server_addr(0), len, i as u32));
    }
    let net = run(&[path], 1, c, ScriptNode::new());
    assert_eq!(received(&net).ids(), [0, 1, 3]);
    assert_eq!(net.link_reports()[0].stats.queue_drops, 1);
}

#[test]
fn queue_space_frees_when_a_packet_is_serialised() {
    let mut path = PathSpec::new(100 * MBIT, ms(1));
    path.queue_bytes = Some(2000);
    let mut c = ScriptNode::new();
    for i in 0..3 {
        c.send_at(Duration::ZERO, packet(server_addr(0), 1000, i));
    }
    // Packet 0 finishes serialising at exactly 80 µs: one more fits then, but not two.
    c.send_at(us(80), packet(server_addr(0), 1000, 3));
    c.send_at(us(80), packet(server_addr(0), 1000, 4));
    let net = run(&[path], 1, c, ScriptNode::new());
    assert_eq!(received(&net).ids(), [0, 1, 3]);
    assert_eq!(received(&net).times(), [1_080_000, 1_160_000, 1_240_000]);
    assert_eq!(net.link_reports()[0].stats.queue_drops, 2);
}

#[test]
fn random_loss_rate_is_within_statistical_bounds() {
    let n = 100_000u32;
    let mut path = PathSpec::new(1000 * MBIT, ms(1));
    path.loss = 0.1;
    let net = run(
        &[path],
        42,
        client_sending(n, 100, us(1)),
        ScriptNode::new(),
    );
    let got = received(&net).received.len() as f64;
    // Binomial(100000, 0.9): sd ≈ 94.9; allow 5 sd.
    assert!((got - 90_000.0).abs() < 475.0, "delivered {got}");
    let s = &net.link_reports()[0].stats;
    assert_eq!(s.random_losses + s.packets_delivered, u64::from(n));
    assert_eq!(s.queue_drops, 0);
    // Survivors keep their order on a non-reordering link.
    assert!(received(&net).ids().windows(2).all(|w| w[0] < w[1]));
}

#[test]
fn reordering_lets_later_packets_overtake() {
    let mut path = PathSpec::new(100 * MBIT, ms(10));
    path.reorder = 0.2;
    let n = 1000u32;
    let net = run(
        &[path],
        7,
        client_sending(n, 1000, us(100)),
        ScriptNode::new(),
    );
    let srv = received(&net);
    assert_eq!(srv.received.len(), n as usize, "reordering loses nothing");
    let ids = srv.ids();
    let inversions = ids.windows(2).filter(|w| w[0] > w[1]).count();
    assert!(inversions > 50, "only {inversions} inversions");
    let s = &net.link_reports()[0].stats;
    assert!(
        (120..=280).contains(&s.reordered),
        "reordered {}",
        s.reordered
    );
    // Every packet arrives no earlier than its base time and at most one delay later.
    let mut held = 0;
    for (t, p) in &srv.received {
        let base = u64::from(id_of(p)) * 100_000 + 80_000 + 10_000_000;
        let extra = t.as_nanos() - base;
        assert!(extra <= 10_000_000, "extra delay {extra}");
        held += u64::from(extra > 0);
    }
    assert!(held <= s.reordered && held + 5 >= s.reordered);
}

#[test]
fn duplicates_are_delivered_twice() {
    let mut path = PathSpec::new(1000 * MBIT, ms(1));
    path.duplicate = 0.1;
    let n = 10_000u32;
    let net = run(
        &[path],
        3,
        client_sending(n, 200, us(10)),
        ScriptNode::new(),
    );
    let s = net.link_reports()[0].stats.clone();
    // Binomial(10000, 0.1): sd = 30.
    assert!(
        (850..=1150).contains(&s.duplicated),
        "duplicated {}",
        s.duplicated
    );
    let ids = received(&net).ids();
    assert_eq!(ids.len() as u64, u64::from(n) + s.duplicated);
    let mut counts = vec![0u32; n as usize];
    for id in &ids {
        counts[*id as usize] += 1;
    }
    assert!(counts.iter().all(|&c| c == 1 || c == 2));
    assert_eq!(
        counts.iter().filter(|&&c| c == 2).count() as u64,
        s.duplicated
    );
    // The copy arrives right behind the original, with identical bytes.
    for w in received(&net).received.windows(2) {
        if id_of(&w[0].1) == id_of(&w[1].1) {
            assert_eq!(w[0], w[1]);
        }
    }
}

#[test]
fn packets_over_the_mtu_are_dropped() {
    let mut path = PathSpec::new(100 * MBIT, ms(1));
    path.mtu = 1000;
    let mut c = ScriptNode::new();
    c.send_at(Duration::ZERO, packet(server_addr(0), 1000, 0));
    c.send_at(Duration::ZERO, packet(server_addr(0), 1001, 1));
    c.send_at(Duration::ZERO, packet(server_addr(0), 999, 2));
    let net = run(&[path], 1, c, ScriptNode::new());
    assert_eq!(received(&net).ids(), [0, 2]);
    assert_eq!(net.link_reports()[0].stats.mtu_drops, 1);
}

#[test]
fn down_window_drops_offered_and_in_flight_packets() {
    let mut path = PathSpec::new(100 * MBIT, ms(10));
    path.down_at = Some(Duration::from_secs(1));
    path.up_at = Some(Duration::from_secs(2));
    let net = run(
        &[path],
        1,
        client_sending(300, 1000, ms(10)),
        ScriptNode::new(),
    );
    // Packet k leaves at k·10 ms and would arrive at k·10 ms + 10.08 ms: 0..=98 arrive before
    // the cut, 99 is on the wire at 1 s, 100..=199 are offered while down, 200.. (sent at 2 s,
    // after the path came back) arrive.
    let want: Vec<u32> = (0..=98).chain(200..300).collect();
    assert_eq!(received(&net).ids(), want);
    let s = &net.link_reports()[0].stats;
    assert_eq!(s.down_drops, 101);
    assert_eq!(s.packets_offered, 300);
}

#[test]
fn going_down_flushes_the_queue_and_frees_the_serialiser() {
    let mut path = PathSpec::new(MBIT, ms(1));
    path.queue_bytes = Some(100_000);
    path.down_at = Some(ms(20));
    path.up_at = Some(ms(30));
    let mut c = ScriptNode::new();
    for i in 0..10 {
        c.send_at(Duration::ZERO, packet(server_addr(0), 1000, i));
    }
    c.send_at(ms(40), packet(server_addr(0), 1000, 10));
    let net = run(&[path], 1, c, ScriptNode::new());
    // 1000 bytes take 8 ms at 1 Mbit/s: packets 0 and 1 arrive at 9 and 17 ms; packets 2..9
    // are still queued or on the wire at 20 ms. Packet 10 finds an idle link after the flush.
    assert_eq!(received(&net).ids(), [0, 1, 10]);
    assert_eq!(received(&net).times(), [9_000_000, 17_000_000, 49_000_000]);
    assert_eq!(net.link_reports()[0].stats.down_drops, 8);
}

#[test]
fn both_directions_carry_packets_independently() {
    let path = PathSpec::new(100 * MBIT, ms(5));
    let mut s = ScriptNode::new();
    s.send_at(Duration::ZERO, packet(client_addr(0), 1000, 7));
    let net = run(&[path], 1, client_sending(1, 1000, Duration::ZERO), s);
    assert_eq!(net.host(HostId::Client).ids(), [7]);
    assert_eq!(net.host(HostId::Client).times(), [5_080_000]);
    assert_eq!(received(&net).times(), [5_080_000]);
    let links = net.link_reports();
    assert_eq!(links[1].direction, Direction::ServerToClient);
    assert_eq!(links[1].stats.packets_delivered, 1);
}

#[test]
fn packets_route_by_destination_subnet() {
    let paths = [
        PathSpec::new(100 * MBIT, ms(1)),
        PathSpec::new(10 * MBIT, ms(20)),
    ];
    let mut c = ScriptNode::new();
    c.send_at(Duration::ZERO, packet(server_addr(1), 1000, 1));
    c.send_at(Duration::ZERO, packet(server_addr(0), 1000, 0));
    c.send_at(Duration::ZERO, packet(foreign_addr(), 1000, 2));
    c.send_at(Duration::ZERO, packet(server_addr(5), 1000, 3));
    let net = run(&paths, 1, c, ScriptNode::new());
    // Path 0: 80 µs + 1 ms; path 1: 800 µs + 20 ms.
    assert_eq!(received(&net).ids(), [0, 1]);
    assert_eq!(received(&net).times(), [1_080_000, 20_800_000]);
    assert_eq!(net.unroutable_packets(), 2);
    let links = net.link_reports();
    assert_eq!((links[2].path, links[2].stats.packets_delivered), (1, 1));
}

/// Bidirectional traffic over a lossy, reordering, duplicating path.
fn messy_run(seed: u64, loss0: f64) -> Network<ScriptNode> {
    let mut p0 = PathSpec::new(50 * MBIT, ms(3));
    p0.loss = loss0;
    p0.reorder = 0.1;
    p0.duplicate = 0.05;
    p0.queue_bytes = Some(20_000);
    let mut p1 = PathSpec::new(20 * MBIT, ms(7));
    p1.loss = 0.05;
    p1.reorder = 0.3;
    p1.duplicate = 0.1;
    let mut c = ScriptNode::new();
    let mut s = ScriptNode::new();
    for i in 0..2000u32 {
        let at = us(37) * i;
        let path = (i % 2) as usize;
        c.send_at(
            at,
            packet(server_addr(path), 100 + (i as usize * 13) % 1300, i),
        );
        s.send_at(
            at,
            packet(client_addr(path), 60 + (i as usize * 7) % 700, i),
        );
    }
    run(&[p0, p1], seed, c, s)
}

#[test]
fn same_seed_same_trace_other_seed_other_trace() {
    let a = messy_run(5, 0.02);
    let b = messy_run(5, 0.02);
    let c = messy_run(6, 0.02);
    assert_eq!(a.trace_sha256(), b.trace_sha256());
    assert_eq!(
        a.host(HostId::Server).received,
        b.host(HostId::Server).received
    );
    assert_eq!(
        a.host(HostId::Client).received,
        b.host(HostId::Client).received
    );
    assert_eq!(a.link_reports(), b.link_reports());
    assert_ne!(a.trace_sha256(), c.trace_sha256());
    assert_ne!(
        a.host(HostId::Server).times(),
        c.host(HostId::Server).times()
    );
    assert_eq!(a.trace_sha256().len(), 64);
}

#[test]
fn one_paths_randomness_does_not_depend_on_anothers_settings() {
    let a = messy_run(9, 0.0);
    let b = messy_run(9, 0.3);
    let on_path1 = |net: &Network<ScriptNode>, host| -> Vec<(u64, u32)> {
        net.host(host)
            .received
            .iter()
            .filter(|(_, p)| p[17] == 2) // 10.2.0.x: path 1
            .map(|(t, p)| (t.as_nanos(), id_of(p)))
            .collect()
    };
    assert_eq!(on_path1(&a, HostId::Server), on_path1(&b, HostId::Server));
    assert_eq!(on_path1(&a, HostId::Client), on_path1(&b, HostId::Client));
    assert_eq!(a.link_reports()[2..], b.link_reports()[2..]);
    assert_ne!(a.link_reports()[0], b.link_reports()[0]);
}

#[test]
fn nothing_scheduled_means_the_run_ends() {
    let path = PathSpec::new(100 * MBIT, ms(1));
    let mut net = Network::new(&[path], 1, ScriptNode::new(), ScriptNode::new());
    assert!(net.step());
    assert!(net.step());
    assert!(!net.step());
    assert_eq!(net.next_event_time(), None);
}
