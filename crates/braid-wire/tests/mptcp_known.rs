//! MPTCP sub-options: byte-exact encodings hand-assembled from the figures of RFC 8684 §3 (and, where
//! noted, matching what the Linux kernel sends), plus length and truncation checks.
//!
//! Each vector is the whole TCP option (kind 30, length, body) so the length octet can be read
//! against the RFC; the codec sees only the body (`&opt[2..]`).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use braid_wire::mptcp::{
    dss_checksum, dss_checksum_ok, subtype, AddAddr, CapableFlags, DataSeq, Dss, DssMapping,
    MpCapable, MptcpOption, ResetReason,
};
use braid_wire::tcp::kind;
use braid_wire::{Error, TcpFlags, TcpOptions, TcpPacket, TcpRepr};

const KEY_A: [u8; 8] = [0x11, 0x22, 0x33, 0x44, 0x55, 0x66, 0x77, 0x88];
const KEY_B: [u8; 8] = [0x99, 0xaa, 0xbb, 0xcc, 0xdd, 0xee, 0xff, 0x01];

fn cat(parts: &[&[u8]]) -> Vec<u8> {
    parts.concat()
}

/// Checks `opt` (a whole kind-30 option) parses to `want` and `want` emits exactly `opt`'s body.
fn check(opt: &[u8], want: MptcpOption<'_>) {
    assert_eq!(opt[0], kind::MPTCP);
    assert_eq!(usize::from(opt[1]), opt.len(), "length octet of {opt:02x?}");
    let body = &opt[2..];
    assert_eq!(MptcpOption::parse(body), Ok(want), "parse {opt:02x?}");
    assert_eq!(want.emit_len(), body.len());
    assert_eq!(want.emit_to_vec(), body, "emit {want:?}");
    let mut buf = [0xeeu8; 64];
    assert_eq!(want.emit(&mut buf), body.len());
    assert_eq!(&buf[..body.len()], body);
    assert!(
        buf[body.len()..].iter().all(|&b| b == 0xee),
        "wrote past emit_len"
    );
    assert_eq!(want.subtype(), body[0] >> 4);
}

#[test]
fn mp_capable_forms() {
    let ka = u64::from_be_bytes(KEY_A);
    let kb = u64::from_be_bytes(KEY_B);
    let h = CapableFlags(CapableFlags::HMAC_SHA256);
    // Linux SYN without checksums: version 1, flags H only.
    check(
        &[30, 4, 0x01, 0x01],
        MptcpOption::MpCapable(MpCapable::syn(h)),
    );
    // With checksums required (A) as Linux sends when net.mptcp.checksum_enabled=1.
    let ah = CapableFlags(CapableFlags::CHECKSUM_REQUIRED | CapableFlags::HMAC_SHA256);
    check(
        &[30, 4, 0x01, 0x81],
        MptcpOption::MpCapable(MpCapable::syn(ah)),
    );
    // SYN/ACK with C (Linux: deny join to id 0) and the sender's key.
    let ch = CapableFlags(CapableFlags::NO_JOIN_TO_SOURCE | CapableFlags::HMAC_SHA256);
    let o = cat(&[&[30, 12, 0x01, 0x21], &KEY_B]);
    check(&o, MptcpOption::MpCapable(MpCapable::syn_ack(ch, kb)));
    // Third ACK: sender's key then receiver's key.
    let o = cat(&[&[30, 20, 0x01, 0x01], &KEY_A, &KEY_B]);
    check(&o, MptcpOption::MpCapable(MpCapable::ack(h, ka, kb)));
    // ACK with data: data-level length 100; and with checksum.
    let o = cat(&[&[30, 22, 0x01, 0x01], &KEY_A, &KEY_B, &[0x00, 0x64]]);
    check(
        &o,
        MptcpOption::MpCapable(MpCapable::ack_with_data(h, ka, kb, 100, None)),
    );
    let o = cat(&[
        &[30, 24, 0x01, 0x81],
        &KEY_A,
        &KEY_B,
        &[0x05, 0xb4, 0xbe, 0xef],
    ]);
    check(
        &o,
        MptcpOption::MpCapable(MpCapable::ack_with_data(ah, ka, kb, 1460, Some(0xbeef))),
    );
}

