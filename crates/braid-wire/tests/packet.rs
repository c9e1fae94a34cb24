//! Whole-packet tests: fixed examples, malformed inputs and property tests over IPv4/IPv6 + TCP.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use braid_wire::checksum;
use braid_wire::ip::{Ipv4Packet, Ipv6Packet};
use braid_wire::tcp::{TcpOptionIter, TcpPacket};
use braid_wire::{
    emit_ip_tcp, parse_ip_tcp, Error, IpRepr, Ipv4Repr, Ipv6Repr, SackBlock, TcpFlags, TcpOptions,
    TcpRepr, Timestamps, IPPROTO_TCP,
};
use proptest::prelude::*;

fn v4() -> IpRepr {
    IpRepr::new_tcp(
        IpAddr::V4(Ipv4Addr::new(10, 0, 0, 1)),
        IpAddr::V4(Ipv4Addr::new(10, 0, 1, 2)),
        0,
    )
    .unwrap()
}

fn v6() -> IpRepr {
    IpRepr::new_tcp(
        "2001:db8::1".parse().unwrap(),
        "2001:db8:1::2".parse().unwrap(),
        0,
    )
    .unwrap()
}

fn data_segment(payload: &[u8]) -> TcpRepr<'_> {
    let mut options = TcpOptions {
        timestamps: Some(Timestamps {
            tsval: 123_456,
            tsecr: 654_321,
        }),
        ..TcpOptions::default()
    };
    options.sack.push(SackBlock {
        left: 5000,
        right: 6000,
    });
    TcpRepr {
        src_port: 40000,
        dst_port: 5201,
        seq: 1_000_000,
        ack: 2_000_000,
        flags: TcpFlags(TcpFlags::ACK | TcpFlags::PSH),
        window: 512,
        urgent: 0,
        options,
        payload,
    }
}

/// `ip` with the payload length the emitted packet carries.
fn expected_ip(ip: &IpRepr, tcp: &TcpRepr<'_>) -> IpRepr {
    let mut ip = *ip;
    ip.set_payload_len(tcp.buffer_len());
    ip
}

#[test]
fn round_trip_v4_and_v6() {
    let payload: Vec<u8> = (0..1000u32).map(|i| i as u8).collect();
    let tcp = data_segment(&payload);
    for ip in [v4(), v6()] {
        let mut buf = Vec::new();
        let n = emit_ip_tcp(&ip, &tcp, &mut buf);
        assert_eq!(n, buf.len());
        assert_eq!(n, ip.header_len() + tcp.buffer_len());
        let (ip2, tcp2) = parse_ip_tcp(&buf).unwrap();
        assert_eq!(ip2, expected_ip(&ip, &tcp));
        assert_eq!(tcp2, tcp);
    }
}

#[test]
fn emit_ignores_ip_payload_len_and_reuses_buffer() {
    let payload = [7u8; 1460];
    let tcp = data_segment(&payload);
    let mut ip = v4();
    ip.set_payload_len(3); // wrong on purpose: emit takes the length from tcp
    let mut buf = Vec::with_capacity(2048);
    let ptr = buf.as_ptr();
    emit_ip_tcp(&ip, &tcp, &mut buf);
    emit_ip_tcp(&ip, &data_segment(b"short"), &mut buf);
    assert_eq!(buf.as_ptr(), ptr, "capacity reused, no reallocation");
    let (ip2, tcp2) = parse_ip_tcp(&buf).unwrap();
    assert_eq!(ip2.payload_len(), tcp2.buffer_len());
    assert_eq!(tcp2.payload, b"short");
}

