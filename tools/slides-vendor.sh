#!/bin/sh
# Install the JavaScript that offline reveal.js slides need (reveal.js 4, require.js, jQuery 3,
# MathJax 2) from the npm registry into build/vendor/node_modules. Idempotent: when every package
# is already there with the right major version it only says so and exits.
set -eu

ROOT=$(cd "$(dirname "$0")/.." && pwd)
PREFIX="$ROOT/build/vendor"
# package name and the major version the slide template is written for
PACKAGES="reveal.js@4 requirejs@2 jquery@3 mathjax@2"

have() {  # have NAME MAJOR: is NAME installed with that major version?
    pkg="$PREFIX/node_modules/$1/package.json"
    [ -f "$pkg" ] || return 1
    version=$(sed -n 's/^ *"version": *"\([0-9][0-9]*\)\..*/\1/p' "$pkg" | head -n 1)
    [ "$version" = "$2" ]
}

missing=""
for spec in $PACKAGES; do
    name=${spec%@*}
    major=${spec##*@}
    have "$name" "$major" || missing="$missing $spec"
done

if [ -z "$missing" ]; then
    echo "slides-vendor: reveal.js, requirejs, jquery, mathjax already in $PREFIX/node_modules"
    exit 0
fi

if ! command -v npm >/dev/null 2>&1; then
    echo "slides-vendor: npm is not installed, so the offline slide JavaScript cannot be fetched." >&2
    echo "  Install Node.js and npm (Debian: apt-get install -y npm), then run: sh tools/slides-vendor.sh" >&2
    echo "  Or copy a build/vendor/node_modules with$missing from a machine that has them." >&2
    exit 3
fi

mkdir -p "$PREFIX"
if [ ! -f "$PREFIX/package.json" ]; then
    printf '{\n  "name": "vmlib-slides-vendor",\n  "private": true\n}\n' > "$PREFIX/package.json"
fi
echo "slides-vendor: npm install$missing into $PREFIX"
# shellcheck disable=SC2086  # word splitting of the package list is intended
npm install --prefix "$PREFIX" --no-audit --no-fund --loglevel=error $PACKAGES
for spec in $PACKAGES; do
    name=${spec%@*}
    if ! have "$name" "${spec##*@}"; then
        echo "slides-vendor: npm finished but $spec is not in $PREFIX/node_modules" >&2
        exit 1
    fi
done
echo "slides-vendor: done"
