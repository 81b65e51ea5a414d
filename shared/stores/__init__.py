"""What the bot keeps per user and per server: consent, model choices, personas, channels and roles, shared threads."""