#[test]
fn checksums_match_independent_computation() {
    let tcp = data_segment(b"abc");
    for ip in [v4(), v6()] {
        let mut buf = Vec::new();
        emit_ip_tcp(&ip, &tcp, &mut buf);
        let hl = ip.header_len();
        let seg = &buf[hl..];
        // Independent: pseudo-header bytes laid out in full, then a byte-wise sum.
        let mut pseudo = Vec::new();
        match (ip.src(), ip.dst()) {
            (IpAddr::V4(s), IpAddr::V4(d)) => {
                pseudo.extend_from_slice(&s.octets());
                pseudo.extend_from_slice(&d.octets());
                pseudo.extend_from_slice(&[0, IPPROTO_TCP]);
                pseudo.extend_from_slice(&(seg.len() as u16).to_be_bytes());
            }
            (IpAddr::V6(s), IpAddr::V6(d)) => {
                pseudo.extend_from_slice(&s.octets());
                pseudo.extend_from_slice(&d.octets());
                pseudo.extend_from_slice(&(seg.len() as u32).to_be_bytes());
                pseudo.extend_from_slice(&[0, 0, 0, IPPROTO_TCP]);
            }
            _ => unreachable!(),
        }
        let mut all = pseudo;
        all.extend_from_slice(seg);
        let mut sum: u32 = 0;
        for w in all.chunks(2) {
            sum += u32::from(w[0]) << 8 | u32::from(*w.get(1).unwrap_or(&0));
        }
        while sum > 0xffff {
            sum = (sum & 0xffff) + (sum >> 16);
        }
        assert_eq!(sum, 0xffff, "segment + pseudo-header sums to all ones");
        assert_ne!(u16::from_be_bytes([seg[16], seg[17]]), 0);
    }
}

#[test]
fn every_truncation_is_an_error() {
    let tcp = data_segment(b"hello world");
    for ip in [v4(), v6()] {
        let mut buf = Vec::new();
        emit_ip_tcp(&ip, &tcp, &mut buf);
        for n in 0..buf.len() {
            assert!(parse_ip_tcp(&buf[..n]).is_err(), "len {n} of {}", buf.len());
        }
        assert!(parse_ip_tcp(&buf).is_ok());
    }
}

#[test]
fn link_padding_is_trimmed() {
    let tcp = data_segment(b"hi");
    for ip in [v4(), v6()] {
        let mut buf = Vec::new();
        emit_ip_tcp(&ip, &tcp, &mut buf);
        buf.extend_from_slice(&[0xee; 9]);
        let (_, tcp2) = parse_ip_tcp(&buf).unwrap();
        assert_eq!(tcp2.payload, b"hi");
    }
}

#[test]
fn bad_inputs_give_the_right_error() {
    let tcp = data_segment(b"payload");
    let mut good4 = Vec::new();
    emit_ip_tcp(&v4(), &tcp, &mut good4);
    let mut good6 = Vec::new();
    emit_ip_tcp(&v6(), &tcp, &mut good6);

    assert_eq!(parse_ip_tcp(&[]).unwrap_err(), Error::Truncated);
    let mut b = good4.clone();
    b[0] = 0x55;
    assert_eq!(parse_ip_tcp(&b).unwrap_err(), Error::Malformed);

    // IPv4 header checksum.
    let mut b = good4.clone();
    b[8] ^= 1; // TTL
    assert_eq!(parse_ip_tcp(&b).unwrap_err(), Error::Checksum);
    // TCP checksum, in the payload and in the header, for both families.
    for good in [&good4, &good6] {
        let mut b = good.clone();
        *b.last_mut().unwrap() ^= 0x40;
        assert_eq!(parse_ip_tcp(&b).unwrap_err(), Error::Checksum);
        let hl = if good[0] >> 4 == 4 { 20 } else { 40 };
        let mut b = good.clone();
        b[hl + 4] ^= 0x80; // seq
        assert_eq!(parse_ip_tcp(&b).unwrap_err(), Error::Checksum);
    }
    // IPv6 addresses are covered by the pseudo-header.
    let mut b = good6.clone();
    b[8] ^= 1;
    assert_eq!(parse_ip_tcp(&b).unwrap_err(), Error::Checksum);

    // Not TCP.
    let mut b = good4.clone();
    {
        let mut p = Ipv4Packet::new_unchecked(&mut b[..]);
        p.set_protocol(17);
        p.fill_checksum();
    }
    assert_eq!(parse_ip_tcp(&b).unwrap_err(), Error::Unsupported);
    let mut b = good6.clone();
    Ipv6Packet::new_unchecked(&mut b[..]).set_next_header(17);
    assert_eq!(parse_ip_tcp(&b).unwrap_err(), Error::Unsupported);
    // IPv6 extension header.
    let mut b = good6.clone();
    Ipv6Packet::new_unchecked(&mut b[..]).set_next_header(0);
    assert_eq!(parse_ip_tcp(&b).unwrap_err(), Error::Unsupported);
    // IPv4 fragment.
    let mut b = good4.clone();
    {
        let mut p = Ipv4Packet::new_unchecked(&mut b[..]);
        p.set_frag(false, true, 0);
        p.fill_checksum();
    }
    assert_eq!(parse_ip_tcp(&b).unwrap_err(), Error::Unsupported);
    // TCP data offset below 5: a structural error, reported before the checksum is looked at.
    let mut b = good4.clone();
    b[20 + 12] = 0x40;
    assert_eq!(parse_ip_tcp(&b).unwrap_err(), Error::Malformed);
    // TCP data offset beyond the IP payload.
    let mut b = good4.clone();
    b.truncate(20 + 24);
    {
        let mut p = Ipv4Packet::new_unchecked(&mut b[..]);
        p.set_total_len(44);
        p.fill_checksum();
    }
    assert_eq!(parse_ip_tcp(&b).unwrap_err(), Error::Truncated);
}

