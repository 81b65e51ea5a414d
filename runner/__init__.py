"""The runner process: loads a model once and answers queued jobs with it (`python -m runner`)."""
