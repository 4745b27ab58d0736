"""The Evaluation half of the operator: observe (reconcile.py) -> decide and compose the status
(status.py, pure) -> plan the ServiceAccount and Job (plan.py, pure; built by job.py) -> execute
(kube.py)."""
