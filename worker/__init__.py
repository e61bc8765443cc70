"""Worker: hardware probe, engines, workloads, metrics and the agent that runs cells."""
