"""SLaM: can an open small language model replace an LLM API? Quality, latency and cost."""

__version__ = "0.1.0"
