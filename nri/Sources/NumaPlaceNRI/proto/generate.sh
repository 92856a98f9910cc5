#!/bin/sh
# Regenerates ../NRIAPI.pb.swift and ../TTRPC.pb.swift from the .proto files here. Needs protoc
# (Debian: protobuf-compiler) and protoc-gen-swift built from the swift-protobuf version Package.swift
# resolves, outside this repository:
#   git clone /opt/swift-packages/apple/swift-protobuf.git /tmp/swift-protobuf
#   (cd /tmp/swift-protobuf && git checkout 1.39.0 && swift build -c release --product protoc-gen-swift)
#   PROTOC_GEN_SWIFT=/tmp/swift-protobuf/.build/release/protoc-gen-swift sh generate.sh
set -eu
here=$(cd "$(dirname "$0")" && pwd)
plugin=${PROTOC_GEN_SWIFT:-protoc-gen-swift}
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
protoc --plugin=protoc-gen-swift="$plugin" --swift_opt=Visibility=Public --swift_out="$out" \
    -I "$here" nri_api.proto ttrpc.proto
# protoc-gen-swift keeps each .proto's leading licence comment; the note below names the source.
for pair in nri_api:NRIAPI ttrpc:TTRPC; do
    src=${pair%%:*}; dst=${pair##*:}
    { echo "// Generated from proto/$src.proto by protoc-gen-swift (swift-protobuf 1.39.0); do not edit."
      echo "// Generated code: exempt from the 400-line rule for Sources/."
      cat "$out/$src.pb.swift"; } > "$here/../$dst.pb.swift"
done
