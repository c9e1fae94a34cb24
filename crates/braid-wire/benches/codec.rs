//! Codec benchmarks for the simulator's hot path: parse and emit of a full-sized data segment,
//! and the Internet checksum over one MSS of payload.

use std::hint::black_box;
use std::net::{IpAddr, Ipv4Addr};

use braid_wire::checksum::ones_complement_sum;
use braid_wire::{emit_ip_tcp, parse_ip_tcp, IpRepr, TcpFlags, TcpOptions, TcpRepr, Timestamps};
use criterion::{criterion_group, criterion_main, Criterion, Throughput};

/// A 1500-byte IPv4 packet: 20 (IP) + 32 (TCP with timestamps) + 1448 payload.
fn segment(payload: &[u8]) -> (IpRepr, TcpRepr<'_>) {
    let ip = IpRepr::new_tcp(
        IpAddr::V4(Ipv4Addr::new(10, 0, 0, 1)),
        IpAddr::V4(Ipv4Addr::new(10, 0, 0, 2)),
        0,
    )
    .expect("same family");
    let tcp = TcpRepr {
        src_port: 40000,
        dst_port: 5201,
        seq: 0x1234_5678,
        ack: 0x9abc_def0,
        flags: TcpFlags(TcpFlags::ACK | TcpFlags::PSH),
        window: 2048,
        urgent: 0,
        options: TcpOptions {
            timestamps: Some(Timestamps {
                tsval: 1_000_000,
                tsecr: 999_000,
            }),
            ..TcpOptions::default()
        },
        payload,
    };
    (ip, tcp)
}

fn bench(c: &mut Criterion) {
    let payload: Vec<u8> = (0..1448u32).map(|i| (i * 31 + 7) as u8).collect();
    let (ip, tcp) = segment(&payload);
    let mut packet = Vec::with_capacity(2048);
    let len = emit_ip_tcp(&ip, &tcp, &mut packet);
    assert_eq!(len, 1500);

    let mut g = c.benchmark_group("wire");
    g.throughput(Throughput::Bytes(len as u64));
    g.bench_function("parse_ip_tcp_1500", |b| {
        b.iter(|| {
            let (ip, tcp) = parse_ip_tcp(black_box(&packet)).expect("valid");
            black_box((ip, tcp.seq, tcp.payload.len()))
        })
    });
    let mut out = Vec::with_capacity(2048);
    g.bench_function("emit_ip_tcp_1500", |b| {
        b.iter(|| black_box(emit_ip_tcp(black_box(&ip), black_box(&tcp), &mut out)))
    });
    let mss: Vec<u8> = (0..1460u32).map(|i| (i * 13) as u8).collect();
    g.throughput(Throughput::Bytes(mss.len() as u64));
    g.bench_function("checksum_1460", |b| {
        b.iter(|| black_box(ones_complement_sum(black_box(&mss))))
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
