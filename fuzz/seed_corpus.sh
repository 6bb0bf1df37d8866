#!/usr/bin/env bash
# Seeds fuzz/corpus/<target>/ with the real client sessions recorded in
# tests/data/fixtures (see its README.md): each session's client-to-server and
# server-to-client bytes as one stream, and each packet alone. The corpus directory is
# git-ignored; libFuzzer adds what it finds to it.
#
# Usage: fuzz/seed_corpus.sh   (from anywhere; needs only bash, sed and printf)
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
fixtures="$here/../tests/data/fixtures"
corpus="$here/corpus"
mkdir -p "$corpus"/{decode_v3,decode_v5,decode_stream,roundtrip}

# Hex on stdin to bytes on stdout.
unhex() { printf "$(sed 's/../\\x&/g')"; }

# decode_stream reads a control prefix first: 3 chunk sizes (1, 7 and 32 bytes), no size
# limit below the protocol's.
stream_prefix='02 00 06 1f'

count=0
for file in "$fixtures"/*.txt; do
    name="$(basename "$file" .txt)"
    case "$name" in
        *-v5-*) family=decode_v5 ;;
        *) family=decode_v3 ;;
    esac
    for dir in c2s s2c; do
        hex="$(grep "^$dir " "$file" | cut -d' ' -f2 | tr -d '\n')" || true
        [ -n "$hex" ] || continue
        for target in "$family" roundtrip; do
            unhex <<<"$hex" >"$corpus/$target/$name-$dir"
        done
        unhex <<<"${stream_prefix// /}$hex" >"$corpus/decode_stream/$name-$dir"
        i=0
        while read -r packet; do
            i=$((i + 1))
            unhex <<<"$packet" >"$corpus/roundtrip/$name-$dir-$i"
        done < <(grep "^$dir " "$file" | cut -d' ' -f2)
        count=$((count + 1))
    done
done
echo "seeded $count sessions from $fixtures into $corpus"
