//! The receive buffer: in-order bytes waiting for the application plus out-of-order data, bounded.

/// Default bound on disjoint out-of-order ranges held at once.
pub const MAX_OOO_RANGES: usize = 2048;

/// Smallest allocation step of the ring.
const MIN_ALLOC: usize = 4096;

/// One range of out-of-order bytes `[start, end)`, with the stamp of the write that last touched it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct OooRange {
    start: u64,
    end: u64,
    stamp: u64,
}

/// Received stream bytes: the in-order part waiting for the application, and out-of-order data
/// held until the gap before it is filled (RFC 9293 §3.10.7.4: segments beyond RCV.NXT are kept).
///
/// The ring covers stream offsets `[read_offset, read_offset + capacity)`: the receive window.
/// Its allocation grows lazily with the farthest byte held, never beyond `capacity`. Out-of-order
/// data sits at its final position in the ring, so filling a gap needs no copying.
#[derive(Debug, Clone)]
pub struct RecvBuffer {
    /// The ring; its length is the allocated size. Index `head` holds offset `read_offset`.
    ring: Vec<u8>,
    head: usize,
    read_offset: u64,
    /// In-order bytes from `read_offset`.
    readable: usize,
    capacity: usize,
    /// Disjoint, non-adjacent out-of-order ranges sorted by offset, all beyond the in-order end.
    ranges: Vec<OooRange>,
    ooo_bytes: usize,
    max_ranges: usize,
    /// Stamp for the next write that touches a range (recency order for SACK).
    next_stamp: u64,
    dropped: u64,
    /// Closing towards this capacity (memory pressure): reading does not reopen the window.
    shrink_target: Option<usize>,
}

impl RecvBuffer {
    /// An empty buffer with a window of `capacity` bytes, at most [`MAX_OOO_RANGES`] ranges.
    pub fn new(capacity: usize) -> Self {
        Self::with_max_ranges(capacity, MAX_OOO_RANGES)
    }

    /// As [`RecvBuffer::new`] with another bound on out-of-order ranges (at least 1).
    pub fn with_max_ranges(capacity: usize, max_ranges: usize) -> Self {
        RecvBuffer {
            ring: Vec::new(),
            head: 0,
            read_offset: 0,
            readable: 0,
            capacity,
            ranges: Vec::new(),
            ooo_bytes: 0,
            max_ranges: max_ranges.max(1),
            next_stamp: 0,
            dropped: 0,
            shrink_target: None,
        }
    }

    /// The receive window size when nothing is held.
    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// Changes the capacity; it never shrinks below the extent of the data held (up to the end
    /// of the farthest out-of-order range), so no held byte falls outside the window.
    pub fn set_capacity(&mut self, capacity: usize) {
        self.capacity = capacity.max(self.extent());
        if self.ring.len() > self.capacity {
            self.realloc(self.capacity);
        }
    }

    /// Bytes of memory the ring holds now.
    pub fn allocated(&self) -> usize {
        self.ring.len()
    }

    /// Frees the ring when nothing is held (it is allocated again when data arrives).
    pub fn release(&mut self) {
        if self.readable == 0 && self.ranges.is_empty() {
            self.ring = Vec::new();
            self.head = 0;
        }
    }

