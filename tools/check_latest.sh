#!/usr/bin/env bash
# Install the NEWEST dependency versions pyproject.toml allows (no constraints file) into a
# throwaway venv and run the CLI smoke tests there, so that the next upstream release that
# breaks the CLI (as typer 0.29 dropping click did) is caught before a user meets it.
#   tools/check_latest.sh            # check; exit status is pytest's
#   tools/check_latest.sh --freeze   # ... and on success rewrite constraints.txt from that venv
set -euo pipefail
cd "$(dirname "$0")/.."
venv="$(mktemp -d)/venv"
trap 'rm -rf "$(dirname "$venv")"' EXIT
python3 -m venv "$venv"
"$venv/bin/pip" install -q --upgrade pip
"$venv/bin/pip" install -q -e ".[dev]"
"$venv/bin/pip" freeze | grep -v -e '^-e ' -e '^parsefl' > "$(dirname "$venv")/freeze.txt"
echo "newest allowed versions:"; grep -iE '^(typer|click|rich|pydantic|numpy|torch)==' \
    "$(dirname "$venv")/freeze.txt" || true
"$venv/bin/python" -m pytest -q -x -p no:cacheprovider tests/test_cli_usage.py tests/test_readme.py \
    tests/test_cli.py tests/test_fuzz.py
if [[ "${1:-}" == "--freeze" ]]; then
    { sed -n '1,3p' constraints.txt
      sed 's/^\(torch==[0-9.]*\)+.*$/\1/' "$(dirname "$venv")/freeze.txt"; } > constraints.txt.new
    mv constraints.txt.new constraints.txt
    echo "constraints.txt rewritten"
fi
