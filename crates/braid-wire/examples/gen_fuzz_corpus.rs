//! Writes the seed corpus of the `wire_segment` fuzz target: small, real-looking IPv4/IPv6 TCP
//! packets (SYN, SYN/ACK with options, data, SACK, FIN/RST, MPTCP options, unknown options) plus a
//! few damaged ones.
//!
//! Usage: `cargo run -p braid-wire --example gen_fuzz_corpus -- fuzz/corpus/wire_segment`

use std::net::IpAddr;

use braid_wire::ip::Ipv4Packet;
use braid_wire::{emit_ip_tcp, IpRepr, SackBlock, TcpFlags, TcpOptions, TcpRepr, Timestamps};

fn main() -> std::io::Result<()> {
    let dir = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "fuzz/corpus/wire_segment".into());
    std::fs::create_dir_all(&dir)?;
    let mut packets: Vec<(String, Vec<u8>)> = Vec::new();

    let addrs: [(&str, IpAddr, IpAddr); 2] = [
        (
            "v4",
            "10.0.0.1".parse().unwrap(),
            "10.0.1.2".parse().unwrap(),
        ),
        (
            "v6",
            "2001:db8::1".parse().unwrap(),
            "2001:db8:1::2".parse().unwrap(),
        ),
    ];
    let payload: Vec<u8> = (0..200u32).map(|i| (i * 7) as u8).collect();
    // MPTCP sub-option bodies (RFC 8684 §3): bytes after kind and length.
    let mp_capable_syn: &[u8] = &[0x01, 0x81]; // MP_CAPABLE v1, flags A|H, no key (SYN)
    let mp_capable_ack: &[u8] = &[
        0x01, 0x81, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16,
    ];
    let mp_join_syn: &[u8] = &[0x10, 0x02, 0xde, 0xad, 0xbe, 0xef, 0, 0, 0, 42];
    let dss: &[u8] = &[
        0x20, 0x05, 0, 0, 0, 100, 0, 0, 1, 0, 0, 0, 0, 1, 0, 200, 0xab, 0xcd,
    ];
    let add_addr: &[u8] = &[0x30, 0x01, 192, 0, 2, 7, 1, 2, 3, 4, 5, 6, 7, 8];

    for (fam, src, dst) in addrs {
        let ip = IpRepr::new_tcp(src, dst, 0).unwrap();
        let base = TcpRepr {
            src_port: 40000,
            dst_port: 5201,
            seq: 0x1000_0000,
            ack: 0,
            flags: TcpFlags(TcpFlags::SYN),
            window: 64240,
            urgent: 0,
            options: TcpOptions::default(),
            payload: &[],
        };
        let ts = Some(Timestamps {
            tsval: 0x0102_0304,
            tsecr: 0,
        });
        let mut list: Vec<(&str, TcpRepr<'_>)> = Vec::new();

        let mut syn = base;
        syn.options.mss = Some(1460);
        syn.options.sack_permitted = true;
        syn.options.timestamps = ts;
        syn.options.window_scale = Some(7);
        list.push(("syn", syn));
        let mut syn_plain = base;
        syn_plain.options.mss = Some(536);
        list.push(("syn_mss_only", syn_plain));
        let mut synack = syn;
        synack.flags = TcpFlags(TcpFlags::SYN | TcpFlags::ACK);
        synack.ack = 0x1000_0001;
        synack.options.timestamps = Some(Timestamps {
            tsval: 77,
            tsecr: 0x0102_0304,
        });
        list.push(("synack", synack));
        let mut mp_syn = syn;
        mp_syn.options.mptcp.push(30, mp_capable_syn);
        list.push(("syn_mp_capable", mp_syn));
        let mut mp_join = syn;
        mp_join.options.sack_permitted = false;
        mp_join.options.mptcp.push(30, mp_join_syn);
        list.push(("syn_mp_join", mp_join));

        let mut ack = base;
        ack.flags = TcpFlags(TcpFlags::ACK);
        ack.seq = 0x1000_0001;
        ack.ack = 0x2000_0001;
        ack.options.timestamps = Some(Timestamps {
            tsval: 100,
            tsecr: 77,
        });
        list.push(("ack", ack));
        let mut mp_ack = ack;
        mp_ack.options.mptcp.push(30, mp_capable_ack);
        list.push(("ack_mp_capable", mp_ack));
        let mut data = ack;
        data.flags = TcpFlags(TcpFlags::ACK | TcpFlags::PSH);
        data.payload = &payload;
        list.push(("data", data));
        let mut data_dss = data;
        data_dss.options.mptcp.push(30, dss);
        list.push(("data_dss", data_dss));
        let mut add = ack;
        add.options.mptcp.push(30, add_addr);
        list.push(("ack_add_addr", add));
        for n in 1..=4u32 {
            let mut sack = ack;
            sack.options.timestamps = if n == 4 {
                None
            } else {
                sack.options.timestamps
            };
            for i in 0..n {
                sack.options.sack.push(SackBlock {
                    left: 1000 * (i + 2),
                    right: 1000 * (i + 2) + 500,
                });
            }
            list.push((
                ["sack1", "sack2", "sack3", "sack4_no_ts"][n as usize - 1],
                sack,
            ));
        }
        let mut unknown = ack;
        unknown.options.unknown.push(253, &[0x12, 0x34, 0xab]);
        list.push(("ack_unknown_option", unknown));
        let mut fin = data;
        fin.flags = TcpFlags(TcpFlags::ACK | TcpFlags::FIN);
        fin.payload = &payload[..10];
        list.push(("fin", fin));
        let mut rst = base;
        rst.flags = TcpFlags(TcpFlags::RST | TcpFlags::ACK);
        list.push(("rst", rst));

        for (name, tcp) in list {
            let mut buf = Vec::new();
            emit_ip_tcp(&ip, &tcp, &mut buf);
            packets.push((format!("{fam}_{name}"), buf.clone()));
            if name == "data" {
                let mut bad = buf.clone();
                *bad.last_mut().unwrap() ^= 1;
                packets.push((format!("{fam}_data_bad_checksum"), bad));
                packets.push((
                    format!("{fam}_data_truncated"),
                    buf[..buf.len() - 50].to_vec(),
                ));
                let mut padded = buf.clone();
                padded.extend_from_slice(&[0; 6]);
                packets.push((format!("{fam}_data_link_padding"), padded));
            }
            if name == "syn" && fam == "v4" {
                // The same SYN carried in an IPv4 header with 4 bytes of options.
                let mut b = buf[..20].to_vec();
                b.extend_from_slice(&[1, 1, 1, 0]);
                b.extend_from_slice(&buf[20..]);
                let mut p = Ipv4Packet::new_unchecked(&mut b[..]);
                p.set_header_len(24);
                p.set_total_len((buf.len() + 4) as u16);
                p.fill_checksum();
                packets.push(("v4_syn_ip_options".into(), b));
            }
        }
    }

    for (name, bytes) in &packets {
        std::fs::write(format!("{dir}/{name}"), bytes)?;
    }
    println!("wrote {} seeds to {dir}", packets.len());
    Ok(())
}
