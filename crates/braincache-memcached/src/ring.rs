//! Consistent hashing: which server holds a key.
//!
//! The scheme (ketama-like, documented in the crate docs): each server, named by its address as
//! given (`host:port`), gets [`POINTS`] points on a 64-bit ring at `xxh3_64("<addr>#<i>")`,
//! `i = 0..POINTS`. A key goes to the owner of the first point at or after `xxh3_64(prefix +
//! key)`, wrapping around. Adding or removing one server of `n` moves about `1/n` of the keys;
//! every process that lists the same servers (in any order) routes every key the same way.

use xxhash_rust::xxh3::xxh3_64;

/// Points per server: enough for an even spread (a few percent) over a handful of servers.
pub(crate) const POINTS: usize = 160;

pub(crate) struct Ring {
    /// (point, server index), sorted by point.
    points: Vec<(u64, usize)>,
}

impl Ring {
    pub(crate) fn new(servers: &[String]) -> Ring {
        let mut points = Vec::with_capacity(servers.len() * POINTS);
        for (i, s) in servers.iter().enumerate() {
            for p in 0..POINTS {
                points.push((xxh3_64(format!("{s}#{p}").as_bytes()), i));
            }
        }
        // Ties (vanishingly rare) are broken by address, not by the order servers were listed.
        points.sort_unstable_by(|a, b| a.0.cmp(&b.0).then_with(|| servers[a.1].cmp(&servers[b.1])));
        Ring { points }
    }

    /// The index of the server that holds `hash`.
    pub(crate) fn server(&self, hash: u64) -> usize {
        if self.points.len() <= POINTS {
            return 0;
        }
        let i = self.points.partition_point(|&(p, _)| p < hash);
        self.points.get(i).unwrap_or(&self.points[0]).1
    }
}

/// The hash a key is routed by.
pub(crate) fn key_hash(prefix: &str, key: &str) -> u64 {
    let mut h = xxhash_rust::xxh3::Xxh3::new();
    h.update(prefix.as_bytes());
    h.update(key.as_bytes());
    h.digest()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn servers(n: usize) -> Vec<String> {
        (0..n).map(|i| format!("10.0.0.{i}:11211")).collect()
    }

    #[test]
    fn spreads_keys_evenly_and_moves_few_when_a_server_is_added() {
        let three = Ring::new(&servers(3));
        let four = Ring::new(&servers(4));
        let mut counts = [0usize; 3];
        let mut moved = 0;
        const N: usize = 30_000;
        for k in 0..N {
            let h = key_hash("p:", &format!("key-{k}"));
            let a = three.server(h);
            counts[a] += 1;
            let b = four.server(h);
            if a != b {
                assert_eq!(b, 3, "a key moved between two old servers");
                moved += 1;
            }
        }
        for c in counts {
            assert!(c > N / 3 * 7 / 10 && c < N / 3 * 13 / 10, "{counts:?}");
        }
        // About a quarter of the keys move to the new server.
        assert!(moved > N / 4 * 6 / 10 && moved < N / 4 * 14 / 10, "{moved}");
    }

    #[test]
    fn the_order_servers_are_listed_in_does_not_matter() {
        let s = servers(3);
        let mut r = s.clone();
        r.reverse();
        let (a, b) = (Ring::new(&s), Ring::new(&r));
        for k in 0..1000 {
            let h = key_hash("", &k.to_string());
            assert_eq!(s[a.server(h)], r[b.server(h)]);
        }
        assert_eq!(Ring::new(&servers(1)).server(12345), 0);
    }
}