#[test]
fn mp_capable_reports_version_and_flags() {
    // A version-0 SYN (RFC 6824: length 12 with the key) parses; the engine sees version 0.
    let o = cat(&[&[30, 12, 0x00, 0x81], &KEY_A]);
    let Ok(MptcpOption::MpCapable(c)) = MptcpOption::parse(&o[2..]) else {
        panic!("v0 SYN should parse");
    };
    assert_eq!(c.version, 0);
    assert_eq!(c.sender_key, Some(u64::from_be_bytes(KEY_A)));
    assert!(c.flags.checksum_required() && c.flags.hmac_sha256());
    assert!(!c.flags.extensibility() && !c.flags.no_join_to_source());
    // Version 2 and the B flag are reported, not rejected: the engine decides.
    let Ok(MptcpOption::MpCapable(c)) = MptcpOption::parse(&[0x02, 0x41]) else {
        panic!()
    };
    assert_eq!((c.version, c.flags.extensibility()), (2, true));
}

#[test]
fn mp_join_forms() {
    // SYN: B set, address id 2, token, nonce (RFC 8684 Figure 5).
    check(
        &[
            30, 12, 0x11, 0x02, 0xde, 0xad, 0xbe, 0xef, 0x01, 0x02, 0x03, 0x04,
        ],
        MptcpOption::MpJoinSyn {
            backup: true,
            addr_id: 2,
            token: 0xdead_beef,
            nonce: 0x0102_0304,
        },
    );
    // SYN/ACK: truncated HMAC (64 bits), nonce (Figure 6).
    let o = cat(&[&[30, 16, 0x10, 0x05], &KEY_A, &[0xca, 0xfe, 0xf0, 0x0d]]);
    check(
        &o,
        MptcpOption::MpJoinSynAck {
            backup: false,
            addr_id: 5,
            hmac: u64::from_be_bytes(KEY_A),
            nonce: 0xcafe_f00d,
        },
    );
    // Third ACK: 160 bits of HMAC (Figure 7).
    let hmac: [u8; 20] = core::array::from_fn(|i| i as u8 + 1);
    let o = cat(&[&[30, 24, 0x10, 0x00], &hmac]);
    check(&o, MptcpOption::MpJoinAck { hmac });
}

