//! Pacing long compressions so request threads get the CPU back quickly.
//!
//! A compression of a large stored value runs on the codec pool's
//! idle-priority threads. While such a thread is busy, its core never goes
//! idle, and an idle core is what immediately takes over a request thread
//! waiting on a crowded one; without that, the waiting thread sits out a
//! scheduler tick (4 ms at HZ=250). Feeding the compressor through
//! [`Paced`] gives the core back for a moment after every 64 KiB (about
//! 1.5 ms of zlib level 6), on the codec pool's single-value compressions
//! only: elsewhere, including bundles and callers' own threads, it is a
//! plain pass-through.

use std::io::{self, Read, Write};

/// Bytes between two pauses.
pub const PIECE: usize = 64 * 1024;

/// A reader or writer that pauses after every 64 KiB when it runs
/// in one of the cache's background compressions (see the module docs),
/// and passes bytes straight through anywhere else. It never changes the
/// bytes, but hands them on at most 64 KiB at a time: fine for zlib,
/// gzip, xz and brotli, whose output does not depend on how the input is
/// split; an encoder that sizes its blocks from the first write (lz4's
/// frame encoder) would write a different, still valid, stream.
///
/// A custom [`Compressor`](super::Compressor) that streams can use it the
/// way the built-in ones do:
///
/// ```
/// use std::io::Write;
/// use cache_core::codec::Paced;
///
/// let input = vec![7u8; 200_000];
/// let mut encoder = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::new(6));
/// Paced::new(&mut encoder).write_all(&input).unwrap();
/// let packed = encoder.finish().unwrap();
/// assert!(packed.len() < 1_000);
/// ```
#[derive(Debug)]
pub struct Paced<T> {
    inner: T,
    /// Bytes passed since the last pause.
    since_pause: usize,
}

impl<T> Paced<T> {
    /// Wraps a reader or writer.
    pub fn new(inner: T) -> Self {
        Self {
            inner,
            since_pause: 0,
        }
    }

    /// How many of `wanted` bytes to pass now: no more than what is left of
    /// the current piece.
    fn allowance(&self, wanted: usize) -> usize {
        wanted.min(PIECE - self.since_pause)
    }

    fn passed(&mut self, n: usize) {
        self.since_pause += n;
        if self.since_pause >= PIECE {
            self.since_pause = 0;
            crate::codec_pool::pause_point();
        }
    }
}

impl<W: Write> Write for Paced<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(&buf[..self.allowance(buf.len())])?;
        self.passed(n);
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

impl<R: Read> Read for Paced<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let allowed = self.allowance(buf.len());
        let n = self.inner.read(&mut buf[..allowed])?;
        self.passed(n);
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text(n: usize) -> Vec<u8> {
        (0..n)
            .map(|i| b"cache memoize redis "[i % 20] ^ (i / 7 % 3) as u8)
            .collect()
    }

    #[test]
    fn paced_writes_produce_the_same_zlib_bytes() {
        let input = text(300_000);
        let one_shot = {
            let mut e = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::new(6));
            e.write_all(&input).unwrap();
            e.finish().unwrap()
        };
        let mut e = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::new(6));
        Paced::new(&mut e).write_all(&input).unwrap();
        assert_eq!(e.finish().unwrap(), one_shot);
    }

    #[test]
    fn paced_reads_pass_every_byte_in_pieces() {
        let input = text(PIECE * 2 + 17);
        let mut paced = Paced::new(&input[..]);
        let mut buf = vec![0; PIECE * 3];
        let first = paced.read(&mut buf).unwrap();
        assert_eq!(first, PIECE, "one piece at most per read");
        let mut rest = Vec::new();
        paced.read_to_end(&mut rest).unwrap();
        assert_eq!([&buf[..first], &rest[..]].concat(), input);
    }
}
