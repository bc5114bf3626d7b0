//! audiotest: make test tones and measure recordings, for the snd-voip tests.
//!
//! `audiotest gen` writes a sine (raw interleaved samples, or WAV with
//! `--wav`); `audiotest analyze` finds the tone in a recording and checks its
//! frequency, level and length. Its G.711 code is a deliberately separate,
//! straightforward transcription of the ITU-T formulas, so it can judge the
//! project's own codec and the card independently.

use std::f64::consts::PI;
use std::fs;
use std::io::Write;
use std::process::ExitCode;

mod g711ref;
mod wav;

#[derive(Clone, Copy, Debug, PartialEq)]
enum Format {
    S16,
    MuLaw,
    ALaw,
}

impl Format {
    fn parse(s: &str) -> Result<Format, String> {
        match s.to_ascii_lowercase().replace('-', "_").as_str() {
            "s16" | "s16_le" => Ok(Format::S16),
            "mu_law" | "mulaw" | "ulaw" | "pcmu" => Ok(Format::MuLaw),
            "a_law" | "alaw" | "pcma" => Ok(Format::ALaw),
            _ => Err(format!("unknown format '{s}' (S16_LE, MU_LAW or A_LAW)")),
        }
    }
    fn bytes(self) -> usize {
        if self == Format::S16 {
            2
        } else {
            1
        }
    }
}

const USAGE: &str = "\
usage:
  audiotest gen     [--format F] [--rate R] [--channels C] [--freq HZ] [--seconds S]
                    [--amplitude A] [--lead SECONDS] [--wav] OUTPUT
  audiotest analyze [--format F] [--rate R] [--channels C] [--wav] INPUT
                    [--freq HZ] [--seconds S | --min-seconds S [--max-seconds S]] [--tolerance FRACTION]
                    [--min-dbfs DB] [--window SECONDS] [--min-purity P] [--band HZ]

