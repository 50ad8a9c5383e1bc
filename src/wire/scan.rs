//! The byte scan both codecs use to find what needs escaping (or refusing) in a string.
//!
//! Most strings need nothing, so the scan is what costs: whole 16-byte blocks are tested
//! with the `test` closure and no early exit, which the compiler turns into vector
//! compares; the tail, which is all there is of most strings (refs, labels, member
//! names), is looked up byte by byte in a table, a load and a branch a byte.

/// A byte class as a table, for the tail of a scan.
pub type Table = [bool; 256];

/// The [`Table`] of a `const fn(u8) -> bool`, built at compile time.
macro_rules! table {
    ($test:path) => {{
        let mut t = [false; 256];
        let mut b = 0;
        while b < 256 {
            t[b] = $test(b as u8);
            b += 1;
        }
        t
    }};
}
pub(crate) use table;

/// The first byte of `bytes` in the class that `test` and `table` both describe.
#[inline(always)]
pub fn find(bytes: &[u8], test: impl Fn(u8) -> bool, table: &Table) -> Option<usize> {
    const BLOCK: usize = 16;
    let mut blocks = bytes.chunks_exact(BLOCK);
    let mut start = 0;
    for block in &mut blocks {
        if block.iter().fold(false, |hit, &b| hit | test(b)) {
            return block
                .iter()
                .position(|&b| table[usize::from(b)])
                .map(|i| start + i);
        }
        start += BLOCK;
    }
    blocks
        .remainder()
        .iter()
        .position(|&b| table[usize::from(b)])
        .map(|i| start + i)
}

#[cfg(test)]
mod tests {
    use super::*;

    const fn odd(b: u8) -> bool {
        b == b'<' || b < 0x20
    }
    const ODD: Table = table!(odd);

    #[test]
    fn finds_the_first_in_blocks_and_tails() {
        assert_eq!(find(b"", odd, &ODD), None);
        assert_eq!(find(b"abc", odd, &ODD), None);
        assert_eq!(find(b"ab<c<", odd, &ODD), Some(2));
        let long = [b'x'; 40];
        for at in 0..40 {
            let mut s = long;
            s[at] = b'\n';
            if at + 1 < 40 {
                s[at + 1] = b'<';
            }
            assert_eq!(find(&s, odd, &ODD), Some(at), "{at}");
        }
        assert_eq!(find(&long, odd, &ODD), None);
    }
}
