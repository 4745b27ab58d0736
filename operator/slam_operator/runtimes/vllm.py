"""vLLM's OpenAI-compatible server, on GPUs or (spec.gpus 0) on vLLM's CPU backend.

The two differ only where vLLM's CPU installation guide says they must: the CPU release image,
the bfloat16 dtype it recommends, the KV cache given in GiB by VLLM_CPU_KVCACHE_SPACE (on GPUs
vLLM takes a share of GPU memory instead), and no tensor parallelism across GPUs. Shared memory
(/dev/shm, which the guide's `docker run --shm-size` provides) is mounted for both.
"""

from __future__ import annotations

from slam_operator.runtimes.base import RuntimeInput, base_container, hf_env

IMAGE = "vllm/vllm-openai:v0.34.0"
CPU_IMAGE = "public.ecr.aws/q9t5s3a7/vllm-cpu-release-repo:v0.34.0"
# The key of the operator's configured CPU image (settings.runtime_images, SLAM_VLLM_CPU_IMAGE).
CPU_IMAGE_KEY = "vllm-cpu"


def container(inp: RuntimeInput) -> dict:
    s = inp.spec
    args = [
        "--model", s.model.id,
        "--revision", inp.revision,
        "--served-model-name", s.served_model_name,
        "--host", "0.0.0.0",
        "--port", str(s.port),
    ]
    if s.quantization:
        args += ["--quantization", s.quantization]
    if s.max_total_tokens:
        args += ["--max-model-len", str(s.max_total_tokens)]
    if s.max_concurrent_sequences:
        args += ["--max-num-seqs", str(s.max_concurrent_sequences)]
    env = hf_env(inp)
    if s.on_cpu:
        args += ["--dtype", "bfloat16"]
        if inp.kv_cache_gib is not None:
            env.append({"name": "VLLM_CPU_KVCACHE_SPACE", "value": str(inp.kv_cache_gib)})
        return base_container(inp, CPU_IMAGE, args, env)
    if s.gpu_count > 1:
        args += ["--tensor-parallel-size", str(s.gpu_count)]
    return base_container(inp, IMAGE, args, env)
