//! Buffer autotuning (tcp::tune): buffers start small, grow with what the application reads
//! and what the congestion window needs, never past the cap, and never for a peer whose data
//! nobody reads.
mod common;
use braid_proto::tcp::{DEFAULT_BUFFER, DEFAULT_BUFFER_MAX};
use braid_proto::EndpointConfig;
use common::*;
use std::time::Duration;

fn run_transfer(mut p: Pair, n: usize) -> (Pair, braid_proto::ConnHandle, braid_proto::ConnHandle) {
    let (ca, cb) = p.establish(80);
    let data = pattern(n, 5);
    assert!(p.transfer(ca, cb, &data, Duration::from_secs(60)) == data);
    (p, ca, cb)
}

#[test]
fn buffers_start_small_and_grow_with_the_transfer_within_the_cap() {
    for mptcp in [false, true] {
        let mut cfg = EndpointConfig::default();
        cfg.mptcp.enabled = mptcp;
        let p = Pair::new(cfg.clone(), cfg, Duration::from_millis(20));
        let (mut p, ca, cb) = {
            let mut p = p;
            let (ca, cb) = p.establish(80);
            // Idle: the initial sizes, and (nothing written or received) no ring at all.
            for (ep, h) in [(&p.a, ca), (&p.b, cb)] {
                let b = ep.conn_info(h).unwrap().buffers;
                assert_eq!(b.send_buffer, DEFAULT_BUFFER as u64, "mptcp {mptcp}");
                assert_eq!(b.recv_buffer, DEFAULT_BUFFER as u64, "mptcp {mptcp}");
                assert_eq!(
                    b.allocated, 0,
                    "mptcp {mptcp}: an idle connection holds nothing"
                );
            }
            let data = pattern(16 << 20, 5);
            assert!(p.transfer(ca, cb, &data, Duration::from_secs(60)) == data);
            (p, ca, cb)
        };
        p.run_for(Duration::from_millis(200));
        let tx = p.a.conn_info(ca).unwrap().buffers;
        let rx = p.b.conn_info(cb).unwrap().buffers;
        // A 40 ms round trip over an unshaped link: far more than 128 KiB per round trip.
        assert!(
            tx.send_buffer > DEFAULT_BUFFER as u64,
            "mptcp {mptcp}: {tx:?}"
        );
        assert!(
            rx.recv_buffer > DEFAULT_BUFFER as u64,
            "mptcp {mptcp}: {rx:?}"
        );
        for b in [tx, rx] {
            assert!(
                b.send_buffer <= DEFAULT_BUFFER_MAX as u64,
                "mptcp {mptcp}: {b:?}"
            );
            assert!(
                b.recv_buffer <= DEFAULT_BUFFER_MAX as u64,
                "mptcp {mptcp}: {b:?}"
            );
            assert!(b.peak >= b.allocated && b.peak > 0, "mptcp {mptcp}: {b:?}");
        }
        // The side that only receives never needed a bigger send buffer, and the other way.
        assert_eq!(rx.send_buffer, DEFAULT_BUFFER as u64, "mptcp {mptcp}");
        assert_eq!(tx.recv_buffer, DEFAULT_BUFFER as u64, "mptcp {mptcp}");
    }
}

#[test]
fn a_peer_cannot_grow_a_buffer_nobody_reads() {
    for mptcp in [false, true] {
        let mut cfg = EndpointConfig::default();
        cfg.mptcp.enabled = mptcp;
        let mut p = Pair::new(cfg.clone(), cfg, Duration::from_millis(5));
        let (ca, cb) = p.establish(80);
        let data = pattern(8 << 20, 9);
        let mut sent = 0;
        // B's application never reads: whatever A sends, B's window and memory stay put.
        p.run_until(Duration::from_secs(5), |p| {
            while sent < data.len() {
                match p.a.send(ca, &data[sent..]) {
                    Ok(n) => sent += n,
                    Err(_) => break,
                }
            }
            false
        });
        let rx = p.b.conn_info(cb).unwrap().buffers;
        assert_eq!(
            rx.recv_buffer, DEFAULT_BUFFER as u64,
            "mptcp {mptcp}: {rx:?}"
        );
        // Its rings: the receive window's worth (at the data level and in the subflow), and
        // a send ring it never used.
        assert!(
            rx.peak <= 2 * DEFAULT_BUFFER as u64,
            "mptcp {mptcp}: {rx:?}"
        );
        let tx = p.a.conn_info(ca).unwrap().buffers;
        assert!(sent < data.len(), "mptcp {mptcp}: A was held back: {tx:?}");
    }
}

