"""eachsense-bot: each::sense in Discord and Slack. The platform-neutral core lives here."""

__version__ = "0.1.0"
