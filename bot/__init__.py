"""The gateway process: reads Discord messages, handles consent commands, queues what is addressed to the bot."""