#[test]
fn ipv4_with_options_parses() {
    let tcp = data_segment(b"opt");
    let mut plain = Vec::new();
    emit_ip_tcp(&v4(), &tcp, &mut plain);
    // Insert an 8-byte IPv4 option area (NOPs + EOL) and fix the header up.
    let mut b = plain[..20].to_vec();
    b.extend_from_slice(&[1, 1, 1, 1, 1, 1, 1, 0]);
    b.extend_from_slice(&plain[20..]);
    {
        let mut p = Ipv4Packet::new_unchecked(&mut b[..]);
        p.set_header_len(28);
        p.set_total_len(plain.len() as u16 + 8);
        p.fill_checksum();
    }
    let (ip, tcp2) = parse_ip_tcp(&b).unwrap();
    assert_eq!(ip, expected_ip(&v4(), &tcp));
    assert_eq!(tcp2, tcp);
}

// ---------------------------------------------------------------------------------------------
// Property tests.

/// Owned material for a `TcpRepr` (whose option bodies and payload are borrowed).
#[derive(Debug, Clone)]
struct Spec {
    src_port: u16,
    dst_port: u16,
    seq: u32,
    ack: u32,
    flags: u8,
    window: u16,
    urgent: u16,
    mss: Option<u16>,
    window_scale: Option<u8>,
    sack_permitted: bool,
    timestamps: Option<(u32, u32)>,
    sack: Vec<(u32, u32)>,
    mptcp: Vec<Vec<u8>>,
    unknown: Vec<(u8, Vec<u8>)>,
    payload: Vec<u8>,
}

impl Spec {
    fn repr(&self) -> TcpRepr<'_> {
        let mut options = TcpOptions {
            mss: self.mss,
            window_scale: self.window_scale,
            sack_permitted: self.sack_permitted,
            timestamps: self
                .timestamps
                .map(|(tsval, tsecr)| Timestamps { tsval, tsecr }),
            ..TcpOptions::default()
        };
        for &(left, right) in &self.sack {
            assert!(options.sack.push(SackBlock { left, right }));
        }
        for body in &self.mptcp {
            assert!(options.mptcp.push(30, body));
        }
        for (k, body) in &self.unknown {
            assert!(options.unknown.push(*k, body));
        }
        TcpRepr {
            src_port: self.src_port,
            dst_port: self.dst_port,
            seq: self.seq,
            ack: self.ack,
            flags: TcpFlags(self.flags),
            window: self.window,
            urgent: self.urgent,
            options,
            payload: &self.payload,
        }
    }

    /// Option bytes as laid out by the documented rules (computed here independently).
    fn option_bytes(&self) -> usize {
        let mut n = 0;
        n += if self.mss.is_some() { 4 } else { 0 };
        n += if self.timestamps.is_some() {
            12
        } else if self.sack_permitted {
            4
        } else {
            0
        };
        n += if self.window_scale.is_some() { 4 } else { 0 };
        n += self.mptcp.iter().map(|b| 2 + b.len()).sum::<usize>();
        if !self.sack.is_empty() {
            n = n.div_ceil(4) * 4 + 4 + 8 * self.sack.len();
        }
        n + self.unknown.iter().map(|(_, b)| 2 + b.len()).sum::<usize>()
    }

    /// Drops SACK blocks, then unknown options, then MPTCP options until all fit in 40 bytes.
    fn trimmed(mut self) -> Spec {
        while self.option_bytes() > 40 {
            if self.sack.pop().is_none() && self.unknown.pop().is_none() {
                self.mptcp.pop();
            }
        }
        self
    }
}

