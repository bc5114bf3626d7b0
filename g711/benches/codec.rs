//! Prints G.711 encode/decode throughput (samples per second). `cargo bench -p g711`.
use g711::Law;
use std::hint::black_box;
use std::time::Instant;

fn main() {
    let n = 1 << 20;
    let pcm: Vec<i16> = (0..n).map(|i| ((i * 7919) % 65536) as u16 as i16).collect();
    let mut codes = vec![0u8; n];
    let mut out = vec![0i16; n];
    for law in [Law::MuLaw, Law::ALaw] {
        let rounds = 200;
        let t = Instant::now();
        for _ in 0..rounds {
            law.encode(black_box(&pcm), black_box(&mut codes));
        }
        let enc = (n * rounds) as f64 / t.elapsed().as_secs_f64();
        let t = Instant::now();
        for _ in 0..rounds {
            law.decode(black_box(&codes), black_box(&mut out));
        }
        let dec = (n * rounds) as f64 / t.elapsed().as_secs_f64();
        println!(
            "{law:?}: encode {:.0} Msamples/s, decode {:.0} Msamples/s",
            enc / 1e6,
            dec / 1e6
        );
    }
}
