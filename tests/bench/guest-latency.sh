# Guest half of tests/bench/latency.sh (production kernel): voipbridge on the
# card calls a SIPp UAS that echoes RTP back (-rtp_echo); pcmcheck plays
# chirps into plughw:VoIP,0,0 and records plughw:VoIP,0,0 (linked streams) and
# prints the round trip; voipbridge's status names the device and jitter
# buffer delays it holds.
VB=$SND_VOIP_BIN/voipbridge PC=$SND_VOIP_BIN/pcmcheck
S=${BENCH_LATENCY_SECONDS:-15}
modprobe snd-voip || exit 1
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
RUST_LOG=info $VB run --config vb.toml 2>vb.log &
vp=$!
i=0; while [ ! -S vb.sock ] && [ $i -lt 100 ]; do sleep 0.1; i=$((i + 1)); done
i=0; while ! ss -Hlun "sport = :5490" | grep -q . && [ $i -lt 100 ]; do sleep 0.1; i=$((i + 1)); done
$VB call sip:echo@127.0.0.1:5490 --config vb.toml
i=0; while ! $VB status --config vb.toml | grep -q '\[active\]' && [ $i -lt 100 ]; do sleep 0.1; i=$((i + 1)); done
sleep 3
$VB status --config vb.toml | grep -E "\[active\]|rtp:|latency:" | sed 's/^/latency-status: /'
# plughw: the bridge opened its end in its call's law (MU_LAW for PCMU),
# and a cable's two ends share one format; the plug layer converts.
if $PC roundtrip plughw:VoIP,0,0 plughw:VoIP,0,0 "$S" >rt.txt 2>&1; then rc=0; else rc=1; fi
sed 's/^/latency-pc: /' rt.txt
$VB status --config vb.toml | grep -E "rtp:|latency:" | sed 's/^/latency-status-after: /'
$VB hangup --config vb.toml
sleep 1
kill $vp $sp 2>/dev/null
grep -a "period\|buffer\|priority\|SCHED" vb.log | head -n 5 | sed 's/^/latency-log: /'
exit $rc
