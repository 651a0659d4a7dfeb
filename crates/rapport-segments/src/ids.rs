//! Finding an event by its id: in a hash map for the segments being written, and for closed
//! segments in sorted runs of (key, position), where the key is a 64-bit hash of the id.
//!
//! A closed segment's run is written in its index file and read back at open as it is, so
//! that opening a large log builds no hash map of every id (inserting ten million ids into
//! one takes seconds on the benchmark machine); the runs are merged into one ([`Run::merge`]),
//! which a lookup searches by interpolation (the keys are uniform), in a few probes. A key is a hint, not a proof: two
//! ids may share one, so a caller reads the events at the positions found and keeps the one
//! whose id it is. Keys are SHA-256 of the id, so that clients, who choose ids, cannot make
//! many share a key.

use std::collections::HashMap;
use std::sync::Arc;

use rapport_domain::EventId;
use sha2::{Digest, Sha256};

/// The key of an id in the sorted runs.
pub(crate) fn id_key(id: &EventId) -> u64 {
    let digest = Sha256::new().chain_update(b"rapport.event-id.v1\0").chain_update(id.as_bytes()).finalize();
    let mut key = [0u8; 8];
    key.copy_from_slice(&digest[..8]);
    u64::from_be_bytes(key)
}

/// (key, position) pairs sorted by key, then position.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub(crate) struct Run {
    pub pairs: Vec<(u64, u64)>,
}

impl Run {
    /// The run of `pairs` in any order.
    pub(crate) fn sorted(mut pairs: Vec<(u64, u64)>) -> Run {
        pairs.sort_unstable();
        Run { pairs }
    }

    /// One run holding every pair of `runs`, made on `threads` threads. Keys are uniform, so
    /// the output is made bucket by bucket of the key's top bits: each run, being sorted, gives
    /// a bucket its few pairs from where its cursor is, and each bucket (a few hundred pairs)
    /// is then sorted where it lies. The runs are read and the output written in order, once:
    /// far faster than a merge tree (a pass per level) or a heap (a cache miss per pair) over
    /// millions of pairs. Threads take consecutive ranges of buckets, each writing its own part
    /// of the output (the opening of a large log waits on this, with nothing else to do).
    pub(crate) fn merge(runs: &[&Run], threads: usize) -> Run {
        let total: usize = runs.iter().map(|r| r.len()).sum();
        // About 256 pairs a bucket.
        let bits = (usize::BITS - (total / 256).max(1).leading_zeros()).min(24);
        let shift = 64 - bits;
        let buckets = 1u64 << bits;
        // Below a million pairs a second thread costs more than it saves.
        let threads = if total < 1 << 20 { 1 } else { threads.clamp(1, 8) as u64 };
        // Where each thread's buckets start in each run, and in the output.
        let starts: Vec<(Vec<usize>, usize)> = (0..threads)
            .map(|t| {
                let first = buckets * t / threads;
                let cursors: Vec<usize> =
                    runs.iter().map(|r| r.pairs.partition_point(|&(key, _)| key >> shift < first)).collect();
                let at = cursors.iter().sum();
                (cursors, at)
            })
            .collect();
        let mut pairs = vec![(0u64, 0u64); total];
        std::thread::scope(|scope| {
            let mut rest = pairs.as_mut_slice();
            for t in 0..threads {
                let (cursors, at) = &starts[t as usize];
                let until = starts.get(t as usize + 1).map_or(total, |(_, next)| *next);
                let (part, after) = std::mem::take(&mut rest).split_at_mut(until - at);
                rest = after;
                let (first, last) = (buckets * t / threads, buckets * (t + 1) / threads);
                let mut cursors = cursors.clone();
                let mut fill = move || {
                    let mut written = 0;
                    for bucket in first..last {
                        let start = written;
                        for (run, cursor) in runs.iter().zip(&mut cursors) {
                            let from = *cursor;
                            while *cursor < run.pairs.len() && run.pairs[*cursor].0 >> shift == bucket {
                                *cursor += 1;
                            }
                            part[written..written + *cursor - from].copy_from_slice(&run.pairs[from..*cursor]);
                            written += *cursor - from;
                        }
                        part[start..written].sort_unstable();
                    }
                };
                if t + 1 == threads {
                    fill();
                } else {
                    scope.spawn(fill);
                }
            }
        });
        // A segment closed, reopened after a crash and written on holds some ids in two runs.
        pairs.dedup();
        Run { pairs }
    }

    pub(crate) fn len(&self) -> usize {
        self.pairs.len()
    }

    /// Adds the positions whose key is `key` to `found`.
    pub(crate) fn find(&self, key: u64, found: &mut Vec<u64>) {
        let mut at = self.lower_bound(key);
        while let Some(&(k, position)) = self.pairs.get(at)
            && k == key
        {
            found.push(position);
            at += 1;
        }
    }

