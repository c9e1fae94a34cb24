//! Robustness: endpoints with a live connection fed arbitrary bytes, mutated real packets and
//! crafted segments never panic; when the garbage could not be accepted (bad checksum, or a
//! sequence number outside the window, RST included) the connection still carries a transfer.
mod common;
use braid_proto::{ConnHandle, TcpState};
use braid_wire::checksum;
use common::*;
use proptest::prelude::*;
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

/// One piece of garbage.
#[derive(Clone, Debug)]
enum Garbage {
    /// Arbitrary bytes.
    Bytes(Vec<u8>),
    /// A packet from the log with bytes overwritten; `fix` recomputes the TCP checksum so the
    /// mutation reaches the engine.
    Mutated {
        pick: usize,
        edits: Vec<(usize, u8)>,
        fix: bool,
    },
    /// A well-formed segment; `seq_off` is taken relative to the receiver's RCV.NXT.
    Crafted {
        to_b: bool,
        seq_off: u32,
        ack_off: u32,
        flags: u8,
        window: u16,
        mss: Option<u16>,
        wscale: Option<u8>,
        sack_perm: bool,
        ts: Option<(u32, u32)>,
        sack: Vec<(u32, u32)>,
        payload: Vec<u8>,
    },
}

fn garbage() -> impl Strategy<Value = Garbage> {
    prop_oneof![
        proptest::collection::vec(any::<u8>(), 0..120).prop_map(Garbage::Bytes),
        (
            any::<usize>(),
            proptest::collection::vec((0usize..80, any::<u8>()), 1..6),
            any::<bool>()
        )
            .prop_map(|(pick, edits, fix)| Garbage::Mutated { pick, edits, fix }),
        (
            any::<bool>(),
            any::<u32>(),
            any::<u32>(),
            any::<u8>(),
            any::<u16>(),
            proptest::option::of(any::<u16>()),
            proptest::option::of(any::<u8>()),
            any::<bool>(),
            proptest::option::of((any::<u32>(), any::<u32>())),
            proptest::collection::vec((any::<u32>(), any::<u32>()), 0..4),
            proptest::collection::vec(any::<u8>(), 0..64),
        )
            .prop_map(
                |(
                    to_b,
                    seq_off,
                    ack_off,
                    flags,
                    window,
                    mss,
                    wscale,
                    sack_perm,
                    ts,
                    sack,
                    payload,
                )| {
                    Garbage::Crafted {
                        to_b,
                        seq_off,
                        ack_off,
                        flags,
                        window,
                        mss,
                        wscale,
                        sack_perm,
                        ts,
                        sack,
                        payload,
                    }
                }
            ),
    ]
}

/// Recomputes the TCP checksum of an IPv4 packet (no-op when it is too short).
fn fix_checksum(p: &mut [u8]) {
    if p.len() < 40 || p[0] >> 4 != 4 {
        return;
    }
    let ihl = ((p[0] & 0xf) as usize) * 4;
    let total = u16::from_be_bytes([p[2], p[3]]) as usize;
    if ihl < 20 || total > p.len() || total < ihl + 20 {
        return;
    }
    let src = std::net::Ipv4Addr::new(p[12], p[13], p[14], p[15]);
    let dst = std::net::Ipv4Addr::new(p[16], p[17], p[18], p[19]);
    p[ihl + 16] = 0;
    p[ihl + 17] = 0;
    let seg = &p[ihl..total];
    let sum = checksum::combine(
        checksum::pseudo_header_v4(src, dst, 6, seg.len() as u32),
        checksum::ones_complement_sum(seg),
    );
    let c = checksum::finish(sum).to_be_bytes();
    p[ihl + 16] = c[0];
    p[ihl + 17] = c[1];
}

/// The receiver's RCV.NXT on an idle connection: one past the last byte the sender put on the wire.
fn rcv_nxt(p: &Pair, dir: Dir) -> u32 {
    p.segs(dir, 0)
        .iter()
        .filter(|(_, s)| !s.rst())
        .map(|(_, s)| s.seq.wrapping_add(s.seg_len()))
        .max_by(|a, b| (a.wrapping_sub(*b) as i32).cmp(&0))
        .unwrap()
}

struct Setup {
    p: Pair,
    ca: ConnHandle,
    cb: ConnHandle,
    /// (A's socket, B's socket)
    sa: SocketAddr,
    sb: SocketAddr,
}

fn setup() -> Setup {
    let mut p = Pair::default_pair();
    let (ca, cb) = p.establish(80);
    let d = pattern(100_000, 1);
    assert!(p.transfer(ca, cb, &d, Duration::from_secs(10)) == d);
    let d = pattern(20_000, 2);
    assert!(p.transfer_dir(Dir::BtoA, cb, ca, &d, Duration::from_secs(10)) == d);
    p.run_for(Duration::from_secs(1));
    let sa = p.a.conn_info(ca).unwrap().local;
    let sb = SocketAddr::new(B, 80);
    Setup { p, ca, cb, sa, sb }
}

