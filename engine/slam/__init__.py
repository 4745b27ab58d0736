"""SLaM: evaluate open small language models against an incumbent LLM API (quality, latency, cost)."""

__version__ = "0.1.0"
