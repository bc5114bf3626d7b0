//! ITU-T G.711 mu-law and A-law codecs.
//!
//! `no_std`, table driven: decoding is a 256-entry table lookup, encoding a
//! 64 Ki-entry table lookup per law built at compile time, so both are
//! branch-free per sample and the slice loops vectorise. The results are
//! bit-exact with the ITU-T G.191 software tools library (`g711.c`:
//! `alaw_compress`, `alaw_expand`, `ulaw_compress`, `ulaw_expand`) for every
//! 16-bit input and every code: the tests compare all of them with a literal
//! transcription of that reference, which shares no code with the tables.
//!
//! Note that G.191 takes the one's complement of negative inputs before
//! quantising (for both laws), so e.g. mu-law encodes -1 as `0x7F` (negative
//! zero), where the Sun/CCITT `g711.c` found in many projects gives `0x7E`.
#![no_std]
#![forbid(unsafe_code)]

/// Segment (exponent) of a magnitude: the position of its leading one above
/// `base_bits`, 0 when it fits in them.
const fn segment(mag: u32, base_bits: u32) -> u32 {
    let bits = 32 - mag.leading_zeros();
    bits.saturating_sub(base_bits)
}

/// A-law: 12-bit magnitude (one's complement of negatives), 3-bit segment,
/// 4-bit mantissa, even bits inverted.
const fn alaw_from_linear(pcm: i16) -> u8 {
    let x = pcm as i32;
    let mag = (if x < 0 { !x } else { x } >> 4) as u32; // 0..=2047
    let seg = segment(mag, 4); // 0..=7
    let mant = if seg == 0 {
        mag & 0xF
    } else {
        (mag >> (seg - 1)) & 0xF
    };
    let code = ((seg << 4) | mant) as u8;
    let sign = if x >= 0 { 0x80 } else { 0 };
    (code | sign) ^ 0x55
}

/// mu-law: 14-bit magnitude (one's complement of negatives) plus the bias
/// of 33, clipped to 13 bits, 3-bit segment, 4-bit mantissa, all inverted.
const fn ulaw_from_linear(pcm: i16) -> u8 {
    let x = pcm as i32;
    let mut mag = ((if x < 0 { !x } else { x }) >> 2) as u32 + 33;
    if mag > 0x1FFF {
        mag = 0x1FFF;
    }
    let seg = segment(mag, 6); // 0..=7
    let mant = (mag >> (seg + 1)) & 0xF;
    let code = ((seg << 4) | mant) as u8;
    let sign = if x >= 0 { 0x80 } else { 0 };
    (!code & 0x7F) | sign
}

/// A-law decoding: mantissa with its leading one and half a step, shifted by the segment.
const fn alaw_to_linear(code: u8) -> i16 {
    let c = code ^ 0x55;
    let seg = ((c >> 4) & 7) as i32;
    let mant = (c & 0xF) as i32;
    let mag = if seg == 0 {
        (mant << 4) + 8
    } else {
        ((mant + 16) << 4) + 8
    };
    let mag = if seg > 1 { mag << (seg - 1) } else { mag };
    (if c & 0x80 != 0 { mag } else { -mag }) as i16
}

/// mu-law decoding: biased magnitude rebuilt from segment and mantissa, bias removed.
const fn ulaw_to_linear(code: u8) -> i16 {
    let c = !code;
    let seg = ((c >> 4) & 7) as i32;
    let mant = (c & 0xF) as i32;
    let mag = (((mant << 3) + 0x84) << seg) - 0x84;
    (if code & 0x80 != 0 { mag } else { -mag }) as i16
}

const fn decode_table(ulaw: bool) -> [i16; 256] {
    let mut t = [0i16; 256];
    let mut i = 0;
    while i < 256 {
        t[i] = if ulaw {
            ulaw_to_linear(i as u8)
        } else {
            alaw_to_linear(i as u8)
        };
        i += 1;
    }
    t
}

const fn encode_table(ulaw: bool) -> [u8; 65536] {
    let mut t = [0u8; 65536];
    let mut i = 0;
    while i < 65536 {
        let s = (i as u16) as i16;
        t[i] = if ulaw {
            ulaw_from_linear(s)
        } else {
            alaw_from_linear(s)
        };
        i += 1;
    }
    t
}

static ULAW_DECODE: [i16; 256] = decode_table(true);
static ALAW_DECODE: [i16; 256] = decode_table(false);
static ULAW_ENCODE: [u8; 65536] = encode_table(true);
static ALAW_ENCODE: [u8; 65536] = encode_table(false);

/// Encodes one 16-bit linear sample to mu-law.
#[inline]
pub fn ulaw_encode(sample: i16) -> u8 {
    ULAW_ENCODE[sample as u16 as usize]
}

/// Decodes one mu-law code to a 16-bit linear sample.
#[inline]
pub fn ulaw_decode(code: u8) -> i16 {
    ULAW_DECODE[code as usize]
}

