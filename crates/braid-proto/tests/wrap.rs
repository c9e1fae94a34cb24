//! Sequence spaces that wrap within the first megabytes: subflow ISNs just below 2^32 and IDSNs
//! just below 2^31, 2^32 and 2^64 (the `iss_base` / `idsn_base` test hooks), for TCP and for
//! MPTCP with either end sending, one or two subflows, DSS checksums, loss and reordering.
//! Every case moves 4 MiB each way through 256 KiB buffers and checks that the data arrived intact and that the
//! sequence numbers on the wire really crossed the boundary.

mod common;

use braid_proto::rng::Rng;
use braid_proto::{ConnHandle, EndpointConfig};
use braid_wire::mptcp::MptcpOption;
use common::{mp_opts, pattern, two_path_pair, Dir, Pair, Verdict};
use std::time::Duration;

const N: usize = 4 << 20;
/// ISNs start here plus a random 16-bit offset: the 32-bit space wraps after 64–128 KiB.
const ISS_NEAR_WRAP: u32 = u32::MAX - (128 << 10);

#[derive(Clone, Copy, Debug)]
struct Case {
    mptcp: bool,
    paths: usize,
    /// IDSN base: the data sequence space starts at this value plus up to 1 MiB.
    idsn: u64,
    checksum: bool,
    /// Drop this share of data segments (per mille) and hold back the same share for one
    /// packet (reordering).
    loss_permille: u32,
}

fn config(c: Case) -> EndpointConfig {
    let mut cfg = EndpointConfig::default();
    // Buffers far smaller than the transfer: nothing arrives unless every acknowledgment
    // (subflow ACK and DATA_ACK) across the wrap is understood.
    cfg.tcp.fixed_buffers(256 << 10, 256 << 10);
    cfg.tcp.iss_base = Some(ISS_NEAR_WRAP);
    cfg.mptcp.enabled = c.mptcp;
    cfg.mptcp.checksum = c.checksum;
    cfg.mptcp.idsn_base = Some(c.idsn);
    cfg
}

/// A filter that drops and reorders data-carrying segments, deterministically.
fn lossy(permille: u32, seed: u64) -> impl FnMut(Dir, &[u8]) -> Verdict {
    let mut rng = Rng::new(seed);
    let mut held: [Option<Vec<u8>>; 2] = [None, None];
    move |dir, p| {
        let (_, tcp) = braid_wire::parse_ip_tcp(p).expect("valid packet");
        let slot = &mut held[dir as usize];
        if tcp.payload.is_empty() {
            return Verdict::Pass;
        }
        let r = rng.next_u32() % 1000;
        if r < permille {
            return Verdict::Drop;
        }
        if r < 2 * permille && slot.is_none() {
            *slot = Some(p.to_vec());
            return Verdict::Drop;
        }
        match slot.take() {
            Some(h) => Verdict::Replace(vec![p.to_vec(), h]),
            None => Verdict::Pass,
        }
    }
}

/// Sends `data` from the sending side of `dir` and reads it on the other side.
fn pump(p: &mut Pair, dir: Dir, tx: ConnHandle, rx: ConnHandle, data: &[u8]) -> Vec<u8> {
    let (mut sent, mut got) = (0, Vec::new());
    let mut buf = vec![0u8; 65536];
    p.run_until(Duration::from_secs(120), |p| {
        let (s, r) = match dir {
            Dir::AtoB => (&mut p.a, &mut p.b),
            Dir::BtoA => (&mut p.b, &mut p.a),
        };
        while sent < data.len() {
            match s.send(tx, &data[sent..]) {
                Ok(n) if n > 0 => sent += n,
                _ => break,
            }
        }
        while let Ok(n) = r.recv(rx, &mut buf) {
            if n == 0 {
                break;
            }
            got.extend_from_slice(&buf[..n]);
        }
        got.len() >= data.len()
    });
    got
}

/// (lowest, highest) subflow sequence number and 64-bit DSN of the data segments sent in `dir`.
fn seen(p: &Pair, dir: Dir) -> ((u32, u32), (u64, u64)) {
    let (mut seq, mut dsn) = ((u32::MAX, 0), (u64::MAX, 0));
    for (_, d, pkt) in &p.log {
        if *d != dir {
            continue;
        }
        let (_, tcp) = braid_wire::parse_ip_tcp(pkt).expect("valid packet");
        if tcp.payload.is_empty() {
            continue;
        }
        seq = (seq.0.min(tcp.seq), seq.1.max(tcp.seq));
        for o in mp_opts(pkt) {
            if let MptcpOption::Dss(d) = o {
                if let Some(m) = d.mapping.filter(|m| m.dsn.wide) {
                    dsn = (dsn.0.min(m.dsn.value), dsn.1.max(m.dsn.value));
                }
            }
        }
    }
    (seq, dsn)
}

