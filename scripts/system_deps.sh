#!/usr/bin/env bash
# Install the Debian packages the test suite uses, when missing: chromium + chromium-driver
# (browser tests) and postgresql (store tests on a real server). Needs root for apt-get; without
# it, say what is missing and go on (those tests then skip and say why).
set -euo pipefail

missing=()
command -v chromium >/dev/null 2>&1 || missing+=(chromium chromium-driver)
if ! ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 && ! command -v initdb >/dev/null 2>&1; then
    missing+=(postgresql)
fi
[[ ${#missing[@]} -eq 0 ]] && exit 0

if [[ "$(id -u)" != "0" ]]; then
    echo "system_deps: not root, not installing: ${missing[*]} (the tests needing them will skip)" >&2
    exit 0
fi
echo "system_deps: apt-get install ${missing[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq "${missing[@]}" >/dev/null
