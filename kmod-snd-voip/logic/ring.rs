// SPDX-License-Identifier: GPL-2.0
//! Ring-buffer arithmetic for the cable: how many frames to copy, discard or
//! fill with silence when both ends have advanced, and how a copy between two
//! ring buffers of different sizes splits into contiguous segments.
//!
//! Pure logic shared by the kernel module and the host tests.

/// What one cable update does, in frames (snd-aloop's `loopback_pos_update` rule).
///
/// Playback frames beyond what the capture end consumed are dropped (no reader
/// keeps up), capture frames beyond what playback produced read silence, and
/// the common part is copied from the playback ring to the capture ring.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Transfer {
    /// Playback frames consumed with no capture end to receive them.
    pub discard: u64,
    /// Capture frames that get silence.
    pub silence: u64,
    /// Frames copied from playback to capture.
    pub copy: u64,
}

/// Plans an update in which the playback end advanced `play` frames and the
/// capture end `capt` frames. `connected` is false when the two ends cannot
/// exchange data (one end idle, or their formats differ).
pub fn plan_transfer(play: u64, capt: u64, connected: bool) -> Transfer {
    if !connected {
        return Transfer {
            discard: play,
            silence: capt,
            copy: 0,
        };
    }
    let copy = play.min(capt);
    Transfer {
        discard: play - copy,
        silence: capt - copy,
        copy,
    }
}

/// One contiguous piece of a ring-to-ring copy, in frames.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct Segment {
    /// Offset in the source ring.
    pub src: usize,
    /// Offset in the destination ring.
    pub dst: usize,
    /// Frames in this piece.
    pub len: usize,
}

/// Iterator over the contiguous pieces of a copy of `count` frames from ring
/// `src` (size `src_size`, starting at `src_pos`) to ring `dst`.
///
/// Positions are taken modulo the sizes, so every segment satisfies
/// `src + len <= src_size` and `dst + len <= dst_size`. A zero-sized ring
/// yields nothing.
#[derive(Clone, Debug)]
pub struct Segments {
    src_pos: usize,
    src_size: usize,
    dst_pos: usize,
    dst_size: usize,
    left: u64,
}

impl Segments {
    /// Plans the copy; see the type's documentation.
    pub fn new(src_pos: u64, src_size: usize, dst_pos: u64, dst_size: usize, count: u64) -> Self {
        let wrap = |pos: u64, size: usize| -> usize {
            match u64::try_from(size).ok().and_then(|s| pos.checked_rem(s)) {
                // The remainder is below `size`, so it fits in usize.
                Some(r) => r as usize,
                None => 0,
            }
        };
        let left = if src_size == 0 || dst_size == 0 {
            0
        } else {
            count
        };
        Segments {
            src_pos: wrap(src_pos, src_size),
            src_size,
            dst_pos: wrap(dst_pos, dst_size),
            dst_size,
            left,
        }
    }
}

impl Iterator for Segments {
    type Item = Segment;

    fn next(&mut self) -> Option<Segment> {
        if self.left == 0 {
            return None;
        }
        let room = (self.src_size - self.src_pos).min(self.dst_size - self.dst_pos);
        let len = usize::try_from(self.left).map_or(room, |l| l.min(room));
        let seg = Segment {
            src: self.src_pos,
            dst: self.dst_pos,
            len,
        };
        self.src_pos += len;
        if self.src_pos == self.src_size {
            self.src_pos = 0;
        }
        self.dst_pos += len;
        if self.dst_pos == self.dst_size {
            self.dst_pos = 0;
        }
        self.left -= len as u64;
        Some(seg)
    }
}

/// Pieces of a single ring written from `pos` for `count` frames (for silence).
pub fn ring_pieces(pos: u64, size: usize, count: u64) -> Segments {
    Segments::new(pos, size, pos, size, count)
}
