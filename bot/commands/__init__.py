"""The commands people run, typed as `!name` or as slash commands: parsing them, who may run them, and what each
answers (bot/slash/ wraps the same functions)."""