/// Applies one piece of garbage. `safe` keeps crafted segments out of the receiver's window so
/// that they must all be discarded. Returns the packet and its direction.
fn build(s: &Setup, g: &Garbage, safe: bool) -> (Dir, Vec<u8>) {
    match g {
        Garbage::Bytes(b) => (Dir::AtoB, b.clone()),
        Garbage::Mutated { pick, edits, fix } => {
            let (_, d, pkt) = &s.p.log[pick % s.p.log.len()];
            let mut pkt = pkt.clone();
            for &(i, v) in edits {
                // Leave the IP header alone only in safe mode (addresses, lengths).
                let i = if safe { 20 + i } else { i };
                if i < pkt.len() {
                    pkt[i] = v;
                }
            }
            if *fix && !safe {
                fix_checksum(&mut pkt);
            }
            (*d, pkt)
        }
        Garbage::Crafted {
            to_b,
            seq_off,
            ack_off,
            flags,
            window,
            mss,
            wscale,
            sack_perm,
            ts,
            sack,
            payload,
        } => {
            let dir = if *to_b { Dir::AtoB } else { Dir::BtoA };
            let nxt = rcv_nxt(&s.p, dir);
            let peer_nxt = rcv_nxt(&s.p, if *to_b { Dir::BtoA } else { Dir::AtoB });
            let mut seq_off = *seq_off;
            let mut flags = *flags;
            if safe {
                // Entirely below RCV.NXT (old duplicate) or beyond 64 MiB of the window.
                let len = payload.len() as u32 + 2;
                seq_off = if seq_off & 1 == 0 {
                    0u32.wrapping_sub(len + (seq_off >> 4) % (1 << 29))
                } else {
                    (64 << 20) + (seq_off >> 4) % (1 << 29)
                };
                // An in-window SYN only draws a challenge ACK; keep flags as they are. URG is
                // not supported and not interesting.
                flags &= !0x20;
            }
            let mut seg = Seg::new(
                nxt.wrapping_add(seq_off),
                peer_nxt.wrapping_add(*ack_off),
                flags,
            );
            seg.window = *window;
            seg.mss = *mss;
            seg.wscale = *wscale;
            seg.sack_perm = *sack_perm;
            seg.ts = *ts;
            seg.sack = sack
                .iter()
                .map(|&(l, r)| (peer_nxt.wrapping_add(l), peer_nxt.wrapping_add(r)))
                .collect();
            seg.payload = payload.clone();
            let (src, dst) = if *to_b { (s.sa, s.sb) } else { (s.sb, s.sa) };
            (dir, seg.build(src, dst))
        }
    }
}

fn deliver(s: &mut Setup, dir: Dir, pkt: &[u8]) {
    s.p.deliver_now(dir, pkt);
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    /// Anything at all, including in-window RSTs and data: no panic, and both endpoints keep
    /// working (a fresh connection still completes).
    #[test]
    fn garbage_never_panics(gs in proptest::collection::vec(garbage(), 1..40)) {
        let mut s = setup();
        // Half of the garbage lands mid-transfer, to reach the SACK and recovery paths.
        let data = pattern(300_000, 5);
        let mut sent = 0;
        for (i, g) in gs.iter().enumerate() {
            if i % 2 == 0 && sent < data.len() {
                if let Ok(n) = s.p.a.send(s.ca, &data[sent..(sent + 20_000).min(data.len())]) {
                    sent += n;
                }
                s.p.run_for(Duration::from_millis(3));
            }
            let (dir, pkt) = build(&s, g, false);
            deliver(&mut s, dir, &pkt);
            if i % 7 == 0 {
                // Raw bytes to a closed port and from an address that is not ours, too.
                let mut other = pkt.clone();
                if other.len() > 20 { other[19] ^= 0x55; }
                s.p.b.handle_packet(s.p.now, &other);
            }
        }
        s.p.run_for(Duration::from_secs(400));
        let _ = s.p.a.conn_info(s.ca);
        let _ = s.p.b.conn_info(s.cb);
        // The endpoints still work: a new connection transfers intact.
        let (ca, cb) = {
            s.p.b.listen(81).unwrap();
            let ca = s.p.a.connect(s.p.now, A, SocketAddr::new(B, 81)).unwrap();
            let mut cb = None;
            let ok = s.p.run_until(Duration::from_secs(30), |p| {
                if cb.is_none() { cb = p.b.accept(81); }
                cb.is_some() && p.a.conn_info(ca).is_some_and(|i| i.state == TcpState::Established)
            });
            prop_assert!(ok);
            (ca, cb.unwrap())
        };
        let d = pattern(50_000, 9);
        prop_assert!(s.p.transfer(ca, cb, &d, Duration::from_secs(30)) == d);
    }

    /// Garbage that cannot be accepted — bad checksums, and well-formed segments (any flags,
    /// RST and SYN included, any options) whose sequence numbers lie outside the receiver's
    /// window — leaves the connection intact: it still completes a transfer both ways.
    #[test]
    fn unacceptable_garbage_leaves_the_connection_usable(
        gs in proptest::collection::vec(garbage(), 1..60)
    ) {
        let mut s = setup();
        for g in &gs {
            let (dir, pkt) = build(&s, g, true);
            deliver(&mut s, dir, &pkt);
        }
        prop_assert_eq!(s.p.a.conn_info(s.ca).unwrap().state, TcpState::Established);
        prop_assert_eq!(s.p.b.conn_info(s.cb).unwrap().state, TcpState::Established);
        let d = pattern(200_000, 3);
        let got = s.p.transfer(s.ca, s.cb, &d, Duration::from_secs(60));
        prop_assert!(got == d, "A→B got {} of {}", got.len(), d.len());
        let d = pattern(50_000, 4);
        let got = s.p.transfer_dir(Dir::BtoA, s.cb, s.ca, &d, Duration::from_secs(60));
        prop_assert!(got == d, "B→A got {} of {}", got.len(), d.len());
        let _: IpAddr = A;
    }
}
