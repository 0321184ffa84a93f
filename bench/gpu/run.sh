#!/usr/bin/env bash
# The GPU run of issue 11, on the GPU machine (see bench/gpu/README.md): unpack the kit that
# bench/gpu/kit.sh made, install the CUDA provider, convert the XL configuration with random weights
# to fp32, fp16 and fp16 with fused attention, and measure (bench/gpu.ts). Every figure lands in $OUT as soon as it exists.
#
#   OUT=... bash bench/gpu/run.sh                      the real run (provider cuda, XL)
#   PF_PROVIDER=cpu PF_CHECKPOINT_ARGS="--heads 2 --head-dim 16 --depth 2 --patch 4 --classes 1000 --resolution 128" \
#     OUT=/tmp/rehearsal bash bench/gpu/run.sh         the rehearsal on a machine without a GPU
#
# PF_PYTHON (default python3) must have torch, numpy, yaml and onnx. PF_COUNTS, PF_REPEATS tune
# bench/gpu. PF_STEPS=unpack,provider,convert,bench,generate picks what runs (default: all);
# PF_VARIANTS="fp32:plain fp16:plain fp16:multihead" which conversions are made and measured.
set -uo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."
repo=$PWD

OUT=${OUT:?set OUT to the folder for the results}
PROVIDER=${PF_PROVIDER:-cuda}
PYTHON=${PF_PYTHON:-python3}
CHECKPOINT_ARGS=${PF_CHECKPOINT_ARGS:---xl}
STEPS=${PF_STEPS:-unpack,provider,convert,bench,generate}
VARIANTS=${PF_VARIANTS:-fp32:plain fp16:plain fp16:multihead} # dtype:attention, converted and measured
carry=tmp/gpu/carry
work=tmp/gpu # app/ lands three levels below the root, where the bundles expect it (bench/gpu/kit.sh)
app=$work/app
ort_dir=$app/node_modules/onnxruntime-node/bin/napi-v6/linux/x64
mkdir -p "$OUT" "$work"
log="$OUT/run.log"
exec > >(tee -a "$log") 2>&1

wants() { [[ ",$STEPS," == *",$1,"* ]]; }
step() { echo; echo "== $(date -u +%H:%M:%S) $*"; }
# Runs a command, records its wall time in $OUT/timings.tsv, and carries on when it fails.
timed() {
  local name=$1; shift
  local started=$SECONDS
  "$@"
  local status=$?
  printf '%s\t%s\t%s\n' "$name" "$((SECONDS - started))" "$status" >> "$OUT/timings.tsv"
  [[ $status -eq 0 ]] || echo "!! $name failed with status $status"
  return $status
}
# Unpacks xz parts, concatenated, with Python's lzma: the GPU machine may have no xz.
unpack() { cat "$@" | "$PYTHON" -c 'import lzma, shutil, sys; shutil.copyfileobj(lzma.open(sys.stdin.buffer), sys.stdout.buffer)' | tar -x -C "$work"; }

step "machine"
{
  uname -a
  nvidia-smi --query-gpu=name,driver_version,memory.total,compute_cap --format=csv 2>&1 || echo "no nvidia-smi"
  "$PYTHON" - <<'EOF'
import importlib, sys
print("python", sys.version.split()[0])
for name in ("torch", "numpy", "yaml", "onnx", "torchvision"):
    try:
        module = importlib.import_module(name)
        print(name, getattr(module, "__version__", "?"))
    except Exception as error:
        print(name, "MISSING", type(error).__name__)
try:
    import torch
    print("cuda", torch.version.cuda, "available", torch.cuda.is_available(),
          torch.cuda.get_device_name(0) if torch.cuda.is_available() else "")
except Exception as error:
    print("torch cuda probe failed", error)
EOF
} | tee "$OUT/machine.txt"

# The CUDA 13 runtime, cuBLAS, cuRAND and cuDNN of the machine's PyTorch wheels (nvidia-* packages).
nvidia_libs=$("$PYTHON" -c 'import glob, os, nvidia; print(":".join(sorted({d for p in nvidia.__path__ for d in glob.glob(os.path.join(p, "*", "lib"))})))' 2>/dev/null)
export LD_LIBRARY_PATH="${nvidia_libs}${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
echo "LD_LIBRARY_PATH=$LD_LIBRARY_PATH"

if wants unpack; then
  step "unpack the kit"
  (cd "$carry" && sha256sum -c SHA256SUMS) || echo "!! a part of the kit is missing or damaged"
  timed unpack-base unpack "$carry/base.tar.xz"
  timed unpack-provider unpack "$carry"/provider.tar.xz.part-*
fi
export PATH="$repo/$work/node/bin:$PATH"
echo "node $(node --version) at $(command -v node)"
pixelflow() { node "$app/pixelflow.mjs" "$@"; }

if wants provider; then
  step "install and check the CUDA provider"
  timed provider-install pixelflow cuda install --from "$work/provider" --ort-dir "$ort_dir"
  timed provider-check pixelflow cuda check --ort-dir "$ort_dir" --cuda-major 13
fi

ckpt=$work/xl-checkpoint
if wants convert; then
  step "random-weight checkpoint ($CHECKPOINT_ARGS) and its conversions"
  export PYTHONPATH="$repo/pytorch"
  # shellcheck disable=SC2086 # the arguments are words on purpose
  [[ -f $ckpt/model.pt ]] || timed checkpoint "$PYTHON" -m pixelflow.random_checkpoint "$ckpt" $CHECKPOINT_ARGS
  # fp16 with attention as onnxruntime's fused MultiHeadAttention last: the figure to compare.
  for variant in $VARIANTS; do
    dtype=${variant%%:*} attention=${variant##*:}
    name=xl-$dtype$([[ $attention == plain ]] || echo "-$attention")
    timed "convert-${name#xl-}" "$PYTHON" -m pixelflow.convert "$ckpt" "$work/$name" --dtype "$dtype" \
      --attention "$attention" --force --class-names "$app/imagenet-classes.txt" --name "$name-random"
  done
  ls -l "$work"/xl-* | tee -a "$OUT/models.txt"
fi

if wants bench; then
  step "bench/gpu ($PROVIDER)"
  export PYTHONPATH="$repo/pytorch"
  models=()
  for name in fp32 fp16 fp16-multihead; do
    [[ -f $work/xl-$name/pixelflow.json ]] && models+=("--$name" "$work/xl-$name")
  done
  timed bench node "$app/bench-gpu.mjs" --provider "$PROVIDER" --embedded "$repo/models/pixelflow-mnist" "${models[@]}" --checkpoint "$ckpt" --python "$PYTHON" --counts "${PF_COUNTS:-1,4,8}" --repeats "${PF_REPEATS:-2}" --out "$OUT/bench"
fi

if wants generate; then
  step "the CLI: pixelflow generate on $PROVIDER (one process per job: the first job pays the cold start)"
  for solver in euler dopri5; do
    fastest=$work/xl-fp16$([[ -f $work/xl-fp16-multihead/pixelflow.json ]] && echo -multihead)
    timed "generate-$solver" pixelflow generate --model "$fastest" --provider "$PROVIDER" --solver "$solver" \
      --seed 42 --out "$OUT/generate-$solver" --json > "$OUT/generate-$solver.json"
  done
fi

step "done"
cat "$OUT/timings.tsv"
[[ -f $OUT/bench/table.md ]] && cat "$OUT/bench/table.md"
