//! `--shard i/n`: which contiguous block of each set's sorted listing one machine scores or fits.

use std::fmt;
use std::ops::Range;
use std::str::FromStr;

use crate::Error;

/// Shard `index` of `count` (0-based, as Slurm array indices and Ray task numbers are).
///
/// Shard `i` of a set of `len` images is `[⌊i·len/n⌋, ⌊(i+1)·len/n⌋)`: blocks in listing order, so
/// concatenating shards `0..n` gives the whole listing back in the order a single run uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Shard {
    pub index: usize,
    pub count: usize,
}

impl Shard {
    /// The whole listing, as one shard.
    pub const WHOLE: Shard = Shard { index: 0, count: 1 };

    pub fn new(index: usize, count: usize) -> Result<Shard, Error> {
        if count == 0 {
            return Err(Error::BadShard("shard count must be at least 1".into()));
        }
        if index >= count {
            return Err(Error::BadShard(format!(
                "shard {index}/{count} is out of range: the index counts from 0, so it must be 0 to {}",
                count - 1
            )));
        }
        Ok(Shard { index, count })
    }

    /// The positions of this shard's images in a listing of `len`.
    pub fn range(self, len: usize) -> Range<usize> {
        let bound = |i: usize| ((i as u128 * len as u128) / self.count as u128) as usize;
        bound(self.index)..bound(self.index + 1)
    }

    /// This shard's block of each of several listings that are streamed one after another in
    /// batches of `batch` (the sets of one run): shard `i` of the joined listing's `⌈total/batch⌉`
    /// batches, cut back into per-listing ranges. Every image then meets the same batch-mates as in
    /// a single run: a model's outputs can change in the last bits with them (the blocking of its
    /// matrix products), and merged shards equal the single run bit for bit.
    pub fn blocks(self, lens: &[usize], batch: usize) -> Vec<Range<usize>> {
        let total: usize = lens.iter().sum();
        let batch = batch.max(1);
        let batches = self.range(total.div_ceil(batch));
        let (lo, hi) = ((batches.start * batch).min(total), (batches.end * batch).min(total));
        let mut offset = 0;
        lens.iter()
            .map(|&len| {
                let block = lo.clamp(offset, offset + len) - offset..hi.clamp(offset, offset + len) - offset;
                offset += len;
                block
            })
            .collect()
    }

    pub fn is_whole(self) -> bool {
        self.count == 1
    }
}

impl FromStr for Shard {
    type Err = Error;

    fn from_str(spec: &str) -> Result<Shard, Error> {
        let bad = || {
            Error::BadShard(format!(
                "--shard {spec:?}: expected i/n, e.g. 0/8 (the first of 8 shards; i counts from 0)"
            ))
        };
        let (i, n) = spec.split_once('/').ok_or_else(bad)?;
        let index = i.trim().parse::<usize>().map_err(|_| bad())?;
        let count = n.trim().parse::<usize>().map_err(|_| bad())?;
        Shard::new(index, count)
    }
}

impl fmt::Display for Shard {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.index, self.count)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shards_cover_the_listing_once_in_order() {
        for len in [0, 1, 2, 7, 100, 1001] {
            for count in [1, 2, 3, 8, 13] {
                let mut next = 0;
                for index in 0..count {
                    let r = Shard::new(index, count).unwrap().range(len);
                    assert_eq!(r.start, next);
                    assert!(r.len() <= len / count + 1);
                    next = r.end;
                }
                assert_eq!(next, len);
            }
        }
    }

    #[test]
    fn blocks_are_whole_batches_of_the_joined_listings() {
        let lens = [5, 0, 8, 3];
        let total: usize = lens.iter().sum();
        for batch in [1, 2, 4, 7, 64] {
            for count in [1, 2, 3, 5] {
                let mut next = vec![0; lens.len()];
                let mut covered = 0;
                for index in 0..count {
                    let blocks = Shard::new(index, count).unwrap().blocks(&lens, batch);
                    let mut joined_start = None;
                    for (s, block) in blocks.iter().enumerate() {
                        assert_eq!(block.start, next[s], "blocks follow each other");
                        next[s] = block.end;
                        covered += block.len();
                        if !block.is_empty() && joined_start.is_none() {
                            joined_start = Some(lens[..s].iter().sum::<usize>() + block.start);
                        }
                    }
                    if let Some(start) = joined_start {
                        assert_eq!(start % batch, 0, "a shard starts on a batch boundary");
                    }
                }
                assert_eq!(next, lens.to_vec());
                assert_eq!(covered, total);
            }
        }
    }

    #[test]
    fn specs_parse_and_bad_ones_say_why() {
        assert_eq!("3/8".parse::<Shard>().unwrap(), Shard { index: 3, count: 8 });
        assert!("8/8".parse::<Shard>().unwrap_err().to_string().contains("out of range"));
        assert!("1/0".parse::<Shard>().unwrap_err().to_string().contains("at least 1"));
        assert!("x".parse::<Shard>().unwrap_err().to_string().contains("expected i/n"));
        assert_eq!(Shard::new(2, 5).unwrap().to_string(), "2/5");
    }
}