    /// Stores `data` that starts at stream offset `offset`. Bytes before `read_offset()+readable()`
    /// (already in order) are ignored, bytes at or beyond `read_offset() + capacity()` are trimmed
    /// (outside the window). Returns the number of bytes by which the in-order end advanced.
    ///
    /// Bytes already held keep their first copy. A write that would need more than the range
    /// bound is dropped whole (returns 0) and counted in [`RecvBuffer::dropped_segments`].
    pub fn write_at(&mut self, offset: u64, data: &[u8]) -> usize {
        let ioe = self.in_order_end();
        let win_end = self.read_offset + self.capacity as u64;
        let start = offset.max(ioe);
        let end = offset.saturating_add(data.len() as u64).min(win_end);
        if start >= end {
            return 0;
        }
        // Both fit in usize: they are below `capacity` / `data.len()`.
        let src = &data[(start - offset) as usize..(end - offset) as usize];

        // Fast path: in order, nothing held out of order.
        if self.ranges.is_empty() && start == ioe {
            self.ensure_alloc(end);
            self.copy_in(start, src);
            self.readable += src.len();
            return src.len();
        }

        // Ranges that overlap or touch [start, end) are ranges[i..j].
        let i = self.ranges.partition_point(|r| r.end < start);
        let j = self.ranges.partition_point(|r| r.start <= end);
        let merged = j - i;
        let new_count = if start == ioe {
            self.ranges.len() - merged
        } else {
            self.ranges.len() + 1 - merged
        };
        if new_count > self.max_ranges && new_count > self.ranges.len() {
            self.dropped += 1;
            return 0;
        }
        self.ensure_alloc(end);

        // Fill only the gaps inside [start, end): bytes already held keep their first copy.
        let mut cursor = start;
        for k in i..j {
            let r = self.ranges[k];
            if r.start > cursor {
                let from = (cursor - start) as usize;
                let to = (r.start - start) as usize;
                self.copy_in(cursor, &src[from..to]);
            }
            cursor = cursor.max(r.end);
        }
        if cursor < end {
            self.copy_in(cursor, &src[(cursor - start) as usize..]);
        }

        let (mut new_start, mut new_end) = (start, end);
        if merged > 0 {
            new_start = new_start.min(self.ranges[i].start);
            new_end = new_end.max(self.ranges[j - 1].end);
            let removed: u64 = self.ranges[i..j].iter().map(|r| r.end - r.start).sum();
            self.ooo_bytes -= removed as usize;
        }
        if new_start == ioe {
            // The gap at the in-order end is filled: everything up to new_end is in order.
            debug_assert_eq!(i, 0);
            self.ranges.drain(i..j);
            let adv = (new_end - ioe) as usize;
            self.readable += adv;
            adv
        } else {
            let stamp = self.next_stamp;
            self.next_stamp += 1;
            let r = OooRange {
                start: new_start,
                end: new_end,
                stamp,
            };
            self.ranges.splice(i..j, std::iter::once(r));
            self.ooo_bytes += (new_end - new_start) as usize;
            0
        }
    }

    /// Offset of the next byte the application reads.
    pub fn read_offset(&self) -> u64 {
        self.read_offset
    }

    /// `read_offset + readable`: the next byte expected in order (RCV.NXT).
    pub fn in_order_end(&self) -> u64 {
        self.read_offset + self.readable as u64
    }

    /// In-order bytes the application can read.
    pub fn readable(&self) -> usize {
        self.readable
    }

    /// Copies in-order bytes from offset `read_offset() + skip` without consuming them;
    /// returns the count (0 when `skip` is at or beyond the in-order end).
    pub fn peek(&self, skip: usize, out: &mut [u8]) -> usize {
        if skip >= self.readable {
            return 0;
        }
        let n = out.len().min(self.readable - skip);
        let size = self.ring.len();
        let pos = (self.head + skip) % size;
        let first = n.min(size - pos);
        out[..first].copy_from_slice(&self.ring[pos..pos + first]);
        out[first..n].copy_from_slice(&self.ring[..n - first]);
        n
    }

    /// Up to `n` in-order bytes from the read offset, as the one or two slices of the ring
    /// that hold them (the second empty unless they wrap), not consumed. No copy.
    pub fn readable_slices(&self, n: usize) -> (&[u8], &[u8]) {
        let n = n.min(self.readable);
        if n == 0 {
            return (&[], &[]);
        }
        let size = self.ring.len();
        let first = n.min(size - self.head);
        (
            &self.ring[self.head..self.head + first],
            &self.ring[..n - first],
        )
    }

    /// Copies and consumes in-order bytes; returns the count.
    pub fn read(&mut self, out: &mut [u8]) -> usize {
        let (a, b) = self.readable_slices(out.len());
        let (first, n) = (a.len(), a.len() + b.len());
        out[..first].copy_from_slice(a);
        out[first..n].copy_from_slice(b);
        self.consume(n)
    }

    /// `n` in-order bytes arrived at the in-order end and were taken elsewhere at once (see
    /// `SubflowHooks::land`): counted as received and read, never held. Only while nothing
    /// is held; returns `n`.
    pub fn pass(&mut self, n: usize) -> usize {
        debug_assert!(self.readable == 0 && self.ranges.is_empty());
        self.readable += n;
        self.consume(n)
    }

