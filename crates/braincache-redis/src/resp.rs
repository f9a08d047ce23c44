//! RESP encoding of commands into a reusable buffer.
//!
//! The backend writes its commands itself rather than through `redis::Cmd`: an argument made of
//! several parts (prefix + key, header + value) goes into the buffer without being joined first,
//! and the buffer is kept with its connection, so a `get` or `set` allocates nothing to send.

/// Appends the header of a command of `args` arguments; each argument then goes through
/// [`bulk`].
pub(crate) fn array(buf: &mut Vec<u8>, args: usize) {
    buf.push(b'*');
    uint(buf, args as u64);
    buf.extend_from_slice(b"\r\n");
}

/// Appends one argument: the concatenation of `parts`.
pub(crate) fn bulk(buf: &mut Vec<u8>, parts: &[&[u8]]) {
    let len: usize = parts.iter().map(|p| p.len()).sum();
    buf.push(b'$');
    uint(buf, len as u64);
    buf.extend_from_slice(b"\r\n");
    for p in parts {
        buf.extend_from_slice(p);
    }
    buf.extend_from_slice(b"\r\n");
}

/// Appends a whole command whose arguments are each given as parts.
pub(crate) fn command(buf: &mut Vec<u8>, args: &[&[&[u8]]]) {
    array(buf, args.len());
    for parts in args {
        bulk(buf, parts);
    }
}

/// The decimal digits of `n`, in a stack buffer.
pub(crate) struct Decimal {
    digits: [u8; 20],
    start: usize,
}

impl Decimal {
    pub(crate) fn new(mut n: u64) -> Decimal {
        let mut digits = [0u8; 20];
        let mut start = digits.len();
        loop {
            start -= 1;
            // `n % 10` is below 10, so the cast cannot truncate.
            #[allow(clippy::cast_possible_truncation)]
            let digit = (n % 10) as u8;
            digits[start] = b'0' + digit;
            n /= 10;
            if n == 0 {
                break;
            }
        }
        Decimal { digits, start }
    }

    pub(crate) fn as_bytes(&self) -> &[u8] {
        &self.digits[self.start..]
    }
}

fn uint(buf: &mut Vec<u8>, n: u64) {
    buf.extend_from_slice(Decimal::new(n).as_bytes());
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commands_are_encoded_as_resp_arrays_of_bulk_strings() {
        let mut buf = Vec::new();
        command(
            &mut buf,
            &[
                &[b"SET"],
                &[b"p:", b"key"],
                &[b"", b"value"],
                &[b"PX"],
                &[b"10"],
            ],
        );
        assert_eq!(
            buf,
            b"*5\r\n$3\r\nSET\r\n$5\r\np:key\r\n$5\r\nvalue\r\n$2\r\nPX\r\n$2\r\n10\r\n"
        );
        buf.clear();
        command(&mut buf, &[&[b"GET"], &[b""]]);
        assert_eq!(buf, b"*2\r\n$3\r\nGET\r\n$0\r\n\r\n");
    }

    #[test]
    fn decimals() {
        for n in [0, 7, 10, 99, 12345, u64::MAX] {
            assert_eq!(Decimal::new(n).as_bytes(), n.to_string().as_bytes());
        }
    }
}
