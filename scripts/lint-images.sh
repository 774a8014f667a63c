#!/usr/bin/env bash
# Lints the machine-image definitions (amazon-linux/ and bottlerocket/) offline:
#   1. packer fmt -check on every *.pkr.hcl / *.pkrvars.hcl
#   2. packer validate of amazon-linux/ for every official arch/accelerator
#      flavour (and the expected refusal of arm64 + neuron), on a temporary
#      copy without plugins.pkr.hcl (Debian's Packer 1.6.6 rejects
#      required_plugins)
#   3. shellcheck, and `set -euo pipefail`, on every amazon-linux/ and
#      bottlerocket/ shell script
#   4. the Bottlerocket settings TOML parses (python3 >= 3.11, else skipped)
#   5. the baked nodehealthd config validates with nodehealthctl, when one is
#      available ($NODEHEALTHCTL or nodehealthctl on PATH; else skipped)
# Installs packer and shellcheck with apt-get when they are missing (as root).
# Prints one summary line "lint-images: PASS|FAIL ..." and exits non-zero on
# any failure.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
export CHECKPOINT_DISABLE=1

say() { printf '%s\n' "$*"; }
failed=()
passed=()
skipped=()
fail() { failed+=("$1"); say "FAIL: $1"; }

# --- tools ---------------------------------------------------------------------
need=()
command -v packer >/dev/null 2>&1 || need+=(packer)
command -v shellcheck >/dev/null 2>&1 || need+=(shellcheck)
if ((${#need[@]})); then
  if [[ $(id -u) -ne 0 ]] || ! command -v apt-get >/dev/null 2>&1; then
    say "lint-images: FAIL (missing ${need[*]}; install with: apt-get install -y --no-install-recommends ${need[*]})"
    exit 1
  fi
  say "== installing ${need[*]} with apt-get"
  if apt-cache policy "${need[@]}" | grep -q 'Candidate: (none)' ||
    [[ -z $(apt-cache policy "${need[@]}") ]]; then
    apt-get update
  fi
  DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "${need[@]}"
fi
say "$(packer version | head -n1), $(shellcheck --version | sed -n 's/^version: /shellcheck /p')"

# --- 1. packer fmt ---------------------------------------------------------------
say "== packer fmt -check"
mapfile -t hcl < <(find . -path ./.git -prune -o -type f \( -name '*.pkr.hcl' -o -name '*.pkrvars.hcl' \) -print | sort)
if ((${#hcl[@]} == 0)); then
  fail "fmt: no *.pkr.hcl files found"
else
  fmt_ok=1
  for f in "${hcl[@]}"; do
    if ! packer fmt -check -diff -write=false "$f"; then
      say "  $f is not formatted (fix: packer fmt $f)"
      fmt_ok=0
    fi
  done
  if ((fmt_ok)); then passed+=("fmt ${#hcl[@]} file(s)"); else fail "packer fmt"; fi
fi

# --- 2. packer validate ------------------------------------------------------------
say "== packer validate amazon-linux/ (copy without plugins.pkr.hcl)"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
cp -a amazon-linux "$tmp/amazon-linux"
rm -f "$tmp/amazon-linux/plugins.pkr.hcl"
# The file provisioner checks that its source exists, so give it one.
rpm="$tmp/nodehealthd-0.0.0-1.x86_64.rpm"
: >"$rpm"
validate() { # validate ARCH ACCELERATOR
  (cd "$tmp/amazon-linux" && packer validate \
    -var kubernetes_version=1.33 -var "arch=$1" -var "accelerator=$2" \
    -var "nodehealthd_rpm=$rpm" .)
}
combos=(x86_64:standard x86_64:nvidia x86_64:neuron arm64:standard arm64:nvidia)
validate_ok=1
for c in "${combos[@]}"; do
  if out=$(validate "${c%%:*}" "${c#*:}" 2>&1); then
    say "  ok   $c"
  else
    say "  FAIL $c"
    say "$out"
    validate_ok=0
  fi
done
# No official arm64 Neuron AMI exists: the template must refuse it.
if out=$(validate arm64 neuron 2>&1); then
  say "  FAIL arm64:neuron was accepted (the template must refuse it)"
  validate_ok=0
elif [[ $out != *no_official_eks_al2023_ami_for_this_arch_and_accelerator* ]]; then
  say "  FAIL arm64:neuron refused for another reason:"
  say "$out"
  validate_ok=0
else
  say "  ok   arm64:neuron refused"
fi
if ((validate_ok)); then passed+=("validate ${#combos[@]} flavours + 1 refusal"); else fail "packer validate"; fi

# --- 3. shellcheck ------------------------------------------------------------------
say "== shellcheck"
mapfile -t scripts < <(find amazon-linux bottlerocket -type f -name '*.sh' | sort)
scripts+=(scripts/lint-images.sh)
if shellcheck "${scripts[@]}"; then
  sc_ok=1
else
  sc_ok=0
fi
for f in "${scripts[@]}"; do
  if ! grep -qx 'set -euo pipefail' "$f"; then
    say "  $f lacks 'set -euo pipefail'"
    sc_ok=0
  fi
done
if ((sc_ok)); then passed+=("shellcheck ${#scripts[@]} scripts"); else fail "shellcheck"; fi

# --- 4. Bottlerocket settings TOML ---------------------------------------------------
say "== TOML"
mapfile -t toml < <(find bottlerocket -type f -name '*.toml' | sort)
if ! python3 -c 'import tomllib' 2>/dev/null; then
  skipped+=("toml (needs python3 >= 3.11)")
  say "  skipped: python3 with tomllib not found"
elif ((${#toml[@]} == 0)); then
  fail "toml: no bottlerocket/*.toml found"
elif python3 - "${toml[@]}" <<'PY'; then
import sys, tomllib
ok = True
for path in sys.argv[1:]:
    try:
        with open(path, "rb") as f:
            doc = tomllib.load(f)
        hc = doc["settings"]["host-containers"]["nodehealthd"]
        missing = [k for k in ("enabled", "source", "superpowered") if k not in hc]
        if missing:
            raise ValueError("settings.host-containers.nodehealthd lacks " + ", ".join(missing))
        if hc["superpowered"] is not True:
            raise ValueError("nodehealthd needs superpowered = true")
        print(f"  ok   {path}")
    except Exception as e:  # report every file
        print(f"  FAIL {path}: {e}")
        ok = False
sys.exit(0 if ok else 1)
PY
  passed+=("toml ${#toml[@]} file(s)")
else
  fail "toml"
fi

# --- 5. baked config ---------------------------------------------------------------
say "== nodehealthd config"
ctl=${NODEHEALTHCTL:-$(command -v nodehealthctl || true)}
config=amazon-linux/runtime/rootfs/etc/nodehealthd/config.yaml
if [[ -z $ctl ]]; then
  skipped+=("config (set NODEHEALTHCTL=path/to/nodehealthctl)")
  say "  skipped: no nodehealthctl (set NODEHEALTHCTL)"
elif "$ctl" rules validate --config "$config" --rules "$tmp/no-rules"; then
  passed+=("config")
else
  fail "config $config"
fi

# --- summary ---------------------------------------------------------------------------
join() { # join SEP WORD...
  local sep=$1 out=$2
  shift 2
  for w in "$@"; do out+="$sep$w"; done
  printf '%s' "$out"
}
summary="passed: $(join ', ' "${passed[@]:-none}")"
if ((${#skipped[@]})); then summary+="; skipped: $(join ', ' "${skipped[@]}")"; fi
if ((${#failed[@]})); then
  say "lint-images: FAIL ($(join ', ' "${failed[@]}")); $summary"
  exit 1
fi
say "lint-images: PASS ($summary)"