#[test]
fn dss_forms() {
    // Linux's usual data segment: 64-bit data ACK and 64-bit DSN mapping, no checksum
    // (flags m M a A = 0x0f), length 4 + 8 + 8 + 4 + 2 = 26.
    let o = cat(&[
        &[30, 26, 0x20, 0x0f],
        &KEY_A,
        &KEY_B,
        &[0, 0, 0, 1, 0x05, 0xa0],
    ]);
    let want = Dss {
        data_fin: false,
        data_ack: Some(DataSeq::wide(u64::from_be_bytes(KEY_A))),
        mapping: Some(DssMapping {
            dsn: DataSeq::wide(u64::from_be_bytes(KEY_B)),
            subflow_seq: 1,
            data_len: 1440,
            checksum: None,
        }),
    };
    check(&o, MptcpOption::Dss(want));
    // Same with a checksum: length 28.
    let o = cat(&[
        &[30, 28, 0x20, 0x0f],
        &KEY_A,
        &KEY_B,
        &[0, 0, 0, 1, 0x05, 0xa0, 0x12, 0x34],
    ]);
    let mut with_csum = want;
    with_csum.mapping.as_mut().unwrap().checksum = Some(0x1234);
    check(&o, MptcpOption::Dss(with_csum));
    // Linux's pure data ACK: 64-bit ack only (flags a A = 0x03), length 12.
    let o = cat(&[&[30, 12, 0x20, 0x03], &KEY_A]);
    check(
        &o,
        MptcpOption::Dss(Dss {
            data_ack: Some(DataSeq::wide(u64::from_be_bytes(KEY_A))),
            ..Dss::default()
        }),
    );
    // 32-bit data ACK only (A = 0x01), length 8: widened, width kept.
    check(
        &[30, 8, 0x20, 0x01, 0xff, 0xff, 0xff, 0xfe],
        MptcpOption::Dss(Dss {
            data_ack: Some(DataSeq {
                value: 0xffff_fffe,
                wide: false,
            }),
            ..Dss::default()
        }),
    );
    // 32-bit mapping only (M = 0x04), length 4 + 4 + 4 + 2 = 14.
    check(
        &[30, 14, 0x20, 0x04, 0, 0, 1, 0, 0, 0, 0, 9, 0, 10],
        MptcpOption::Dss(Dss {
            mapping: Some(DssMapping {
                dsn: DataSeq::narrow(256),
                subflow_seq: 9,
                data_len: 10,
                checksum: None,
            }),
            ..Dss::default()
        }),
    );
    // DATA_FIN on an otherwise empty mapping as Linux sends it (F M m a A = 0x1f, data-level
    // length 1, subflow sequence 0: RFC 8684 §3.3.3).
    let o = cat(&[&[30, 26, 0x20, 0x1f], &KEY_A, &KEY_B, &[0, 0, 0, 0, 0, 1]]);
    check(
        &o,
        MptcpOption::Dss(Dss {
            data_fin: true,
            data_ack: Some(DataSeq::wide(u64::from_be_bytes(KEY_A))),
            mapping: Some(DssMapping {
                dsn: DataSeq::wide(u64::from_be_bytes(KEY_B)),
                subflow_seq: 0,
                data_len: 1,
                checksum: None,
            }),
        }),
    );
    // 32-bit ack + 64-bit DSN + checksum: 4 + 4 + 8 + 4 + 2 + 2 = 24.
    let o = cat(&[
        &[30, 24, 0x20, 0x0d, 0, 0, 0, 7],
        &KEY_B,
        &[0, 0, 0, 3, 0, 4, 0xab, 0xcd],
    ]);
    check(
        &o,
        MptcpOption::Dss(Dss {
            data_fin: false,
            data_ack: Some(DataSeq::narrow(7)),
            mapping: Some(DssMapping {
                dsn: DataSeq::wide(u64::from_be_bytes(KEY_B)),
                subflow_seq: 3,
                data_len: 4,
                checksum: Some(0xabcd),
            }),
        }),
    );
}

#[test]
fn dss_reserved_bits_ignored_and_unused_width_flags() {
    // Reserved bits (low nibble of octet 0, top 3 bits of octet 1) are ignored on receipt; `a`
    // without `A` and `m` without `M` change nothing.
    let o = MptcpOption::parse(&[0x2f, 0xea]).unwrap();
    assert_eq!(o, MptcpOption::Dss(Dss::default()));
    assert_eq!(o.emit_to_vec(), [0x20, 0x00]);
    assert_eq!(o, MptcpOption::parse(&[0x20, 0x0a]).unwrap());
    // A checksum without a mapping is not a thing: two extra octets are malformed.
    assert_eq!(
        MptcpOption::parse(&[0x20, 0x01, 0, 0, 0, 5, 0, 0]),
        Err(Error::Malformed)
    );
}

#[test]
fn add_addr_forms() {
    let v4 = IpAddr::V4(Ipv4Addr::new(192, 0, 2, 1));
    let v6 = IpAddr::V6(Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 0x42));
    let a6 = [
        0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x42,
    ];
    let hm = u64::from_be_bytes(KEY_A);
    let mk = |addr, port, hmac| {
        MptcpOption::AddAddr(AddAddr {
            addr_id: 1,
            addr,
            port,
            hmac,
        })
    };
    // IPv4: 16 (HMAC), 18 (port + HMAC), 8 (echo), 10 (echo + port).
    check(
        &cat(&[&[30, 16, 0x30, 0x01, 192, 0, 2, 1], &KEY_A]),
        mk(v4, None, Some(hm)),
    );
    check(
        &cat(&[&[30, 18, 0x30, 0x01, 192, 0, 2, 1, 0x1f, 0x90], &KEY_A]),
        mk(v4, Some(8080), Some(hm)),
    );
    check(&[30, 8, 0x31, 0x01, 192, 0, 2, 1], mk(v4, None, None));
    check(
        &[30, 10, 0x31, 0x01, 192, 0, 2, 1, 0x1f, 0x90],
        mk(v4, Some(8080), None),
    );
    // IPv6: 28, 30, 20, 22.
    check(
        &cat(&[&[30, 28, 0x30, 0x01], &a6, &KEY_A]),
        mk(v6, None, Some(hm)),
    );
    check(
        &cat(&[&[30, 30, 0x30, 0x01], &a6, &[0, 80], &KEY_A]),
        mk(v6, Some(80), Some(hm)),
    );
    check(&cat(&[&[30, 20, 0x31, 0x01], &a6]), mk(v6, None, None));
    check(
        &cat(&[&[30, 22, 0x31, 0x01], &a6, &[0, 80]]),
        mk(v6, Some(80), None),
    );
    let MptcpOption::AddAddr(a) = mk(v6, Some(80), Some(hm)) else {
        unreachable!()
    };
    assert!(!a.is_echo() && a.echo().is_echo());
    assert_eq!(a.echo(), AddAddr { hmac: None, ..a });
}