Formats: S16_LE (default), MU_LAW, A_LAW; raw interleaved unless --wav.
gen writes a sine of --freq Hz (default 1000) and --amplitude (0..1, default 0.5)
for --seconds (default 3), after --lead seconds of silence (default 0).
analyze finds the tone (the span where the signal is above -40 dBFS), then
prints its length, frequency (zero crossings), level (RMS dBFS) and purity
(share of the power at the measured frequency). With --freq/--seconds it
checks them within --tolerance (default 0.01) and --min-dbfs (default -20),
prints PASS or FAIL and exits 1 on FAIL. --min-seconds/--max-seconds bound
the tone's length instead of --seconds (a call's length is known only
within the time its set-up and tear-down take). Every channel is checked.
Purity is measured over the whole tone (strict: any phase jump lowers it),
or with --window SECONDS as the median over windows of that length (for
audio that crossed a jitter buffer, where a rare dropped frame is normal);
--min-purity (default 0.9) is the share of power the tone must hold.
--band HZ counts the power within HZ of the frequency as the tone's (a
Hann-windowed spectrum) instead of the power at the frequency alone: for
audio from a player that cuts a few samples at a time to keep its latency
down (linphone's flow control), where each cut is a small phase jump that
spreads the tone by a few Hz but leaves it dominant.";

struct Opts {
    format: Format,
    rate: u32,
    channels: usize,
    freq: Option<f64>,
    seconds: Option<f64>,
    amplitude: f64,
    lead: f64,
    tolerance: f64,
    min_dbfs: f64,
    window: Option<f64>,
    min_seconds: Option<f64>,
    max_seconds: Option<f64>,
    min_purity: f64,
    band: Option<f64>,
    wav: bool,
    file: Option<String>,
}

fn parse(args: &[String]) -> Result<Opts, String> {
    let mut o = Opts {
        format: Format::S16,
        rate: 48000,
        channels: 1,
        freq: None,
        seconds: None,
        amplitude: 0.5,
        lead: 0.0,
        tolerance: 0.01,
        min_dbfs: -20.0,
        window: None,
        min_seconds: None,
        max_seconds: None,
        min_purity: 0.9,
        band: None,
        wav: false,
        file: None,
    };
    let mut it = args.iter();
    while let Some(a) = it.next() {
        let mut val = |name: &str| {
            it.next()
                .cloned()
                .ok_or_else(|| format!("{name} needs a value"))
        };
        let num = |v: String, name: &str| {
            v.parse::<f64>()
                .map_err(|_| format!("{name}: '{v}' is not a number"))
        };
        match a.as_str() {
            "--format" => o.format = Format::parse(&val("--format")?)?,
            "--rate" => o.rate = num(val("--rate")?, "--rate")? as u32,
            "--channels" => o.channels = num(val("--channels")?, "--channels")? as usize,
            "--freq" => o.freq = Some(num(val("--freq")?, "--freq")?),
            "--seconds" => o.seconds = Some(num(val("--seconds")?, "--seconds")?),
            "--amplitude" => o.amplitude = num(val("--amplitude")?, "--amplitude")?,
            "--lead" => o.lead = num(val("--lead")?, "--lead")?,
            "--tolerance" => o.tolerance = num(val("--tolerance")?, "--tolerance")?,
            "--min-dbfs" => o.min_dbfs = num(val("--min-dbfs")?, "--min-dbfs")?,
            "--min-purity" => o.min_purity = num(val("--min-purity")?, "--min-purity")?,
            "--min-seconds" => o.min_seconds = Some(num(val("--min-seconds")?, "--min-seconds")?),
            "--max-seconds" => o.max_seconds = Some(num(val("--max-seconds")?, "--max-seconds")?),
            "--window" => o.window = Some(num(val("--window")?, "--window")?),
            "--band" => o.band = Some(num(val("--band")?, "--band")?),
            "--wav" => o.wav = true,
            s if s.starts_with('-') => return Err(format!("unknown option {s}")),
            s => o.file = Some(s.to_string()),
        }
    }
    if o.rate == 0 || o.channels == 0 {
        return Err("--rate and --channels must be positive".into());
    }
    if o.band.is_some_and(|b| b.is_nan() || b <= 0.0) {
        return Err("--band must be a positive number of Hz".into());
    }
    Ok(o)
}

fn encode(format: Format, x: f64, out: &mut Vec<u8>) {
    let s = (x * 32767.0).round().clamp(-32768.0, 32767.0) as i16;
    match format {
        Format::S16 => out.extend_from_slice(&s.to_le_bytes()),
        Format::MuLaw => out.push(g711ref::linear_to_ulaw(s)),
        Format::ALaw => out.push(g711ref::linear_to_alaw(s)),
    }
}

fn decode(format: Format, bytes: &[u8]) -> Vec<f64> {
    match format {
        Format::S16 => bytes
            .chunks_exact(2)
            .map(|c| f64::from(i16::from_le_bytes([c[0], c[1]])) / 32768.0)
            .collect(),
        Format::MuLaw => bytes
            .iter()
            .map(|&b| f64::from(g711ref::ulaw_to_linear(b)) / 32768.0)
            .collect(),
        Format::ALaw => bytes
            .iter()
            .map(|&b| f64::from(g711ref::alaw_to_linear(b)) / 32768.0)
            .collect(),
    }
}

fn gen(o: &Opts) -> Result<(), String> {
    let file = o.file.as_deref().ok_or("gen needs an OUTPUT file")?;
    let freq = o.freq.unwrap_or(1000.0);
    let secs = o.seconds.unwrap_or(3.0);
    let lead = (o.lead * f64::from(o.rate)).round() as usize;
    let n = (secs * f64::from(o.rate)).round() as usize;
    let mut data = Vec::with_capacity((lead + n) * o.channels * o.format.bytes());
    for i in 0..lead + n {
        let x = if i < lead {
            0.0
        } else {
            o.amplitude * (2.0 * PI * freq * (i - lead) as f64 / f64::from(o.rate)).sin()
        };
        for _ in 0..o.channels {
            encode(o.format, x, &mut data);
        }
    }
    let bytes = if o.wav {
        wav::wrap(
            &data,
            o.format_tag(),
            o.channels as u16,
            o.rate,
            o.format.bytes() as u16 * 8,
        )
    } else {
        data
    };
    fs::write(file, bytes).map_err(|e| format!("{file}: {e}"))
}

impl Opts {
    fn format_tag(&self) -> u16 {
        match self.format {
            Format::S16 => 1,
            Format::ALaw => 6,
            Format::MuLaw => 7,
        }
    }
}

/// Measurements of one channel.
struct Measure {
    length_s: f64,
    freq: f64,
    dbfs: f64,
    purity: f64,
}

fn measure(x: &[f64], rate: f64, window: Option<f64>, band: Option<f64>) -> Option<Measure> {
    let thr = 0.01; // -40 dBFS
    let first = x.iter().position(|v| v.abs() > thr)?;
    let last = x.iter().rposition(|v| v.abs() > thr)?;
    let tone = &x[first..=last];
    if tone.len() < 16 {
        return None;
    }
    // Frequency from interpolated rising zero crossings: over the whole tone,
    // or with windows as the median of the windows' frequencies, so that
    // gaps of silence (which have no crossings) do not bias it low.
    let freq = match window {
        None => crossing_freq(tone, rate),
        Some(wsecs) => {
            let n = ((wsecs * rate) as usize).max(16);
            let mut f: Vec<f64> = tone
                .chunks_exact(n)
                .map(|c| crossing_freq(c, rate))
                .filter(|f| *f > 0.0)
                .collect();
            f.sort_by(|a, b| a.total_cmp(b));
            f.get(f.len() / 2)
                .copied()
                .unwrap_or_else(|| crossing_freq(tone, rate))
        }
    };
    let power: f64 = tone.iter().map(|v| v * v).sum::<f64>() / tone.len() as f64;
    let share = |c: &[f64]| match band {
        None => purity(c, freq, rate),
        Some(b) => band_purity(c, freq, rate, b),
    };
    let purity = match window {
        None => share(tone),
        Some(wsecs) => {
            let n = ((wsecs * rate) as usize).max(16);
            let mut p: Vec<f64> = tone.chunks_exact(n).map(share).collect();
            if p.is_empty() {
                share(tone)
            } else {
                p.sort_by(|a, b| a.total_cmp(b));
                p[p.len() / 2]
            }
        }
    };
    // Length counts whole periods at both ends (the tone starts and ends at zero crossings).
    let length_s = (last - first + 1) as f64 / rate;
    Some(Measure {
        length_s,
        freq,
        dbfs: 10.0 * power.max(1e-20).log10() + 3.0103,
        purity,
    })
}

/// Frequency of `x` from its interpolated rising zero crossings (0 if fewer than two).
fn crossing_freq(x: &[f64], rate: f64) -> f64 {
    let mut crossings = Vec::new();
    for i in 1..x.len() {
        if x[i - 1] < 0.0 && x[i] >= 0.0 {
            let frac = -x[i - 1] / (x[i] - x[i - 1]);
            crossings.push((i - 1) as f64 + frac);
        }
    }
    match (crossings.first(), crossings.last()) {
        (Some(a), Some(b)) if crossings.len() >= 2 && b > a => {
            (crossings.len() - 1) as f64 * rate / (b - a)
        }
        _ => 0.0,
    }
}

/// |X(w)|² of `x` at `w` radians per sample (Goertzel).
fn goertzel(x: &[f64], w: f64) -> f64 {
    let c = 2.0 * w.cos();
    let (mut s1, mut s2) = (0.0f64, 0.0f64);
    for &v in x {
        let s0 = v + c * s1 - s2;
        s2 = s1;
        s1 = s0;
    }
    s1 * s1 + s2 * s2 - c * s1 * s2
}

/// Share of the power of `x` at `freq` (Goertzel), 0..1.
fn purity(x: &[f64], freq: f64, rate: f64) -> f64 {
    let power: f64 = x.iter().map(|v| v * v).sum::<f64>() / x.len().max(1) as f64;
    let g = goertzel(x, 2.0 * PI * freq / rate);
    let tone_power = 2.0 * g / (x.len() as f64 * x.len() as f64);
    if power > 0.0 {
        (tone_power / power).min(1.0)
    } else {
        0.0
    }
}

/// Share of the power of `x` within `band` Hz of `freq`, 0..1: the
/// Hann-windowed DFT bins in the band (both signs of frequency) against all
/// bins (Parseval), DC and Nyquist left out of the band.
fn band_purity(x: &[f64], freq: f64, rate: f64, band: f64) -> f64 {
    let n = x.len();
    if n < 4 {
        return 0.0;
    }
    let xw: Vec<f64> = x
        .iter()
        .enumerate()
        .map(|(i, v)| v * (0.5 - 0.5 * (2.0 * PI * i as f64 / n as f64).cos()))
        .collect();
    let total = n as f64 * xw.iter().map(|v| v * v).sum::<f64>();
    if total <= 0.0 {
        return 0.0;
    }
    let bin = rate / n as f64;
    let lo = (((freq - band) / bin).ceil().max(1.0)) as usize;
    let hi = (((freq + band) / bin).floor() as usize).min((n - 1) / 2);
    let mut in_band = 0.0;
    for k in lo..=hi {
        in_band += 2.0 * goertzel(&xw, 2.0 * PI * k as f64 / n as f64);
    }
    (in_band / total).min(1.0)
}

fn analyze(o: &Opts) -> Result<bool, String> {
    let file = o.file.as_deref().ok_or("analyze needs an INPUT file")?;
    let raw = fs::read(file).map_err(|e| format!("{file}: {e}"))?;
    let (data, format, channels, rate) = if o.wav {
        let w = wav::parse(&raw)?;
        let f = match w.format_tag {
            1 => Format::S16,
            6 => Format::ALaw,
            7 => Format::MuLaw,
            t => return Err(format!("{file}: WAV format tag {t} not supported")),
        };
        (w.data, f, w.channels as usize, w.rate)
    } else {
        (raw.as_slice(), o.format, o.channels, o.rate)
    };
    let samples = decode(format, data);
    let frames = samples.len() / channels;
    println!(
        "file {file}: {frames} frames, {:.3} s, {} Hz, {} ch, {:?}",
        frames as f64 / f64::from(rate),
        rate,
        channels,
        format
    );
    let mut ok = true;
    for ch in 0..channels {
        let x: Vec<f64> = samples.iter().skip(ch).step_by(channels).copied().collect();
        let Some(m) = measure(&x, f64::from(rate), o.window, o.band) else {
            println!("channel {ch}: no tone found (silence)");
            ok = false;
            continue;
        };
        println!(
            "channel {ch}: tone length {:.4} s, frequency {:.2} Hz, level {:.2} dBFS, purity {:.3}",
            m.length_s, m.freq, m.dbfs, m.purity
        );
        if let Some(f) = o.freq {
            if (m.freq - f).abs() > f * o.tolerance {
                println!(
                    "channel {ch}: frequency {:.2} Hz is not {f} Hz ±{:.1}%",
                    m.freq,
                    o.tolerance * 100.0
                );
                ok = false;
            }
            if m.purity < o.min_purity {
                println!(
                    "channel {ch}: only {:.1}% of the power is in the tone",
                    m.purity * 100.0
                );
                ok = false;
            }
        }
        if let Some(s) = o.seconds {
            if (m.length_s - s).abs() > s * o.tolerance {
                println!(
                    "channel {ch}: tone lasts {:.4} s, not {s} s ±{:.1}%",
                    m.length_s,
                    o.tolerance * 100.0
                );
                ok = false;
            }
        }
        if let Some(max) = o.max_seconds {
            if m.length_s > max {
                println!(
                    "channel {ch}: tone lasts {:.4} s, more than {max} s",
                    m.length_s
                );
                ok = false;
            }
        }
        if let Some(min) = o.min_seconds {
            if m.length_s < min {
                println!(
                    "channel {ch}: tone lasts {:.4} s, less than {min} s",
                    m.length_s
                );
                ok = false;
            }
        }
        if (o.freq.is_some() || o.seconds.is_some()) && m.dbfs < o.min_dbfs {
            println!(
                "channel {ch}: level {:.2} dBFS is below {} dBFS",
                m.dbfs, o.min_dbfs
            );
            ok = false;
        }
    }
    Ok(ok)
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let Some(cmd) = args.first() else {
        eprintln!("{USAGE}");
        return ExitCode::from(2);
    };
    if cmd == "-h" || cmd == "--help" {
        println!("{USAGE}");
        return ExitCode::SUCCESS;
    }
    let opts = match parse(&args[1..]) {
        Ok(o) => o,
        Err(e) => {
            eprintln!("audiotest: {e}\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    let res = match cmd.as_str() {
        "gen" => gen(&opts).map(|()| true),
        "analyze" => analyze(&opts),
        _ => Err(format!("unknown command '{cmd}'")),
    };
    let _ = std::io::stdout().flush();
    match res {
        Ok(true) => {
            if cmd == "analyze"
                && (opts.freq.is_some()
                    || opts.seconds.is_some()
                    || opts.min_seconds.is_some()
                    || opts.max_seconds.is_some())
            {
                println!("PASS");
            }
            ExitCode::SUCCESS
        }
        Ok(false) => {
            println!("FAIL");
            ExitCode::from(1)
        }
        Err(e) => {
            eprintln!("audiotest: {e}");
            ExitCode::from(2)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tone(freq: f64, rate: f64, secs: f64, lead: f64) -> Vec<f64> {
        let lead = (lead * rate) as usize;
        let n = (secs * rate) as usize;
        (0..lead + n)
            .map(|i| {
                if i < lead {
                    0.0
                } else {
                    0.5 * (2.0 * PI * freq * (i - lead) as f64 / rate).sin()
                }
            })
            .collect()
    }

    #[test]
    fn measures_a_clean_tone() {
        let m = measure(&tone(1000.0, 48000.0, 3.0, 0.5), 48000.0, None, None).unwrap();
        assert!((m.freq - 1000.0).abs() < 0.5, "{}", m.freq);
        assert!((m.length_s - 3.0).abs() < 0.002, "{}", m.length_s);
        assert!((m.dbfs - -6.02).abs() < 0.1, "{}", m.dbfs);
        assert!(m.purity > 0.98);
    }

    #[test]
    fn windowed_purity_tolerates_a_rare_glitch_but_whole_span_does_not() {
        let mut x = tone(440.0, 8000.0, 3.0, 0.0);
        x.drain(12000..12080); // drop 10 ms: a phase jump in the middle
        let strict = measure(&x, 8000.0, None, None).unwrap();
        let windowed = measure(&x, 8000.0, Some(0.1), None).unwrap();
        assert!(strict.purity < 0.9, "{}", strict.purity);
        assert!(windowed.purity > 0.98, "{}", windowed.purity);
    }

    #[test]
    fn windowed_frequency_ignores_gaps_of_silence() {
        // 0.2 s of silence every second (an underrun pattern): the tone is
        // still 440 Hz where it plays; the whole-span estimate is biased low.
        let mut x = Vec::new();
        for _ in 0..5 {
            x.extend(tone(440.0, 8000.0, 0.8, 0.0));
            x.extend(std::iter::repeat_n(0.0, 1600));
        }
        let whole = measure(&x, 8000.0, None, None).unwrap();
        let windowed = measure(&x, 8000.0, Some(0.1), None).unwrap();
        assert!(whole.freq < 430.0, "{}", whole.freq);
        assert!((windowed.freq - 440.0).abs() < 1.0, "{}", windowed.freq);
        assert!(windowed.purity > 0.9, "{}", windowed.purity);
    }

    /// Cut 5 samples every 20 ms, as linphone's flow control does when its
    /// playback queue has grown: a phase jump 50 times a second.
    fn tone_with_cuts(freq: f64) -> Vec<f64> {
        tone(freq, 8000.0, 3.0, 0.0)
            .chunks(160)
            .flat_map(|c| c[..155].to_vec())
            .collect()
    }

    #[test]
    fn band_purity_keeps_a_tone_with_frequent_small_cuts() {
        // The cuts shorten the tone by 1/32 where they happen, so there it
        // plays ~3 % sharp, off the single bin of a 0.1 s window at the
        // frequency measured over the whole recording (mostly clean).
        let x = tone_with_cuts(440.0);
        let w = &x[8000..8800];
        assert!(
            purity(w, 440.0, 8000.0) < 0.5,
            "{}",
            purity(w, 440.0, 8000.0)
        );
        assert!(
            band_purity(w, 440.0, 8000.0, 25.0) > 0.7,
            "{}",
            band_purity(w, 440.0, 8000.0, 25.0)
        );
        let m = measure(&x, 8000.0, Some(0.1), Some(25.0)).unwrap();
        assert!(m.purity > 0.7, "{}", m.purity);
    }

    #[test]
    fn band_purity_of_a_clean_tone_is_whole_and_of_another_tone_is_nil() {
        let x = tone(440.0, 8000.0, 1.0, 0.0);
        assert!(band_purity(&x[..800], 440.0, 8000.0, 25.0) > 0.99);
        assert!(band_purity(&x, 440.0, 8000.0, 25.0) > 0.99);
        assert!(band_purity(&x[..800], 1000.0, 8000.0, 25.0) < 0.001);
        let mix: Vec<f64> = x
            .iter()
            .zip(tone(1000.0, 8000.0, 1.0, 0.0))
            .map(|(a, b)| a + b)
            .collect();
        let p = band_purity(&mix[..800], 440.0, 8000.0, 25.0);
        assert!((p - 0.5).abs() < 0.02, "{p}");
    }

    #[test]
    fn silence_has_no_tone() {
        assert!(measure(&[0.0; 8000], 8000.0, None, None).is_none());
    }

    #[test]
    fn g711_round_trip_keeps_the_tone() {
        for f in [Format::MuLaw, Format::ALaw] {
            let mut bytes = Vec::new();
            for x in tone(440.0, 8000.0, 1.0, 0.0) {
                encode(f, x, &mut bytes);
            }
            let m = measure(&decode(f, &bytes), 8000.0, None, None).unwrap();
            assert!((m.freq - 440.0).abs() < 1.0, "{f:?} {}", m.freq);
            assert!(m.purity > 0.95);
        }
    }

    #[test]
    fn noise_is_impure() {
        let mut s = 1u32;
        let x: Vec<f64> = (0..8000)
            .map(|_| {
                s = s.wrapping_mul(1_103_515_245).wrapping_add(12345);
                f64::from((s >> 16) as i16) / 32768.0
            })
            .collect();
        let m = measure(&x, 8000.0, Some(0.1), None).unwrap();
        assert!(m.purity < 0.5, "{}", m.purity);
        let m = measure(&x, 8000.0, Some(0.1), Some(25.0)).unwrap();
        assert!(m.purity < 0.1, "{}", m.purity);
    }
}
