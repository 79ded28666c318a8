#!/usr/bin/env bash
# The man pages into DIR: lockmgr(8) and pr-tool(8) from the programs' own
# argument parsers (swift-argument-parser's generate-manual plugin: the
# same text as --help), the config files' pages from docs/man/*.5.
set -euo pipefail
cd "$(dirname "$0")/../.."
out=$1
version=$(sed -n 's/^ *public static let string = "\(.*\)"$/\1/p' Sources/LockDriver/Tool/Version.swift)
date=$(git log -1 --format=%cs 2>/dev/null || date -u +%F)
swift package plugin generate-manual --section 8 --date "$date" >/dev/null
mkdir -p "$out"
for tool in lockmgr pr-tool; do
    # A blank line in mdoc is a groff warning; .Pp is the paragraph break meant.
    sed 's/^$/.Pp/' ".build/plugins/GenerateManual/outputs/$tool/$tool.8" > "$out/$tool.8"
done
for page in docs/man/*.5; do
    sed "s/@VERSION@/$version/" "$page" > "$out/$(basename "$page")"
done
echo "man pages in $out: $(cd "$out" && echo *)"