#[test]
fn add_addr_echo_flag_must_match_hmac() {
    // E = 1 with an HMAC, or E = 0 without one: rejected (as Linux does).
    assert_eq!(
        MptcpOption::parse(&cat(&[&[0x31, 0x01, 192, 0, 2, 1], &KEY_A])),
        Err(Error::Malformed)
    );
    assert_eq!(
        MptcpOption::parse(&[0x30, 0x01, 192, 0, 2, 1]),
        Err(Error::Malformed)
    );
}

#[test]
fn remove_prio_fail_fastclose_tcprst_unknown() {
    check(
        &[30, 4, 0x40, 0x05],
        MptcpOption::RemoveAddr { addr_ids: &[5] },
    );
    check(
        &[30, 6, 0x40, 1, 2, 3],
        MptcpOption::RemoveAddr {
            addr_ids: &[1, 2, 3],
        },
    );
    // MP_PRIO as Linux sends it (length 3), and the form with an address id (length 4).
    check(
        &[30, 3, 0x51],
        MptcpOption::MpPrio {
            backup: true,
            addr_id: None,
        },
    );
    check(
        &[30, 4, 0x50, 0x07],
        MptcpOption::MpPrio {
            backup: false,
            addr_id: Some(7),
        },
    );
    check(
        &cat(&[&[30, 12, 0x60, 0x00], &KEY_B]),
        MptcpOption::MpFail {
            dsn: u64::from_be_bytes(KEY_B),
        },
    );
    check(
        &cat(&[&[30, 12, 0x70, 0x00], &KEY_A]),
        MptcpOption::MpFastclose {
            receiver_key: u64::from_be_bytes(KEY_A),
        },
    );
    check(
        &[30, 4, 0x81, 0x06],
        MptcpOption::MpTcpRst {
            transient: true,
            reason: ResetReason::MiddleboxInterference,
        },
    );
    check(
        &[30, 4, 0x80, 0x2a],
        MptcpOption::MpTcpRst {
            transient: false,
            reason: ResetReason::Other(42),
        },
    );
    // U, V, W are ignored on receipt.
    assert_eq!(
        MptcpOption::parse(&[0x8e, 0x02]),
        Ok(MptcpOption::MpTcpRst {
            transient: false,
            reason: ResetReason::LackOfResources
        })
    );
    // MP_EXPERIMENTAL and unassigned subtypes are kept whole.
    check(
        &[30, 5, 0xf3, 0xaa, 0xbb],
        MptcpOption::Unknown {
            subtype: 0xf,
            flags: 3,
            data: &[0xaa, 0xbb],
        },
    );
    check(
        &[30, 3, 0x90],
        MptcpOption::Unknown {
            subtype: 9,
            flags: 0,
            data: &[],
        },
    );
}

#[test]
fn reset_reason_codes() {
    for c in 0..=255u8 {
        let r = ResetReason::from_code(c);
        assert_eq!(r.code(), c);
        assert_eq!(matches!(r, ResetReason::Other(_)), c > 6);
    }
    assert_eq!(ResetReason::from_code(0), ResetReason::Unspecified);
    assert_eq!(ResetReason::from_code(1), ResetReason::MptcpError);
    assert_eq!(ResetReason::from_code(2), ResetReason::LackOfResources);
    assert_eq!(
        ResetReason::from_code(3),
        ResetReason::AdministrativelyProhibited
    );
    assert_eq!(
        ResetReason::from_code(4),
        ResetReason::TooMuchOutstandingData
    );
    assert_eq!(
        ResetReason::from_code(5),
        ResetReason::UnacceptablePerformance
    );
}