fn unknown_kind() -> impl Strategy<Value = u8> {
    any::<u8>().prop_filter("not a kind braid parses", |k| {
        !matches!(*k, 0 | 1 | 2 | 3 | 4 | 5 | 8 | 30)
    })
}

fn spec_strategy(max_payload: usize) -> impl Strategy<Value = Spec> {
    let header = (
        any::<u16>(),
        any::<u16>(),
        any::<u32>(),
        any::<u32>(),
        any::<u8>(),
        any::<u16>(),
        any::<u16>(),
    );
    let simple = (
        proptest::option::of(any::<u16>()),
        proptest::option::of(0u8..=14),
        any::<bool>(),
        proptest::option::of((any::<u32>(), any::<u32>())),
    );
    let lists = (
        proptest::collection::vec((any::<u32>(), any::<u32>()), 0..=4),
        proptest::collection::vec(proptest::collection::vec(any::<u8>(), 1..=24), 0..=3),
        proptest::collection::vec(
            (
                unknown_kind(),
                proptest::collection::vec(any::<u8>(), 0..=10),
            ),
            0..=3,
        ),
    );
    let payload = proptest::collection::vec(any::<u8>(), 0..=max_payload);
    (header, simple, lists, payload).prop_map(
        |(
            (src_port, dst_port, seq, ack, flags, window, urgent),
            (mss, window_scale, sack_permitted, timestamps),
            (sack, mptcp, unknown),
            payload,
        )| Spec {
            src_port,
            dst_port,
            seq,
            ack,
            flags,
            window,
            urgent,
            mss,
            window_scale,
            sack_permitted,
            timestamps,
            sack,
            mptcp,
            unknown,
            payload,
        },
    )
}

fn ip_strategy() -> impl Strategy<Value = IpRepr> {
    let v4 = (
        any::<[u8; 4]>(),
        any::<[u8; 4]>(),
        any::<u8>(),
        any::<u8>(),
        any::<u16>(),
        any::<bool>(),
    )
        .prop_map(|(s, d, ttl, tos, ident, df)| {
            IpRepr::V4(Ipv4Repr {
                src: Ipv4Addr::from(s),
                dst: Ipv4Addr::from(d),
                protocol: IPPROTO_TCP,
                payload_len: 0,
                ttl,
                tos,
                ident,
                dont_fragment: df,
            })
        });
    let v6 = (
        any::<[u8; 16]>(),
        any::<[u8; 16]>(),
        any::<u8>(),
        any::<u8>(),
        0u32..(1 << 20),
    )
        .prop_map(|(s, d, hop_limit, traffic_class, flow_label)| {
            IpRepr::V6(Ipv6Repr {
                src: Ipv6Addr::from(s),
                dst: Ipv6Addr::from(d),
                next_header: IPPROTO_TCP,
                payload_len: 0,
                hop_limit,
                traffic_class,
                flow_label,
            })
        });
    prop_oneof![v4, v6]
}

