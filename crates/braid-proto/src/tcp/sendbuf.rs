//! The send buffer: bytes written by the application and not yet acknowledged, bounded.

/// Smallest allocation step of the ring, so tiny writes do not reallocate repeatedly.
const MIN_ALLOC: usize = 4096;

/// Bytes the application wrote that the peer has not acknowledged yet, as a ring buffer.
///
/// Stream offsets are `u64` counted from 0 = the first byte ever written. The ring is allocated
/// lazily and grows (doubling) with the data held, never beyond `capacity` — except by the
/// acknowledged bytes it is asked to keep ([`SendBuffer::keep_from`]: the MPTCP connection
/// level keeps what a subflow may still have to send again, since subflows hold no copy).
///
/// A *mapped* buffer ([`SendBuffer::mapped`]) holds no bytes at all: it only counts them. An
/// MPTCP subflow's is one; the payload of its segments comes from the connection level's
/// buffer through its mappings.
#[derive(Debug, Clone)]
pub struct SendBuffer {
    /// The ring; its length is the allocated size.
    ring: Vec<u8>,
    /// Index in `ring` of the byte at stream offset `base`.
    head: usize,
    /// Stream offset of the first byte the ring holds (`base <= start`).
    base: u64,
    /// Stream offset of the first unacknowledged byte.
    start: u64,
    /// Stream offset one past the last byte written.
    end: u64,
    /// Acknowledged bytes from this offset on stay in the ring (`u64::MAX`: none).
    keep: u64,
    capacity: usize,
    /// Counts bytes without holding them.
    mapped: bool,
}

impl SendBuffer {
    /// An empty buffer that will hold at most `capacity` bytes; nothing is allocated yet.
    pub fn new(capacity: usize) -> Self {
        SendBuffer {
            ring: Vec::new(),
            head: 0,
            base: 0,
            start: 0,
            end: 0,
            keep: u64::MAX,
            capacity,
            mapped: false,
        }
    }

    /// An empty buffer that counts at most `capacity` bytes and holds none of them, its next
    /// byte at stream offset `offset`: the bytes go in with [`SendBuffer::write_mapped`], and
    /// whoever sends them finds them elsewhere.
    pub fn mapped_at(capacity: usize, offset: u64) -> Self {
        SendBuffer {
            mapped: true,
            ..SendBuffer::starting_at(capacity, offset)
        }
    }

    /// An empty buffer of `capacity` bytes whose next byte is stream offset `offset`.
    pub fn starting_at(capacity: usize, offset: u64) -> Self {
        SendBuffer {
            base: offset,
            start: offset,
            end: offset,
            ..SendBuffer::new(capacity)
        }
    }

    /// The buffer counts its bytes without holding them.
    pub fn is_mapped(&self) -> bool {
        self.mapped
    }

    /// The most bytes the buffer holds.
    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// Changes the capacity; it never shrinks below the bytes held.
    pub fn set_capacity(&mut self, capacity: usize) {
        self.capacity = capacity.max(self.len());
        let floor = self.capacity.max(self.held());
        if self.ring.len() > floor {
            self.realloc(floor);
        }
    }

    /// Bytes of memory the ring holds now.
    pub fn allocated(&self) -> usize {
        self.ring.len()
    }

    /// Frees the ring when nothing is held (it is allocated again on the next write).
    pub fn release(&mut self) {
        if self.held() == 0 {
            self.ring = Vec::new();
            self.head = 0;
        }
    }

    /// Bytes in the ring: the unacknowledged ones and those kept.
    fn held(&self) -> usize {
        (self.end - self.base) as usize
    }

