//! Model-based property tests of the TCP send and receive buffers: random operations applied to
//! the real buffer and to a trivially correct model, with every observable compared.

use braid_proto::tcp::recvbuf::RecvBuffer;
use braid_proto::tcp::sendbuf::SendBuffer;
use proptest::prelude::*;
use std::collections::{BTreeMap, VecDeque};

// ---------------------------------------------------------------- send buffer

#[derive(Debug, Clone)]
enum SendOp {
    Write { len: usize, seed: u8 },
    ReadAt { rel: i64, out: usize },
    AckTo { rel: i64 },
    SetCapacity(usize),
}

fn send_op(max: usize) -> impl Strategy<Value = SendOp> {
    prop_oneof![
        4 => (0..max, any::<u8>()).prop_map(|(len, seed)| SendOp::Write { len, seed }),
        3 => (-5i64..max as i64 + 5, 0..max).prop_map(|(rel, out)| SendOp::ReadAt { rel, out }),
        3 => (-5i64..max as i64 + 5).prop_map(|rel| SendOp::AckTo { rel }),
        1 => (0..2 * max).prop_map(SendOp::SetCapacity),
    ]
}

struct SendModel {
    data: VecDeque<u8>,
    start: u64,
    capacity: usize,
}

fn check_send(capacity: usize, ops: &[SendOp]) {
    let mut real = SendBuffer::new(capacity);
    let mut model = SendModel {
        data: VecDeque::new(),
        start: 0,
        capacity,
    };
    for op in ops {
        match *op {
            SendOp::Write { len, seed } => {
                let data: Vec<u8> = (0..len).map(|i| seed.wrapping_add(i as u8)).collect();
                let n = (model.capacity - model.data.len()).min(len);
                model.data.extend(&data[..n]);
                assert_eq!(real.write(&data), n, "{op:?}");
            }
            SendOp::ReadAt { rel, out } => {
                let offset = (model.start as i64 + rel).max(0) as u64;
                let end = model.start + model.data.len() as u64;
                let want: Vec<u8> = if offset < model.start || offset > end {
                    Vec::new()
                } else {
                    let skip = (offset - model.start) as usize;
                    model.data.iter().skip(skip).take(out).copied().collect()
                };
                let mut buf = vec![0xee; out];
                let n = real.read_at(offset, &mut buf);
                assert_eq!(&buf[..n], &want[..], "{op:?}");
            }
            SendOp::AckTo { rel } => {
                let offset = (model.start as i64 + rel).max(0) as u64;
                let end = model.start + model.data.len() as u64;
                let n = (offset.clamp(model.start, end) - model.start) as usize;
                model.data.drain(..n);
                model.start += n as u64;
                assert_eq!(real.ack_to(offset), n, "{op:?}");
            }
            SendOp::SetCapacity(c) => {
                model.capacity = c.max(model.data.len());
                real.set_capacity(c);
            }
        }
        assert_eq!(real.capacity(), model.capacity);
        assert_eq!(real.len(), model.data.len());
        assert_eq!(real.is_empty(), model.data.is_empty());
        assert_eq!(real.free(), model.capacity - model.data.len());
        assert_eq!(real.start(), model.start);
        assert_eq!(real.end(), model.start + model.data.len() as u64);
    }
    // Everything held reads back whole.
    let mut all = vec![0; real.len()];
    assert_eq!(real.read_at(real.start(), &mut all), model.data.len());
    assert!(all.iter().eq(model.data.iter()));
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn send_buffer_small(cap in 0usize..200, ops in prop::collection::vec(send_op(120), 1..80)) {
        check_send(cap, &ops);
    }

    #[test]
    fn send_buffer_growing(cap in 4000usize..20_000, ops in prop::collection::vec(send_op(6000), 1..40)) {
        check_send(cap, &ops);
    }
}

// ---------------------------------------------------------------- receive buffer

#[derive(Debug, Clone)]
enum RecvOp {
    /// Write at `read_offset - 40 + rel`.
    Write {
        rel: u64,
        len: usize,
        seed: u8,
    },
    Read(usize),
    SetCapacity(usize),
    Sack(usize),
}

fn recv_op(window: u64, max_len: usize) -> impl Strategy<Value = RecvOp> {
    prop_oneof![
        8 => (0..window + 80, 0..max_len, any::<u8>())
            .prop_map(|(rel, len, seed)| RecvOp::Write { rel, len, seed }),
        3 => (0..2 * max_len).prop_map(RecvOp::Read),
        1 => (0..2 * window as usize).prop_map(RecvOp::SetCapacity),
        2 => (0usize..6).prop_map(RecvOp::Sack),
    ]
}

/// Byte by byte: every byte held with the stamp of the last accepted write covering it.
struct RecvModel {
    held: BTreeMap<u64, (u8, u64)>,
    read_offset: u64,
    in_order_end: u64,
    capacity: usize,
    max_ranges: usize,
    dropped: u64,
    stamp: u64,
}

impl RecvModel {
    /// Maximal runs of held bytes beyond the in-order end: (start, end, newest stamp).
    fn runs(&self) -> Vec<(u64, u64, u64)> {
        let mut runs: Vec<(u64, u64, u64)> = Vec::new();
        for (&o, &(_, s)) in self.held.range(self.in_order_end..) {
            match runs.last_mut() {
                Some(r) if r.1 == o => {
                    r.1 = o + 1;
                    r.2 = r.2.max(s);
                }
                _ => runs.push((o, o + 1, s)),
            }
        }
        runs
    }

