#!/bin/sh
# The quick start, in any POSIX shell: builds the programs, starts tlds1,
# tlds2 (each with a DNS port) and as_server on free loopback ports with the
# samples in data/, waits until each says it is serving, prints a dig
# command that asks tlds1's DNS port (and runs it, if dig is installed),
# runs the client (passing it any arguments given here), stops every server
# on every way out, and exits with the client's status.
#
#   ./demo.sh                      resolve data/hns.txt into RESOLVED.txt
#   ./demo.sh --window 1 -vv       the same, one query at a time, traced
#   ./demo.sh --key k1234 Amazon.org
#
# AUTHDNS_BIN=DIR uses the programs in DIR instead of building them.
set -u

root=$(cd "$(dirname "$0")" && pwd)
if [ -n "${AUTHDNS_BIN:-}" ]; then
    bin=$AUTHDNS_BIN
else
    (cd "$root" && cargo build --release --quiet) || exit 1
    bin=$root/target/release
fi

logs=$(mktemp -d)
pids=
stop_all() {
    for pid in $pids; do
        kill "$pid" 2>/dev/null
    done
    # The servers answer what they have read, then exit; wait for them so
    # no port is still held when this script ends.
    wait 2>/dev/null
    rm -rf "$logs"
}
trap stop_all EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# start NAME ARGS...: runs bin/NAME and waits for its first log line, which
# names the addresses it serves on.
start() {
    name=$1
    shift
    "$bin/$name" "$@" 2>"$logs/$name.log" &
    pid=$!
    pids="$pids $pid"
    tries=0
    until [ -s "$logs/$name.log" ]; do
        if ! kill -0 "$pid" 2>/dev/null || [ "$tries" -ge 600 ]; then
            echo "demo: $name did not start:" >&2
            cat "$logs/$name.log" >&2
            exit 1
        fi
        tries=$((tries + 1))
        sleep 0.05
    done
    head -n 1 "$logs/$name.log" >&2
}

# port NAME N: the port of the Nth address in NAME's first log line.
port() {
    head -n 1 "$logs/$1.log" | grep -o '127\.0\.0\.1:[0-9]*' | sed -n "$2p" | cut -d: -f2
}

for n in 1 2; do
    start "tlds$n" --bind 127.0.0.1 --as-port 0 --client-port 0 --dns-port 0 \
        --table "$root/data/tlds$n.tsv" --key-file "$root/data/key$n.txt"
done
start as_server --bind 127.0.0.1 --port 0 \
    --tlds1-host 127.0.0.1 --tlds1-as-port "$(port tlds1 1)" --tlds1-client-port "$(port tlds1 2)" \
    --tlds2-host 127.0.0.1 --tlds2-as-port "$(port tlds2 1)" --tlds2-client-port "$(port tlds2 2)"

# The TSIG secret is the key file's key (its first line that is neither
# blank nor a comment), which dig takes in base64.
key1=$(grep -v -e '^[[:space:]]*#' -e '^[[:space:]]*$' "$root/data/key1.txt" | head -n 1 | tr -d ' \t\r')
dig_command="dig -y hmac-md5:tlds1:$(printf %s "$key1" | base64) @127.0.0.1 -p $(port tlds1 3) Amazon.org"
echo "demo: ask tlds1 over DNS with: $dig_command" >&2
if command -v dig >/dev/null 2>&1; then
    $dig_command +noall +answer >&2
fi

# The samples' queries, unless the arguments name queries of their own.
case " $* " in
    *" --input"* | *" --key"*) ;;
    *) set -- --input "$root/data/hns.txt" "$@" ;;
esac

# In the background, so that a signal to this script is handled at once
# rather than after the client ends.
"$bin/client" --as-host 127.0.0.1 --as-port "$(port as_server 1)" "$@" &
client=$!
pids="$pids $client"
wait "$client"
exit $?
