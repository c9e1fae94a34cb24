//! The cost of choosing an MPTCP key whose token carries a shard number (docs/scaling.md): a key
//! is drawn, hashed (RFC 8684 §3.1: token = the most significant 32 bits of SHA-256(key)) and kept
//! only when the token's low `bits` bits name the wanted shard, so a search takes 2^bits draws on
//! average. Measured with the simulator's deterministic key stream (the OS stream adds one
//! getrandom(2) per draw).

use braid_proto::mptcp::crypto::{token_and_idsn, KeySource};
use criterion::{criterion_group, criterion_main, Criterion};
use std::hint::black_box;

fn keyed_to_shard(keys: &mut KeySource, bits: u32, shard: u32) -> u64 {
    let mask = (1u32 << bits) - 1;
    loop {
        let key = keys.try_next_u64().expect("key");
        if token_and_idsn(key).0 & mask == shard {
            return key;
        }
    }
}

fn bench(c: &mut Criterion) {
    let mut g = c.benchmark_group("keys");
    g.bench_function("token_and_idsn", |b| {
        let mut k = 0u64;
        b.iter(|| {
            k = k.wrapping_add(0x9e37_79b9_7f4a_7c15);
            black_box(token_and_idsn(black_box(k)))
        })
    });
    for bits in [1u32, 3, 6] {
        g.bench_function(format!("key_for_shard_{bits}_bits"), |b| {
            let mut keys = KeySource::deterministic(1);
            let mut shard = 0u32;
            b.iter(|| {
                shard = (shard + 1) & ((1u32 << bits) - 1);
                black_box(keyed_to_shard(&mut keys, bits, shard))
            })
        });
    }
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
