#!/usr/bin/env bash
# Build the onedir bundle from the project's own environment (.venv, or $PY), then run the frozen
# self-test. See packaging/README.md.
#
#   packaging/build.sh                  CUDA build    -> dist/segstudio/
#   packaging/build.sh --cpu-only       lighter build -> dist/cpu/segstudio/ (no GPU libraries beyond
#                                       what `import torch` needs; the GPU is never used)
#   options: --skip-self-test, --archive (also write dist/segstudio-<version>-<os>-<arch>[-cpu].tar.gz)
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
SELF_TEST=1
ARCHIVE=0
DIST=dist
WORK=build/pyinstaller
SUFFIX=""
unset SEGSTUDIO_CPU_ONLY
for arg in "$@"; do
  case "$arg" in
    --cpu-only) export SEGSTUDIO_CPU_ONLY=1; DIST=dist/cpu; WORK=build/pyinstaller-cpu; SUFFIX=-cpu ;;
    --skip-self-test) SELF_TEST=0 ;;
    --archive) ARCHIVE=1 ;;
    *) echo "unknown option: $arg" >&2; exit 2 ;;
  esac
done
"$PY" -c "import PyInstaller" 2>/dev/null || "$PY" -m pip install --quiet 'pyinstaller>=6.5'
start=$(date +%s)
"$PY" -m PyInstaller --noconfirm --clean --log-level WARN --distpath "$DIST" --workpath "$WORK" \
  packaging/segstudio.spec
end=$(date +%s)
BUNDLE="$DIST/segstudio"
echo "build time: $((end - start)) s"
echo "bundle: $BUNDLE, $(du -sh "$BUNDLE" | cut -f1) ($(du -s --block-size=1M "$BUNDLE" | cut -f1) MiB)"
if [ -d "$BUNDLE/_internal/nvidia" ]; then
  echo "  of which CUDA libraries (_internal/nvidia): $(du -sh "$BUNDLE/_internal/nvidia" | cut -f1)"
fi
if [ "$SELF_TEST" = 1 ]; then
  # The bundle must prove itself without the build's environment variables.
  env -u SEGSTUDIO_CPU_ONLY QT_QPA_PLATFORM=offscreen "$BUNDLE/segstudio" --self-test
fi
if [ "$ARCHIVE" = 1 ]; then
  version=$("$PY" -c "import segstudio; print(segstudio.__version__)")
  name="segstudio-$version-$(uname -s | tr '[:upper:]' '[:lower:]')-$(uname -m)$SUFFIX.tar.gz"
  tar -C "$DIST" -czf "dist/$name" segstudio
  echo "archive: dist/$name, $(du -sh "dist/$name" | cut -f1)"
fi
