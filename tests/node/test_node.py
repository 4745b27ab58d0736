"""The test node itself: pods start from the loaded images, reach each other and Services by
their DNS names and the API server through the `kubernetes` Service, and the node's network
stays inside its namespace."""

from __future__ import annotations

import json
import subprocess

from tests.controlplane.node import NODE_IP, POD_CIDR, SERVICE_CIDR
from tests.images.built import image
from tests.node.conftest import Cluster

RESTRICTED = {  # what the operator's own manifests ask for; the node must run pods like this
    "allowPrivilegeEscalation": False,
    "readOnlyRootFilesystem": True,
    "runAsNonRoot": True,
    "capabilities": {"drop": ["ALL"]},
    "seccompProfile": {"type": "RuntimeDefault"},
}

CLIENT = """
import json, os, socket, urllib.request
from kubernetes import client, config
ns = os.environ["NS"]
out = {"ip": socket.gethostbyname(f"echo.{ns}.svc.cluster.local"),
       "short": urllib.request.urlopen("http://echo/", timeout=10).read().decode().strip()}
config.load_incluster_config()
out["version"] = client.VersionApi().get_code().git_version
out["host"] = client.Configuration.get_default_copy().host
open("/dev/termination-log", "w").write(json.dumps(out))
"""


def echo_server(ns: str) -> tuple[dict, dict]:
    labels = {"app": "echo"}
    deployment = {
        "metadata": {"name": "echo"},
        "spec": {"replicas": 1, "selector": {"matchLabels": labels}, "template": {
            "metadata": {"labels": labels},
            "spec": {"containers": [{
                "name": "http", "image": image("llamacpp"),
                "command": ["sh", "-c", "echo hello from $(hostname) > /tmp/index.html && "
                            "exec python3 -m http.server 8080 --directory /tmp"],
                "ports": [{"containerPort": 8080, "name": "http"}],
                "readinessProbe": {"httpGet": {"path": "/", "port": "http"},
                                   "periodSeconds": 1},
                "securityContext": RESTRICTED,
                "volumeMounts": [{"name": "tmp", "mountPath": "/tmp"}],
            }], "volumes": [{"name": "tmp", "emptyDir": {}}]},
        }},
    }
    service = {"metadata": {"name": "echo"},
               "spec": {"selector": labels, "ports": [{"port": 80, "targetPort": "http"}]}}
    return deployment, service


def test_pods_reach_services_by_dns_name_and_the_api_server(ns: str, cluster: Cluster
                                                            ) -> None:
    deployment, service = echo_server(ns)
    cluster.apps.create_namespaced_deployment(ns, deployment)
    svc = cluster.core.create_namespaced_service(ns, service)
    cluster.wait("echo ready", lambda: (cluster.apps.read_namespaced_deployment(
        "echo", ns).status.ready_replicas or 0) == 1, explain=lambda: cluster.pods_report(ns))
    pod = cluster.core.list_namespaced_pod(ns, label_selector="app=echo").items[0]
    assert pod.status.pod_ip.startswith(POD_CIDR.rsplit(".", 2)[0])

    cluster.batch.create_namespaced_job(ns, {
        "metadata": {"name": "client"},
        "spec": {"backoffLimit": 0, "template": {"spec": {
            "restartPolicy": "Never",
            "containers": [{"name": "client", "image": image("operator"),
                            "command": ["python", "-c", CLIENT],
                            "env": [{"name": "NS", "value": ns}],
                            "securityContext": RESTRICTED}]}}},
    })
    done = cluster.finished(ns, "client")
    state = done.status.container_statuses[0].state.terminated
    assert done.status.phase == "Succeeded", (state.message, cluster.pods_report(ns))
    out = json.loads(state.message)
    assert out["ip"] == svc.spec.cluster_ip  # CoreDNS answers for the Service's name
    assert out["short"] == f"hello from {pod.metadata.name}"  # search path + kube-proxy
    assert out["version"] == "v1.36.3"  # service-account token, CA, `kubernetes` Service
    assert out["host"] == "https://10.96.0.1:443"

    # The tests reach Services in the node's namespace through a loopback port.
    answer = cluster.get(ns, "echo", 80, "/")
    assert answer.text.strip() == f"hello from {pod.metadata.name}"


def test_the_node_network_stays_in_its_namespace(cluster: Cluster) -> None:
    """The node's namespace routes only the pod range (no default route, so kube-proxy's
    rules can only ever rewrite traffic between pods and Services), and nothing of it is on the
    host."""
    ns = cluster.node.netns
    routes = ns.ip("-4", "route", "show", "table", "all").splitlines()
    # ("linkdown" only says no pod is attached to the bridge at the moment)
    routes = {r.replace(" linkdown", "").strip() for r in routes if "table local" not in r}
    assert routes == {f"{SERVICE_CIDR} dev cni0 scope link src {NODE_IP}",
                      f"{POD_CIDR} dev cni0 proto kernel scope link src {NODE_IP}"}, routes
    host = subprocess.run(["ip", "-4", "addr", "show"], capture_output=True, text=True).stdout
    assert NODE_IP not in host and "cni0" not in host
