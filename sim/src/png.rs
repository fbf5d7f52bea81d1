//! Tiny but real PNG files: one flat grey image of the requested size.
//!
//! The pixels are one grey level, so the zlib stream is a fixed-Huffman deflate block of
//! distance-1 runs: a 1024x1024 image is a few kilobytes, and any PNG decoder reads it.

/// The PNG of a `width` x `height` 8-bit greyscale image filled with `grey`.
pub fn grey_png(width: u32, height: u32, grey: u8) -> Vec<u8> {
    let mut png = Vec::with_capacity(64 + (width as usize / 16) * height as usize);
    png.extend_from_slice(b"\x89PNG\r\n\x1a\n");
    let mut ihdr = Vec::with_capacity(13);
    ihdr.extend_from_slice(&width.to_be_bytes());
    ihdr.extend_from_slice(&height.to_be_bytes());
    // Bit depth 8, colour type 0 (greyscale), deflate, adaptive filtering, no interlace.
    ihdr.extend_from_slice(&[8, 0, 0, 0, 0]);
    chunk(&mut png, b"IHDR", &ihdr);
    chunk(&mut png, b"IDAT", &zlib_rows(width, height, grey));
    chunk(&mut png, b"IEND", &[]);
    png
}

fn chunk(out: &mut Vec<u8>, kind: &[u8; 4], data: &[u8]) {
    out.extend_from_slice(&(data.len() as u32).to_be_bytes());
    let start = out.len();
    out.extend_from_slice(kind);
    out.extend_from_slice(data);
    let crc = crc32fast::hash(&out[start..]);
    out.extend_from_slice(&crc.to_be_bytes());
}

/// zlib stream of `height` scanlines, each filter byte 0 followed by `width` bytes of `grey`.
fn zlib_rows(width: u32, height: u32, grey: u8) -> Vec<u8> {
    let mut bits = BitWriter::default();
    // Zlib header: deflate, 32 KiB window, no dictionary, fastest (0x7801 is divisible by 31).
    bits.out.extend_from_slice(&[0x78, 0x01]);
    bits.write(1, 1); // BFINAL
    bits.write(1, 2); // BTYPE = 01, fixed Huffman codes
    for _ in 0..height {
        bits.literal(0);
        if width > 0 {
            bits.literal(grey);
            bits.repeat_previous(width as usize - 1, grey);
        }
    }
    bits.code(0, 7); // end of block (symbol 256)
    let mut out = bits.finish();
    out.extend_from_slice(&adler32(width, height, grey).to_be_bytes());
    out
}

/// Adler-32 of the raw scanlines, computed from the run structure instead of a buffer.
fn adler32(width: u32, height: u32, grey: u8) -> u32 {
    const MOD: u64 = 65_521;
    let (mut a, mut b) = (1u64, 0u64);
    for _ in 0..height {
        // Filter byte 0: a stays, b += a.
        b = (b + a) % MOD;
        for _ in 0..width {
            a = (a + u64::from(grey)) % MOD;
            b = (b + a) % MOD;
        }
    }
    ((b << 16) | a) as u32
}

/// Deflate lengths 3..=258: base length of symbols 257..=285 and their extra bits.
const LENGTH_BASE: [u16; 29] = [
    3, 4, 5, 6, 7, 8, 9, 10, 11, 13, 15, 17, 19, 23, 27, 31, 35, 43, 51, 59, 67, 83, 99, 115, 131, 163, 195,
    227, 258,
];
const LENGTH_EXTRA: [u8; 29] =
    [0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2, 2, 3, 3, 3, 3, 4, 4, 4, 4, 5, 5, 5, 5, 0];

#[derive(Default)]
struct BitWriter {
    out: Vec<u8>,
    acc: u32,
    used: u32,
}

impl BitWriter {
    /// Appends `count` bits of `value`, least significant first (deflate's data order).
    fn write(&mut self, value: u32, count: u32) {
        self.acc |= value << self.used;
        self.used += count;
        while self.used >= 8 {
            self.out.push(self.acc as u8);
            self.acc >>= 8;
            self.used -= 8;
        }
    }

    /// Appends a Huffman code, which deflate packs most significant bit first.
    fn code(&mut self, code: u32, len: u32) {
        self.write(code.reverse_bits() >> (32 - len), len);
    }

    fn literal(&mut self, byte: u8) {
        let byte = u32::from(byte);
        if byte < 144 { self.code(0x30 + byte, 8) } else { self.code(0x190 + byte - 144, 9) }
    }

    /// `n` more copies of the previous byte (`grey`): distance-1 matches, literals for a tail under 3.
    fn repeat_previous(&mut self, mut n: usize, grey: u8) {
        while n > 0 {
            if n < 3 {
                self.literal(grey);
                n -= 1;
                continue;
            }
            // Never leave a tail of 1 or 2 behind a full-length match.
            let len = if n > 258 && n - 258 < 3 { n - 3 } else { n.min(258) };
            self.length(len as u16);
            self.code(0, 5); // distance code 0: distance 1
            n -= len;
        }
    }

    fn length(&mut self, len: u16) {
        let i = LENGTH_BASE.iter().rposition(|&base| base <= len).unwrap_or(0);
        let i = if len == 258 { 28 } else { i.min(27) };
        let symbol = 257 + i as u32;
        if symbol <= 279 {
            self.code(symbol - 256, 7)
        } else {
            self.code(0xC0 + symbol - 280, 8)
        }
        let extra = u32::from(LENGTH_EXTRA[i]);
        if extra > 0 {
            self.write(u32::from(len - LENGTH_BASE[i]), extra);
        }
    }

    fn finish(mut self) -> Vec<u8> {
        if self.used > 0 {
            self.out.push(self.acc as u8);
        }
        self.out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_and_ihdr_carry_the_size() {
        let png = grey_png(1173, 640, 200);
        assert_eq!(&png[..8], b"\x89PNG\r\n\x1a\n");
        assert_eq!(&png[12..16], b"IHDR");
        assert_eq!(u32::from_be_bytes(png[16..20].try_into().unwrap()), 1173);
        assert_eq!(u32::from_be_bytes(png[20..24].try_into().unwrap()), 640);
        assert_eq!(&png[24..29], &[8, 0, 0, 0, 0]);
        assert_eq!(&png[png.len() - 8..png.len() - 4], b"IEND");
        assert!(png.len() < 16 * 1024, "{} bytes", png.len());
    }

    #[test]
    fn chunk_crcs_are_valid() {
        let png = grey_png(64, 32, 7);
        let mut at = 8;
        while at < png.len() {
            let len = u32::from_be_bytes(png[at..at + 4].try_into().unwrap()) as usize;
            let crc = u32::from_be_bytes(png[at + 8 + len..at + 12 + len].try_into().unwrap());
            assert_eq!(crc, crc32fast::hash(&png[at + 4..at + 8 + len]));
            at += 12 + len;
        }
        assert_eq!(at, png.len());
    }

    #[test]
    fn adler_matches_the_raw_scanlines() {
        let (w, h, g) = (300u32, 5u32, 251u8);
        let raw: Vec<u8> =
            (0..h).flat_map(|_| std::iter::once(0).chain(std::iter::repeat_n(g, w as usize))).collect();
        let (mut a, mut b) = (1u32, 0u32);
        for byte in raw {
            a = (a + u32::from(byte)) % 65_521;
            b = (b + a) % 65_521;
        }
        assert_eq!(adler32(w, h, g), (b << 16) | a);
    }
}