    /// The first index whose key is not below `key`: interpolation while the window is wide
    /// (keys are uniform, so a few probes land next to it), then a binary search.
    fn lower_bound(&self, key: u64) -> usize {
        let key_at = |i: usize| self.pairs[i].0;
        let (mut low, mut high) = (0usize, self.pairs.len());
        for _ in 0..8 {
            if high - low < 32 {
                break;
            }
            let (first, last) = (key_at(low), key_at(high - 1));
            if key <= first {
                return low;
            }
            if key > last {
                return high;
            }
            let span = u128::from(last - first);
            let guess = low + (u128::from(key - first) * (high - 1 - low) as u128 / span) as usize;
            // A small window around the guess; if the key is outside it, narrow to that side.
            let (from, to) = (guess.saturating_sub(16).max(low), (guess + 16).min(high - 1));
            if key_at(from) >= key {
                high = from + 1;
            } else if key_at(to) < key {
                low = to + 1;
            } else {
                low = from;
                high = to + 1;
                break;
            }
        }
        low + self.pairs[low..high].partition_point(|&(k, _)| k < key)
    }
}

/// Every id of the log.
#[derive(Debug, Default)]
pub(crate) struct Ids {
    /// The runs of closed segments, merged.
    pub merged: Arc<Run>,
    /// Runs of segments closed since, oldest first.
    pub runs: Vec<Arc<Run>>,
    /// Ids of the segments whose run is not made yet (the one being written, and one being
    /// closed), by segment sequence number.
    pub open: Vec<(u64, HashMap<EventId, u64>)>,
}

impl Ids {
    /// The positions that may hold `id`: exact for open segments, by key for closed ones.
    pub(crate) fn candidates(&self, id: &EventId) -> Vec<u64> {
        let mut found = Vec::new();
        for (_, map) in &self.open {
            if let Some(&position) = map.get(id) {
                found.push(position);
            }
        }
        let key = id_key(id);
        self.merged.find(key, &mut found);
        for run in &self.runs {
            run.find(key, &mut found);
        }
        found
    }

    /// Records `id` at `position` in the segment `sequence` being written; returns the
    /// position the segment already had for it, if any.
    pub(crate) fn insert(&mut self, sequence: u64, id: EventId, position: u64) -> Option<u64> {
        match self.open.last_mut() {
            Some((open, map)) if *open == sequence => map.insert(id, position),
            _ => {
                self.open.push((sequence, HashMap::from([(id, position)])));
                None
            }
        }
    }

    /// Replaces the map of segment `sequence` by its run.
    pub(crate) fn close(&mut self, sequence: u64, run: Arc<Run>) {
        self.open.retain(|(open, _)| *open != sequence);
        self.runs.push(run);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A run searched for every key it holds, and for keys between, agrees with a plain scan.
    #[test]
    fn lookups_find_exactly_the_positions_of_a_key() {
        let mut x = 0x9E37_79B9_7F4A_7C15u64;
        let mut next = || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        };
        let mut pairs: Vec<(u64, u64)> = (1..=5_000).map(|position| (next(), position)).collect();
        // Shared keys, and keys at the ends of the range.
        pairs.extend([(pairs[10].0, 9_001), (pairs[10].0, 9_002), (0, 9_003), (u64::MAX, 9_004)]);
        let run = Run::sorted(pairs.clone());
        let scan = |key: u64| {
            let mut positions: Vec<u64> = pairs.iter().filter(|(k, _)| *k == key).map(|&(_, p)| p).collect();
            positions.sort_unstable();
            positions
        };
        for &(key, _) in &pairs {
            let mut found = Vec::new();
            run.find(key, &mut found);
            assert_eq!(found, scan(key), "key {key}");
            for probe in [key.wrapping_add(1), key.wrapping_sub(1)] {
                let mut found = Vec::new();
                run.find(probe, &mut found);
                assert_eq!(found, scan(probe), "key {probe}");
            }
        }
        assert_eq!(scan(pairs[10].0).len(), 3);
    }

    #[test]
    fn merged_runs_are_the_run_of_all_their_pairs() {
        let pairs: Vec<(u64, u64)> = (0..300u64).map(|n| (n.wrapping_mul(0x9E37_79B9_7F4A_7C15), n)).collect();
        let runs: Vec<Run> = pairs.chunks(37).map(|chunk| Run::sorted(chunk.to_vec())).collect();
        let merged = Run::merge(&runs.iter().collect::<Vec<_>>(), 1);
        assert_eq!(merged, Run::sorted(pairs.clone()));
        // A pair in two runs is kept once.
        assert_eq!(Run::merge(&[&merged, &runs[2]], 1), merged);
        // On several threads, each with its own range of buckets (enough pairs that the
        // threads are used, some keys shared across the threads' boundaries).
        let mut x = 0x2545_F491_4F6C_DD1Du64;
        let mut next = || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        };
        let mut many: Vec<(u64, u64)> = (0..(3u64 << 19)).map(|position| (next(), position)).collect();
        many.extend([(u64::MAX / 2, 1), (u64::MAX / 2 + 1, 2), (u64::MAX / 3, 3), (u64::MAX / 3, 4), (0, 5)]);
        let runs: Vec<Run> = many.chunks(100_003).map(|chunk| Run::sorted(chunk.to_vec())).collect();
        let expected = Run::sorted(many);
        for threads in [1, 2, 3, 8] {
            assert_eq!(Run::merge(&runs.iter().collect::<Vec<_>>(), threads), expected, "{threads} threads");
        }
    }
}
