"""Slack adapter (slack-bolt async)."""
