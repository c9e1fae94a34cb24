//! Engine benchmarks: the receive path of an established connection, and a whole in-memory
//! transfer between two endpoints (no links: this is the engine's own cost per byte).

use braid_proto::{ConnHandle, Endpoint, EndpointConfig, Instant};
use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::Duration;

const A: IpAddr = IpAddr::V4(Ipv4Addr::new(192, 0, 2, 1));
const B: IpAddr = IpAddr::V4(Ipv4Addr::new(192, 0, 2, 2));

/// Two endpoints with an established connection; packets move instantly.
struct Pair {
    a: Endpoint,
    b: Endpoint,
    ca: ConnHandle,
    cb: ConnHandle,
    now: Instant,
    buf: Vec<u8>,
}

impl Pair {
    fn new() -> Self {
        let mut a = Endpoint::new(EndpointConfig::default(), 1);
        let mut b = Endpoint::new(EndpointConfig::default(), 2);
        a.add_local_addr(A);
        b.add_local_addr(B);
        b.listen(80).unwrap();
        let now = Instant::from_nanos(1_000_000);
        let ca = a.connect(now, A, SocketAddr::new(B, 80)).unwrap();
        let mut p = Pair {
            a,
            b,
            ca,
            cb: ConnHandle(0),
            now,
            buf: Vec::new(),
        };
        for _ in 0..4 {
            p.exchange();
        }
        p.cb = p.b.accept(80).expect("established");
        p
    }

    /// Moves every pending packet across once in each direction.
    fn exchange(&mut self) -> usize {
        let mut n = 0;
        while self.a.poll_transmit(self.now, &mut self.buf).is_some() {
            self.b.handle_packet(self.now, &self.buf);
            n += 1;
        }
        while self.b.poll_transmit(self.now, &mut self.buf).is_some() {
            self.a.handle_packet(self.now, &self.buf);
            n += 1;
        }
        n
    }
}

fn bench(c: &mut Criterion) {
    let mut g = c.benchmark_group("engine");

    // Receive path: 64 in-order full-size data segments handled and read by the application.
    let segments = 64;
    g.throughput(Throughput::Bytes((segments * 1448) as u64));
    g.bench_function("receive_64_segments", |bench| {
        bench.iter_batched(
            || {
                let mut p = Pair::new();
                let data = vec![0x5au8; segments * 1448];
                p.a.send(p.ca, &data).unwrap();
                let mut pkts = Vec::new();
                while p.a.poll_transmit(p.now, &mut p.buf).is_some() {
                    pkts.push(p.buf.clone());
                }
                (p, pkts)
            },
            |(mut p, pkts)| {
                let mut out = vec![0u8; 65536];
                for pkt in &pkts {
                    p.b.handle_packet(p.now, pkt);
                }
                while let Ok(n) = p.b.recv(p.cb, &mut out) {
                    if n == 0 {
                        break;
                    }
                }
                p
            },
            BatchSize::SmallInput,
        )
    });

    // Whole transfer of 8 MiB through both engines, ACKs included.
    let total = 8usize << 20;
    g.throughput(Throughput::Bytes(total as u64));
    g.sample_size(20);
    g.bench_function("transfer_8MiB", |bench| {
        let data = vec![0xa5u8; 1 << 16];
        let mut out = vec![0u8; 1 << 16];
        bench.iter_batched(
            Pair::new,
            |mut p| {
                let (mut sent, mut got) = (0usize, 0usize);
                while got < total {
                    while sent < total {
                        let n = (total - sent).min(data.len());
                        match p.a.send(p.ca, &data[..n]) {
                            Ok(k) => sent += k,
                            Err(_) => break,
                        }
                    }
                    p.now += Duration::from_micros(10);
                    p.exchange();
                    while let Ok(n) = p.b.recv(p.cb, &mut out) {
                        if n == 0 {
                            break;
                        }
                        got += n;
                    }
                    p.a.handle_timeout(p.now);
                    p.b.handle_timeout(p.now);
                }
                p
            },
            BatchSize::LargeInput,
        )
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
