"""The service's use cases: submitting and following jobs, report queries, the built-in suite."""