    /// Appends as much of `data` as fits and returns that count.
    pub fn write(&mut self, data: &[u8]) -> usize {
        debug_assert!(!self.mapped, "a mapped buffer holds no bytes");
        let n = data.len().min(self.free());
        if n == 0 {
            return 0;
        }
        let need = self.held() + n;
        if need > self.ring.len() {
            let size = if need <= self.capacity {
                need.max(self.ring.len().saturating_mul(2))
                    .max(MIN_ALLOC)
                    .min(self.capacity)
            } else {
                // Past the capacity by the bytes kept: a quarter more at a time, not per write.
                need.max(self.ring.len() + self.ring.len() / 4)
            };
            self.realloc(size);
        }
        let size = self.ring.len();
        let tail = (self.head + self.held()) % size;
        let first = n.min(size - tail);
        self.ring[tail..tail + first].copy_from_slice(&data[..first]);
        self.ring[..n - first].copy_from_slice(&data[first..n]);
        self.end += n as u64;
        n
    }

    /// Counts up to `n` more bytes in a mapped buffer, as far as they fit; returns that count.
    pub fn write_mapped(&mut self, n: usize) -> usize {
        debug_assert!(
            self.mapped,
            "only a mapped buffer counts bytes it does not hold"
        );
        let n = n.min(self.free());
        self.end += n as u64;
        n
    }

    /// Bytes held (written and not acknowledged).
    pub fn len(&self) -> usize {
        (self.end - self.start) as usize
    }

    pub fn is_empty(&self) -> bool {
        self.end == self.start
    }

    /// Bytes that can still be written.
    pub fn free(&self) -> usize {
        self.capacity.saturating_sub(self.len())
    }

    /// Offset of the first unacknowledged byte.
    pub fn start(&self) -> u64 {
        self.start
    }

    /// Offset one past the last byte written.
    pub fn end(&self) -> u64 {
        self.end
    }

    /// Copies bytes from stream offset `offset` (in the ring: from the oldest byte kept to
    /// end) into `out`, returns count (min(out.len(), end-offset)); 0 if offset is out of
    /// range.
    pub fn read_at(&self, offset: u64, out: &mut [u8]) -> usize {
        let (a, b) = self.slices_at(offset, out.len());
        let (first, n) = (a.len(), a.len() + b.len());
        out[..first].copy_from_slice(a);
        out[first..n].copy_from_slice(b);
        n
    }

    /// The bytes from stream offset `offset` (from the oldest byte kept to end), at most `n`,
    /// as the one or two slices of the ring that hold them (the second empty unless they
    /// wrap); both empty if offset is out of range, or the buffer is mapped. No copy.
    pub fn slices_at(&self, offset: u64, n: usize) -> (&[u8], &[u8]) {
        if offset < self.base || offset > self.end || self.mapped {
            return (&[], &[]);
        }
        let skip = (offset - self.base) as usize;
        let n = n.min((self.end - offset) as usize);
        if n == 0 {
            return (&[], &[]);
        }
        let size = self.ring.len();
        let pos = (self.head + skip) % size;
        let first = n.min(size - pos);
        (&self.ring[pos..pos + first], &self.ring[..n - first])
    }

    /// Releases bytes before `offset` (clamped to [start, end]). Returns how many were released.
    /// Those from the offset [`SendBuffer::keep_from`] names on stay in the ring.
    pub fn ack_to(&mut self, offset: u64) -> usize {
        let n = (offset.clamp(self.start, self.end) - self.start) as usize;
        self.start += n as u64;
        self.drop_to(self.keep.min(self.start));
        n
    }

    /// Acknowledged bytes from `offset` on stay in the ring (as long as this is not moved
    /// past them); the acknowledged bytes before it are freed now.
    pub fn keep_from(&mut self, offset: u64) {
        self.keep = offset;
        self.drop_to(offset.min(self.start));
    }

    /// Acknowledged bytes still in the ring ([`SendBuffer::keep_from`]).
    pub fn kept(&self) -> usize {
        (self.start - self.base) as usize
    }

    /// Acknowledged bytes from `offset` on stay in the ring, besides those kept already.
    pub fn keep_also(&mut self, offset: u64) {
        self.keep = self.keep.min(offset);
    }

    /// Frees the ring's bytes before `offset` (at most up to `start`).
    fn drop_to(&mut self, offset: u64) {
        let n = (offset.clamp(self.base, self.start) - self.base) as usize;
        if n == 0 {
            return;
        }
        self.base += n as u64;
        self.head = if self.held() == 0 || self.ring.is_empty() {
            0
        } else {
            (self.head + n) % self.ring.len()
        };
    }

