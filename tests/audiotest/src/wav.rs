//! Minimal RIFF/WAVE reading and writing (PCM, A-law, mu-law).

/// A parsed WAV file.
pub struct Wav<'a> {
    pub format_tag: u16,
    pub channels: u16,
    pub rate: u32,
    pub data: &'a [u8],
}

/// Wraps raw interleaved samples in a WAV header.
pub fn wrap(data: &[u8], format_tag: u16, channels: u16, rate: u32, bits: u16) -> Vec<u8> {
    let block = channels * (bits / 8);
    let mut v = Vec::with_capacity(44 + data.len());
    v.extend_from_slice(b"RIFF");
    v.extend_from_slice(&(36 + data.len() as u32).to_le_bytes());
    v.extend_from_slice(b"WAVEfmt ");
    v.extend_from_slice(&16u32.to_le_bytes());
    v.extend_from_slice(&format_tag.to_le_bytes());
    v.extend_from_slice(&channels.to_le_bytes());
    v.extend_from_slice(&rate.to_le_bytes());
    v.extend_from_slice(&(rate * u32::from(block)).to_le_bytes());
    v.extend_from_slice(&block.to_le_bytes());
    v.extend_from_slice(&bits.to_le_bytes());
    v.extend_from_slice(b"data");
    v.extend_from_slice(&(data.len() as u32).to_le_bytes());
    v.extend_from_slice(data);
    v
}

fn u16_at(b: &[u8], i: usize) -> Option<u16> {
    Some(u16::from_le_bytes([*b.get(i)?, *b.get(i + 1)?]))
}
fn u32_at(b: &[u8], i: usize) -> Option<u32> {
    Some(u32::from_le_bytes([
        *b.get(i)?,
        *b.get(i + 1)?,
        *b.get(i + 2)?,
        *b.get(i + 3)?,
    ]))
}

/// Parses a WAV file, walking its chunks.
pub fn parse(b: &[u8]) -> Result<Wav<'_>, String> {
    if b.get(0..4) != Some(b"RIFF") || b.get(8..12) != Some(b"WAVE") {
        return Err("not a RIFF/WAVE file".into());
    }
    let mut i = 12;
    let mut fmt = None;
    while i + 8 <= b.len() {
        let id = &b[i..i + 4];
        let len = u32_at(b, i + 4).ok_or("truncated chunk")? as usize;
        let body = i + 8;
        if id == b"fmt " {
            fmt = Some((
                u16_at(b, body).ok_or("short fmt")?,
                u16_at(b, body + 2).ok_or("short fmt")?,
                u32_at(b, body + 4).ok_or("short fmt")?,
            ));
        } else if id == b"data" {
            let (format_tag, channels, rate) = fmt.ok_or("data before fmt")?;
            let end = body.saturating_add(len).min(b.len());
            if channels == 0 {
                return Err("zero channels".into());
            }
            return Ok(Wav {
                format_tag,
                channels,
                rate,
                data: &b[body..end],
            });
        }
        i = body.saturating_add(len + (len & 1));
    }
    Err("no data chunk".into())
}
