# Guest half of tests/bench/latency.sh (production kernel): voipbridge on the
# card calls a SIPp UAS that echoes RTP back (-rtp_echo); pcmcheck plays
# chirps into plughw:VoIP,0,0 and records plughw:VoIP,0,0 (linked streams) and
# prints the round trip; voipbridge's status names the device and jitter
# buffer delays it holds. tests/bench/rtpwire.py records the RTP packets on
# the loopback interface meanwhile and splits the round trip at the wire
# (out: hw:VoIP,0 -> wire, in: wire -> hw:VoIP,0). $1: voipbridge's
# RUST_LOG (default info); $2: 1 to measure baresip on snd-aloop after it
# (default 1); $3: the call's seconds (default 15). With $GUEST_OUT, its log
# and the packets are kept. (The guest gets no host environment: the
# host's BENCH_LATENCY_* come as arguments.)
VB=$SND_VOIP_BIN/voipbridge PC=$SND_VOIP_BIN/pcmcheck
LOG=${1:-info}
BARESIP=${2:-1}
S=${3:-15}
modprobe snd-voip || exit 1
/usr/bin/python3 $SND_VOIP_ROOT/tests/bench/rtpwire.py capture --out wire.jsonl --seconds $((S + 60)) 2>rtpwire.err &
wp=$!
sipp -sn uas -i 127.0.0.1 -p 5490 -mp 41600 -rtp_echo -m 1 -nostdin -fd 1 -timeout $((S + 60)) >sipp.out 2>&1 &
sp=$!
cat >vb.toml <<CFG
[account]
uri = "sip:bridge@127.0.0.1:5491"
[sip]
listen = "127.0.0.1:5491"
[media]
rtp_ports = "41610-41620"
[control]
socket = "$PWD/vb.sock"
CFG
RUST_LOG=$LOG $VB run --config vb.toml 2>vb.log &
vp=$!
i=0; while [ ! -S vb.sock ] && [ $i -lt 100 ]; do sleep 0.1; i=$((i + 1)); done
i=0; while ! ss -Hlun "sport = :5490" | grep -q . && [ $i -lt 100 ]; do sleep 0.1; i=$((i + 1)); done
$VB call sip:echo@127.0.0.1:5490 --config vb.toml
i=0; while ! $VB status --config vb.toml | grep -q '\[active\]' && [ $i -lt 100 ]; do sleep 0.1; i=$((i + 1)); done
sleep 3
$VB status --config vb.toml | grep -E "\[active\]|rtp:|latency:|latency \(1 s mean\):" | sed 's/^/latency-status: /'
# plughw: the bridge opened its end in its call's law (MU_LAW for PCMU),
# and a cable's two ends share one format; the plug layer converts.
if $PC roundtrip plughw:VoIP,0,0 plughw:VoIP,0,0 "$S" >rt.txt 2>&1; then rc=0; else rc=1; fi
sed 's/^/latency-pc: /' rt.txt
$VB status --config vb.toml | grep -E "rtp:|latency:|latency \(1 s mean\):" | sed 's/^/latency-status-after: /'
$VB hangup --config vb.toml
sleep 1
kill $vp $sp $wp 2>/dev/null
wait $wp 2>/dev/null
sed 's/^/latency-wire: /' rtpwire.err
if /usr/bin/python3 $SND_VOIP_ROOT/tests/bench/rtpwire.py legs --wire wire.jsonl --pcmcheck rt.txt --bridge-ports 41610-41620 >legs.txt 2>&1; then :; else rc=1; fi
sed 's/^/latency-/' legs.txt
[ -d "$GUEST_OUT" ] && cp vb.log wire.jsonl rt.txt legs.txt "$GUEST_OUT/" 2>/dev/null
grep -a "period\|buffer\|priority\|SCHED" vb.log | head -n 5 | sed 's/^/latency-log: /'

# The same round trip with the pair a user would otherwise pick, in the same
# boot: baresip (Debian's, its default jitter buffer and audio buffers) on
# snd-aloop, answering a SIPp UAC that echoes its RTP; pcmcheck on the
# cable's other end (plughw:Loopback,0,0), rtpwire on its RTP ports.
if [ "$BARESIP" = 1 ] && command -v baresip >/dev/null && modprobe snd-aloop 2>/dev/null; then
    mkdir -p bs
    cat >bs/config <<CFG
sip_listen		127.0.0.1:5492
net_interface		127.0.0.1
rtp_ports		41630-41640
audio_player		alsa,plughw:Loopback,1,0
audio_source		alsa,plughw:Loopback,1,0
audio_srate		8000
audio_channels		1
module_path		/usr/lib/baresip/modules
module			g711.so
module			alsa.so
module			account.so
CFG
    echo "<sip:bs@127.0.0.1:5492>;regint=0;answermode=auto;audio_codecs=PCMU" >bs/accounts
    baresip -f "$PWD/bs" </dev/null >bs.log 2>&1 &
    bp=$!
    i=0; while ! ss -Hlun "sport = :5492" | grep -q . && [ $i -lt 100 ]; do sleep 0.1; i=$((i + 1)); done
    /usr/bin/python3 $SND_VOIP_ROOT/tests/bench/rtpwire.py capture --out wire-bs.jsonl --seconds $((S + 60)) 2>rtpwire-bs.err &
    wp=$!
    sipp -sn uac 127.0.0.1:5492 -s bs -i 127.0.0.1 -p 5490 -mp 41600 -rtp_echo -m 1 -d $(((S + 8) * 1000)) \
        -timeout $((S + 60)) -nostdin -fd 1 >sipp-bs.out 2>&1 &
    sp=$!
    i=0; while ! grep -q RUNNING /proc/asound/Loopback/pcm1p/sub0/status 2>/dev/null && [ $i -lt 200 ]; do sleep 0.1; i=$((i + 1)); done
    sleep 3
    if $PC roundtrip plughw:Loopback,0,0 plughw:Loopback,0,0 "$S" >rt-bs.txt 2>&1; then :; else rc=1; fi
    sed 's/^/latency-baresip-pc: /' rt-bs.txt
    kill $sp $bp $wp 2>/dev/null
    wait $wp 2>/dev/null
    if /usr/bin/python3 $SND_VOIP_ROOT/tests/bench/rtpwire.py legs --wire wire-bs.jsonl --pcmcheck rt-bs.txt --bridge-ports 41630-41640 \
            --no-targets >legs-bs.txt 2>&1; then :; else rc=1; fi
    sed 's/^/latency-baresip-/' legs-bs.txt
    grep -a "alsa\|jitter\|jbuf" bs.log | head -n 5 | sed 's/^/latency-baresip-log: /'
    [ -d "$GUEST_OUT" ] && cp bs.log wire-bs.jsonl rt-bs.txt legs-bs.txt "$GUEST_OUT/" 2>/dev/null
fi
exit $rc
