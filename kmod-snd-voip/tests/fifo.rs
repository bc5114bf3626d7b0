//! The RTOS FIFO header: validation of good and corrupt headers, ring math.

use proptest::prelude::*;
use snd_voip_logic::fifo::*;
use snd_voip_logic::format::Format;

fn good(region: usize) -> Vec<u8> {
    let mut b = vec![0u8; region];
    assert!(write_header(
        &mut b,
        4096,
        160,
        Format::S16Le,
        8000,
        1,
        true
    ));
    b
}

fn set32(b: &mut [u8], o: usize, v: u32) {
    b[o..o + 4].copy_from_slice(&v.to_le_bytes());
}

#[test]
fn a_good_header_validates() {
    let b = good(256 + 4096);
    let r = Ring::validate(&b, b.len()).unwrap();
    assert_eq!(r.data_offset, 256);
    assert_eq!(r.capacity(), 2048);
    assert!(r.to_linux);
    assert_eq!(r.fill(5000, 4000), Ok(1000));
    assert_eq!(r.byte_offset(2048 + 3), 6);
}

#[test]
fn each_corruption_has_its_error() {
    let region = 256 + 4096;
    let mut b = good(region);
    set32(&mut b, off::MAGIC, 0xdeadbeef);
    assert_eq!(
        Ring::validate(&b, region),
        Err(FifoError::BadMagic(0xdeadbeef))
    );
    let mut b = good(region);
    b[off::VERSION..off::VERSION + 2].copy_from_slice(&2u16.to_le_bytes());
    assert_eq!(Ring::validate(&b, region), Err(FifoError::BadVersion(2)));
    let mut b = good(region);
    set32(&mut b, off::RING_BYTES, 8192);
    assert_eq!(
        Ring::validate(&b, region),
        Err(FifoError::BadRingSize(8192)),
        "oversized ring"
    );
    let mut b = good(region);
    set32(&mut b, off::RING_BYTES, 3000);
    assert_eq!(
        Ring::validate(&b, region),
        Err(FifoError::BadRingSize(3000)),
        "not a power of two"
    );
    let mut b = good(region);
    set32(&mut b, off::HEADER_SIZE, 100);
    assert_eq!(
        Ring::validate(&b, region),
        Err(FifoError::BadHeaderSize(100))
    );
    let mut b = good(region);
    set32(&mut b, off::RATE, 12345);
    assert_eq!(Ring::validate(&b, region), Err(FifoError::BadFormat));
    let mut b = good(region);
    set32(&mut b, off::PERIOD_FRAMES, 0);
    assert_eq!(Ring::validate(&b, region), Err(FifoError::BadPeriod(0)));
    let mut b = good(region);
    set32(&mut b, off::DIRECTION, 7);
    assert_eq!(Ring::validate(&b, region), Err(FifoError::BadDirection(7)));
    let b = good(region);
    assert_eq!(
        Ring::validate(&b[..100], 100),
        Err(FifoError::RegionTooSmall),
        "region smaller than the header"
    );
    let r = Ring::validate(&b, region).unwrap();
    assert_eq!(
        r.fill(10, 11),
        Err(FifoError::BadIndices),
        "read index beyond write"
    );
    assert_eq!(
        r.fill(5000, 100),
        Err(FifoError::BadIndices),
        "more than the ring in between"
    );
}

#[test]
fn a_new_minor_is_the_same_ring_a_new_size_is_not() {
    let b = good(256 + 4096);
    let r = Ring::validate(&b, b.len()).unwrap();
    let mut b1 = b.clone();
    assert!(set_version_minor(&mut b1, 0));
    let r1 = Ring::validate(&b1, b1.len()).unwrap();
    assert_eq!(r1.minor, 0);
    assert!(r.same_layout(&r1) && r1.same_layout(&r));
    let mut b2 = vec![0u8; 256 + 4096];
    write_header(&mut b2, 2048, 160, Format::S16Le, 8000, 1, true);
    assert!(!r.same_layout(&Ring::validate(&b2, b2.len()).unwrap()));
    let mut b3 = b.clone();
    set32(&mut b3, off::RATE, 16000);
    assert!(!r.same_layout(&Ring::validate(&b3, b3.len()).unwrap()));
}

#[test]
fn stereo_s16_ring_holds_whole_frames() {
    let mut b = vec![0u8; 256 + 1024];
    write_header(&mut b, 1024, 64, Format::S16Le, 48000, 2, false);
    let r = Ring::validate(&b, b.len()).unwrap();
    assert_eq!(r.capacity(), 256);
    assert!(!r.to_linux);
}

proptest! {
    /// Arbitrary bytes from the RTOS side never panic and never describe a
    /// ring that leaves the region.
    #[test]
    fn arbitrary_headers_are_safe(bytes in proptest::collection::vec(any::<u8>(), 0..600), region in 0usize..70000) {
        if let Ok(r) = Ring::validate(&bytes, region) {
            prop_assert!(r.data_offset + r.ring_bytes <= region);
            prop_assert!(r.ring_bytes % r.params.frame_bytes() == 0);
        }
    }

    #[test]
    fn offsets_stay_in_the_ring(frame in any::<u64>(), ch in 1u16..=2, fmt in 0usize..3) {
        let mut b = vec![0u8; 256 + 8192];
        write_header(&mut b, 8192, 80, Format::ALL[fmt], 8000, ch, true);
        let r = Ring::validate(&b, b.len()).unwrap();
        let o = r.byte_offset(frame);
        prop_assert!(o + r.params.frame_bytes() <= r.ring_bytes);
    }
}