    fn write_at(&mut self, offset: u64, data: &[u8]) -> usize {
        let start = offset.max(self.in_order_end);
        let end = (offset + data.len() as u64).min(self.read_offset + self.capacity as u64);
        if start >= end {
            return 0;
        }
        let runs_before = self.runs().len();
        self.stamp += 1;
        let mut undo = Vec::new();
        for o in start..end {
            let b = data[(o - offset) as usize];
            // The first copy of a byte stays, its recency is renewed.
            let old = self.held.insert(o, (b, self.stamp));
            if let Some((first, _)) = old {
                self.held.insert(o, (first, self.stamp));
            }
            undo.push((o, old));
        }
        let old_end = self.in_order_end;
        let mut ioe = old_end;
        while self.held.contains_key(&ioe) {
            ioe += 1;
        }
        self.in_order_end = ioe;
        let runs_after = self.runs().len();
        if runs_after > self.max_ranges && runs_after > runs_before {
            for (o, old) in undo {
                match old {
                    Some(v) => self.held.insert(o, v),
                    None => self.held.remove(&o),
                };
            }
            self.in_order_end = old_end;
            self.dropped += 1;
            return 0;
        }
        (ioe - old_end) as usize
    }

    fn read(&mut self, n: usize) -> Vec<u8> {
        let n = n.min((self.in_order_end - self.read_offset) as usize);
        let out = (0..n as u64)
            .map(|i| self.held.remove(&(self.read_offset + i)).unwrap().0)
            .collect();
        self.read_offset += n as u64;
        out
    }

    fn extent(&self) -> usize {
        let far = self
            .held
            .last_key_value()
            .map_or(self.in_order_end, |(&o, _)| o + 1);
        (far.max(self.in_order_end) - self.read_offset) as usize
    }
}

fn check_recv(capacity: usize, max_ranges: usize, ops: &[RecvOp]) {
    let mut real = RecvBuffer::with_max_ranges(capacity, max_ranges);
    let mut model = RecvModel {
        held: BTreeMap::new(),
        read_offset: 0,
        in_order_end: 0,
        capacity,
        max_ranges,
        dropped: 0,
        stamp: 0,
    };
    let mut sack = Vec::new();
    for op in ops {
        match *op {
            RecvOp::Write { rel, len, seed } => {
                let offset = (model.read_offset + rel).saturating_sub(40);
                let data: Vec<u8> = (0..len).map(|i| seed.wrapping_add(i as u8)).collect();
                let want = model.write_at(offset, &data);
                assert_eq!(real.write_at(offset, &data), want, "{op:?}");
            }
            RecvOp::Read(n) => {
                let want = model.read(n);
                let mut out = vec![0xee; n];
                let got = real.read(&mut out);
                assert_eq!(&out[..got], &want[..], "{op:?}");
            }
            RecvOp::SetCapacity(c) => {
                model.capacity = c.max(model.extent());
                real.set_capacity(c);
            }
            RecvOp::Sack(max) => {
                let mut runs = model.runs();
                runs.sort_by_key(|r| std::cmp::Reverse(r.2));
                let want: Vec<(u64, u64)> = runs.iter().take(max).map(|r| (r.0, r.1)).collect();
                real.sack_ranges(max, &mut sack);
                assert_eq!(sack, want, "{op:?}");
            }
        }
        assert_eq!(real.capacity(), model.capacity);
        assert_eq!(real.read_offset(), model.read_offset);
        assert_eq!(real.in_order_end(), model.in_order_end);
        assert_eq!(
            real.readable() as u64,
            model.in_order_end - model.read_offset
        );
        assert_eq!(
            real.window() as u64,
            model.read_offset + model.capacity as u64 - model.in_order_end
        );
        let ooo = model.held.range(model.in_order_end..).count();
        assert_eq!(real.ooo_bytes(), ooo);
        assert_eq!(real.dropped_segments(), model.dropped);
        assert!(model.runs().len() <= max_ranges);
    }
    // Drain: the in-order bytes match.
    let want = model.read(usize::MAX);
    let mut out = vec![0; want.len() + 1];
    let n = real.read(&mut out);
    assert_eq!(&out[..n], &want[..]);
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn recv_buffer_small(
        cap in 0usize..300,
        max_ranges in 1usize..6,
        ops in prop::collection::vec(recv_op(300, 60), 1..120),
    ) {
        check_recv(cap, max_ranges, &ops);
    }

    #[test]
    fn recv_buffer_default_limit(
        cap in 100usize..400,
        ops in prop::collection::vec(recv_op(400, 8), 1..200),
    ) {
        check_recv(cap, braid_proto::tcp::recvbuf::MAX_OOO_RANGES, &ops);
    }

}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn recv_buffer_growing(
        cap in 4000usize..16_000,
        ops in prop::collection::vec(recv_op(16_000, 5000), 1..40),
    ) {
        check_recv(cap, 8, &ops);
    }
}

/// A long in-order stream through a small buffer wraps the ring many times.
#[test]
fn recv_stream_through_small_ring() {
    let mut b = RecvBuffer::new(1000);
    let mut next = 0u64;
    let mut read = Vec::new();
    let mut out = [0u8; 333];
    let byte = |o: u64| (o % 251) as u8;
    while next < 100_000 {
        // Send a segment ahead first (out of order), then the one that fills the gap.
        let seg = |s: u64| (s..s + 100).map(byte).collect::<Vec<u8>>();
        b.write_at(next + 100, &seg(next + 100));
        b.write_at(next, &seg(next));
        next = b.in_order_end();
        let n = b.read(&mut out);
        read.extend_from_slice(&out[..n]);
    }
    while b.readable() > 0 {
        let n = b.read(&mut out);
        read.extend_from_slice(&out[..n]);
    }
    assert!(read.len() as u64 >= 100_000);
    assert!(read.iter().enumerate().all(|(i, &x)| x == byte(i as u64)));
}
