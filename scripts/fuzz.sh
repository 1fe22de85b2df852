#!/usr/bin/env bash
# Fuzz the ETF decoder, then what a connected peer sends (handshakes and packet streams), with
# libFuzzer under AddressSanitizer + UndefinedBehaviorSanitizer.
#
#   scripts/fuzz.sh [seconds]        (default: FUZZ_SECONDS or 600, for each target)
#
# Installs clang-16 and its libFuzzer runtime if missing, builds dist/ and the fuzz target in
# build-fuzz/ (clang-16 against libstdc++ 12: libstdc++ gates std::expected on __cpp_concepts
# 202002, which clang 16 supports but does not announce, hence the -D), then runs with the
# golden vectors (tests/dist/golden, including the rejected inputs) as the seed corpus and
# build-fuzz/corpus as the working corpus. Crashes are written to build-fuzz/artifacts/.
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=${1:-${FUZZ_SECONDS:-600}}

if ! command -v clang++-16 >/dev/null || [ ! -d /usr/lib/llvm-16/lib/clang ] ||
    ! find /usr/lib/llvm-16/lib/clang -name 'libclang_rt.fuzzer*' | grep -q .; then
    sudo_cmd=()
    if [ "$(id -u)" -ne 0 ]; then sudo_cmd=(sudo); fi
    export DEBIAN_FRONTEND=noninteractive
    "${sudo_cmd[@]}" apt-get update -q
    "${sudo_cmd[@]}" apt-get install -y -q --no-install-recommends clang-16 libclang-rt-16-dev
fi

flags="-Wno-macro-redefined -D__cpp_concepts=202002L -fsanitize=fuzzer-no-link,address,undefined -fno-sanitize-recover=undefined -fno-omit-frame-pointer -g -O1"
cmake -S . -B build-fuzz -DCMAKE_BUILD_TYPE=RelWithDebInfo -DCMAKE_CXX_COMPILER=clang++-16 \
    -DCMAKE_C_COMPILER=clang-16 -DCMAKE_CXX_FLAGS="$flags" \
    -DCMAKE_EXE_LINKER_FLAGS="-fsanitize=address,undefined" -DVDIST_FUZZ=ON >/dev/null
cmake --build build-fuzz -j2 --target etf_decode_fuzz dist_stream_fuzz

mkdir -p build-fuzz/corpus build-fuzz/artifacts
echo "fuzzing the ETF decoder for $seconds s"
build-fuzz/bin/etf_decode_fuzz build-fuzz/corpus tests/dist/golden tests/dist/golden/rejected \
    -max_total_time="$seconds" -max_len=65536 -timeout=10 -rss_limit_mb=2048 \
    -artifact_prefix=build-fuzz/artifacts/ -print_final_stats=1

mkdir -p build-fuzz/corpus-stream
echo "fuzzing handshakes and packet streams for $seconds s"
build-fuzz/bin/dist_stream_fuzz build-fuzz/corpus-stream \
    -max_total_time="$seconds" -max_len=65536 -timeout=10 -rss_limit_mb=2048 \
    -artifact_prefix=build-fuzz/artifacts/ -print_final_stats=1
