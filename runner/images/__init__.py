"""Images for models that see: fetched from Discord when a runner starts a job (never carried in Redis), their type
decided from their bytes, scaled down to what the model takes; and the one-line notes on images left out."""
