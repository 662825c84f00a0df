#!/usr/bin/env bash
# Install Claude Code (the npm package @anthropic-ai/claude-code, pinned) under .tools/claude-code, for the
# test that runs it against the gateway. Its postinstall step (which only copies the native binary over a
# placeholder) is not needed: the test runs the platform package's binary directly.
set -euo pipefail
cd "$(dirname "$0")/.."
VERSION=2.1.332
DEST=.tools/claude-code
if [ -f "$DEST/.version" ] && [ "$(cat "$DEST/.version")" = "$VERSION" ]; then
  exit 0
fi
command -v npm >/dev/null || { echo "npm is required to install Claude Code for the tests" >&2; exit 1; }
rm -rf "$DEST"
mkdir -p "$DEST"
echo "installing @anthropic-ai/claude-code@$VERSION (npm) into $DEST"
(cd "$DEST" && npm install --no-audit --no-fund --ignore-scripts --loglevel=error \
  "@anthropic-ai/claude-code@$VERSION" >/dev/null)
echo "$VERSION" > "$DEST/.version"