/// The body lengths (option length - 2) RFC 8684 allows for a subtype whose form does not depend
/// on flags; `None` for DSS (flag-dependent) and unknown subtypes (anything goes).
fn valid_body_lens(st: u8) -> Option<Vec<usize>> {
    Some(match st {
        subtype::MP_CAPABLE => vec![2, 10, 18, 20, 22],
        subtype::MP_JOIN => vec![10, 14, 22],
        subtype::REMOVE_ADDR => (2..=253).collect(),
        subtype::MP_PRIO => vec![1, 2],
        subtype::MP_FAIL | subtype::MP_FASTCLOSE => vec![10],
        subtype::MP_TCPRST => vec![2],
        _ => return None,
    })
}

#[test]
fn every_length_of_fixed_form_subtypes() {
    for st in 0..=8u8 {
        let Some(valid) = valid_body_lens(st) else {
            continue;
        };
        for len in 0..=260usize {
            let mut body = vec![0x5au8; len];
            if let Some(b) = body.first_mut() {
                *b = st << 4;
            }
            let r = MptcpOption::parse(&body);
            if len == 0 {
                assert_eq!(r, Err(Error::Truncated));
                continue;
            }
            assert_eq!(
                r.is_ok(),
                valid.contains(&len),
                "subtype {st} body len {len}"
            );
            if let Ok(o) = r {
                assert_eq!(o.emit_len(), len);
                assert_eq!(o.subtype(), st);
            }
        }
    }
}

#[test]
fn every_length_of_add_addr() {
    // Body lengths for E = 0 (with HMAC) and E = 1 (echo).
    let announce = [14usize, 16, 26, 28];
    let echo = [6usize, 8, 18, 20];
    for len in 1..=40usize {
        for (e, valid) in [(0u8, &announce), (1, &echo)] {
            let mut body = vec![0x77u8; len];
            body[0] = 0x30 | e;
            let r = MptcpOption::parse(&body);
            assert_eq!(r.is_ok(), valid.contains(&len), "E={e} body len {len}");
            if let Ok(MptcpOption::AddAddr(a)) = r {
                assert_eq!(a.is_echo(), e == 1);
                assert_eq!(a.addr.is_ipv6(), len >= 18);
                assert_eq!(MptcpOption::AddAddr(a).emit_len(), len);
            }
        }
    }
}

#[test]
fn every_length_of_dss_for_every_flag_combination() {
    for flags in 0..32u8 {
        let ack = match flags & 0x03 {
            0x01 => 4,
            0x03 => 8,
            _ => 0,
        };
        let map = flags & 0x04 != 0;
        let dsn = if flags & 0x08 != 0 { 8 } else { 4 };
        let base = 2 + ack + if map { dsn + 6 } else { 0 };
        for len in 1..=40usize {
            let mut body = vec![0x33u8; len];
            body[0] = 0x20;
            if len > 1 {
                body[1] = flags;
            }
            let r = MptcpOption::parse(&body);
            let ok = len > 1 && (len == base || (map && len == base + 2));
            assert_eq!(r.is_ok(), ok, "flags {flags:#04x} body len {len}");
            if let Ok(MptcpOption::Dss(d)) = r {
                assert_eq!(d.data_fin, flags & 0x10 != 0);
                assert_eq!(d.data_ack.is_some(), ack != 0);
                assert_eq!(d.mapping.is_some(), map);
                assert_eq!(
                    d.mapping.and_then(|m| m.checksum).is_some(),
                    len == base + 2
                );
                assert_eq!(MptcpOption::Dss(d).emit_len(), len);
            }
        }
    }
}

