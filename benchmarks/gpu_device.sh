#!/usr/bin/env bash
# benchmarks/gpu.py on an offline GPU machine: run from the repository root with $OUT set.
#
# The machine has torch (CUDA), numpy, networkx, scikit-learn, PyYAML, ... but not pydantic and
# friends, and no network. Their wheels travel in .whl/ (not committed; fill it with
#   python3 -m pip download --no-deps --only-binary=:all: --python-version 3.12 \
#     --implementation cp --platform manylinux_2_17_x86_64 -d .whl pydantic_core==2.46.4
# and, for the pure-Python ones, --implementation py --platform any: pydantic==2.13.4
# annotated-types==0.7.0 typing-inspection==0.4.2 platformdirs==4.14.8
# typing_extensions==4.15.0), installed here into /tmp/site, never into the system.
set -uo pipefail
OUT=${OUT:-/tmp/gpu-out}
WHEELS=${WHEELS:-.whl}
mkdir -p "$OUT"
SITE=/tmp/site

main() {
if ls "$WHEELS"/*.whl >/dev/null 2>&1; then
    python3 -m pip install -q --no-index --no-deps --no-compile --target "$SITE" "$WHEELS"/*.whl \
        || python3 - "$WHEELS" "$SITE" <<'EOF'
import glob, sys, zipfile  # no pip: a wheel is a zip of the site-packages tree
for wheel in glob.glob(f"{sys.argv[1]}/*.whl"):
    zipfile.ZipFile(wheel).extractall(sys.argv[2])
EOF
else
    echo "no wheels in $WHEELS: relying on the machine's own packages"
fi
export PYTHONPATH="$SITE:$PWD/src${PYTHONPATH:+:$PYTHONPATH}"
export PYTHONUNBUFFERED=1

date -u; uptime; nvidia-smi || true
python3 - <<'EOF'
import torch, numpy, pydantic, networkx, sklearn
print("python", __import__("sys").version.split()[0], "torch", torch.__version__,
      "cuda", torch.version.cuda, "available", torch.cuda.is_available(),
      "numpy", numpy.__version__, "pydantic", pydantic.VERSION)
import parsefl.experiments.run.build  # fails here, not mid-benchmark, if a dependency is missing
print("parsefl imports from", parsefl.__file__)
EOF
[ $? -eq 0 ] || { echo "import check failed"; return 3; }

python3 benchmarks/gpu.py --device cuda --json "$OUT/gpu.json" "$@"
local rc=$?
date -u
return $rc
}

main "$@" 2>&1 | tee "$OUT/gpu.log"  # tee finishes before the script exits
exit "${PIPESTATUS[0]}"
