"""ATLAS task-worker: the durable verify-repair loop."""
