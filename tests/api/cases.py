"""Valid base manifests and invalid variants, shared by the local-validation and API-server tests.

Each invalid case names the field that its error message must name, in the API server's
notation (spec.targets[0].name); the local validator reports fields the same way.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

Manifest = dict[str, Any]


def model_deployment(name: str = "mistral", **spec: Any) -> Manifest:
    return {
        "apiVersion": "slam.dev/v1alpha1",
        "kind": "ModelDeployment",
        "metadata": {"name": name},
        "spec": {"model": {"id": "mistralai/Mistral-7B-Instruct-v0.2"}, **spec},
    }


def evaluation(name: str = "pep-talk", **spec: Any) -> Manifest:
    return {
        "apiVersion": "slam.dev/v1alpha1",
        "kind": "Evaluation",
        "metadata": {"name": name},
        "spec": {
            "promptSet": {
                "inline": [
                    {"id": "p1", "messages": [{"role": "user", "content": "Cheer me up."}]},
                    {"id": "p2", "template": "Pep talk for {name}.", "variables": {"name": "Ana"}},
                ]
            },
            "reference": "gpt-4",
            "targets": [
                {
                    "name": "gpt-4",
                    "external": {
                        "baseUrl": "https://api.openai.com/v1",
                        "model": "gpt-4-0613",
                        "apiKeySecretRef": {"name": "openai", "key": "api-key"},
                    },
                },
                {"name": "mistral", "modelDeploymentRef": {"name": "mistral"}},
            ],
            **spec,
        },
    }


@dataclass(frozen=True)
class Case:
    id: str
    make: Callable[[], Manifest]
    field: str  # the field the error message must name


def _edit(base: Callable[[], Manifest], fn: Callable[[Manifest], None]) -> Callable[[], Manifest]:
    def make() -> Manifest:
        m = copy.deepcopy(base())
        fn(m)
        return m

    return make


def _set(path: str, value: Any) -> Callable[[Manifest], None]:
    def fn(m: Manifest) -> None:
        *parents, last = path.split(".")
        node = m
        for p in parents:
            node = node[int(p)] if p.isdigit() else node.setdefault(p, {})
        if value is _DELETE:
            del node[last]
        elif last.isdigit():
            node[int(last)] = value
        else:
            node[last] = value

    return fn


_DELETE = object()
md, ev = model_deployment, evaluation

INVALID: tuple[Case, ...] = (
    # --- ModelDeployment: schema (types, enums, ranges, patterns, required) ---
    Case("md-runtime-enum", _edit(md, _set("spec.runtime", "ollama")), "spec.runtime"),
    Case("md-model-id-pattern", _edit(md, _set("spec.model.id", "not a repo id!")),
         "spec.model.id"),
    Case("md-replicas-negative", _edit(md, _set("spec.replicas", -1)), "spec.replicas"),
    Case("md-instance-type-pattern", _edit(md, _set("spec.instanceType", "G5 XL")),
         "spec.instanceType"),
    Case("md-model-required", _edit(md, _set("spec.model", _DELETE)), "spec.model"),
    Case("md-secret-key-required", _edit(md, _set("spec.hfTokenSecretRef", {"name": "hf"})),
         "spec.hfTokenSecretRef.key"),
    Case("md-unknown-field", _edit(md, _set("spec.gpuCount", 2)), "spec.gpuCount"),
    Case("md-name-dns1035", _edit(md, _set("metadata.name", "7b.model")), "metadata.name"),
    # --- ModelDeployment: CEL cross-field rules ---
    Case("md-llamacpp-needs-file", _edit(md, _set("spec.runtime", "llamacpp")), "spec.model"),
    Case("md-llamacpp-no-quantization",
         _edit(md, lambda m: m["spec"].update(
             runtime="llamacpp", quantization="awq",
             model={"id": "org/repo-GGUF", "file": "m.Q4_K_M.gguf"})),
         "spec.quantization"),
    Case("md-tgi-only-quantization",
         _edit(md, lambda m: m["spec"].update(runtime="vllm", quantization="eetq")),
         "spec.quantization"),
    Case("md-sglang-no-marlin",
         _edit(md, lambda m: m["spec"].update(runtime="sglang", quantization="marlin")),
         "spec.quantization"),
    Case("md-llamacpp-no-concurrent-sequences",
         _edit(md, lambda m: m["spec"].update(
             runtime="llamacpp", maxConcurrentSequences=4,
             model={"id": "org/repo-GGUF", "file": "m.Q4_K_M.gguf"})),
         "spec.maxConcurrentSequences"),
    Case("md-gpu-runtime-needs-gpu", _edit(md, _set("spec.gpus", 0)), "spec.gpus"),
    Case("md-token-limits",
         _edit(md, lambda m: m["spec"].update(maxInputTokens=4096, maxTotalTokens=2048)),
         "spec.maxInputTokens"),
    # --- Evaluation: schema ---
    Case("ev-target-name-pattern", _edit(ev, _set("spec.targets.1.name", "Bad_Name")),
         "spec.targets[1].name"),
    Case("ev-temperature-range", _edit(ev, _set("spec.generation", {"temperature": 3})),
         "spec.generation.temperature"),
    Case("ev-base-url-pattern", _edit(ev, _set("spec.targets.0.external.baseUrl", "ftp://x")),
         "spec.targets[0].external.baseUrl"),
    Case("ev-criteria-enum", _edit(ev, _set("spec.humanRating", {"criteria": ["funniness"]})),
         "spec.humanRating.criteria[0]"),
    # --- Evaluation: CEL cross-field rules and list-map keys ---
    Case("ev-reference-not-a-target", _edit(ev, _set("spec.reference", "gpt-5")),
         "spec.reference"),
    Case("ev-duplicate-target-names", _edit(ev, _set("spec.targets.1.name", "gpt-4")),
         "spec.targets"),
    Case("ev-two-prompt-sources", _edit(ev, _set("spec.promptSet.file", "prompts.yaml")),
         "spec.promptSet"),
    Case("ev-no-prompt-source", _edit(ev, _set("spec.promptSet", {})), "spec.promptSet"),
    Case("ev-target-two-kinds",
         _edit(ev, _set("spec.targets.1.external", {"baseUrl": "http://x/v1", "model": "m"})),
         "spec.targets[1]"),
    Case("ev-poisson-needs-rate",
         _edit(ev, _set("spec.targets.1.arrival", {"process": "poisson"})),
         "spec.targets[1].arrival.rate"),
    Case("ev-no-generator-process", _edit(ev, _set("spec.targets.1.processes", 0)),
         "spec.targets[1].processes"),
    Case("ev-scaling-an-external-target",
         _edit(ev, _set("spec.targets.0.scaling", {"replicas": 1})),
         "spec.targets[0].scaling"),
    Case("ev-scaling-to-no-replicas", _edit(ev, _set("spec.scaling", {"replicas": 0})),
         "spec.scaling.replicas"),
    Case("ev-slo-without-a-bound", _edit(ev, _set("spec.cost", {"slo": {"attainment": 0.9}})),
         "spec.cost.slo"),
    Case("ev-slo-attainment-of-one",
         _edit(ev, _set("spec.cost", {"slo": {"ttftMs": 800, "attainment": 1}})),
         "spec.cost.slo.attainment"),
    Case("ev-search-starting-above-its-ceiling",
         _edit(ev, _set("spec.cost", {"capacitySearch": {"initialConcurrency": 16,
                                                         "maxConcurrency": 8}})),
         "spec.cost.capacitySearch.initialConcurrency"),
    Case("ev-traffic-profile-of-23-hours",
         _edit(ev, _set("spec.cost", {"trafficProfile": {"hourly": [1] * 23}})),
         "spec.cost.trafficProfile.hourly"),
    Case("ev-traffic-profile-two-sources",
         _edit(ev, _set("spec.cost", {"trafficProfile": {"hourly": [1] * 24,
                                                         "file": "usage.csv"}})),
         "spec.cost.trafficProfile"),
    Case("ev-judge-not-a-target",
         _edit(ev, _set("spec.scorers", {"judge": {"target": "claude"}})),
         "spec.scorers.judge.target"),
    Case("ev-prompt-messages-and-template",
         _edit(ev, _set("spec.promptSet.inline.0.template", "Hi {x}")),
         "spec.promptSet.inline[0]"),
    Case("ev-recorded-target-without-recorded-prompts",
         _edit(ev, _set("spec.targets.0", {"name": "gpt-4", "recorded": {"model": "gpt-4o"}})),
         "spec.promptSet"),
    Case("ev-recorded-prompts-without-a-recorded-target",
         _edit(ev, _set("spec.promptSet", {"recorded": {}})), "spec.targets"),
    Case("ev-recorded-prompts-sampled-twice",
         _edit(ev, lambda m: m["spec"].update(
             promptSet={"recorded": {}}, generation={"samplesPerPrompt": 3},
             targets=[{"name": "gpt-4", "recorded": {"model": "gpt-4o"}},
                      m["spec"]["targets"][1]])),
         "spec.generation.samplesPerPrompt"),
    Case("ev-recorded-target-as-judge",
         _edit(ev, lambda m: m["spec"].update(
             promptSet={"recorded": {}}, scorers={"judge": {"target": "gpt-4"}},
             targets=[{"name": "gpt-4", "recorded": {"model": "gpt-4o"}},
                      m["spec"]["targets"][1]])),
         "spec.scorers.judge.target"),
    Case("ev-recorded-min-prompts-zero",
         _edit(ev, _set("spec.promptSet", {"recorded": {"minPrompts": 0}})),
         "spec.promptSet.recorded.minPrompts"),
    Case("ev-one-target-only",
         _edit(ev, lambda m: m["spec"].update(targets=m["spec"]["targets"][:1])),
         "spec.targets"),
)
