//! Fuzz input as a sequence of model operations ([`Op`]), for the `ops_*` targets.

use braincache_core::testkit::Op;

/// Decodes a sequence of operations from arbitrary bytes. Never panics; every byte string gives
/// some (possibly empty) sequence.
///
/// Each operation starts with a tag byte (`tag % 8` picks the kind; bit 7 set means "no
/// deadline" for sets), followed by its fields; a truncated operation ends the sequence.
#[must_use]
pub fn decode(mut bytes: &[u8]) -> Vec<Op> {
    fn take<'a>(n: usize, bytes: &mut &'a [u8]) -> Option<&'a [u8]> {
        if bytes.len() < n {
            return None;
        }
        let (head, rest) = bytes.split_at(n);
        *bytes = rest;
        Some(head)
    }
    let mut ops = Vec::new();
    while let Some(h) = take(1, &mut bytes) {
        let tag = h[0];
        let op = match tag % 8 {
            0 | 1 => {
                let Some(p) = take(4, &mut bytes) else { break };
                let len = usize::from(p[1] % 24);
                let Some(value) = take(len, &mut bytes) else {
                    break;
                };
                let ttl = u16::from_le_bytes([p[2], p[3]]);
                Op::Set {
                    key: p[0],
                    value: value.to_vec(),
                    ttl_ms: (tag & 0x80 == 0).then_some(ttl % 2000),
                }
            }
            2 => Op::Get {
                key: take(1, &mut bytes).map_or(0, |b| b[0]),
            },
            3 => Op::Delete {
                key: take(1, &mut bytes).map_or(0, |b| b[0]),
            },
            4 => Op::Clear,
            5 => Op::Purge,
            6 => {
                let Some(p) = take(2, &mut bytes) else { break };
                Op::Advance {
                    ms: u16::from_le_bytes([p[0], p[1]]) % 3000,
                }
            }
            _ => {
                let Some(p) = take(4, &mut bytes) else { break };
                Op::SetMany {
                    a: p[0],
                    b: p[1],
                    ttl_ms: (tag & 0x80 == 0).then_some(u16::from_le_bytes([p[2], p[3]]) % 2000),
                }
            }
        };
        ops.push(op);
    }
    ops
}

#[cfg(test)]
mod tests {
    use super::*;
    use braincache_core::testkit::check_against_model;
    use braincache_memory::MemoryBackend;

    #[test]
    fn decode_never_panics_and_covers_every_op() {
        let bytes: Vec<u8> = (0..=255u8).cycle().take(4096).collect();
        let ops = decode(&bytes);
        assert!(ops.len() > 100);
        for probe in [Op::Clear, Op::Purge] {
            assert!(ops.contains(&probe));
        }
        assert!(decode(&[]).is_empty());
        check_against_model(&MemoryBackend::new(), &ops).unwrap();
    }
}
