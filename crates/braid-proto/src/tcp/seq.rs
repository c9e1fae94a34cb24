//! 32-bit TCP sequence numbers with wrap-around comparison (RFC 9293 §3.4).

use std::cmp::Ordering;
use std::ops::{Add, Sub};

/// A TCP sequence number. Ordering is modulo 2^32: `a < b` iff `b - a` is in `(0, 2^31)`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct Seq(pub u32);

impl Seq {
    /// Signed distance from `other` to `self`.
    pub fn diff(self, other: Seq) -> i32 {
        self.0.wrapping_sub(other.0) as i32
    }
    pub fn max(self, other: Seq) -> Seq {
        if self >= other {
            self
        } else {
            other
        }
    }
    pub fn min(self, other: Seq) -> Seq {
        if self <= other {
            self
        } else {
            other
        }
    }
    /// `lo <= self < hi` in sequence space.
    pub fn in_range(self, lo: Seq, hi: Seq) -> bool {
        self >= lo && self < hi
    }
}

impl PartialOrd for Seq {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Seq {
    fn cmp(&self, other: &Self) -> Ordering {
        self.diff(*other).cmp(&0)
    }
}

impl Add<u32> for Seq {
    type Output = Seq;
    fn add(self, n: u32) -> Seq {
        Seq(self.0.wrapping_add(n))
    }
}

impl Add<usize> for Seq {
    type Output = Seq;
    fn add(self, n: usize) -> Seq {
        Seq(self.0.wrapping_add(n as u32))
    }
}

impl Sub<u32> for Seq {
    type Output = Seq;
    fn sub(self, n: u32) -> Seq {
        Seq(self.0.wrapping_sub(n))
    }
}

impl Sub<Seq> for Seq {
    type Output = i32;
    fn sub(self, other: Seq) -> i32 {
        self.diff(other)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wraps() {
        let a = Seq(u32::MAX - 10);
        let b = a + 20u32;
        assert!(a < b);
        assert_eq!(b - a, 20);
        assert_eq!(a - b, -20);
        assert!(Seq(5).in_range(a, b));
        assert!(!Seq(10).in_range(a, b));
    }
}
