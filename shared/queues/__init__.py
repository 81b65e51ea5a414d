"""The job and response queues: payloads, building jobs, claiming, completing, posting, and which models are served."""
