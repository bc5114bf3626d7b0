//! Audio measurements for tests and diagnostics: the level of one frequency
//! (Goertzel), the dominant frequency, RMS.

use std::f64::consts::PI;

/// Amplitude (peak, in sample units) of the `hz` component of `x`, by the
/// Goertzel algorithm with a Hann window.
pub fn tone_level(x: &[i16], hz: f64, rate: f64) -> f64 {
    let n = x.len();
    if n < 2 {
        return 0.0;
    }
    let w = 2.0 * PI * hz / rate;
    let coeff = 2.0 * w.cos();
    let (mut s1, mut s2) = (0.0f64, 0.0f64);
    let mut wsum = 0.0;
    for (k, &v) in x.iter().enumerate() {
        let win = 0.5 - 0.5 * (2.0 * PI * k as f64 / (n - 1) as f64).cos();
        wsum += win;
        let s0 = f64::from(v) * win + coeff * s1 - s2;
        s2 = s1;
        s1 = s0;
    }
    let power = s1 * s1 + s2 * s2 - coeff * s1 * s2;
    2.0 * power.max(0.0).sqrt() / wsum
}

/// The frequency (Hz, 10 Hz resolution, 50–3950 Hz) with the most energy.
pub fn dominant_frequency(x: &[i16], rate: f64) -> f64 {
    let mut best = (0.0, 0.0);
    let mut hz = 50.0;
    while hz < rate / 2.0 - 40.0 {
        let l = tone_level(x, hz, rate);
        if l > best.0 {
            best = (l, hz);
        }
        hz += 10.0;
    }
    best.1
}

/// Root mean square of `x`.
pub fn rms(x: &[i16]) -> f64 {
    if x.is_empty() {
        return 0.0;
    }
    (x.iter().map(|&v| f64::from(v).powi(2)).sum::<f64>() / x.len() as f64).sqrt()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn measures_a_known_tone() {
        let x: Vec<i16> = (0..8000)
            .map(|k| (12000.0 * (2.0 * PI * 1000.0 * f64::from(k) / 8000.0).sin()) as i16)
            .collect();
        let l = tone_level(&x, 1000.0, 8000.0);
        assert!((l - 12000.0).abs() < 120.0, "{l}");
        assert!(tone_level(&x, 440.0, 8000.0) < 50.0);
        assert_eq!(dominant_frequency(&x, 8000.0), 1000.0);
        assert!((rms(&x) - 12000.0 / 2f64.sqrt()).abs() < 50.0);
    }
}
