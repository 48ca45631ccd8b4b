//! Sharding probes across daemons: `--shard i/n` (or `[fleet] shard`, or `SLOPROBE_SHARD`,
//! e.g. from a StatefulSet ordinal) runs the probes that rendezvous (highest-random-weight)
//! hashing on the probe name assigns to shard i. Going from n to n+1 shards moves about
//! 1/(n+1) of the probes, all of them to the new shard.

use schemars::JsonSchema;
use serde::Deserialize;

use crate::config::{ConfigError, Source, Spanned};

// `[fleet]`: running several daemons as one fleet.
#[derive(Debug, Clone, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(rename = "RawFleet")]
pub struct FleetConfig {
    /// Run only the probes rendezvous hashing assigns to shard "i/n" (--shard and
    /// SLOPROBE_SHARD win over this).
    shard: Option<Spanned<String>>,
}

impl FleetConfig {
    /// The configured shard, checked.
    pub fn check(&self, source: &Source) -> Result<Option<Shard>, ConfigError> {
        self.shard
            .as_ref()
            .map(|s| Shard::parse(s.get_ref()).map_err(|e| source.error_at(s.span(), Some("fleet.shard"), e)))
            .transpose()
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Shard {
    pub index: u32,
    pub count: u32,
}

impl Shard {
    /// `"i/n"` with 0 ≤ i < n ≤ 10,000.
    pub fn parse(text: &str) -> Result<Shard, String> {
        let (i, n) = text
            .split_once('/')
            .ok_or_else(|| "write the shard as i/n, e.g. 0/3".to_string())?;
        let index: u32 = i.trim().parse().map_err(|_| format!("{i:?} is not a shard index"))?;
        let count: u32 = n.trim().parse().map_err(|_| format!("{n:?} is not a shard count"))?;
        if count == 0 || count > 10_000 || index >= count {
            return Err(format!("need 0 ≤ i < n ≤ 10000, got {index}/{count}"));
        }
        Ok(Shard { index, count })
    }

    /// Whether this shard runs `probe`.
    pub fn owns(&self, probe: &str) -> bool {
        owner(probe, self.count) == self.index
    }
}

/// The shard that runs `probe` among `count`: the one with the highest weight.
pub fn owner(probe: &str, count: u32) -> u32 {
    (0..count).max_by_key(|k| weight(probe, *k)).unwrap_or(0)
}

/// FNV-1a over the name and shard number, through SplitMix64's finalizer so close
/// inputs spread out. Stable across builds and hosts.
fn weight(probe: &str, shard: u32) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in probe.bytes().chain(shard.to_le_bytes()) {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h ^= h >> 30;
    h = h.wrapping_mul(0xbf58_476d_1ce4_e5b9);
    h ^= h >> 27;
    h = h.wrapping_mul(0x94d0_49bb_1331_11eb);
    h ^ (h >> 31)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shards_partition_and_adding_one_moves_about_its_share() {
        let names: Vec<String> = (0..2000).map(|i| format!("probe-{i}")).collect();
        for n in [1, 3, 4, 7] {
            let mut counts = vec![0usize; n as usize];
            for name in &names {
                let owners: Vec<u32> = (0..n).filter(|i| Shard { index: *i, count: n }.owns(name)).collect();
                assert_eq!(owners.len(), 1, "{name} in {owners:?}");
                counts[owners[0] as usize] += 1;
            }
            let even = names.len() / n as usize;
            assert!(counts.iter().all(|c| c.abs_diff(even) < even / 5 + 10), "{counts:?}");
        }
        let moved: Vec<&String> = names.iter().filter(|p| owner(p, 3) != owner(p, 4)).collect();
        let share = moved.len() as f64 / names.len() as f64;
        assert!((0.20..0.30).contains(&share), "moved {share}");
        assert!(
            moved.iter().all(|p| owner(p, 4) == 3),
            "a probe moved between old shards"
        );
        assert!(Shard::parse("3/3").is_err() && Shard::parse("x").is_err() && Shard::parse("0/0").is_err());
    }
}