/// The parse → emit → parse check shared with the fuzz target: re-emitting a parsed segment
/// gives back the same segment, except for options that no longer fit (which must be reported
/// by `options_fit`), and a second round trip is exact.
fn check_reemit(ip: &IpRepr, tcp: &TcpRepr<'_>) {
    let mut buf = Vec::new();
    emit_ip_tcp(ip, tcp, &mut buf);
    let (ip2, tcp2) = parse_ip_tcp(&buf).expect("re-emitted packet parses");
    assert_eq!(ip2, expected_ip(ip, tcp));
    let mut want = *tcp;
    want.options.dropped = 0;
    if tcp.options_fit() {
        assert_eq!(tcp2, want);
    } else {
        let (a, b) = (&tcp2.options, &tcp.options);
        assert_eq!(
            (a.mss, a.window_scale, a.sack_permitted),
            (b.mss, b.window_scale, b.sack_permitted)
        );
        assert_eq!(a.timestamps, b.timestamps);
        assert!(b.sack.as_slice().starts_with(a.sack.as_slice()));
        assert!(b.mptcp.as_slice().starts_with(a.mptcp.as_slice()));
        assert!(b.unknown.as_slice().starts_with(a.unknown.as_slice()));
        let mut fixed = want;
        fixed.options.sack = a.sack;
        fixed.options.mptcp = a.mptcp;
        fixed.options.unknown = a.unknown;
        assert_eq!(tcp2, fixed);
    }
    let mut buf2 = Vec::new();
    emit_ip_tcp(&ip2, &tcp2, &mut buf2);
    assert_eq!(buf2, buf, "emit is a fixed point after one round trip");
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn prop_round_trip(spec in spec_strategy(2000).prop_map(Spec::trimmed), ip in ip_strategy()) {
        let tcp = spec.repr();
        prop_assert!(tcp.options_fit());
        prop_assert_eq!(tcp.header_len(), 20 + spec.option_bytes().div_ceil(4) * 4);
        let mut buf = Vec::new();
        let n = emit_ip_tcp(&ip, &tcp, &mut buf);
        prop_assert_eq!(n, ip.header_len() + tcp.buffer_len());
        let (ip2, tcp2) = parse_ip_tcp(&buf).unwrap();
        prop_assert_eq!(ip2, expected_ip(&ip, &tcp));
        prop_assert_eq!(tcp2, tcp);
    }

    #[test]
    fn prop_oversized_options_stay_in_budget(spec in spec_strategy(64), ip in ip_strategy()) {
        let tcp = spec.repr();
        prop_assert!(tcp.header_len() <= 60);
        prop_assert_eq!(tcp.header_len() % 4, 0);
        check_reemit(&ip, &tcp);
    }

    #[test]
    fn prop_arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
        let _ = parse_ip_tcp(&bytes);
        if let Ok(p) = TcpPacket::new_checked(&bytes[..]) {
            let _ = TcpRepr::parse(&p);
            let _ = TcpOptionIter::new(p.options()).count();
        }
        let _ = TcpOptionIter::new(&bytes).count();
        if let Ok((ip, tcp)) = parse_ip_tcp(&bytes) {
            check_reemit(&ip, &tcp);
        }
    }

    /// Random bytes as a TCP segment inside a valid IP header with a correct TCP checksum, so the
    /// header and option parser see arbitrary input through `parse_ip_tcp`.
    #[test]
    fn prop_random_tcp_in_valid_ip(
        mut seg in proptest::collection::vec(any::<u8>(), 20..120),
        offset in 5u8..=15,
        ip in ip_strategy(),
    ) {
        seg[12] = (offset << 4) | (seg[12] & 0x0f);
        let mut ip = ip;
        ip.set_payload_len(seg.len());
        let mut buf = vec![0u8; ip.header_len()];
        ip.emit(&mut buf);
        buf.extend_from_slice(&seg);
        let hl = ip.header_len();
        TcpPacket::new_unchecked(&mut buf[hl..]).fill_checksum(ip.pseudo_header_sum(seg.len()));
        match parse_ip_tcp(&buf) {
            Ok((ip2, tcp)) => {
                prop_assert!(usize::from(offset) * 4 <= seg.len());
                prop_assert_eq!(ip2, ip);
                check_reemit(&ip2, &tcp);
            }
            Err(e) => {
                prop_assert!(usize::from(offset) * 4 > seg.len());
                prop_assert_eq!(e, Error::Truncated);
            }
        }
    }

    #[test]
    fn prop_single_byte_flip_never_panics(
        spec in spec_strategy(300).prop_map(Spec::trimmed),
        ip in ip_strategy(),
        at in any::<prop::sample::Index>(),
        xor in 1u8..=255,
    ) {
        let tcp = spec.repr();
        let mut buf = Vec::new();
        emit_ip_tcp(&ip, &tcp, &mut buf);
        let i = at.index(buf.len());
        buf[i] ^= xor;
        if let Ok((ip2, tcp2)) = parse_ip_tcp(&buf) {
            // A single flipped byte can only survive where no checksum covers it (IPv6 header
            // fields outside the pseudo-header), never in the TCP segment.
            prop_assert!(matches!(ip2, IpRepr::V6(_)) && i < 8 && i != 4 && i != 5 && i != 6);
            prop_assert_eq!(tcp2, tcp);
        }
    }

    #[test]
    fn prop_checksum_split_invariant(data in proptest::collection::vec(any::<u8>(), 0..3000), cut in any::<prop::sample::Index>()) {
        let c = cut.index(data.len() + 1) & !1;
        let whole = checksum::ones_complement_sum(&data);
        let parts = checksum::combine(
            checksum::ones_complement_sum(&data[..c]),
            checksum::ones_complement_sum(&data[c..]),
        );
        prop_assert_eq!(whole, parts);
    }
}
