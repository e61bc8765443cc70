"""The evaluation harness: protocols, metrics, a Ray runner, reports and the CLI."""