#[test]
fn fixed_buffers_stay_fixed() {
    let mut cfg = EndpointConfig::default();
    cfg.tcp.fixed_buffers(256 << 10, 256 << 10);
    let (p, ca, cb) = run_transfer(
        Pair::new(cfg.clone(), cfg, Duration::from_millis(20)),
        8 << 20,
    );
    for (ep, h) in [(&p.a, ca), (&p.b, cb)] {
        let b = ep.conn_info(h).unwrap().buffers;
        assert_eq!((b.send_buffer, b.recv_buffer), (256 << 10, 256 << 10));
    }
}

/// Eight bulk transfers at once; returns the largest buffer total each endpoint reported
/// while they ran (sampled every step) and the memory-pressure counts.
fn eight_transfers(mptcp: bool, limit: usize) -> ([usize; 2], [u64; 2]) {
    let mut cfg = EndpointConfig::default();
    cfg.mptcp.enabled = mptcp;
    cfg.memory_pressure = limit;
    let mut p = Pair::new(cfg.clone(), cfg, Duration::from_millis(20));
    let conns: Vec<_> = (0..8).map(|i| p.establish(80 + i)).collect();
    let data: Vec<Vec<u8>> = (0..8).map(|i| pattern(8 << 20, 100 + i)).collect();
    let mut sent = [0usize; 8];
    let mut got: Vec<Vec<u8>> = vec![Vec::new(); 8];
    let mut buf = vec![0u8; 65536];
    let mut peak = [0usize; 2];
    let done = p.run_until(Duration::from_secs(120), |p| {
        for (i, &(ca, cb)) in conns.iter().enumerate() {
            while sent[i] < data[i].len() {
                match p.a.send(ca, &data[i][sent[i]..]) {
                    Ok(n) if n > 0 => sent[i] += n,
                    _ => break,
                }
            }
            while let Ok(n) = p.b.recv(cb, &mut buf) {
                if n == 0 {
                    break;
                }
                got[i].extend_from_slice(&buf[..n]);
            }
        }
        peak[0] = peak[0].max(p.a.buffer_memory().0);
        peak[1] = peak[1].max(p.b.buffer_memory().0);
        got.iter().zip(&data).all(|(g, d)| g.len() >= d.len())
    });
    assert!(
        done,
        "mptcp {mptcp}, limit {limit}: transfers did not finish"
    );
    for (i, (g, d)) in got.iter().zip(&data).enumerate() {
        assert!(
            g == d,
            "mptcp {mptcp}, limit {limit}: transfer {i} not intact"
        );
    }
    let pressures = [
        p.a.counters().memory_pressures,
        p.b.counters().memory_pressures,
    ];
    (peak, pressures)
}

#[test]
fn memory_pressure_stops_growth_and_shrinks_buffers_without_losing_data() {
    for mptcp in [false, true] {
        // Without pressure (the 1 GiB default) the senders' buffers of eight 40 ms transfers
        // grow far past 16 MiB together (the receiver reads at once and holds little).
        let (free, n) = eight_transfers(mptcp, braid_proto::DEFAULT_MEMORY_PRESSURE);
        assert_eq!(n, [0, 0], "mptcp {mptcp}");
        assert!(free[0] > 16 << 20, "mptcp {mptcp}: {free:?}");
        // With a 4 MiB limit the sender goes under pressure, and its total stays near it:
        // what was queued when it started is kept, nothing more grows, and every byte arrives.
        let limit = 4 << 20;
        let (held, n) = eight_transfers(mptcp, limit);
        assert!(n[0] >= 1, "mptcp {mptcp}: {n:?}");
        assert!(
            held[0] < 2 * limit && held[1] < 2 * limit,
            "mptcp {mptcp}: {held:?} (free: {free:?})"
        );
    }
}
