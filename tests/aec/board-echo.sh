#!/usr/bin/env bash
# The echo check on the emulated arm64 board: the board demo's call
# (tests/demo/board.sh) with rtos-sim's acoustic path on, so the RTOS
# microphone hears the RTOS speaker, 60 ms later and 10 dB down; the far end
# (baresip) sends a speech-like voice (aec-eval --voice-wav) and records
# what the board sends back. tests/aec/echo_report.py measures how much of
# its own voice came back: ERLE must be at least 20 dB (exit 0), else 1;
# 2: it could not run.
#
# usage: tests/aec/board-echo.sh [--echo-cancel VALUE] [--call-seconds N] [--near-tone]
#   --echo-cancel V   the bridge's [audio] echo_cancel (default: unset, i.e.
#                     "auto": on for this RTOS-routed hw:VoIP,0,0); `false`
#                     shows the check failing without a canceller
#   --call-seconds N  audio time of the call (default 20)
#   --near-tone       the microphone also hears a 1 kHz tone at -30 dBFS
#                     peak (double talk for the whole call; ERLE is then
#                     measured outside 1 kHz +- 300 Hz); default: a silent
#                     room, the microphone hears only the echo
# Environment: TEST_AEC_AUDIO: more [audio] lines of the bridge's config
# (e.g. "period_ms = 20" and "buffer_ms = 40" on two lines).
# Output: $OUT (default target/aec-board-echo): the demo's files, echo.png.
# The echo path is a pure delay (--echo-rir delta) so the echo's level is
# known exactly from the speaker's recording; rooms, double talk, steps and
# drift are measured by aec-eval (aec/README.md).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
ec="" call_seconds=20 near=0
while [ $# -gt 0 ]; do
    case "$1" in
        --echo-cancel) ec=$2; shift 2 ;;
        --call-seconds) call_seconds=$2; shift 2 ;;
        --near-tone) near=1; shift ;;
        -h|--help) sed -n '2,22p' "$0"; exit 0 ;;
        *) echo "board-echo: unknown argument $1 (see --help)" >&2; exit 2 ;;
    esac
done
out=${OUT:-$root/target/aec-board-echo}
mkdir -p "$(dirname "$out")"
voice=$(mktemp "${TMPDIR:-/tmp}/snd-voip-voice.XXXXXX.wav")
trap 'rm -f "$voice"' EXIT
(cd "$root" && cargo build -q --release --locked -p aec-eval) || { echo "board-echo: cannot build aec-eval" >&2; exit 2; }
"$root/target/release/aec-eval" --voice-wav "$voice" $((call_seconds + 40)) || exit 2
export DEMO_FAR_WAV=$voice
export DEMO_SIM_ARGS="--echo --echo-rir delta --echo-delay 60 --echo-erl 10 --echo-noise -70"
export DEMO_ECHO_CHECK=0
band=()
if [ "$near" = 1 ]; then
    export DEMO_SIM_SOURCE="--tone 1000 --level -30"
    band=(--band 1000)
else
    export DEMO_SIM_SOURCE="--silent"
fi
audio=${ec:+echo_cancel = $ec}
if [ -n "${TEST_AEC_AUDIO:-}" ]; then audio=${audio:+$audio
}$TEST_AEC_AUDIO; fi
if [ -n "$audio" ]; then export DEMO_BRIDGE_AUDIO=$audio; else unset DEMO_BRIDGE_AUDIO; fi
echo "board-echo: the board demo with the echo path on (echo_cancel = ${ec:-auto}); its own 1 kHz and 440 Hz checks do not apply here"
drc=0
OUT=$out "$root/tests/demo/board.sh" --call-seconds "$call_seconds" || drc=$?
[ -f "$out/far-heard.wav" ] && [ -f "$out/spk.wav" ] && [ -f "$out/sim.json" ] \
    || { echo "board-echo: the call left no recordings (board.sh exit $drc)" >&2; exit 2; }
grep -q "active" "$out/status.txt" 2>/dev/null || echo "board-echo: note: the call was not active at the end (board.sh exit $drc)"
/usr/bin/python3 "$here/echo_report.py" "$out/far-heard.wav" "$out/spk.wav" "$out/sim.json" "$out/echo.png" "${band[@]}"
