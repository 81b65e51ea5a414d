"""Running a process: start-up and shutdown, logs, request budgets, reaching Discord, metrics and health."""
