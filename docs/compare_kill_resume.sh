#!/usr/bin/env bash
# Kill a running comparison with SIGKILL, resume it, and check it matches an uninterrupted run.
# Usage: bash docs/compare_kill_resume.sh FOLDER  (FOLDER holds ph/, made by
#   covid-tutorial phantoms --out FOLDER/ph --patients 60 --size 128 --seed 1)
set -u

cd "${1:-.}" && rm -rf cmp-whole cmp-kill
ARGS="ph --models vgg16 efficientnetb0 --folds 2 --repeats 2 --profile ci --epochs 2 --eager"
time covid-tutorial compare run $ARGS --out cmp-whole > cmp-whole.log 2>&1
covid-tutorial compare run $ARGS --out cmp-kill > cmp-kill1.log 2>&1 &
pid=$!
while [ "$(cat cmp-kill/results*.csv 2>/dev/null | wc -l)" -lt 3 ]; do sleep 1; done
kill -9 $pid; wait $pid; echo "killed with SIGKILL after $(($(cat cmp-kill/results*.csv | wc -l)-1)) finished runs"
covid-tutorial compare run $ARGS --out cmp-kill > cmp-kill2.log 2>&1
tail -5 cmp-kill2.log
python - <<'PY'
import pandas as pd
from covid_tutorial import compare
a = compare.read_results("cmp-whole"); b = compare.read_results("cmp-kill")
keys = ["model", "repeat", "fold"]
metrics = [c for c in a.columns if "|" in c]
a = a.sort_values(keys).reset_index(drop=True); b = b.sort_values(keys).reset_index(drop=True)
print(len(a), "runs uninterrupted,", len(b), "after kill + resume")
print("largest difference in any metric:", float((a[metrics] - b[metrics]).abs().max().max()))
PY
ls cmp-kill
