"""The faults `lane checkpoint score` can inject (edge/site/checkscore.py), by name."""

FAULTS = ("agent_sigkill", "broker_sigkill", "broker_sigstop", "ingest_sigkill", "postgres_restart")
