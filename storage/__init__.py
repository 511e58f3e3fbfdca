"""Storage implementations of `bot.ports.Store`."""
