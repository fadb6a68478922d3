#!/usr/bin/env bash
# The package as a user gets it: build the wheel, install it in a fresh venv outside the clone, and run
# the commands from an empty folder (no checkout, no configs/ beside it). Called by .ci/run.
set -euo pipefail
cd "$(dirname "$0")/.."
REPO=$(pwd)
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
.venv/bin/pip wheel -q --no-deps -w "$WORK/dist" . 2>&1 | grep -v "^WARNING: Location" || true
python3 -m venv "$WORK/venv"
"$WORK/venv/bin/pip" install -q -c "$REPO/.ci/constraints.txt" "$WORK"/dist/siamrn_jax-*.whl 2>&1 \
  | grep -v "^WARNING: Location" || true
mkdir "$WORK/empty" && cd "$WORK/empty"
B="$WORK/venv/bin"
echo "== siamrn-track (no arguments: the demo)"
"$B/siamrn-track" | tee track.out
grep -q "success AUC" track.out
echo "== siamrn-train --config smoke"
"$B/siamrn-train" --config smoke --workdir W --config.train.epochs=1 --config.train.steps_per_epoch=2 \
  --noprogress | tee train.out
grep -q "^step 2: loss" train.out
echo "== python API"
"$B/python" -c "import siamrn_jax as s; print(s.__version__, s.load('demo'))"
for c in siamrn-eval siamrn-convert siamrn-bench siamrn-tune; do
  "$B/$c" --help > /dev/null && echo "$c --help: ok"
done
"$B/python" -m siamrn_jax.track --help > /dev/null && echo "python -m siamrn_jax.track --help: ok"
echo "wheel check: ok"
