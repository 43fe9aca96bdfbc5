//! What the rounds of one cell make together: a median with the range
//! around it ([`Stat`]), and how connections spread over the workers of
//! one run ([`Spread`]).

use serde::Serialize;

/// One figure over the rounds: the median, and the lowest and highest
/// round, which is the noise the table shows beside it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct Stat {
    /// The median round's (the mean of the middle two for an even count).
    pub median: f64,
    /// The lowest round's.
    pub min: f64,
    /// The highest round's.
    pub max: f64,
}

impl Stat {
    /// The median and range of `values`; all zero when there are none.
    pub fn of(values: impl IntoIterator<Item = f64>) -> Stat {
        let mut v: Vec<f64> = values.into_iter().filter(|x| x.is_finite()).collect();
        if v.is_empty() {
            return Stat::default();
        }
        v.sort_by(f64::total_cmp);
        let n = v.len();
        let median = if n % 2 == 1 {
            v[n / 2]
        } else {
            (v[n / 2 - 1] + v[n / 2]) / 2.0
        };
        Stat {
            median,
            min: v[0],
            max: v[n - 1],
        }
    }

    /// Half the range: what the table prints after ±.
    pub fn half_range(&self) -> f64 {
        (self.max - self.min) / 2.0
    }

    /// Whether the range around the median reaches zero (or below): a
    /// cost the rounds cannot tell from none, printed as ≈0.
    pub fn within_noise_of_zero(&self) -> bool {
        self.median - self.half_range() <= 0.0
    }

    /// Whether `x` lies within this figure's printed range, median ±
    /// half the range.
    pub fn holds(&self, x: f64) -> bool {
        (x - self.median).abs() <= self.half_range()
    }
}

/// How connections spread over the workers that served them, in one run.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Spread {
    /// Workers (processes or threads) that reported.
    pub workers: usize,
    /// Fewest connections one worker served.
    pub min: u64,
    /// The median worker's.
    pub median: u64,
    /// Most.
    pub max: u64,
    /// All of them: equal to the connections made when nothing failed.
    pub total: u64,
}

impl Spread {
    /// The spread of per-worker counts.
    pub fn of(counts: &[u64]) -> Spread {
        let mut counts = counts.to_vec();
        counts.sort_unstable();
        Spread {
            workers: counts.len(),
            min: counts.first().copied().unwrap_or(0),
            median: counts.get(counts.len() / 2).copied().unwrap_or(0),
            max: counts.last().copied().unwrap_or(0),
            total: counts.iter().sum(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_stat_is_the_median_and_the_range() {
        let s = Stat::of([3.0, 1.0, 10.0]);
        assert_eq!((s.median, s.min, s.max), (3.0, 1.0, 10.0));
        assert_eq!(s.half_range(), 4.5);
        assert!(s.within_noise_of_zero(), "3 ± 4.5 reaches 0");
        assert!(!Stat::of([9.0, 10.0, 11.0]).within_noise_of_zero());
        assert!(Stat::of([-2.0, -1.0, -3.0]).within_noise_of_zero());
        assert_eq!(Stat::of([1.0, 2.0, 3.0, 5.0]).median, 2.5);
        assert_eq!(Stat::of([]), Stat::default());
        assert!(Stat::of([9.0, 10.0, 11.0]).holds(10.9));
        assert!(!Stat::of([9.0, 10.0, 11.0]).holds(11.5));
    }

    #[test]
    fn spread_of_counts() {
        let s = Spread::of(&[5, 1, 3, 7]);
        assert_eq!(
            (s.workers, s.min, s.median, s.max, s.total),
            (4, 1, 5, 7, 16)
        );
        let none = Spread::of(&[]);
        assert_eq!((none.workers, none.total), (0, 0));
    }
}
