#!/usr/bin/env bash
# Installs the Debian packages vdist needs, only those that are missing. Idempotent.
set -euo pipefail

packages=(
    build-essential cmake pkg-config clang-format
    libgtest-dev libgmock-dev googletest libbenchmark-dev
    libboost-dev libcli11-dev nlohmann-json3-dev libfmt-dev
    libxen-dev zlib1g-dev libssl-dev erlang-nox erlang-dev
    qemu-system-x86 busybox-static cpio
)

missing=()
for package in "${packages[@]}"; do
    if ! dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed"; then
        missing+=("$package")
    fi
done

if [ ${#missing[@]} -eq 0 ]; then
    echo "setup: all packages present"
    exit 0
fi

echo "setup: installing ${missing[*]}"
sudo_cmd=()
if [ "$(id -u)" -ne 0 ]; then sudo_cmd=(sudo); fi
export DEBIAN_FRONTEND=noninteractive
"${sudo_cmd[@]}" apt-get update -q
"${sudo_cmd[@]}" apt-get install -y -q --no-install-recommends "${missing[@]}"