/// Encodes one 16-bit linear sample to A-law.
#[inline]
pub fn alaw_encode(sample: i16) -> u8 {
    ALAW_ENCODE[sample as u16 as usize]
}

/// Decodes one A-law code to a 16-bit linear sample.
#[inline]
pub fn alaw_decode(code: u8) -> i16 {
    ALAW_DECODE[code as usize]
}

/// The two G.711 laws.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Law {
    /// mu-law (PCMU, RTP payload type 0).
    MuLaw,
    /// A-law (PCMA, RTP payload type 8).
    ALaw,
}

impl Law {
    /// The code of silence (linear 0).
    pub fn silence(self) -> u8 {
        match self {
            Law::MuLaw => 0xFF,
            Law::ALaw => 0xD5,
        }
    }

    /// Encodes one sample.
    #[inline]
    pub fn encode_one(self, sample: i16) -> u8 {
        match self {
            Law::MuLaw => ulaw_encode(sample),
            Law::ALaw => alaw_encode(sample),
        }
    }

    /// Decodes one code.
    #[inline]
    pub fn decode_one(self, code: u8) -> i16 {
        match self {
            Law::MuLaw => ulaw_decode(code),
            Law::ALaw => alaw_decode(code),
        }
    }

    /// Converts codes of law `from` to this law in place (G.711 A-law to
    /// mu-law or back through the linear value; nothing when the laws match).
    pub fn transcode_from(self, from: Law, codes: &mut [u8]) {
        if from == self {
            return;
        }
        for c in codes.iter_mut() {
            *c = self.encode_one(from.decode_one(*c));
        }
    }

    /// Encodes `pcm` into `out`; encodes `min(pcm.len(), out.len())` samples.
    pub fn encode(self, pcm: &[i16], out: &mut [u8]) {
        let table = match self {
            Law::MuLaw => &ULAW_ENCODE,
            Law::ALaw => &ALAW_ENCODE,
        };
        for (o, &s) in out.iter_mut().zip(pcm) {
            *o = table[s as u16 as usize];
        }
    }

