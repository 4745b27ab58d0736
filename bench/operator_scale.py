"""ModelDeployments applied at once to the real control plane with the operator running, at
several sizes in one run (issue 17: the operator's cost must grow linearly).

    .venv/bin/python bench/operator_scale.py [--counts 200,1000,2000] [--resync 20]
                                             [--namespaces 1]

`--namespaces K` spreads each size's ModelDeployments evenly over K namespaces (as teams would
hold them); the default, 1, puts them all in one namespace, where the controller manager's
per-namespace work grows with their number.

For each size, in namespaces of its own that are deleted before the next size (converging N is
measured with N ModelDeployments in the cluster, and the baseline's objects are deleted before
the operator's burst): seconds until every Deployment and Service
exists (seen arrive by a watch), and as a baseline measured in the same run the seconds this
client needs to create the same objects directly (the ratio is the operator's overhead over raw
API writes); API reads and writes per reconcile while converging; the operator's memory; the
seconds a restarted operator takes to resume every object, its writes then, and its API calls
per object per resync period in steady state (two periods of `--resync` seconds; it converges
with its default period, 300 s, as users run it); CPU seconds of the operator, API server, etcd
and controller manager while converging; requests the API server answered per ModelDeployment
while converging (all clients, from its metrics). Each burst and each steady-state measurement
starts once the controller manager has caught up with the Deployments (it makes a ReplicaSet
and a pod for each, and lags behind a burst). The operator runs as users run it, in a process
of its own (`python -m slam_operator`); its API requests and reconciles are read from its
Prometheus metrics (`slam_api_requests_total`, `slam_reconciles_total`) and its memory from
/proc (resident now and at peak), so the benchmark client's own memory is not in the figure.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--counts", default="200,1000,2000")
    parser.add_argument("--resync", type=float, default=20.0)
    parser.add_argument("--namespaces", type=int, default=1,
                        help="namespaces each size's ModelDeployments are spread over")
    args = parser.parse_args()
    counts = [int(c) for c in args.counts.split(",")]
    spread = args.namespaces
    if spread < 1 or any(n % spread for n in counts):
        parser.error(f"--namespaces {spread}: must be at least 1 and divide every count")

    import httpx
    from kubernetes import client, config, watch
    from prometheus_client.parser import text_string_to_metric_families

    from slam.api.modeldeployment import ModelDeploymentSpec
    from slam_operator.modeldeployment import builders
    from slam_operator.names import MANAGED_BY_LABEL, MODEL_DEPLOYMENT_LABEL
    from tests.controlplane.cluster import REPO, ControlPlane, apply_crds, free_port
    from tests.fakes.hub import FakeHub, Repo

    metrics_port = free_port()

    def scrape() -> dict[str, float]:
        text = httpx.get(f"http://127.0.0.1:{metrics_port}/metrics", timeout=30).text
        out = {"read": 0.0, "write": 0.0, "reconciles": 0.0}
        for family in text_string_to_metric_families(text):
            for sample in family.samples:
                if sample.name == "slam_api_requests_total":
                    out[sample.labels["kind"]] += sample.value
                elif sample.name == "slam_reconciles_total" and \
                        sample.labels["kind"] == "ModelDeployment":
                    out["reconciles"] += sample.value
        return out

    def api_requests(cp) -> dict[str, float]:
        """Requests the API server has answered so far, by verb and resource (all clients)."""
        text = httpx.get(f"{cp.url}/metrics", verify=str(cp.workdir / "ca.crt"), timeout=30,
                         headers={"Authorization": f"Bearer {cp.admin.token}"}).text
        out: dict[str, float] = {}
        for family in text_string_to_metric_families(text):
            for sample in family.samples:
                if sample.name == "apiserver_request_total":
                    lb = sample.labels
                    key = " ".join(x for x in (lb["verb"], lb["resource"],
                                               lb.get("subresource", "")) if x)
                    out[key] = out.get(key, 0.0) + sample.value
        return out

    def calls() -> tuple[float, float]:
        m = scrape()
        return m["read"], m["write"]

    def cpu_seconds(pid: int) -> float:
        """User + system CPU seconds a process has used so far, from /proc."""
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def memory_mb(pid: int) -> tuple[float, float]:
        """(resident now, peak resident) of a process, from /proc."""
        fields = dict(line.split(":", 1) for line in
                      Path(f"/proc/{pid}/status").read_text().splitlines() if ":" in line)
        return (int(fields["VmRSS"].split()[0]) / 1024, int(fields["VmHWM"].split()[0]) / 1024)

    rows = []
    with tempfile.TemporaryDirectory(prefix="slam-bench-") as tmp:
        cp = ControlPlane(Path(tmp) / "cp").start()
        hub = FakeHub().start()
        operator = None
        try:
            apply_crds(cp, REPO / "crds")
            hub.repos["org/model"] = Repo(parameters=7_000_000_000)
            api = config.new_client_from_config(str(cp.kubeconfig))
            core, apps = client.CoreV1Api(api), client.AppsV1Api(api)
            objects = client.CustomObjectsApi(api)
            spec = ModelDeploymentSpec.model_validate(
                {"model": {"id": "org/model"}, "instanceType": "g5.xlarge"})
            log = Path(tmp) / "operator.log"

            def start_operator(resync: float | None) -> subprocess.Popen:
                """The operator in a process of its own, as users run it; `resync` None: its
                default period."""
                env = {**os.environ, "KUBECONFIG": str(cp.kubeconfig), "HF_ENDPOINT": hub.url,
                       "SLAM_HEALTH_PORT": "0", "SLAM_METRICS_PORT": str(metrics_port),
                       "SLAM_METRICS_ADDR": "127.0.0.1"}
                env.pop("SLAM_RESYNC_SECONDS", None)
                if resync is not None:
                    env["SLAM_RESYNC_SECONDS"] = str(resync)
                with log.open("ab") as out:
                    proc = subprocess.Popen([sys.executable, "-m", "slam_operator"], stdout=out,
                                            stderr=subprocess.STDOUT, cwd=REPO, env=env)
                deadline = time.monotonic() + 60
                while True:
                    try:
                        scrape()
                        break
                    except httpx.HTTPError:
                        if proc.poll() is not None or time.monotonic() > deadline:
                            raise RuntimeError("the operator did not start:\n"
                                               + log.read_text()[-3000:]) from None
                        time.sleep(0.5)
                time.sleep(2)  # let the operator start watching
                return proc

            def stop_operator(proc: subprocess.Popen) -> None:
                proc.terminate()
                try:
                    proc.wait(60)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()

            def all_added(lister, n: int) -> threading.Thread:
                """A thread that returns once the operator has added `n` objects (its label),
                told by a cluster-wide watch from the current version: no listing of thousands
                of objects many times a second while the burst runs (that grows with the square
                of n). The sizes before are gone by then; the baseline's objects lack the
                label."""
                rv = lister(label_selector=MODEL_DEPLOYMENT_LABEL,
                            limit=1).metadata.resource_version

                def run() -> None:
                    names: set[str] = set()
                    w = watch.Watch()
                    while len(names) < n:
                        for ev in w.stream(lister, label_selector=MODEL_DEPLOYMENT_LABEL,
                                           resource_version=rv, deserialize=False,
                                           allow_watch_bookmarks=False, timeout_seconds=600):
                            if ev["type"] == "ADDED":
                                meta = ev["object"]["metadata"]
                                names.add((meta["namespace"], meta["name"]))
                                if len(names) >= n:
                                    w.stop()
                                    break
                thread = threading.Thread(target=run, daemon=True)
                thread.start()
                return thread

            # The controller manager lags behind a burst: it makes a ReplicaSet and a pod per
            # Deployment. Whether it has caught up with every Deployment of a namespace:
            def caught_up(ns: str) -> bool:
                token = None
                while True:
                    page = apps.list_namespaced_deployment(ns, limit=250, _continue=token)
                    if any((d.status.observed_generation or 0) < d.metadata.generation
                           or (d.status.updated_replicas or 0) < 1 for d in page.items):
                        return False
                    token = page.metadata._continue
                    if not token:
                        return True

            def delete_namespaces(names: list[str]) -> None:
                """Delete namespaces and wait until they are gone (everything in them is)."""
                for ns in names:
                    core.delete_namespace(ns)
                while any(namespace_exists(ns) for ns in names):
                    time.sleep(2)

            def namespace_exists(ns: str) -> bool:
                """Whether namespace `ns` still exists (it goes once everything in it is)."""
                try:
                    core.read_namespace(ns)
                    return True
                except client.ApiException as e:
                    if e.status == 404:
                        return False
                    raise

            for n in counts:
                suffixes = [""] if spread == 1 else [f"-{j:03d}" for j in range(spread)]
                benches = [f"bench-{n}{x}" for x in suffixes]
                bases = [f"baseline-{n}{x}" for x in suffixes]
                for ns in benches + bases:
                    core.create_namespace({"metadata": {"name": ns}})

                # Baseline: the same children, created directly by this client, with the
                # operator's label keys renamed: the operator must not watch and index them
                # (they would double its view and its memory).
                def unlabelled(obj: dict) -> dict:
                    text = json.dumps(obj).replace(f'"{MODEL_DEPLOYMENT_LABEL}"',
                                                   '"bench.slam.dev/baseline"')
                    return json.loads(text.replace(f'"{MANAGED_BY_LABEL}"',
                                                   '"bench.slam.dev/managed-by"'))

                def direct(i: int, bases: list[str] = bases) -> None:
                    ns = bases[i % spread]
                    t = builders.ServedModel(f"m{i:04d}", ns, spec, "0" * 40)
                    core.create_namespaced_service(ns, unlabelled(builders.build_service(t)))
                    apps.create_namespaced_deployment(
                        ns, unlabelled(builders.build_deployment(t)))

                # The operator converges with its default resync period, as users run it (a
                # short one would re-read every object many times while thousands converge).
                operator = start_operator(None)
                pids = {"operator": operator.pid, "apiserver": cp.procs["kube-apiserver"].pid,
                        "etcd": cp.procs["etcd"].pid,
                        "controller-manager": cp.procs["kube-controller-manager"].pid}
                cpu0 = {k: cpu_seconds(p) for k, p in pids.items()}
                t0 = time.perf_counter()
                with ThreadPoolExecutor(8) as pool:
                    list(pool.map(direct, range(n)))
                baseline = time.perf_counter() - t0
                cpu_base = {k: cpu_seconds(p) - cpu0[k] for k, p in pids.items()}
                # The operator's burst must not share the cluster with the baseline's objects:
                # the API server's cost of each Service grows with the Services in the cluster
                # (its ClusterIP allocator lists every IPAddress twice per allocation, for its
                # metrics; pprof of kube-apiserver), so N baseline Services would inflate the
                # burst's cost in proportion to N. Deleting the namespace also waits for the
                # controller manager to finish with the baseline's Deployments.
                delete_namespaces(bases)

                def body(i: int) -> dict:
                    return {"apiVersion": "slam.dev/v1alpha1", "kind": "ModelDeployment",
                            "metadata": {"name": f"m{i:04d}"},
                            "spec": {"model": {"id": "org/model"},
                                     "instanceType": "g5.xlarge"}}

                def apply(i: int, benches: list[str] = benches) -> None:
                    objects.create_namespaced_custom_object(
                        "slam.dev", "v1alpha1", benches[i % spread], "modeldeployments", body(i))

                reads0, writes0 = calls()
                reconciles0 = scrape()["reconciles"]
                cpu0 = {k: cpu_seconds(p) for k, p in pids.items()}
                requests0 = api_requests(cp)
                watchers = [all_added(apps.list_deployment_for_all_namespaces, n),
                            all_added(core.list_service_for_all_namespaces, n)]
                t0 = time.perf_counter()
                with ThreadPoolExecutor(8) as pool:
                    list(pool.map(apply, range(n)))
                for w in watchers:
                    w.join()
                converged = time.perf_counter() - t0
                cpu = {k: cpu_seconds(p) - cpu0[k] for k, p in pids.items()}
                requests = {k: v - requests0.get(k, 0.0) for k, v in api_requests(cp).items()}
                busiest = sorted(((v, k) for k, v in requests.items() if v >= n / 10),
                                 reverse=True)
                # Every status written (Available=False: no kubelet here), page by page.
                while True:
                    token, done = None, 0
                    while True:
                        page = objects.list_cluster_custom_object(
                            "slam.dev", "v1alpha1", "modeldeployments", limit=250,
                            _continue=token)
                        done += sum(1 for i in page["items"]
                                    if i.get("status", {}).get("conditions"))
                        token = page["metadata"].get("continue")
                        if not token:
                            break
                    if done >= n:
                        break
                    time.sleep(0.25)
                time.sleep(2)
                reads1, writes1 = calls()
                reconciles = max(scrape()["reconciles"] - reconciles0, 1)

                # Wait until it has caught up with every Deployment so far (their status
                # changes are events the operator must follow, not a steady state).
                while not all(caught_up(ns) for ns in benches):
                    time.sleep(2)
                rss, peak = memory_mb(operator.pid)
                # Steady state, with a short resync period so that periods pass quickly: the
                # operator restarts with it (a restart itself must write nothing: every
                # object's status is already right). Once a whole period passes without a
                # write (the restart's reconciles settle), two more periods.
                stop_operator(operator)
                t1 = time.perf_counter()
                operator = start_operator(args.resync)
                # Restarted, it resumes every object once kopf has listed them all.
                while scrape()["reconciles"] < n and time.perf_counter() - t1 < 1800:
                    time.sleep(1)
                resumed = time.perf_counter() - t1
                for _ in range(6):
                    before = calls()[1]
                    time.sleep(args.resync)
                    if calls()[1] == before:
                        break
                reads2, writes2 = calls()
                time.sleep(2 * args.resync)
                reads3, writes3 = calls()
                stop_operator(operator)
                operator = None
                rows.append((n, converged, baseline, (reads1 - reads0) / reconciles,
                             (writes1 - writes0) / reconciles,
                             (reads3 - reads2 + writes3 - writes2) / (2 * n),
                             int(writes3 - writes2), int(writes2), rss, peak, resumed))
                # The next size starts on an empty cluster, as this one did: converging N is
                # measured with N ModelDeployments in the cluster, not N on top of the sizes
                # before it (the API server and controller manager slow with every object held).
                if n != counts[-1]:
                    delete_namespaces(benches)
                r = rows[-1]
                print(f"{n}: converged in {r[1]:.1f} s (direct {r[2]:.1f} s), "
                      f"{r[3]:.2f} reads + {r[4]:.2f} writes/reconcile, restarted and "
                      f"resumed every object in {r[10]:.1f} s with {r[7]} writes, steady "
                      f"{r[5]:.3f} calls/object/resync, operator "
                      f"{r[8]:.0f} MB resident ({r[9]:.0f} MB peak); CPU s while converging: "
                      + ", ".join(f"{k} {v:.1f}" for k, v in cpu.items())
                      + "; while creating directly: "
                      + ", ".join(f"{k} {v:.1f}" for k, v in cpu_base.items())
                      + f"; API requests per ModelDeployment while converging (all clients): "
                      f"{sum(requests.values()) / n:.1f}: "
                      + ", ".join(f"{k} {v / n:.2f}" for v, k in busiest),
                      file=sys.stderr, flush=True)
        finally:
            if operator is not None:
                stop_operator(operator)
            hub.stop()
            cp.stop()

    print(f"\nsizes {counts}, each spread over {spread} namespace(s); the operator in its own "
          f"process, converging with its default resync period, restarted with a "
          f"{args.resync:g} s period for the steady state")
    print(f"{'MDs':>6} {'converge s':>10} {'direct s':>9} {'ratio':>6} {'reads/rec':>9} "
          f"{'writes/rec':>10} {'restart s':>9} {'restart writes':>14} "
          f"{'calls/obj/resync':>16} {'steady writes':>13} {'operator MB':>11} {'peak MB':>7}")
    for n, conv, base, rpr, wpr, cpo, sw, rw, rss, peak, resumed in rows:
        print(f"{n:>6} {conv:>10.1f} {base:>9.1f} {conv / base:>6.2f} {rpr:>9.2f} {wpr:>10.2f} "
              f"{resumed:>9.1f} {rw:>14} {cpo:>16.3f} {sw:>13} {rss:>11.0f} {peak:>7.0f}")
    for (n1, c1, *_), (n2, c2, *_) in zip(rows, rows[1:], strict=False):
        print(f"converging {n2} took {c2 / c1:.2f}x the time of {n1} ({n2 / n1:g}x the objects)")
    print(f"operator memory with {counts[-1]} ModelDeployments and {2 * counts[-1]} children "
          f"watched: {rows[-1][8]:.0f} MB resident, {rows[-1][9]:.0f} MB at peak while converging")


if __name__ == "__main__":
    main()