    /// Consumes up to `n` in-order bytes without copying them; returns the count.
    pub fn consume(&mut self, n: usize) -> usize {
        let n = n.min(self.readable);
        if n == 0 {
            return 0;
        }
        let size = self.ring.len();
        self.readable -= n;
        self.read_offset += n as u64;
        let empty = self.readable == 0 && self.ranges.is_empty();
        self.head = if empty { 0 } else { (self.head + n) % size };
        if let Some(t) = self.shrink_target {
            // The right edge (read_offset + capacity) stays where it was promised.
            self.capacity = self.capacity.saturating_sub(n).max(t);
            if self.capacity == t {
                self.shrink_target = None;
            }
            if empty && self.ring.len() > self.capacity {
                self.ring.truncate(self.capacity);
                self.ring.shrink_to_fit();
            }
        }
        n
    }

    /// Memory pressure: the window closes towards `target` bytes as the application reads —
    /// its right edge never moves left (RFC 9293 §3.8.6.2.2: data the peer may already have
    /// sent still fits) — and the ring is trimmed whenever it empties. `None` lifts that
    /// (growth is the tuner's again).
    pub fn shrink_towards(&mut self, target: Option<usize>) {
        self.shrink_target = target.filter(|&t| t < self.capacity);
        if let Some(t) = self.shrink_target {
            if self.readable == 0 && self.ranges.is_empty() && self.ring.len() > t {
                self.ring = Vec::new();
                self.head = 0;
            }
        }
    }

    /// Free space for the advertised window: capacity - readable - (nothing else; out-of-order data
    /// lies inside the window already).  i.e. read_offset + capacity - in_order_end.
    pub fn window(&self) -> usize {
        self.capacity.saturating_sub(self.readable)
    }

    /// One past the farthest byte held (the in-order end when nothing is out of order).
    pub fn held_end(&self) -> u64 {
        self.ranges.last().map_or(self.in_order_end(), |r| r.end)
    }

    /// Bytes held out of order.
    pub fn ooo_bytes(&self) -> usize {
        self.ooo_bytes
    }

    /// Out-of-order ranges [start, end) as stream offsets, the range touched by the most recent
    /// write_at first (RFC 2018 §4: the first SACK block reports the most recently received segment),
    /// then the others in order of recency; at most `max` of them.
    ///
    /// `out` is cleared first.
    pub fn sack_ranges(&self, max: usize, out: &mut Vec<(u64, u64)>) {
        out.clear();
        let mut taken = u64::MAX;
        // Few ranges and a small `max` (at most 4 SACK blocks): repeated scans are cheapest.
        for _ in 0..max.min(self.ranges.len()) {
            let best = self
                .ranges
                .iter()
                .filter(|r| r.stamp < taken)
                .max_by_key(|r| r.stamp);
            match best {
                Some(r) => {
                    out.push((r.start, r.end));
                    taken = r.stamp;
                }
                None => break,
            }
        }
    }

    /// Writes dropped because they would have exceeded the bound on out-of-order ranges.
    pub fn dropped_segments(&self) -> u64 {
        self.dropped
    }

    /// Bytes from `read_offset` to the end of the farthest data held.
    fn extent(&self) -> usize {
        let far = self.ranges.last().map_or(self.in_order_end(), |r| r.end);
        (far - self.read_offset) as usize
    }

    /// Makes the ring large enough to hold offsets up to `end` (which is inside the window).
    fn ensure_alloc(&mut self, end: u64) {
        let need = (end - self.read_offset) as usize;
        if need > self.ring.len() {
            let size = need
                .max(self.ring.len().saturating_mul(2))
                .max(MIN_ALLOC)
                .min(self.capacity);
            self.realloc(size);
        }
    }

    /// Copies `src` into the ring at stream offset `at` (inside the allocation).
    fn copy_in(&mut self, at: u64, src: &[u8]) {
        let size = self.ring.len();
        let pos = (self.head + (at - self.read_offset) as usize) % size;
        let first = src.len().min(size - pos);
        self.ring[pos..pos + first].copy_from_slice(&src[..first]);
        self.ring[..src.len() - first].copy_from_slice(&src[first..]);
    }

