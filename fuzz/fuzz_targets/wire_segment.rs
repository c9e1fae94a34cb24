//! Fuzz target for the whole-segment receive path of braid-wire.
//!
//! Any input: `parse_ip_tcp` must not panic; when it parses, re-emitting and re-parsing must give
//! the same segment (options that no longer fit are reported by `options_fit` and may only be
//! dropped from the end of their lists), and a second round trip must be byte-exact. The raw TCP
//! view and option iterator are also run on the bytes as they are.
#![no_main]

use braid_wire::tcp::{TcpOptionIter, TcpPacket};
use braid_wire::{emit_ip_tcp, parse_ip_tcp, TcpRepr};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(p) = TcpPacket::new_checked(data) {
        let _ = TcpRepr::parse(&p);
        for opt in p.options_iter() {
            std::hint::black_box(opt);
        }
    }
    for opt in TcpOptionIter::new(data) {
        std::hint::black_box(opt);
    }

    let Ok((ip, tcp)) = parse_ip_tcp(data) else {
        return;
    };
    let mut buf = Vec::new();
    emit_ip_tcp(&ip, &tcp, &mut buf);
    let (ip2, tcp2) = parse_ip_tcp(&buf).expect("re-emitted packet parses");
    let mut want_ip = ip;
    want_ip.set_payload_len(tcp.buffer_len());
    assert_eq!(ip2, want_ip);
    assert_eq!(tcp2.payload, tcp.payload);
    let mut want = tcp;
    want.options.dropped = 0;
    if tcp.options_fit() {
        assert_eq!(tcp2, want);
    } else {
        let (a, b) = (&tcp2.options, &tcp.options);
        assert_eq!(
            (a.mss, a.window_scale, a.sack_permitted, a.timestamps),
            (b.mss, b.window_scale, b.sack_permitted, b.timestamps)
        );
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
});
