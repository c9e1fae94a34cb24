//! Transmit offloads (TSO and checksum offload, as over a TUN device with a virtio header):
//! super-segments cut by the "device" (here `braid_wire::vnet::split`, as the kernel would)
//! carry the data intact, plain TCP and MPTCP, with and without loss; each MPTCP super-segment
//! carries exactly one DSS mapping, which covers it, and never a control option.
mod common;
use braid_proto::{EndpointConfig, TxOffload, TSO_MAX_PAYLOAD};
use braid_wire::mptcp::MptcpOption;
use common::*;
use std::cell::Cell;
use std::rc::Rc;
use std::time::Duration;

fn run(mptcp: bool, drop_every: usize) {
    let mut cfg = EndpointConfig::default();
    cfg.mptcp.enabled = mptcp;
    let mut p = Pair::new(cfg.clone(), cfg, Duration::from_millis(5));
    let (ca, cb) = p.establish(80);
    let mss = usize::from(p.a.conn_info(ca).unwrap().mss);
    p.a.set_tx_offload(TxOffload {
        csum: true,
        tso: TSO_MAX_PAYLOAD,
    });
    let supers = Rc::new(Cell::new(0u32));
    let seen = supers.clone();
    let mut n = 0usize;
    let mut scratch = Vec::new();
    p.filter = Some(Box::new(move |dir, pkt| {
        if dir != Dir::AtoB {
            return Verdict::Pass;
        }
        // Partial checksums: the parser refuses them until the "device" completes them.
        let (_, seg) = braid_wire::parse_ip_tcp_trusted(pkt).expect("engine output parses");
        let gso = if pkt.len() > 1500 {
            seen.set(seen.get() + 1);
            assert!(
                seg.payload.len().is_multiple_of(mss),
                "whole packets of one MSS"
            );
            if mptcp {
                let opts: Vec<_> = MptcpOption::parse_list(seg.options.mptcp)
                    .map(|o| o.expect("well-formed"))
                    .collect();
                assert_eq!(opts.len(), 1, "one MPTCP option: {opts:?}");
                let MptcpOption::Dss(d) = &opts[0] else {
                    panic!("a DSS on a super-segment: {opts:?}");
                };
                let m = d.mapping.expect("a mapping on every super-segment");
                assert!(
                    usize::from(m.data_len) >= seg.payload.len(),
                    "the mapping covers the burst"
                );
            }
            mss
        } else {
            0
        };
        let mut out = Vec::new();
        braid_wire::vnet::split(pkt, gso, &mut scratch, |q| {
            n += 1;
            if drop_every == 0 || !n.is_multiple_of(drop_every) {
                out.push(q.to_vec());
            }
        })
        .expect("cut");
        Verdict::Replace(out)
    }));
    let data = pattern(8 << 20, 5);
    let got = p.transfer(ca, cb, &data, Duration::from_secs(300));
    assert!(got == data, "data intact ({} of {})", got.len(), data.len());
    assert!(supers.get() > 10, "{} super-segments", supers.get());
    let c = p.b.counters();
    assert_eq!(c.bad_checksum, 0);
    assert_eq!(c.mp_dss_not_matching, 0);
    if drop_every > 0 {
        let info = p.a.conn_info(ca).unwrap();
        assert!(info.bytes_retransmitted > 0, "{info:?}");
    }
}

#[test]
fn tso_plain_tcp() {
    run(false, 0);
}

#[test]
fn tso_plain_tcp_with_loss() {
    run(false, 97);
}

#[test]
fn tso_mptcp() {
    run(true, 0);
}

#[test]
fn tso_mptcp_with_loss() {
    run(true, 97);
}