    /// Moves the held window (`extent` bytes from `read_offset`) into a new ring of `size` bytes.
    fn realloc(&mut self, size: usize) {
        let keep = self.extent();
        debug_assert!(size >= keep);
        let mut ring = vec![0u8; size];
        if keep > 0 {
            let old = self.ring.len();
            let first = keep.min(old - self.head);
            ring[..first].copy_from_slice(&self.ring[self.head..self.head + first]);
            ring[first..keep].copy_from_slice(&self.ring[..keep - first]);
        }
        self.ring = ring;
        self.head = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pattern(from: u64, n: usize) -> Vec<u8> {
        (from..from + n as u64)
            .map(|i| (i * 13 % 251) as u8)
            .collect()
    }

    fn read_all(b: &mut RecvBuffer) -> Vec<u8> {
        let mut out = vec![0; b.readable()];
        let n = b.read(&mut out);
        assert_eq!(n, out.len());
        out
    }

    fn sacks(b: &RecvBuffer, max: usize) -> Vec<(u64, u64)> {
        let mut v = vec![(1, 1)];
        b.sack_ranges(max, &mut v);
        v
    }

    #[test]
    fn in_order_fast_path() {
        let mut b = RecvBuffer::new(100);
        assert_eq!(b.ring.len(), 0);
        assert_eq!(b.window(), 100);
        assert_eq!(b.write_at(0, &pattern(0, 30)), 30);
        assert_eq!(b.write_at(30, &pattern(30, 30)), 30);
        assert_eq!((b.readable(), b.in_order_end(), b.window()), (60, 60, 40));
        let mut out = [0u8; 25];
        assert_eq!(b.read(&mut out), 25);
        assert_eq!(&out[..], &pattern(0, 25)[..]);
        assert_eq!((b.read_offset(), b.window()), (25, 65));
        assert_eq!(read_all(&mut b), pattern(25, 35));
        assert_eq!(b.read(&mut out), 0);
    }

    #[test]
    fn window_trimming() {
        let mut b = RecvBuffer::new(50);
        // Beyond the right edge: trimmed to the window.
        assert_eq!(b.write_at(0, &pattern(0, 80)), 50);
        assert_eq!(b.window(), 0);
        assert_eq!(b.write_at(50, &pattern(50, 10)), 0);
        let mut out = [0u8; 20];
        b.read(&mut out);
        // Window slid by 20: [50, 70) fits now, partly overlapping old data on the left.
        assert_eq!(b.write_at(40, &pattern(40, 40)), 20);
        assert_eq!(b.in_order_end(), 70);
        // Out of order write straddling the right edge.
        b.read(&mut out);
        assert_eq!(b.write_at(80, &pattern(80, 100)), 0);
        assert_eq!(b.ooo_bytes(), 10, "[80, 90) kept");
        assert_eq!(sacks(&b, 4), vec![(80, 90)]);
        // Entirely old or entirely beyond: ignored.
        assert_eq!(b.write_at(0, &pattern(0, 10)), 0);
        assert_eq!(b.write_at(90, &pattern(90, 10)), 0);
        assert_eq!(b.write_at(u64::MAX - 3, &[1, 2, 3, 4, 5]), 0);
        assert_eq!(b.dropped_segments(), 0);
        assert_eq!(b.write_at(70, &pattern(70, 10)), 20);
        assert_eq!(read_all(&mut b), pattern(40, 50));
    }

    #[test]
    fn out_of_order_then_fill() {
        let mut b = RecvBuffer::new(1000);
        assert_eq!(b.write_at(100, &pattern(100, 50)), 0);
        assert_eq!(b.write_at(200, &pattern(200, 50)), 0);
        assert_eq!(b.ooo_bytes(), 100);
        assert_eq!(b.window(), 1000);
        assert_eq!(sacks(&b, 4), vec![(200, 250), (100, 150)]);
        // Fill the middle gap: ranges merge.
        assert_eq!(b.write_at(150, &pattern(150, 50)), 0);
        assert_eq!(sacks(&b, 4), vec![(100, 250)]);
        assert_eq!(b.ooo_bytes(), 150);
        // Fill the first gap: everything is in order.
        assert_eq!(b.write_at(0, &pattern(0, 100)), 250);
        assert_eq!(b.ooo_bytes(), 0);
        assert_eq!(sacks(&b, 4), vec![]);
        assert_eq!(read_all(&mut b), pattern(0, 250));
    }

    #[test]
    fn sack_order_is_recency() {
        let mut b = RecvBuffer::new(1000);
        for s in [100u64, 300, 500, 700] {
            b.write_at(s, &pattern(s, 10));
        }
        assert_eq!(sacks(&b, 3), vec![(700, 710), (500, 510), (300, 310)]);
        // Touch the oldest range again (extending it): it comes first now.
        b.write_at(110, &pattern(110, 10));
        assert_eq!(
            sacks(&b, 4),
            vec![(100, 120), (700, 710), (500, 510), (300, 310)]
        );
        // A pure duplicate of a range also counts as the most recent segment.
        b.write_at(500, &pattern(500, 5));
        assert_eq!(sacks(&b, 2), vec![(500, 510), (100, 120)]);
        assert_eq!(sacks(&b, 0), vec![]);
    }

    #[test]
    fn duplicates_and_overlaps_keep_first_copy() {
        let mut b = RecvBuffer::new(1000);
        b.write_at(10, &[1; 10]);
        b.write_at(30, &[2; 10]);
        // Overlaps both ranges and the gap, with different bytes.
        assert_eq!(b.write_at(5, &[9; 40]), 0);
        assert_eq!(b.ooo_bytes(), 40);
        assert_eq!(b.write_at(0, &[7; 5]), 45);
        let got = read_all(&mut b);
        let mut want = vec![7u8; 5];
        want.extend([9; 5]);
        want.extend([1; 10]);
        want.extend([9; 10]);
        want.extend([2; 10]);
        want.extend([9; 5]);
        assert_eq!(got, want);
        // In-order duplicate and a write that overlaps the in-order end.
        b.write_at(45, &[3; 10]);
        assert_eq!(b.write_at(45, &[4; 10]), 0);
        assert_eq!(b.write_at(50, &[5; 10]), 5);
        assert_eq!(read_all(&mut b), [&[3u8; 10][..], &[5; 5]].concat());
    }

    #[test]
    fn peek_copies_without_consuming_across_the_wrap() {
        let mut b = RecvBuffer::new(8);
        assert_eq!(b.peek(0, &mut [0; 4]), 0);
        b.write_at(0, &[1, 2, 3, 4, 5, 6]);
        let mut out = [0u8; 6];
        assert_eq!(b.read(&mut out[..5]), 5);
        b.write_at(6, &[7, 8, 9, 10, 11]);
        // In order: 6..=11, wrapped in the ring.
        assert_eq!(b.peek(1, &mut out), 5);
        assert_eq!(out[..5], [7, 8, 9, 10, 11]);
        assert_eq!(b.peek(6, &mut out), 0);
        assert_eq!(b.readable(), 6);
        assert_eq!(b.read(&mut out), 6);
        assert_eq!(out, [6, 7, 8, 9, 10, 11]);
    }

    #[test]
    fn ring_wraps_with_out_of_order_data() {
        let mut b = RecvBuffer::new(MIN_ALLOC);
        let cap = MIN_ALLOC as u64;
        let mut out = vec![0u8; MIN_ALLOC];
        // Move the head near the end of the ring.
        b.write_at(0, &pattern(0, MIN_ALLOC - 10));
        assert_eq!(b.read(&mut out), MIN_ALLOC - 10);
        assert_eq!(b.ring.len(), MIN_ALLOC);
        let base = cap - 10;
        // Out-of-order data that wraps around the end of the ring.
        assert_eq!(b.write_at(base + 5, &pattern(base + 5, 100)), 0);
        assert_eq!(b.write_at(base + 200, &pattern(base + 200, 3000)), 0);
        assert_eq!(b.write_at(base, &pattern(base, 5)), 105);
        assert_eq!(b.write_at(base + 105, &pattern(base + 105, 95)), 3095);
        assert_eq!(b.window(), MIN_ALLOC - 3200);
        assert_eq!(read_all(&mut b), pattern(base, 3200));
        assert_eq!(b.ring.len(), MIN_ALLOC, "never above capacity");
    }

    #[test]
    fn lazy_growth_keeps_out_of_order_data() {
        let mut b = RecvBuffer::new(100_000);
        b.write_at(0, &pattern(0, 100));
        let mut out = [0u8; 60];
        b.read(&mut out);
        b.write_at(1000, &pattern(1000, 100));
        assert_eq!(b.ring.len(), MIN_ALLOC);
        // Needs a bigger ring: in-order and out-of-order data move together.
        b.write_at(50_000, &pattern(50_000, 100));
        assert!(b.ring.len() >= 50_100 - 60 && b.ring.len() <= 100_000);
        b.write_at(100, &pattern(100, 900));
        b.write_at(1100, &pattern(1100, 48_900));
        assert_eq!(b.in_order_end(), 50_100);
        assert_eq!(read_all(&mut b), pattern(60, 50_040));
    }

    #[test]
    fn range_limit_drops_and_counts() {
        let mut b = RecvBuffer::with_max_ranges(1000, 3);
        for s in [10u64, 30, 50] {
            assert_eq!(b.write_at(s, &[1; 5]), 0);
        }
        // A fourth disjoint range: dropped.
        assert_eq!(b.write_at(70, &[1; 5]), 0);
        assert_eq!(b.dropped_segments(), 1);
        assert_eq!(b.ooo_bytes(), 15);
        assert_eq!(sacks(&b, 4).len(), 3);
        // Extending or bridging existing ranges is allowed.
        b.write_at(15, &[1; 5]);
        b.write_at(20, &[1; 10]);
        assert_eq!(sacks(&b, 4), vec![(10, 35), (50, 55)]);
        assert_eq!(b.write_at(70, &[1; 5]), 0);
        assert_eq!(b.dropped_segments(), 1);
        assert_eq!(sacks(&b, 4).len(), 3);
        // In-order data never counts against the limit.
        assert_eq!(b.write_at(0, &[2; 5]), 5);
        assert_eq!(b.dropped_segments(), 1);
    }

    #[test]
    fn set_capacity_respects_held_data() {
        let mut b = RecvBuffer::new(10_000);
        b.write_at(0, &pattern(0, 100));
        b.write_at(500, &pattern(500, 100));
        b.set_capacity(10);
        assert_eq!(b.capacity(), 600);
        assert_eq!(b.window(), 500);
        assert_eq!(b.ring.len(), 600);
        b.write_at(100, &pattern(100, 400));
        assert_eq!(read_all(&mut b), pattern(0, 600));
        b.set_capacity(0);
        assert_eq!((b.capacity(), b.window()), (0, 0));
        assert_eq!(b.write_at(600, &[1]), 0);
        b.set_capacity(5000);
        assert_eq!(b.write_at(600, &pattern(600, 5000)), 5000);
    }

    #[test]
    fn release_frees_only_an_empty_ring() {
        let mut b = RecvBuffer::new(100_000);
        b.write_at(0, &pattern(0, 100));
        b.write_at(500, &pattern(500, 100));
        b.release();
        assert_eq!(b.allocated(), MIN_ALLOC, "holds data");
        b.write_at(100, &pattern(100, 400));
        assert_eq!(read_all(&mut b), pattern(0, 600));
        b.release();
        assert_eq!(b.allocated(), 0);
        assert_eq!(b.write_at(600, &pattern(600, 10)), 10);
        assert_eq!(read_all(&mut b), pattern(600, 10));
    }

    #[test]
    fn zero_length_and_zero_capacity() {
        let mut b = RecvBuffer::new(0);
        assert_eq!(b.write_at(0, &[1, 2, 3]), 0);
        assert_eq!(b.write_at(5, &[1, 2, 3]), 0);
        assert_eq!(b.dropped_segments(), 0);
        let mut b = RecvBuffer::new(10);
        assert_eq!(b.write_at(0, &[]), 0);
        assert_eq!(b.write_at(3, &[]), 0);
        assert_eq!(sacks(&b, 4), vec![]);
    }

    #[test]
    fn shrinking_closes_the_window_without_moving_its_right_edge() {
        let mut b = RecvBuffer::new(1000);
        assert_eq!(b.write_at(0, &pattern(0, 600)), 600);
        assert_eq!(b.write_at(800, &pattern(800, 100)), 0);
        let edge = b.read_offset() + b.capacity() as u64;
        b.shrink_towards(Some(300));
        // Nothing read yet: the promised window stays whole.
        assert_eq!(b.read_offset() + b.capacity() as u64, edge);
        let mut out = vec![0; 400];
        assert_eq!(b.read(&mut out), 400);
        assert_eq!(out, pattern(0, 400));
        // Reading does not reopen it: the right edge is where it was.
        assert_eq!(b.capacity(), 600);
        assert_eq!(b.read_offset() + b.capacity() as u64, edge);
        // The held out-of-order bytes are still inside and are filled in later.
        assert_eq!(b.write_at(600, &pattern(600, 200)), 300);
        let mut out = vec![0; 500];
        assert_eq!(b.read(&mut out), 500);
        assert_eq!(out, pattern(400, 500));
        // Down at the target: it stays there, and the emptied ring is trimmed to it.
        assert_eq!(b.capacity(), 300);
        assert!(b.allocated() <= 300, "{}", b.allocated());
        assert_eq!(b.write_at(900, &pattern(900, 400)), 300, "window 300");
        let mut out = vec![0; 300];
        assert_eq!(b.read(&mut out), 300);
        assert_eq!(b.capacity(), 300);
        // Lifting it: the tuner may grow it again.
        b.shrink_towards(None);
        b.set_capacity(2000);
        assert_eq!(b.capacity(), 2000);
    }
}
