"""The kopf operator that reconciles ModelDeployment and Evaluation resources."""
