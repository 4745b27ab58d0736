"""The ModelDeployment half of the operator: resolve on the Hub (hub.py) and size (gpu.py) ->
build the children (builders.py and ../runtimes, pure) -> plan (../plan.py, pure) -> execute
(kube.py) -> compose the status (status.py, pure). reconcile.py runs those steps."""
