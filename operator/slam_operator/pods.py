"""Why a pod does not run, from its status alone: pure functions shared by ModelDeployments
(their server pods) and Evaluations (their scoring Job's pods).

`pod_view` keeps what a condition needs of a pod (kopf indices hold these, not whole pods);
`stuck` says whether it will not start by itself; `problem` words the reason for a condition.
"""

from __future__ import annotations

from typing import Any

# Container states that will not fix themselves: the condition says which and why.
STUCK = ("CrashLoopBackOff", "ImagePullBackOff", "ErrImagePull", "CreateContainerConfigError",
         "CreateContainerError", "InvalidImageName", "RunContainerError")
UNSCHEDULABLE = "Unschedulable"
# Reasons of a condition that a pod is stuck (an Event of type Warning, not Normal).
STUCK_REASONS = (*STUCK, UNSCHEDULABLE)
LOG_TAIL_LINES = 15


def startup(status: dict[str, Any], created: str | None = None) -> dict[str, str]:
    """When a pod got through each step of its start, as its status and metadata tell (RFC 3339,
    the steps it has reached): created, scheduled (bound to a node), started (its first
    container running: the image pulled or present, the container created) and ready (its
    readiness probe passed: for a model server, the model fetched and loaded)."""
    conditions = {c.get("type"): c for c in status.get("conditions") or []
                  if c.get("status") == "True"}
    out = {"created": created} if created else {}
    if (c := conditions.get("PodScheduled")) and c.get("lastTransitionTime"):
        out["scheduled"] = c["lastTransitionTime"]
    started = [cs["state"]["running"]["startedAt"] for cs in status.get("containerStatuses") or []
               if ((cs.get("state") or {}).get("running") or {}).get("startedAt")]
    if started:
        out["started"] = min(started)
    if (c := conditions.get("Ready")) and c.get("lastTransitionTime"):
        out["ready"] = c["lastTransitionTime"]
    return out


def pod_view(name: str, status: dict[str, Any], created: str | None = None) -> dict[str, Any]:
    """What a condition needs of a pod: whether the scheduler could not place it (and its
    message), per container why it waits, its restarts and how it last ended (the
    termination message holds the log's tail where a container sets terminationMessagePolicy
    FallbackToLogsOnError), and its start-up steps (`created`: its creationTimestamp)."""
    containers = []
    for cs in status.get("containerStatuses") or []:
        waiting = (cs.get("state") or {}).get("waiting") or {}
        last = (cs.get("lastState") or {}).get("terminated") or {}
        containers.append({
            "name": cs.get("name"), "restarts": cs.get("restartCount", 0),
            "waiting": waiting.get("reason"), "waitingMessage": waiting.get("message"),
            "lastExitCode": last.get("exitCode"), "lastReason": last.get("reason"),
            "lastMessage": "\n".join((last.get("message") or "").rstrip().splitlines()
                                     [-LOG_TAIL_LINES:]),
        })
    unschedulable = next(
        (c.get("message") or "no message" for c in status.get("conditions") or []
         if c.get("type") == "PodScheduled" and c.get("status") == "False"
         and c.get("reason") == UNSCHEDULABLE), None)
    return {"kind": "Pod", "metadata": {"name": name}, "containers": containers,
            "unschedulable": unschedulable, "startup": startup(status, created)}


def stuck(status: dict[str, Any]) -> bool:
    """Whether a pod's status shows it will not start by itself: the scheduler found no node
    for it, or a container waits for something that will not change (see STUCK)."""
    view = pod_view("", status)
    return view["unschedulable"] is not None or any(
        c["waiting"] in STUCK for c in view["containers"])


def problem(pods: list[dict[str, Any]], *, crash_hint: str,
            unschedulable_hint: str) -> tuple[str, str] | None:
    """(reason, message) for the first pod (by name) that will not start, or None. The hints
    say what in the user's spec to check."""
    for pod in sorted(pods, key=lambda p: p["metadata"]["name"]):
        name = pod["metadata"]["name"]
        if pod.get("unschedulable"):
            return UNSCHEDULABLE, (f"pod {name} cannot be scheduled: "
                                   f"{pod['unschedulable'].rstrip('. ')}; {unschedulable_hint}")
        for c in pod["containers"]:
            if c["waiting"] not in STUCK:
                continue
            where = f"pod {name}, container {c['name']}"
            if c["waiting"] == "CrashLoopBackOff":
                msg = (f"{where}: exited with code {c['lastExitCode']} ({c['lastReason']}) and "
                       f"was restarted {c['restarts']} times; {crash_hint}")
                if c["lastMessage"]:
                    msg += f"; its last log lines:\n{c['lastMessage']}"
            else:
                msg = f"{where}: {c['waiting']}: {c['waitingMessage'] or 'no message'}"
            return c["waiting"], msg
    return None
