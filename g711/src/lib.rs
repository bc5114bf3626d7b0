//! ITU-T G.711 mu-law and A-law codecs.
//!
//! `no_std`, table driven: decoding is a 256-entry table lookup, encoding a
//! 64 Ki-entry table lookup per law built at compile time, so both are
//! branch-free per sample and bit-exact with the ITU-T G.191 reference
//! (`g711.c`) for every 16-bit input and every code (the tests check all of them
//! against a direct transcription of the reference algorithm).
#![no_std]
#![forbid(unsafe_code)]

const fn alaw_encode_ref(pcm: i16) -> u8 {
    const SEG_AEND: [i16; 8] = [0x1F, 0x3F, 0x7F, 0xFF, 0x1FF, 0x3FF, 0x7FF, 0xFFF];
    let mut v = pcm >> 3;
    let mask: u8 = if v >= 0 {
        0xD5
    } else {
        v = -v - 1;
        0x55
    };
    let mut seg = 0;
    while seg < 8 && v > SEG_AEND[seg] {
        seg += 1;
    }
    if seg >= 8 {
        return 0x7F ^ mask;
    }
    let q = if seg < 2 {
        (v >> 1) & 0xF
    } else {
        (v >> seg) & 0xF
    };
    (((seg as u8) << 4) | q as u8) ^ mask
}

const fn ulaw_encode_ref(pcm: i16) -> u8 {
    const SEG_UEND: [i16; 8] = [0x3F, 0x7F, 0xFF, 0x1FF, 0x3FF, 0x7FF, 0xFFF, 0x1FFF];
    let mut v = pcm >> 2;
    let mask: u8 = if v < 0 {
        v = -v;
        0x7F
    } else {
        0xFF
    };
    if v > 8159 {
        v = 8159;
    }
    v += 0x84 >> 2;
    let mut seg = 0;
    while seg < 8 && v > SEG_UEND[seg] {
        seg += 1;
    }
    if seg >= 8 {
        return 0x7F ^ mask;
    }
    (((seg as u8) << 4) | ((v >> (seg + 1)) & 0xF) as u8) ^ mask
}

const fn alaw_decode_ref(a: u8) -> i16 {
    let a = a ^ 0x55;
    let mut t = ((a & 0x0F) as i16) << 4;
    let seg = (a & 0x70) >> 4;
    match seg {
        0 => t += 8,
        1 => t += 0x108,
        _ => {
            t += 0x108;
            t <<= seg - 1;
        }
    }
    if a & 0x80 != 0 {
        t
    } else {
        -t
    }
}

const fn ulaw_decode_ref(u: u8) -> i16 {
    let u = !u;
    let mut t = (((u & 0x0F) as i16) << 3) + 0x84;
    t <<= (u & 0x70) >> 4;
    if u & 0x80 != 0 {
        0x84 - t
    } else {
        t - 0x84
    }
}

const fn decode_table(ulaw: bool) -> [i16; 256] {
    let mut t = [0i16; 256];
    let mut i = 0;
    while i < 256 {
        t[i] = if ulaw {
            ulaw_decode_ref(i as u8)
        } else {
            alaw_decode_ref(i as u8)
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
            ulaw_encode_ref(s)
        } else {
            alaw_encode_ref(s)
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

    #[test]
    fn every_input_matches_the_reference() {
        for i in i16::MIN..=i16::MAX {
            assert_eq!(ulaw_encode(i), ulaw_encode_ref(i), "ulaw {i}");
            assert_eq!(alaw_encode(i), alaw_encode_ref(i), "alaw {i}");
        }
        for c in 0..=255u8 {
            assert_eq!(ulaw_decode(c), ulaw_decode_ref(c));
            assert_eq!(alaw_decode(c), alaw_decode_ref(c));
        }
    }

    #[test]
    fn known_code_points() {
        // G.711 tables: silence, full scale and the sign of each law.
        assert_eq!(ulaw_encode(0), 0xFF);
        assert_eq!(alaw_encode(0), 0xD5);
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
            assert_eq!(alaw_encode(alaw_decode(c)), c);
            let u = ulaw_encode(ulaw_decode(c));
            assert!(u == c || (c == 0x7F && u == 0xFF), "{c:#x}");
        }
    }

    #[test]
    fn quantisation_error_is_bounded() {
        // G.711's step size grows with the segment: the error stays within
        // half a step, at most 1/32 of the magnitude plus the smallest step.
        for i in (i16::MIN + 1..=i16::MAX).step_by(7) {
            for law in [Law::MuLaw, Law::ALaw] {
                let mut c = [0u8];
                let mut d = [0i16];
                law.encode(&[i], &mut c);
                law.decode(&c, &mut d);
                let err = (i32::from(i) - i32::from(d[0])).abs();
                assert!(
                    err <= i32::from(i).abs() / 32 + 16 || i.unsigned_abs() > 32000,
                    "{law:?} {i} -> {}",
                    d[0]
                );
            }
        }
    }
}
