//! Device live bytes over time, bounded: at most `MAX_SAMPLES` samples; when
//! full, neighbours merge (keeping the later level and the higher maximum)
//! and the interval doubles, so a long run keeps its shape and its spikes.

use super::pools;
use common::format::Sample;

pub const MAX_SAMPLES: usize = 1024;
pub const BASE_INTERVAL_MS: u64 = 50;

pub struct Timeline {
    pub interval_ms: u64,
    samples: [Sample; MAX_SAMPLES],
    len: usize,
}

impl Default for Timeline {
    fn default() -> Self {
        Timeline::new()
    }
}

impl Timeline {
    pub const fn new() -> Timeline {
        Timeline {
            interval_ms: BASE_INTERVAL_MS,
            samples: [Sample { t_ms: 0, live_bytes: 0, max_live_bytes: 0 }; MAX_SAMPLES],
            len: 0,
        }
    }

    /// Takes one sample at `t_ms`.
    pub fn sample(&mut self, t_ms: u64) {
        let (live, max) = pools::take_window();
        self.push(Sample { t_ms, live_bytes: live, max_live_bytes: max });
    }

    fn push(&mut self, sample: Sample) {
        if self.len == MAX_SAMPLES {
            for i in 0..MAX_SAMPLES / 2 {
                let (a, b) = (self.samples[2 * i], self.samples[2 * i + 1]);
                self.samples[i] = Sample { max_live_bytes: a.max_live_bytes.max(b.max_live_bytes), ..b };
            }
            self.len = MAX_SAMPLES / 2;
            self.interval_ms *= 2;
        }
        self.samples[self.len] = sample;
        self.len += 1;
    }

    pub fn samples(&self) -> &[Sample] {
        &self.samples[..self.len]
    }

    pub fn reset(&mut self) {
        *self = Timeline::new();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stays_bounded_and_keeps_the_spike() {
        let mut timeline = Timeline::new();
        for t in 0..10_000u64 {
            let live = if t == 7_777 { 1 << 40 } else { t };
            timeline.push(Sample { t_ms: t, live_bytes: live, max_live_bytes: live });
        }
        assert!(timeline.samples().len() <= MAX_SAMPLES);
        assert!(timeline.interval_ms > BASE_INTERVAL_MS);
        assert_eq!(timeline.samples().iter().map(|s| s.max_live_bytes).max(), Some(1 << 40));
        assert!(timeline.samples().windows(2).all(|w| w[0].t_ms < w[1].t_ms));
        assert_eq!(timeline.samples().last().unwrap().t_ms, 9_999);
    }
}
