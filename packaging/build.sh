#!/usr/bin/env bash
# Build dist/segstudio/ (onedir) from the project's own environment (.venv), then run the frozen
# self-test. Usage: packaging/build.sh [--cpu-only] [--skip-self-test]
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
SELF_TEST=1
for arg in "$@"; do
  case "$arg" in
    --cpu-only) export SEGSTUDIO_CPU_ONLY=1 ;;
    --skip-self-test) SELF_TEST=0 ;;
    *) echo "unknown option: $arg" >&2; exit 2 ;;
  esac
done
"$PY" -m pip install --quiet 'pyinstaller>=6.5'
start=$(date +%s)
"$PY" -m PyInstaller --noconfirm --clean --distpath dist --workpath build/pyinstaller packaging/segstudio.spec
end=$(date +%s)
echo "build time: $((end - start)) s"
echo "bundle size: $(du -sh dist/segstudio | cut -f1)"
if [ "$SELF_TEST" = 1 ]; then
  QT_QPA_PLATFORM=offscreen dist/segstudio/segstudio --self-test
fi
