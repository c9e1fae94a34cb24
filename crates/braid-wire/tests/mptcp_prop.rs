//! Property tests for the MPTCP sub-option codec: every variant round-trips byte-exactly, and
//! parse never panics on arbitrary bytes (and is consistent with emit when it succeeds).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use braid_wire::mptcp::{
    AddAddr, CapableFlags, DataSeq, Dss, DssMapping, MpCapable, MptcpOption, ResetReason,
    MAX_BODY_LEN,
};
use proptest::prelude::*;

/// Leaks a vector so a generated option can borrow it for `'static` (test-only, a few bytes).
fn leak(v: Vec<u8>) -> &'static [u8] {
    v.leak()
}

fn data_seq() -> impl Strategy<Value = DataSeq> {
    prop_oneof![
        any::<u32>().prop_map(DataSeq::narrow),
        any::<u64>().prop_map(DataSeq::wide),
    ]
}

fn mp_capable() -> impl Strategy<Value = MptcpOption<'static>> {
    (
        0u8..16,
        any::<u8>(),
        any::<u64>(),
        any::<u64>(),
        any::<u16>(),
        proptest::option::of(any::<u16>()),
        0..4,
    )
        .prop_map(|(version, flags, ks, kr, len, csum, form)| {
            let flags = CapableFlags(flags);
            let mut c = match form {
                0 => MpCapable::syn(flags),
                1 => MpCapable::syn_ack(flags, ks),
                2 => MpCapable::ack(flags, ks, kr),
                _ => MpCapable::ack_with_data(flags, ks, kr, len, csum),
            };
            c.version = version;
            MptcpOption::MpCapable(c)
        })
}

fn mp_join() -> impl Strategy<Value = MptcpOption<'static>> {
    prop_oneof![
        (any::<bool>(), any::<u8>(), any::<u32>(), any::<u32>()).prop_map(
            |(backup, addr_id, token, nonce)| MptcpOption::MpJoinSyn {
                backup,
                addr_id,
                token,
                nonce
            }
        ),
        (any::<bool>(), any::<u8>(), any::<u64>(), any::<u32>()).prop_map(
            |(backup, addr_id, hmac, nonce)| MptcpOption::MpJoinSynAck {
                backup,
                addr_id,
                hmac,
                nonce
            }
        ),
        any::<[u8; 20]>().prop_map(|hmac| MptcpOption::MpJoinAck { hmac }),
    ]
}

fn dss() -> impl Strategy<Value = MptcpOption<'static>> {
    let mapping = (
        data_seq(),
        any::<u32>(),
        any::<u16>(),
        proptest::option::of(any::<u16>()),
    )
        .prop_map(|(dsn, subflow_seq, data_len, checksum)| DssMapping {
            dsn,
            subflow_seq,
            data_len,
            checksum,
        });
    (
        any::<bool>(),
        proptest::option::of(data_seq()),
        proptest::option::of(mapping),
    )
        .prop_map(|(data_fin, data_ack, mapping)| {
            MptcpOption::Dss(Dss {
                data_fin,
                data_ack,
                mapping,
            })
        })
}

fn add_addr() -> impl Strategy<Value = MptcpOption<'static>> {
    let addr = prop_oneof![
        any::<[u8; 4]>().prop_map(|a| IpAddr::V4(Ipv4Addr::from(a))),
        any::<[u8; 16]>().prop_map(|a| IpAddr::V6(Ipv6Addr::from(a))),
    ];
    (
        any::<u8>(),
        addr,
        proptest::option::of(any::<u16>()),
        proptest::option::of(any::<u64>()),
    )
        .prop_map(|(addr_id, addr, port, hmac)| {
            MptcpOption::AddAddr(AddAddr {
                addr_id,
                addr,
                port,
                hmac,
            })
        })
}

fn others() -> impl Strategy<Value = MptcpOption<'static>> {
    prop_oneof![
        proptest::collection::vec(any::<u8>(), 1..=36).prop_map(|ids| MptcpOption::RemoveAddr {
            addr_ids: leak(ids)
        }),
        (any::<bool>(), proptest::option::of(any::<u8>()))
            .prop_map(|(backup, addr_id)| MptcpOption::MpPrio { backup, addr_id }),
        any::<u64>().prop_map(|dsn| MptcpOption::MpFail { dsn }),
        any::<u64>().prop_map(|receiver_key| MptcpOption::MpFastclose { receiver_key }),
        (any::<bool>(), any::<u8>()).prop_map(|(transient, code)| MptcpOption::MpTcpRst {
            transient,
            reason: ResetReason::from_code(code),
        }),
        (
            9u8..16,
            0u8..16,
            proptest::collection::vec(any::<u8>(), 0..=37)
        )
            .prop_map(|(subtype, flags, data)| MptcpOption::Unknown {
                subtype,
                flags,
                data: leak(data),
            }),
    ]
}

fn any_option() -> impl Strategy<Value = MptcpOption<'static>> {
    prop_oneof![mp_capable(), mp_join(), dss(), add_addr(), others()]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2048))]

    /// Every variant emits a body that parses back to the same value, and the bytes round-trip.
    #[test]
    fn round_trip(opt in any_option()) {
        let body = opt.emit_to_vec();
        prop_assert_eq!(body.len(), opt.emit_len());
        prop_assert!(body.len() <= 38, "every generated option fits a TCP header");
        prop_assert_eq!(body[0] >> 4, opt.subtype());
        let back = MptcpOption::parse(&body);
        prop_assert_eq!(back, Ok(opt));
        prop_assert_eq!(back.unwrap().emit_to_vec(), body);
    }

    /// Removing or adding octets at the end never panics, and what still parses is consistent.
    #[test]
    fn resized_bodies(opt in any_option(), cut in 0usize..40, extra in proptest::collection::vec(any::<u8>(), 0..4)) {
        let mut body = opt.emit_to_vec();
        body.truncate(cut);
        body.extend_from_slice(&extra);
        if let Ok(o) = MptcpOption::parse(&body) {
            prop_assert_eq!(o.emit_len(), body.len());
            let again = o.emit_to_vec();
            prop_assert_eq!(MptcpOption::parse(&again), Ok(o));
        }
    }

    /// Arbitrary bytes: parse never panics; on success, emit keeps the length and re-parses equal.
    #[test]
    fn arbitrary_bytes(body in proptest::collection::vec(any::<u8>(), 0..300)) {
        let parsed = MptcpOption::parse(&body);
        if body.is_empty() || body.len() > MAX_BODY_LEN {
            prop_assert!(parsed.is_err());
        }
        if let Ok(o) = parsed {
            let again = o.emit_to_vec();
            prop_assert_eq!(again.len(), body.len());
            prop_assert_eq!(again[0] >> 4, body[0] >> 4);
            prop_assert_eq!(MptcpOption::parse(&again), Ok(o));
        }
    }

    /// Arbitrary bytes behind a valid subtype nibble, so every parser is exercised.
    #[test]
    fn arbitrary_bytes_per_subtype(st in 0u8..9, body in proptest::collection::vec(any::<u8>(), 1..40)) {
        let mut body = body;
        body[0] = (st << 4) | (body[0] & 0x0f);
        if let Ok(o) = MptcpOption::parse(&body) {
            prop_assert_eq!(o.subtype(), st);
            let again = o.emit_to_vec();
            prop_assert_eq!(again.len(), body.len());
            prop_assert_eq!(MptcpOption::parse(&again), Ok(o));
        }
    }
}
