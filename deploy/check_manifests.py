#!/usr/bin/env python3
"""Cross-reference checks on rendered manifests (what a schema cannot see), run by validate.sh.

    python deploy/check_manifests.py NAME=rendered.yaml [NAME=rendered.yaml ...]

Schemas (kubernetes-validate) check each object alone; this checks that the objects fit
together and keep the properties the deployment relies on: Services, PDBs, the router's
discovery selector and the monitors select the ghostline-serve pods; named ports, volumes,
claims, service accounts and roles exist; autoscalers target an existing Deployment that no
longer pins `replicas`; the serve pods keep their probes, drain timing, non-root security
context and read-only model volume; the CRD objects (KEDA ScaledObject, PodMonitor), for which
no schema is at hand, get the structural checks written here. Exits 1 on the first overlay with
errors, listing all of them.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

import yaml
sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "inference-backend" / "scripts"))
import fetch_default_model as fdm  # noqa: E402  (the model ladder's directory names)

NAMESPACE = "ghostline"
# Created by hand (no key in git): see the Secret volume in base/serve-deployment.yaml.
EXTERNAL_SECRETS = {"ghostline-api-keys", "ghostline-tls"}
SHUTDOWN_GRACE_DEFAULT_S = 10  # ghostline-serve --shutdown-grace default
CLUSTER_SCOPED = {"Namespace"}
GAUGES = ["ghostline_num_requests_waiting", "ghostline_num_requests_running"]

errors: list[str] = []
notes: list[str] = []


def err(msg: str) -> None:
    errors.append(msg)


def pod_spec(obj: dict) -> dict | None:
    if obj["kind"] in ("Deployment", "Job", "StatefulSet", "DaemonSet"):
        return obj["spec"]["template"]["spec"]
    return None


def pod_labels(obj: dict) -> dict:
    return obj["spec"]["template"]["metadata"].get("labels", {})


def matches(selector: dict, labels: dict) -> bool:
    return bool(selector) and all(labels.get(k) == v for k, v in selector.items())


def containers(spec: dict) -> list[dict]:
    return spec.get("initContainers", []) + spec.get("containers", [])


def port_names(spec: dict) -> set[str]:
    return {p["name"] for c in spec.get("containers", []) for p in c.get("ports", []) if "name" in p}


def port_numbers(spec: dict) -> set[int]:
    return {p["containerPort"] for c in spec.get("containers", []) for p in c.get("ports", [])}


def check(overlay: str, docs: list[dict]) -> None:
    by = {}
    for d in docs:
        key = (d["kind"], d["metadata"]["name"])
        if key in by:
            err(f"duplicate {key}")
        by[key] = d
        ns = d["metadata"].get("namespace")
        if d["kind"] in CLUSTER_SCOPED:
            if ns:
                err(f"{key}: cluster-scoped but has namespace {ns}")
        elif ns != NAMESPACE:
            err(f"{key}: namespace {ns!r}, expected {NAMESPACE!r}")
    workloads = [d for d in docs if pod_spec(d) is not None]

    # -- workloads: selector vs labels, volumes, claims, secrets, accounts, probe ports
    for w in workloads:
        name = f"{w['kind']}/{w['metadata']['name']}"
        spec = pod_spec(w)
        sel = w["spec"].get("selector", {}).get("matchLabels")
        if w["kind"] == "Deployment" and not matches(sel, pod_labels(w)):
            err(f"{name}: selector {sel} does not match its pod labels {pod_labels(w)}")
        vols = {v["name"]: v for v in spec.get("volumes", [])}
        for c in containers(spec):
            for m in c.get("volumeMounts", []):
                if m["name"] not in vols:
                    err(f"{name}/{c['name']}: mounts undefined volume {m['name']}")
            sc = c.get("securityContext", {})
            if sc.get("allowPrivilegeEscalation") is not False or sc.get("readOnlyRootFilesystem") is not True:
                err(f"{name}/{c['name']}: needs allowPrivilegeEscalation false, readOnlyRootFilesystem true")
            if "ALL" not in sc.get("capabilities", {}).get("drop", []):
                err(f"{name}/{c['name']}: capabilities must drop ALL")
            if "memory" not in c.get("resources", {}).get("limits", {}):
                err(f"{name}/{c['name']}: no memory limit")
            for probe in ("startupProbe", "livenessProbe", "readinessProbe"):
                port = c.get(probe, {}).get("httpGet", {}).get("port")
                if isinstance(port, str) and port not in {p.get("name") for p in c.get("ports", [])}:
                    err(f"{name}/{c['name']}: {probe} uses unknown port name {port}")
        for v in vols.values():
            if "persistentVolumeClaim" in v and ("PersistentVolumeClaim", v["persistentVolumeClaim"]["claimName"]) not in by:
                err(f"{name}: claim {v['persistentVolumeClaim']['claimName']} not defined")
            if "secret" in v and v["secret"]["secretName"] not in EXTERNAL_SECRETS | {n for k, n in by if k == "Secret"}:
                err(f"{name}: secret {v['secret']['secretName']} neither defined nor a documented external one")
            mode = v.get("secret", {}).get("defaultMode", 0o644)
            if "secret" in v and not mode & 0o004 and not spec.get("securityContext", {}).get("fsGroup"):
                err(f"{name}: secret volume {v['name']} mode {mode:o} without fsGroup: the non-root uid cannot read it")
        sa = spec.get("serviceAccountName")
        if sa and ("ServiceAccount", sa) not in by:
            err(f"{name}: serviceAccountName {sa} not defined")
        psc = spec.get("securityContext", {})
        if psc.get("runAsNonRoot") is not True or not psc.get("runAsUser"):
            err(f"{name}: pod must run as a non-root uid")

    # -- the serve Deployment's contract
    serve = by.get(("Deployment", "ghostline-serve"))
    if serve is None:
        err("no Deployment ghostline-serve")
        return
    sspec = pod_spec(serve)
    main = next(c for c in sspec["containers"] if c["name"] == "serve")
    if main.get("livenessProbe", {}).get("httpGet", {}).get("path") != "/health":
        err("serve: livenessProbe must be GET /health")
    if main.get("readinessProbe", {}).get("httpGet", {}).get("path") != "/ready":
        err("serve: readinessProbe must be GET /ready")
    if main.get("startupProbe", {}).get("httpGet", {}).get("path") != "/ready":
        err("serve: startupProbe must wait for /ready (model load)")
    pre = main.get("lifecycle", {}).get("preStop", {})
    sleep_s = int(pre["exec"]["command"][1]) if pre.get("exec") else pre.get("sleep", {}).get("seconds", 0)
    grace = sspec.get("terminationGracePeriodSeconds", 30)
    if not sleep_s:
        err("serve: no preStop delay")
    args = main.get("args", [])
    drain_s = next((int(a.split("=", 1)[1]) for a in args if a.startswith("--shutdown-grace=")), SHUTDOWN_GRACE_DEFAULT_S)
    if grace <= sleep_s + drain_s:
        err(f"serve: terminationGracePeriodSeconds {grace} <= preStop {sleep_s} + --shutdown-grace {drain_s}")
    if "--host=0.0.0.0" not in args or "--port=8123" not in args:
        err(f"serve: args must listen on 0.0.0.0:8123, got {args}")
    if 8123 not in port_numbers(sspec):
        err("serve: containerPort 8123 missing")
    if not any(a.startswith("--api-key-file=") for a in args):
        err("serve: no --api-key-file (the API would be open)")
    # Behind the router (or an ingress) every request comes from a few addresses: the default
    # per-address bound (a quarter of --max-connections) would close the router's connections.
    per_address = next((int(a.split("=", 1)[1]) for a in args
                        if a.startswith("--max-connections-per-address=")), None)
    if per_address is None or per_address < 1024:
        err("serve: behind the router, --max-connections-per-address must be raised to --max-connections (1024)")
    model_mounts = [m for c in containers(sspec) for m in c.get("volumeMounts", []) if m["name"] == "models"]
    if not model_mounts or not all(m.get("readOnly") for m in model_mounts):
        err("serve: the model volume must be mounted read-only everywhere")
    if not next(v for v in sspec["volumes"] if v["name"] == "models")["persistentVolumeClaim"].get("readOnly"):
        err("serve: the models claim must be read-only")
    env = {e["name"]: e.get("value") for e in main.get("env", [])}
    device = next((a.split("=", 1)[1] for a in args if a.startswith("--device=")), "auto")
    gpus = main.get("resources", {}).get("limits", {}).get("nvidia.com/gpu")
    if device == "cuda":
        if str(gpus) != "1":
            err(f"serve: --device=cuda needs limits nvidia.com/gpu: 1, got {gpus}")
        if not str(env.get("GHOSTLINE_MODEL", "")).endswith("-fp16-cuda"):
            err(f"serve: --device=cuda with model {env.get('GHOSTLINE_MODEL')}")
    elif gpus is not None:
        err(f"serve: --device={device} but requests a GPU")
    job = by.get(("Job", "ghostline-model-prepare"))
    if job is None:
        err("no Job ghostline-model-prepare")
    else:
        jargs = pod_spec(job)["containers"][0]["args"]
        variant = jargs[jargs.index("--variant") + 1]
        ladder = jargs[jargs.index("--model") + 1] if "--model" in jargs else fdm.DEFAULT_MODEL
        want = fdm.model_dir_for(Path("/cache"), variant, ladder).name
        if not str(env.get("GHOSTLINE_MODEL", "")).endswith("/models/" + want):
            err(f"Job prepares {want} but serve loads {env.get('GHOSTLINE_MODEL')}")
        init_env = {e["name"]: e.get("value") for c in sspec.get("initContainers", []) for e in c.get("env", [])}
        if init_env.get("GHOSTLINE_MODEL") != env.get("GHOSTLINE_MODEL"):
            err("serve: wait-for-model waits for another model directory than the server loads")
    slabels = pod_labels(serve)

    # -- things that select the serve pods
    for d in docs:
        k, n = d["kind"], d["metadata"]["name"]
        if k == "Service":
            targets = [w for w in workloads if matches(d["spec"].get("selector"), pod_labels(w))]
            if not targets:
                err(f"Service/{n}: selector {d['spec'].get('selector')} matches no pods")
            for p in d["spec"]["ports"]:
                tp = p.get("targetPort", p["port"])
                for w in targets:
                    ok = tp in port_names(pod_spec(w)) if isinstance(tp, str) else tp in port_numbers(pod_spec(w))
                    if not ok:
                        err(f"Service/{n}: targetPort {tp} not a port of {w['metadata']['name']}")
        if k == "PodDisruptionBudget":
            if not any(matches(d["spec"]["selector"]["matchLabels"], pod_labels(w)) for w in workloads):
                err(f"PDB/{n}: selects no pods")
        if k == "PodMonitor":
            if not matches(d["spec"]["selector"]["matchLabels"], slabels):
                err(f"PodMonitor/{n}: does not select the serve pods")
            for ep in d["spec"]["podMetricsEndpoints"]:
                if ep.get("port") not in port_names(sspec) or ep.get("path") != "/metrics":
                    err(f"PodMonitor/{n}: endpoint {ep} is not the serve pods' /metrics")
        if k in ("HorizontalPodAutoscaler", "ScaledObject"):
            ref = d["spec"]["scaleTargetRef"]
            if (ref.get("kind", "Deployment"), ref["name"]) not in by:
                err(f"{k}/{n}: target {ref} not defined")
            elif "replicas" in by[(ref.get("kind", "Deployment"), ref["name"])]["spec"]:
                err(f"{k}/{n}: target Deployment still sets spec.replicas (apply would fight the autoscaler)")
        if k == "ScaledObject":
            if d["apiVersion"] != "keda.sh/v1alpha1":
                err(f"ScaledObject/{n}: apiVersion {d['apiVersion']}")
            lo, hi = d["spec"].get("minReplicaCount", 0), d["spec"].get("maxReplicaCount", 100)
            if not 1 <= lo <= hi:
                err(f"ScaledObject/{n}: replica bounds {lo}..{hi}")
            for t in d["spec"]["triggers"]:
                md = t.get("metadata", {})
                if t.get("type") != "prometheus":
                    err(f"ScaledObject/{n}: trigger type {t.get('type')}")
                for field in ("serverAddress", "query", "threshold"):
                    if not isinstance(md.get(field), str) or not md.get(field):
                        err(f"ScaledObject/{n}: trigger {t.get('name')}: metadata.{field} must be a non-empty string")
                if not any(g in md.get("query", "") for g in GAUGES):
                    err(f"ScaledObject/{n}: trigger {t.get('name')} queries none of {GAUGES}")
                try:
                    float(md.get("threshold", ""))
                except ValueError:
                    err(f"ScaledObject/{n}: threshold {md.get('threshold')!r} is not a number")
        if k == "HorizontalPodAutoscaler":
            for m in d["spec"]["metrics"]:
                if m["type"] == "Pods" and m["pods"]["metric"]["name"] not in GAUGES:
                    err(f"HPA/{n}: metric {m['pods']['metric']['name']}")
        if k == "RoleBinding":
            if ("Role", d["roleRef"]["name"]) not in by:
                err(f"RoleBinding/{n}: Role {d['roleRef']['name']} not defined")
            for s in d["subjects"]:
                if s["kind"] == "ServiceAccount" and (("ServiceAccount", s["name"]) not in by or s.get("namespace") != NAMESPACE):
                    err(f"RoleBinding/{n}: subject {s} not a ServiceAccount of this namespace")
        if k == "Ingress":
            ann = d["metadata"].get("annotations", {})
            if ann.get("nginx.ingress.kubernetes.io/upstream-hash-by") != "$http_x_session_id":
                err(f"Ingress/{n}: upstream-hash-by must be $http_x_session_id")
            for rule in d["spec"]["rules"]:
                for p in rule["http"]["paths"]:
                    svc = p["backend"]["service"]
                    if ("Service", svc["name"]) not in by:
                        err(f"Ingress/{n}: backend Service {svc['name']} not defined")
                    elif svc["port"].get("name") not in {q.get("name") for q in by[("Service", svc["name"])]["spec"]["ports"]}:
                        err(f"Ingress/{n}: backend port {svc['port']} not on Service {svc['name']}")

    # -- the router: discovery must find the serve pods, on their port, with RBAC to watch them
    router = by.get(("Deployment", "ghostline-router"))
    if router is not None:
        rargs = pod_spec(router)["containers"][0]["args"]
        flags = {}
        for i, a in enumerate(rargs):
            if a.startswith("--"):
                name, _, val = a.partition("=")
                flags[name] = val or (rargs[i + 1] if i + 1 < len(rargs) and not rargs[i + 1].startswith("--") else "")
        want = {"--policy": "consistent_hash", "--health-check-endpoint": "/ready"}
        for f, v in want.items():
            if flags.get(f) != v:
                err(f"router: {f} is {flags.get(f)!r}, expected {v!r}")
        if "--service-discovery" not in flags:
            err("router: --service-discovery missing")
        sel = dict(s.split("=", 1) for s in flags.get("--selector", "").split())
        if not matches(sel, slabels):
            err(f"router: --selector {sel} does not match the serve pods {slabels}")
        if int(flags.get("--service-discovery-port", 0)) not in port_numbers(sspec):
            err(f"router: --service-discovery-port {flags.get('--service-discovery-port')} is not a serve port")
        rules = [r for (k, _), d in by.items() if k == "Role" for r in d["rules"]]
        if not any("pods" in r["resources"] and {"list", "watch"} <= set(r["verbs"]) for r in rules):
            err("router: no Role grants list/watch on pods")
        if not pod_spec(router).get("serviceAccountName"):
            err("router: runs without its ServiceAccount")

    # -- metric names the autoscalers use, against the server's source (a note, not an error:
    # the gauges may land in another branch first)
    src = Path(__file__).resolve().parent.parent / "inference-backend" / "src"
    text = "".join(p.read_text(errors="replace") for p in src.rglob("*.rs")) if src.is_dir() else ""
    for g in GAUGES + ["ghostline_kv_cache_usage_perc"]:
        if g not in text:
            notes.append(f"metric {g} not (yet) found in inference-backend/src")


def main() -> int:
    failed = 0
    for arg in sys.argv[1:]:
        overlay, _, path = arg.partition("=")
        docs = [d for d in yaml.safe_load_all(Path(path).read_text()) if d]
        errors.clear()
        try:
            check(overlay, docs)
        except (KeyError, IndexError, StopIteration, TypeError, ValueError) as e:
            err(f"malformed object: {type(e).__name__}: {e}")
        if errors:
            failed += 1
            for e in errors:
                print(f"  FAIL {overlay}: {e}")
        else:
            kinds = sorted({d["kind"] for d in docs})
            print(f"  ok {overlay}: {len(docs)} objects cross-checked ({', '.join(kinds)})")
    for n in sorted(set(notes)):
        print(f"  note: {n}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
