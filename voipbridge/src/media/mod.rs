//! Media: RTP/RTCP sessions, jitter buffer, loss concealment, DTMF, audio devices.