fn run(c: Case) {
    let cfg = config(c);
    let mut p = if c.paths == 2 {
        two_path_pair(cfg)
    } else {
        Pair::new(cfg.clone(), cfg, Duration::from_millis(10))
    };
    if c.loss_permille > 0 {
        p.filter = Some(Box::new(lossy(c.loss_permille, c.idsn ^ 7)));
    }
    let (ca, cb) = p.establish(80);
    if c.paths == 2 {
        assert!(
            p.run_until(Duration::from_secs(5), |p| common::live_subflows(
                p, true, ca
            ) == 2),
            "{c:?}: the second subflow did not come up"
        );
    }
    for (dir, tx, rx, seed) in [(Dir::AtoB, ca, cb, 1), (Dir::BtoA, cb, ca, 2)] {
        let data = pattern(N, seed);
        let got = pump(&mut p, dir, tx, rx, &data);
        assert!(
            got == data,
            "{c:?} {dir:?}: {} of {} bytes, intact prefix {}",
            got.len(),
            data.len(),
            got.iter().zip(&data).take_while(|(a, b)| a == b).count()
        );
        let ((lo, hi), (dlo, dhi)) = seen(&p, dir);
        // The subflow sequence space wrapped: numbers just below 2^32 and just above 0.
        assert!(
            lo < 1 << 24 && hi > u32::MAX - (1 << 24),
            "{c:?} {dir:?}: no 32-bit wrap ({lo:#x}..{hi:#x})"
        );
        if c.mptcp {
            // The data sequence space crossed the chosen boundary (base + 2^20 at most, plus
            // the 4 MiB sent).
            let boundary = c.idsn.wrapping_add(2 << 20) & !((2 << 20) - 1);
            let crossed = if boundary == 0 {
                dhi > u64::MAX - (4 << 20) && dlo < (8 << 20)
            } else {
                dlo < boundary && dhi >= boundary
            };
            assert!(
                crossed,
                "{c:?} {dir:?}: DSNs {dlo:#x}..{dhi:#x} did not cross {boundary:#x}"
            );
            let info = p.a.conn_info(ca).and_then(|i| i.mptcp).expect("MPTCP");
            assert!(!info.fallback, "{c:?}: fell back to TCP");
        }
    }
}

/// IDSN bases: the data sequence space crosses 2^31, 2^32 and 2^64 in the first 2 MiB.
const NEAR_2_31: u64 = (1 << 31) - (1 << 20);
const NEAR_2_32: u64 = (1 << 32) - (1 << 20);
const NEAR_2_64: u64 = 0u64.wrapping_sub(1 << 20);

fn case(paths: usize, idsn: u64, checksum: bool, loss_permille: u32) -> Case {
    Case {
        mptcp: true,
        paths,
        idsn,
        checksum,
        loss_permille,
    }
}

#[test]
fn tcp_wraps_cleanly() {
    for loss in [0, 10] {
        run(Case {
            mptcp: false,
            ..case(1, 0, false, loss)
        });
    }
}

#[test]
fn mptcp_one_subflow_wraps_cleanly() {
    for idsn in [NEAR_2_31, NEAR_2_32, NEAR_2_64] {
        run(case(1, idsn, false, 0));
    }
}

#[test]
fn mptcp_two_subflows_wrap_cleanly() {
    for idsn in [NEAR_2_31, NEAR_2_32, NEAR_2_64] {
        run(case(2, idsn, false, 0));
    }
}

#[test]
fn mptcp_with_checksums_wraps_cleanly() {
    for idsn in [NEAR_2_32, NEAR_2_64] {
        run(case(1, idsn, true, 0));
        run(case(2, idsn, true, 10));
    }
}

#[test]
fn mptcp_wraps_cleanly_with_loss_and_reordering() {
    for idsn in [NEAR_2_31, NEAR_2_32, NEAR_2_64] {
        run(case(1, idsn, false, 10));
        run(case(2, idsn, false, 20));
    }
}
