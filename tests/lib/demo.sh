# Pieces shared by the two demos' guest scripts (POSIX sh, sourced):
# tests/demo/guest.sh (x86_64) and tests/demo/guest-board.sh (arm64).

# demo_bridge_config FILE DEVICE SOCKET [AUDIO_EXTRA]: the board phone's
# voipbridge config: sip:board@127.0.0.1 registered with the demo's kamailio
# (127.0.0.1:5060, digest password "boardpass"), SIP on 127.0.0.1:5070,
# PCMU, capture and playback on the ALSA device DEVICE, control socket
# SOCKET; the lines of the file AUDIO_EXTRA, when it exists, go into
# [audio] (tests/aec/board-echo.sh: echo_cancel).
demo_bridge_config() {
    cat >"$1" <<CFG
[account]
uri = "sip:board@127.0.0.1"
registrar = "127.0.0.1:5060"
password = "boardpass"
[sip]
listen = "127.0.0.1:5070"
[media]
codecs = ["PCMU"]
[audio]
capture = "alsa:$2"
playback = "alsa:$2"
$(if [ -n "${4:-}" ] && [ -f "$4" ]; then cat "$4"; fi)
[control]
socket = "$3"
CFG
}

# demo_registrar DIR: start the demo's registrar in the background: kamailio
# on 127.0.0.1:5060 (tests/lib/kamailio-registrar.cfg) with digest accounts
# board/boardpass and far/farpass in a db_text database under DIR/db; its
# log goes to DIR/kamailio.log and its pid to KMP.
demo_registrar() {
    mkdir -p "$1/db" "$1/krun"
    printf 'table_name(string) table_version(int)\nsubscriber:7\n' >"$1/db/version"
    printf 'id(int,auto) username(string) domain(string) password(string) ha1(string,null) ha1b(string,null)\n1:board:127.0.0.1:boardpass:::\n2:far:127.0.0.1:farpass:::\n' >"$1/db/subscriber"
    sed "s|@PORT@|5060|; s|@DB@|$1/db|" "$SND_VOIP_ROOT/tests/lib/kamailio-registrar.cfg" >"$1/kamailio.cfg"
    kamailio -f "$1/kamailio.cfg" -DD -E -P "$1/krun/k.pid" -Y "$1/krun" -w "$1" >"$1/kamailio.log" 2>&1 &
    KMP=$!
}

# demo_latency STATUS_TXT PTIME_MS: judge the two legs the bridge reports in
# `voipbridge status` (its "latency:" line) against issue 16's targets,
# with the playback fill target the bridge chose in place of the period
# (under TCG the engine's wake-up gaps make it raise that target above
# [audio] buffer_ms, and say so in status; on an on-time engine the two
# are the same): out = capture device delay + a packet <= period + ptime
# + 5 ms; in = jitter buffer + playback device delay <= jitter target +
# fill target + 5 ms. Prints one line; returns 1 when a leg is over or the
# line is missing.
demo_latency() {
    awk -v ptime="$2" '
    /latency:/ {
        found = 1
        for (i = 1; i <= NF; i++) {
            if ($i == "capture" && $(i+1) == "device") { cap = $(i+2); per = $(i+5) + 0 }
            if ($i == "jitter" && $(i+1) == "buffer") { jb = $(i+2); jbt = $(i+5) + 0 }
            if ($i == "playback" && $(i+1) == "device") { pd = $(i+2); pdt = $(i+5) + 0 }
        }
    }
    END {
        if (!found || cap == "" || jb == "" || pd == "") { print "latency:       no latency line in status  [FAIL]"; exit 1 }
        out = cap + ptime; outmax = per + ptime + 5
        inl = jb + pd; inmax = jbt + pdt + 5
        ok = (out <= outmax && inl <= inmax)
        printf "latency:       out %.1f ms (capture device %.1f + packet %d) [target <= period %.0f + %d + 5 = %.0f]; in %.1f ms (jitter buffer %.0f + playback device %.1f) [target <= jitter target %.0f + fill target %.0f + 5 = %.0f; issue 16 with fill = period: %.0f]  [%s]\n", out, cap, ptime, per, ptime, outmax, inl, jb, pd, jbt, pdt, inmax, jbt + per + 5, ok ? "PASS" : "FAIL"
        exit !ok
    }' "$1"
}
