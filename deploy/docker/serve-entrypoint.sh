#!/bin/sh
# ghostline-serve's entrypoint in the image: ONNX Runtime is onnxruntime-gpu's library (loaded at
# run time, as run.sh does on a GPU machine) unless ORT_DYLIB_PATH says otherwise; the model is
# GHOSTLINE_MODEL (or --model). exec: ghostline-serve gets tini's SIGTERM and drains.
set -eu
if [ -z "${ORT_DYLIB_PATH:-}" ]; then
  for lib in /opt/ghostline/ort-gpu/onnxruntime/capi/libonnxruntime.so.*; do
    ORT_DYLIB_PATH="$lib"  # the glob sorts: the last is the newest
  done
  [ -e "${ORT_DYLIB_PATH:-}" ] || { echo "no libonnxruntime.so.* in /opt/ghostline/ort-gpu" >&2; exit 1; }
  export ORT_DYLIB_PATH
fi
exec /usr/local/bin/ghostline-serve "$@"