#[test]
fn truncated_and_extended_vectors() {
    // Every vector above, cut short or lengthened by one octet, is either rejected or is another
    // valid form that re-emits exactly the bytes given (e.g. a third ACK cut to a SYN/ACK).
    let vectors: Vec<Vec<u8>> = vec![
        cat(&[&[0x01, 0x81], &KEY_A, &KEY_B, &[0, 1, 2, 3]]),
        cat(&[&[0x10, 0x00], &KEY_A, &KEY_B, &[1, 2, 3, 4]]),
        cat(&[&[0x20, 0x0f], &KEY_A, &KEY_B, &[0, 0, 0, 1, 0, 2, 0, 3]]),
        cat(&[
            &[0x30, 0x01],
            &[0x20, 1, 0xd, 0xb8],
            &[0; 12],
            &[0, 80],
            &KEY_A,
        ]),
        vec![0x40, 1, 2, 3],
        vec![0x51, 7],
        cat(&[&[0x60, 0], &KEY_A]),
        cat(&[&[0x70, 0], &KEY_A]),
        vec![0x81, 0x06],
    ];
    for v in &vectors {
        for n in 0..v.len() + 2 {
            let mut body = v.clone();
            body.resize(n, 0);
            match MptcpOption::parse(&body) {
                Ok(o) => assert_eq!(o.emit_to_vec(), body, "{body:02x?}"),
                Err(e) => assert!(matches!(e, Error::Truncated | Error::Malformed)),
            }
        }
    }
}

#[test]
fn oversized_bodies_are_rejected() {
    let mut body = vec![0x40u8; 254];
    body[0] = 0x40;
    assert_eq!(MptcpOption::parse(&body), Err(Error::Malformed));
    body.truncate(253);
    assert!(MptcpOption::parse(&body).is_ok());
}

#[test]
fn through_a_tcp_segment() {
    // MP_CAPABLE on a SYN and DSS on data, carried in real TCP headers and read back.
    let syn = MptcpOption::MpCapable(MpCapable::syn(CapableFlags(CapableFlags::HMAC_SHA256)));
    let dss = MptcpOption::Dss(Dss {
        data_fin: false,
        data_ack: Some(DataSeq::wide(77)),
        mapping: Some(DssMapping {
            dsn: DataSeq::wide(1 << 40),
            subflow_seq: 1,
            data_len: 5,
            checksum: Some(dss_checksum(1 << 40, 1, 5, b"hello")),
        }),
    });
    let syn_body = syn.emit_to_vec();
    let dss_body = dss.emit_to_vec();
    for (body, want) in [(&syn_body, syn), (&dss_body, dss)] {
        let mut options = TcpOptions::default();
        assert!(options.mptcp.push(kind::MPTCP, body));
        let repr = TcpRepr {
            src_port: 40000,
            dst_port: 5201,
            seq: 1,
            ack: 2,
            flags: TcpFlags(TcpFlags::ACK),
            window: 1000,
            urgent: 0,
            options,
            payload: b"hello",
        };
        let mut buf = vec![0u8; repr.buffer_len()];
        repr.emit(&mut buf);
        let pkt = TcpPacket::new_checked(&buf[..]).unwrap();
        let back = TcpRepr::parse(&pkt).unwrap();
        let parsed: Vec<_> = MptcpOption::parse_list(back.options.mptcp).collect();
        assert_eq!(parsed, vec![Ok(want)]);
        if let MptcpOption::Dss(Dss {
            mapping: Some(m), ..
        }) = want
        {
            assert!(dss_checksum_ok(
                m.dsn.value,
                m.subflow_seq,
                m.data_len,
                m.checksum.unwrap(),
                back.payload
            ));
        }
    }
}

#[test]
fn dss_checksum_known_answer() {
    // Pseudo-header: DSN 0x0000000100000002, subflow seq 3, length 4, zero checksum; payload
    // "abcd". 16-bit big-endian words: 0000 0001 0000 0002 0000 0003 0004 0000 6162 6364.
    // Sum = 1 + 2 + 3 + 4 + 0x6162 + 0x6364 = 0xc4d0; complement 0x3b2f.
    let c = dss_checksum(0x1_0000_0002, 3, 4, b"abcd");
    assert_eq!(c, 0x3b2f);
    assert!(dss_checksum_ok(0x1_0000_0002, 3, 4, c, b"abcd"));
    assert!(!dss_checksum_ok(0x1_0000_0002, 3, 4, c, b"abce"));
    assert!(!dss_checksum_ok(0x2_0000_0002, 3, 4, c, b"abcd"));
    assert!(!dss_checksum_ok(0x1_0000_0002, 3, 5, c, b"abcd"));
}
