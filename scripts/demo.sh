#!/usr/bin/env bash
# The main job on the embedded defaults: create a key, generate watermarked and plain text with the
# embedded model, and detect both.
set -euo pipefail
cd "$(dirname "$0")/.."
mkdir -p .tmp
cli=(node apps/cli/dist/bin.js)
[ -f .tmp/demo-key.json ] || "${cli[@]}" keygen --out .tmp/demo-key.json
prompt="The committee said on Tuesday that"
"${cli[@]}" generate --key .tmp/demo-key.json --prompt "$prompt" --max-tokens 200 --seed 1 > .tmp/demo-marked.txt
"${cli[@]}" generate --key .tmp/demo-key.json --prompt "$prompt" --max-tokens 200 --seed 1 --no-watermark > .tmp/demo-plain.txt
echo "--- watermarked generation:"
cat .tmp/demo-marked.txt
echo "--- detection:"
"${cli[@]}" detect --key .tmp/demo-key.json .tmp/demo-marked.txt .tmp/demo-plain.txt
