"""The operator process: its settings, its Hub cache and its two controllers, built once when it
starts from the settings read then (settings.py), and nothing read at import."""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Any

import kopf

from slam_operator.controller import Controller
from slam_operator.evaluation import reconcile as evaluation
from slam_operator.kube import Kube
from slam_operator.modeldeployment import reconcile as model_deployment
from slam_operator.modeldeployment.hub import CachedHub
from slam_operator.settings import Settings


def adopt(child: dict[str, Any], owner: dict[str, Any]) -> None:
    """Owner reference (controller, blockOwnerDeletion), namespace and name prefix, as kopf
    sets them."""
    kopf.adopt(child, owner=owner)


def post_event(body: dict[str, Any], type_: str, reason: str, message: str) -> None:
    """Every Event the operator posts, about either kind, is posted this way."""
    Kube.of_this_thread().post_event(body, type_, reason, message)


@dataclass
class Operator:
    settings: Settings
    hub: CachedHub
    model_deployments: Controller
    evaluations: Controller

    @classmethod
    def build(cls, settings: Settings) -> Operator:
        hub = CachedHub(settings.hub, settings.hub_timeout_seconds)
        mds = Controller(
            "ModelDeployment",
            functools.partial(model_deployment.reconcile, hub=hub,
                              images=settings.runtime_images, adopt=adopt, event=post_event),
            read=lambda kube, ns, name: kube.get_model_deployment(ns, name),
            kube=Kube.of_this_thread, workers=settings.max_workers,
            resync_seconds=settings.resync_seconds)
        # Evaluations need no resync: while a run is in flight each reconcile asks to be
        # looked at again a progress period later; a finished one changes only by its own
        # edits and its Jobs' events.
        evs = Controller(
            "Evaluation",
            functools.partial(evaluation.reconcile, image=settings.scoring_job_image,
                              progress_seconds=settings.progress_seconds, adopt=adopt,
                              event=post_event),
            read=lambda kube, ns, name: kube.get_evaluation(ns, name),
            kube=Kube.of_this_thread, workers=settings.evaluation_workers,
            resync_seconds=settings.resync_seconds, resyncs=False)
        return cls(settings, hub, mds, evs)

    @property
    def controllers(self) -> tuple[Controller, Controller]:
        return self.model_deployments, self.evaluations
