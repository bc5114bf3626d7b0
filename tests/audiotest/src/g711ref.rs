//! Reference G.711 (ITU-T G.711 / Sun g711.c), written for clarity, not speed.

/// Segment ends for A-law (on the value shifted right by 3).
const SEG_AEND: [i16; 8] = [0x1F, 0x3F, 0x7F, 0xFF, 0x1FF, 0x3FF, 0x7FF, 0xFFF];
/// Segment ends for mu-law (on the value shifted right by 2, plus bias).
const SEG_UEND: [i16; 8] = [0x3F, 0x7F, 0xFF, 0x1FF, 0x3FF, 0x7FF, 0xFFF, 0x1FFF];

fn segment(v: i16, ends: &[i16; 8]) -> usize {
    ends.iter().position(|&e| v <= e).unwrap_or(8)
}

/// 16-bit linear to A-law.
pub fn linear_to_alaw(pcm: i16) -> u8 {
    let mut v = pcm >> 3;
    let mask: u8 = if v >= 0 {
        0xD5
    } else {
        v = -v - 1;
        0x55
    };
    let seg = segment(v, &SEG_AEND);
    if seg >= 8 {
        return 0x7F ^ mask;
    }
    let mut a = (seg as u8) << 4;
    a |= if seg < 2 {
        ((v >> 1) & 0xF) as u8
    } else {
        ((v >> seg) & 0xF) as u8
    };
    a ^ mask
}

/// A-law to 16-bit linear.
pub fn alaw_to_linear(a: u8) -> i16 {
    let a = a ^ 0x55;
    let mut t = i16::from(a & 0x0F) << 4;
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

const BIAS: i16 = 0x84;
const CLIP: i16 = 8159;

/// 16-bit linear to mu-law.
pub fn linear_to_ulaw(pcm: i16) -> u8 {
    let mut v = pcm >> 2;
    let mask: u8 = if v < 0 {
        v = -v;
        0x7F
    } else {
        0xFF
    };
    if v > CLIP {
        v = CLIP;
    }
    v += BIAS >> 2;
    let seg = segment(v, &SEG_UEND);
    if seg >= 8 {
        return 0x7F ^ mask;
    }
    let u = ((seg as u8) << 4) | ((v >> (seg + 1)) & 0xF) as u8;
    u ^ mask
}

/// Mu-law to 16-bit linear.
pub fn ulaw_to_linear(u: u8) -> i16 {
    let u = !u;
    let mut t = (i16::from(u & 0x0F) << 3) + BIAS;
    t <<= (u & 0x70) >> 4;
    if u & 0x80 != 0 {
        BIAS - t
    } else {
        t - BIAS
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_codes() {
        assert_eq!(linear_to_ulaw(0), 0xFF);
        assert_eq!(linear_to_alaw(0), 0xD5);
        assert_eq!(ulaw_to_linear(0xFF), 0);
        assert_eq!(alaw_to_linear(0xD5), 8);
        assert_eq!(ulaw_to_linear(0x80), 32124);
        assert_eq!(ulaw_to_linear(0x00), -32124);
        assert_eq!(alaw_to_linear(0xAA), 32256);
    }

    #[test]
    fn decode_encode_is_identity() {
        for c in 0..=255u8 {
            assert_eq!(linear_to_alaw(alaw_to_linear(c)), c, "alaw {c:#x}");
            let back = linear_to_ulaw(ulaw_to_linear(c));
            // 0x7F (-0) and 0xFF (+0) both decode to 0.
            assert!(
                back == c || (c == 0x7F && back == 0xFF),
                "ulaw {c:#x} -> {back:#x}"
            );
        }
    }
}
