"""What the bot, the runners and the updater share: settings, Redis keys, payloads, queue and stores."""