    /// Moves the held bytes into a new ring of `size` (>= held) bytes, starting at index 0.
    fn realloc(&mut self, size: usize) {
        debug_assert!(size >= self.held());
        let mut ring = vec![0u8; size];
        let n = self.read_at(self.base, &mut ring[..self.held()]);
        debug_assert_eq!(n, self.held());
        self.ring = ring;
        self.head = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pattern(from: u64, n: usize) -> Vec<u8> {
        (from..from + n as u64)
            .map(|i| (i * 7 % 251) as u8)
            .collect()
    }

    #[test]
    fn empty_and_lazy() {
        let b = SendBuffer::new(1 << 20);
        assert_eq!(b.ring.len(), 0);
        assert!(b.is_empty());
        assert_eq!((b.start(), b.end(), b.free()), (0, 0, 1 << 20));
        let mut out = [0u8; 4];
        assert_eq!(b.read_at(0, &mut out), 0);
        assert_eq!(b.read_at(1, &mut out), 0);
    }

    #[test]
    fn write_read_ack_wraps() {
        let mut b = SendBuffer::new(10);
        assert_eq!(b.write(&pattern(0, 7)), 7);
        assert_eq!(b.write(&pattern(7, 7)), 3);
        assert_eq!(b.free(), 0);
        assert_eq!(b.ring.len(), 10);
        assert_eq!(b.ack_to(6), 6);
        assert_eq!(b.start(), 6);
        // Now the tail wraps around the end of the ring.
        assert_eq!(b.write(&pattern(10, 5)), 5);
        assert_eq!(b.end(), 15);
        let mut out = [0u8; 16];
        assert_eq!(b.read_at(6, &mut out), 9);
        assert_eq!(&out[..9], &pattern(6, 9)[..]);
        assert_eq!(b.read_at(9, &mut out[..3]), 3);
        assert_eq!(&out[..3], &pattern(9, 3)[..]);
        assert_eq!(b.read_at(15, &mut out), 0);
        assert_eq!(b.read_at(16, &mut out), 0);
        assert_eq!(b.read_at(5, &mut out), 0);
        assert_eq!(b.ring.len(), 10, "never above capacity");
    }

    #[test]
    fn slices_match_read_at() {
        let mut b = SendBuffer::new(8192);
        b.write(&pattern(0, 6000));
        b.ack_to(5000);
        b.write(&pattern(6000, 6000));
        for (off, n) in [
            (5000, 7000),
            (5500, 100),
            (7000, 5000),
            (11_999, 9),
            (12_000, 5),
        ] {
            let (x, y) = b.slices_at(off, n);
            let mut out = vec![0; n];
            let k = b.read_at(off, &mut out);
            assert_eq!([x, y].concat(), &out[..k]);
        }
        assert_eq!(b.slices_at(4999, 10), (&[][..], &[][..]));
    }

    #[test]
    fn ack_clamps() {
        let mut b = SendBuffer::new(100);
        b.write(&pattern(0, 50));
        assert_eq!(b.ack_to(10), 10);
        assert_eq!(b.ack_to(5), 0);
        assert_eq!(b.ack_to(1000), 40);
        assert_eq!((b.start(), b.end(), b.len()), (50, 50, 0));
        assert_eq!(b.ack_to(u64::MAX), 0);
    }

    #[test]
    fn grows_lazily_up_to_capacity() {
        let mut b = SendBuffer::new(10_000);
        b.write(&[1; 10]);
        assert_eq!(b.ring.len(), MIN_ALLOC);
        b.write(&[2; 5000]);
        assert_eq!(b.ring.len(), 8192);
        b.write(&[3; 5000]);
        assert_eq!(b.ring.len(), 10_000);
        assert_eq!(b.len(), 10_000);
        let mut out = vec![0; 10_000];
        assert_eq!(b.read_at(0, &mut out), 10_000);
        assert!(out[..10].iter().all(|&x| x == 1));
        assert!(out[10..5010].iter().all(|&x| x == 2));
        assert!(out[5010..].iter().all(|&x| x == 3));
    }

    #[test]
    fn set_capacity_grows_and_shrinks_to_len() {
        let mut b = SendBuffer::new(10);
        b.write(&pattern(0, 10));
        b.ack_to(4);
        b.write(&pattern(10, 4)); // wrapped
        b.set_capacity(2);
        assert_eq!(b.capacity(), 10);
        b.ack_to(8);
        b.set_capacity(3);
        assert_eq!(b.capacity(), 6);
        assert_eq!(b.ring.len(), 6);
        let mut out = [0u8; 6];
        assert_eq!(b.read_at(8, &mut out), 6);
        assert_eq!(&out[..], &pattern(8, 6)[..]);
        b.set_capacity(20);
        assert_eq!(b.write(&pattern(14, 20)), 14);
        let mut out = [0u8; 20];
        assert_eq!(b.read_at(8, &mut out), 20);
        assert_eq!(&out[..], &pattern(8, 20)[..]);
    }

    #[test]
    fn release_frees_only_an_empty_ring() {
        let mut b = SendBuffer::new(100_000);
        b.write(&pattern(0, 10_000));
        assert_eq!(b.allocated(), 10_000);
        b.release();
        assert_eq!(b.allocated(), 10_000, "holds data");
        b.ack_to(10_000);
        b.release();
        assert_eq!((b.allocated(), b.len()), (0, 0));
        assert_eq!(b.write(&pattern(10_000, 5)), 5);
        let mut out = [0u8; 5];
        assert_eq!(b.read_at(10_000, &mut out), 5);
        assert_eq!(&out[..], &pattern(10_000, 5)[..]);
        assert_eq!(b.allocated(), MIN_ALLOC);
    }

    #[test]
    fn kept_bytes_stay_readable_past_the_ack_and_the_capacity() {
        let mut b = SendBuffer::new(8192);
        assert_eq!(b.write(&pattern(0, 8192)), 8192);
        b.keep_also(1000);
        assert_eq!(b.ack_to(6000), 6000);
        assert_eq!((b.kept(), b.free()), (5000, 6000));
        // The freed room is written while the kept bytes are still there: the ring grows.
        assert_eq!(b.write(&pattern(8192, 6000)), 6000);
        assert!(b.allocated() >= 13_192);
        let mut out = vec![0; 13_192];
        assert_eq!(b.read_at(1000, &mut out), 13_192);
        assert_eq!(out, pattern(1000, 13_192));
        assert_eq!(b.read_at(999, &mut out), 0, "before the kept bytes");
        // Keeping from later frees the rest; nothing before the ack is kept then.
        b.keep_from(u64::MAX);
        assert_eq!(b.kept(), 0);
        assert_eq!(b.read_at(5999, &mut out), 0);
        assert_eq!(b.read_at(6000, &mut out[..100]), 100);
        assert_eq!(&out[..100], &pattern(6000, 100)[..]);
    }

    #[test]
    fn a_mapped_buffer_counts_without_holding() {
        let mut b = SendBuffer::mapped_at(10_000, 500);
        assert!(b.is_mapped());
        assert_eq!(b.write_mapped(6000), 6000);
        assert_eq!(b.write_mapped(6000), 4000);
        assert_eq!((b.start(), b.end(), b.free()), (500, 10_500, 0));
        assert_eq!(b.allocated(), 0);
        assert_eq!(b.slices_at(500, 100), (&[][..], &[][..]));
        assert_eq!(b.ack_to(3000), 2500);
        assert_eq!((b.free(), b.allocated()), (2500, 0));
    }

    #[test]
    fn zero_capacity() {
        let mut b = SendBuffer::new(0);
        assert_eq!(b.write(b"abc"), 0);
        assert_eq!(b.free(), 0);
        assert_eq!(b.ack_to(3), 0);
    }
}
