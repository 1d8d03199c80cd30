#!/bin/bash
# One host's boot, as its firmware and installer make it, from curl (C) and bash builtins only:
# the loader over TFTP, the iPXE script, the kernel and initrd it names, the answer file named on
# the kernel command line, build-done with the token in that URL. Prints the seconds of the six
# phases, as curl timed each transfer, on one line.
# The TFTP block size defaults to what EDK2 and iPXE ask for.
#     rack_host.sh MAC TFTP_PORT HTTP_ADDRESS [TFTP_BLKSIZE]
set -euo pipefail
mac=$1 tftp=$2 http=$3 blksize=${4:-1468}
curl=(curl -sS -f --max-time 120 -o /dev/null)
loader=$("${curl[@]}" --tftp-blksize "$blksize" -w '%{time_total}' \
    "tftp://127.0.0.1:$tftp/undionly.kpxe")
response=$(curl -sS -f --max-time 120 -w '\n@%{time_total}' \
    "http://$http/boot/ipxe?mac=$mac&uuid=&serial=&arch=x86_64")
script_time=${response##*@}
if ! [[ $response =~ $'\n'kernel\ ([^ ]+)\ [^$'\n']*answerfile=([^ $'\n']+) ]]; then
    echo "no install script for $mac: ${response:0:300}" >&2
    exit 1
fi
kernel=${BASH_REMATCH[1]} answer=${BASH_REMATCH[2]}
[[ $response =~ $'\n'initrd\ ([^ $'\n']+) ]] || { echo "no initrd for $mac" >&2; exit 1; }
initrd=${BASH_REMATCH[1]}
[[ $answer =~ token=([^\&]+) ]] || { echo "no token in $answer" >&2; exit 1; }
token=${BASH_REMATCH[1]}
files=$("${curl[@]}" -w '%{time_total} ' "$kernel" -o /dev/null "$initrd" -o /dev/null "$answer")
done_time=$("${curl[@]}" -w '%{time_total}' -X POST -H "Authorization: Bearer $token" \
    -H 'Content-Type: application/json' --data '{}' "http://$http/api/v1/installs/done")
echo "$loader $script_time $files$done_time"
