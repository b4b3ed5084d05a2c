//! Division by a number fixed by the configuration, without a division instruction.

/// Division and remainder by a divisor fixed by the configuration, by multiplication
/// instead of a division instruction (Lemire, Kaser and Kurz, "Faster remainder by
/// direct computation", 2019: with a 64-bit multiplier both are exact for every 32-bit
/// dividend; a test checks them against `/` and `%`). A dense sender's event takes some
/// fifteen of them over three windows (its bucket and ring slot in each, and the
/// buckets that leave), a relayed event a few in the throttle's spam-ratio rings; a
/// division is several times slower than a multiplication.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Divisor {
    d: u32,
    /// ceil(2^64 / d) (0 for d = 1, which is not divided).
    m: u64,
}

impl Divisor {
    pub(crate) fn new(d: u32) -> Self {
        let d = d.max(1);
        Divisor {
            d,
            m: (u64::MAX / u64::from(d)).wrapping_add(1),
        }
    }

    #[inline]
    pub(crate) fn div(self, n: u32) -> u32 {
        if self.d == 1 {
            n
        } else {
            ((u128::from(self.m) * u128::from(n)) >> 64) as u32
        }
    }

    #[inline]
    pub(crate) fn rem(self, n: u32) -> u32 {
        if self.d == 1 {
            0
        } else {
            let fraction = self.m.wrapping_mul(u64::from(n));
            ((u128::from(fraction) * u128::from(self.d)) >> 64) as u32
        }
    }

    /// The slots, in a ring of this many buckets, of the `count` buckets from bucket
    /// `from` on (at most one lap): one remainder, then the index wraps by hand.
    #[inline]
    pub(crate) fn ring_slots(self, from: u32, count: u32) -> RingSlots {
        RingSlots {
            i: self.rem(from) as usize,
            left: count.min(self.d),
            n: self.d as usize,
        }
    }
}

/// See [`Divisor::ring_slots`].
pub(crate) struct RingSlots {
    i: usize,
    left: u32,
    n: usize,
}

impl Iterator for RingSlots {
    type Item = usize;

    #[inline]
    fn next(&mut self) -> Option<usize> {
        if self.left == 0 {
            return None;
        }
        let slot = self.i;
        self.left -= 1;
        self.i += 1;
        if self.i == self.n {
            self.i = 0;
        }
        Some(slot)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn divisors_divide_exactly() {
        let ds = [
            1u32,
            2,
            3,
            6,
            7,
            10,
            12,
            24,
            60,
            300,
            1000,
            3600,
            86_400,
            65_535,
            65_537,
            u32::MAX - 1,
            u32::MAX,
        ];
        let ns = [
            0u32,
            1,
            2,
            9,
            10,
            11,
            3599,
            3600,
            3601,
            1_780_000_000,
            u32::MAX - 1,
            u32::MAX,
        ];
        for d in ds {
            let q = Divisor::new(d);
            for n in ns.into_iter().chain((0..2_000).map(|k| k * 7_919)) {
                assert_eq!(q.div(n), n / d, "{n} / {d}");
                assert_eq!(q.rem(n), n % d, "{n} % {d}");
            }
        }
    }

    proptest! {
        #[test]
        fn divisors_divide_any_number(d in 1u32.., n in any::<u32>()) {
            let q = Divisor::new(d);
            prop_assert_eq!(q.div(n), n / d);
            prop_assert_eq!(q.rem(n), n % d);
        }

        #[test]
        fn ring_slots_are_remainders(d in 1u32..50, from in any::<u32>(), count in 0u32..60) {
            let slots: Vec<usize> = Divisor::new(d).ring_slots(from, count).collect();
            let expected: Vec<usize> = (0..count.min(d))
                .map(|k| ((u64::from(from) + u64::from(k)) % u64::from(d)) as usize)
                .collect();
            prop_assert_eq!(slots, expected);
        }
    }
}
