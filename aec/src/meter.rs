//! Echo removed, as the call hears it: microphone power in over power out
//! while the far end is playing, averaged over the last seconds.

/// Far-end level above which it counts as playing, dBFS RMS.
const FAR_ACTIVE_DBFS: f64 = -50.0;

/// Exponentially averaged powers (see the module documentation).
#[derive(Debug)]
pub struct Attenuation {
    rate: f64,
    /// Far-end power, averaged over about 0.5 s.
    far: f64,
    far_alpha: f64,
    /// Microphone in and out powers while the far end plays.
    inp: f64,
    out: f64,
    alpha_per_sample: f64,
    /// Samples averaged while the far end played.
    active: u64,
}

fn power(x: impl Iterator<Item = i16>) -> (f64, usize) {
    let mut s = 0.0;
    let mut n = 0;
    for v in x {
        s += f64::from(v) * f64::from(v);
        n += 1;
    }
    (s, n)
}

impl Attenuation {
    /// A meter for `rate` Hz averaging over `seconds`.
    pub fn new(rate: u32, seconds: f64) -> Attenuation {
        let rate = f64::from(rate);
        Attenuation {
            rate,
            far: 0.0,
            far_alpha: 1.0 / (0.5 * rate),
            inp: 0.0,
            out: 0.0,
            alpha_per_sample: 1.0 / (seconds * rate),
            active: 0,
        }
    }

    /// Far-end samples as played.
    pub fn far(&mut self, x: &[i16]) {
        let (s, n) = power(x.iter().copied());
        if n > 0 {
            let a = (self.far_alpha * n as f64).min(1.0);
            self.far += a * (s / n as f64 - self.far);
        }
    }

    fn far_active(&self) -> bool {
        let threshold = (32768.0 * 10f64.powf(FAR_ACTIVE_DBFS / 20.0)).powi(2);
        self.far > threshold
    }

    /// A block of the microphone before (`inp`) and after the canceller.
    pub fn near(&mut self, inp: &[i16], out: impl Iterator<Item = i16>) {
        if !self.far_active() {
            return;
        }
        let (si, n) = power(inp.iter().copied());
        let (so, _) = power(out);
        if n == 0 {
            return;
        }
        let a = (self.alpha_per_sample * n as f64).min(1.0);
        self.inp += a * (si / n as f64 - self.inp);
        self.out += a * (so / n as f64 - self.out);
        self.active += n as u64;
    }

    /// In over out, dB, once the far end played for a second; capped at
    /// 99 dB (an output of digital silence).
    pub fn attenuation_db(&self) -> Option<f64> {
        if (self.active as f64) < self.rate || self.inp <= 0.0 {
            return None;
        }
        Some((10.0 * (self.inp / self.out.max(1e-12)).log10()).min(99.0))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn measures_in_over_out_only_while_the_far_end_plays() {
        let mut m = Attenuation::new(8000, 2.0);
        let loud = [3000i16; 80];
        let quiet = [300i16; 80];
        // Far end silent: nothing counted.
        for _ in 0..200 {
            m.far(&[0; 80]);
            m.near(&loud, quiet.iter().copied());
        }
        assert_eq!(m.attenuation_db(), None);
        for _ in 0..400 {
            m.far(&loud);
            m.near(&loud, quiet.iter().copied());
        }
        let a = m.attenuation_db().unwrap();
        assert!((a - 20.0).abs() < 0.5, "{a}");
        // Silence out: large, and never more than the cap.
        for _ in 0..2000 {
            m.far(&loud);
            m.near(&loud, [0i16; 80].iter().copied());
        }
        let a = m.attenuation_db().unwrap();
        assert!((60.0..=99.0).contains(&a), "{a}");
    }
}