    /// Decodes `codes` into `out`; decodes `min(codes.len(), out.len())` samples.
    pub fn decode(self, codes: &[u8], out: &mut [i16]) {
        let table = match self {
            Law::MuLaw => &ULAW_DECODE,
            Law::ALaw => &ALAW_DECODE,
        };
        for (o, &c) in out.iter_mut().zip(codes) {
            *o = table[c as usize];
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // A literal transcription of ITU-T G.191 STL `g711.c` (16-bit `short`
    // arithmetic kept as i16), independent of the table builders above.

    fn g191_alaw_compress(lin: i16) -> u8 {
        let mut ix: i16 = if lin < 0 { (!lin) >> 4 } else { lin >> 4 };
        if ix > 15 {
            let mut iexp: i16 = 1;
            while ix > 16 + 15 {
                ix >>= 1;
                iexp += 1;
            }
            ix -= 16;
            ix += iexp << 4;
        }
        if lin >= 0 {
            ix |= 0x0080;
        }
        (ix ^ 0x0055) as u8
    }

    fn g191_alaw_expand(log: u8) -> i16 {
        let log = i16::from(log);
        let mut ix: i16 = log ^ 0x0055;
        ix &= 0x007F;
        let iexp = ix >> 4;
        let mut mant = ix & 0x000F;
        if iexp > 0 {
            mant += 16;
        }
        mant = (mant << 4) + 0x0008;
        if iexp > 1 {
            mant <<= iexp - 1;
        }
        if log > 127 {
            mant
        } else {
            -mant
        }
    }

    fn g191_ulaw_compress(lin: i16) -> u8 {
        let mut absno: i16 = if lin < 0 {
            ((!lin) >> 2) + 33
        } else {
            (lin >> 2) + 33
        };
        if absno > 0x1FFF {
            absno = 0x1FFF;
        }
        let mut i = absno >> 6;
        let mut segno: i16 = 1;
        while i != 0 {
            segno += 1;
            i >>= 1;
        }
        let high_nibble = 0x0008 - segno;
        let mut low_nibble = (absno >> segno) & 0x000F;
        low_nibble = 0x000F - low_nibble;
        let mut log = (high_nibble << 4) | low_nibble;
        if lin >= 0 {
            log |= 0x0080;
        }
        log as u8
    }

    fn g191_ulaw_expand(log: u8) -> i16 {
        let log = i16::from(log);
        let sign: i16 = if log < 0x0080 { -1 } else { 1 };
        let mut mantissa: i16 = !log;
        let exponent = (mantissa >> 4) & 0x0007;
        let segment = exponent + 1;
        mantissa &= 0x000F;
        let step: i16 = 4 << segment;
        sign * ((0x0080 << exponent) + step * mantissa + step / 2 - 4 * 33)
    }

    #[test]
    fn every_input_matches_g191() {
        for i in i16::MIN..=i16::MAX {
            assert_eq!(ulaw_encode(i), g191_ulaw_compress(i), "ulaw {i}");
            assert_eq!(alaw_encode(i), g191_alaw_compress(i), "alaw {i}");
        }
    }

    #[test]
    fn every_code_matches_g191() {
        for c in 0..=255u8 {
            assert_eq!(ulaw_decode(c), g191_ulaw_expand(c), "ulaw {c:#x}");
            assert_eq!(alaw_decode(c), g191_alaw_expand(c), "alaw {c:#x}");
        }
    }

    #[test]
    fn slice_apis_match_the_scalar_ones() {
        let pcm: [i16; 9] = [0, 1, -1, 100, -100, 4000, -4000, i16::MAX, i16::MIN];
        for law in [Law::MuLaw, Law::ALaw] {
            let mut codes = [0u8; 9];
            law.encode(&pcm, &mut codes);
            let mut back = [0i16; 9];
            law.decode(&codes, &mut back);
            for k in 0..9 {
                let (e, d) = match law {
                    Law::MuLaw => (ulaw_encode(pcm[k]), ulaw_decode(codes[k])),
                    Law::ALaw => (alaw_encode(pcm[k]), alaw_decode(codes[k])),
                };
                assert_eq!(codes[k], e);
                assert_eq!(back[k], d);
            }
        }
    }

    #[test]
    fn known_code_points() {
        // Silence, full scale, the sign of each law, and G.191's one's
        // complement of negatives (-1 is negative zero).
        assert_eq!(ulaw_encode(0), 0xFF);
        assert_eq!(alaw_encode(0), 0xD5);
        assert_eq!(ulaw_encode(-1), 0x7F);
        assert_eq!(alaw_encode(-1), 0x55);
        assert_eq!(Law::MuLaw.silence(), 0xFF);
        assert_eq!(Law::ALaw.silence(), 0xD5);
        assert_eq!(ulaw_decode(0xFF), 0);
        assert_eq!(ulaw_decode(0x7F), 0);
        assert_eq!(alaw_decode(0xD5), 8);
        assert_eq!(alaw_decode(0x55), -8);
        assert_eq!(ulaw_decode(0x80), 32124);
        assert_eq!(ulaw_decode(0x00), -32124);
        assert_eq!(alaw_decode(0xAA), 32256);
        assert_eq!(alaw_decode(0x2A), -32256);
        assert_eq!(ulaw_encode(i16::MAX), 0x80);
        assert_eq!(ulaw_encode(i16::MIN), 0x00);
        assert_eq!(alaw_encode(i16::MAX), 0xAA);
        assert_eq!(alaw_encode(i16::MIN), 0x2A);
    }

    #[test]
    fn decode_then_encode_is_identity() {
        for c in 0..=255u8 {
            assert_eq!(alaw_encode(alaw_decode(c)), c, "alaw {c:#x}");
            let u = ulaw_encode(ulaw_decode(c));
            // 0x7F (negative zero) decodes to 0, which encodes as 0xFF.
            assert!(u == c || (c == 0x7F && u == 0xFF), "ulaw {c:#x} -> {u:#x}");
        }
    }

    #[test]
    fn quantisation_error_is_within_half_a_step() {
        for i in (i16::MIN + 1..=i16::MAX).step_by(3) {
            for law in [Law::MuLaw, Law::ALaw] {
                let mut c = [0u8];
                let mut d = [0i16];
                law.encode(&[i], &mut c);
                law.decode(&c, &mut d);
                let err = (i32::from(i) - i32::from(d[0])).abs();
                // Step size is 1/16 of the segment's top, at least 16 (A) / 8 (mu);
                // beyond the top decision level the error is the clipping.
                let bound = (i32::from(i).abs() / 16).max(16) + 4;
                assert!(
                    err <= bound || i.unsigned_abs() > 32000,
                    "{law:?} {i} -> {} (err {err})",
                    d[0]
                );
            }
        }
    }

    #[test]
    fn one_sample_helpers_and_transcoding_agree_with_the_tables() {
        for c in 0..=255u8 {
            assert_eq!(Law::MuLaw.decode_one(c), ulaw_decode(c));
            assert_eq!(Law::ALaw.decode_one(c), alaw_decode(c));
        }
        for s in [-32768i16, -1000, -1, 0, 1, 77, 32767] {
            assert_eq!(Law::MuLaw.encode_one(s), ulaw_encode(s));
            assert_eq!(Law::ALaw.encode_one(s), alaw_encode(s));
        }
        let mut codes = [0u8; 256];
        for (i, c) in codes.iter_mut().enumerate() {
            *c = i as u8;
        }
        let mut same = codes;
        Law::ALaw.transcode_from(Law::ALaw, &mut same);
        assert_eq!(same, codes);
        let mut mu = codes;
        Law::MuLaw.transcode_from(Law::ALaw, &mut mu);
        for (a, m) in codes.iter().zip(mu) {
            assert_eq!(m, ulaw_encode(alaw_decode(*a)));
        }
    }
}
