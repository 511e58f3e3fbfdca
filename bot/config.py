"""Settings, read from the environment and `.env` (pydantic-settings).

Every remote base URL is a setting so a deployment can point at a proxy and a test at a fake.
Tokens are `SecretStr`: their repr is `'**********'`, so a logged Settings leaks nothing.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from bot.i18n import LANGUAGES, supported


def _split_csv(value: object) -> object:
    """Lists come from env as `a,b,c` (also accept JSON-ish lists already parsed)."""
    if isinstance(value, str):
        return [part.strip() for part in value.split(",") if part.strip()]
    return value


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_file=".env", env_file_encoding="utf-8", extra="ignore", populate_by_name=True
    )

    # each::sense (the agent)
    eachsense_api_key: SecretStr | None = None
    eachsense_base_url: str = "https://eachsense-agent.core.eachlabs.run/v1"
    eachsense_model: str = "eachsense/beta"
    eachsense_idle_timeout: float = Field(300.0, gt=0)
    eachsense_connect_timeout: float = Field(15.0, gt=0)
    eachsense_max_retries: int = Field(3, ge=0)
    eachsense_max_retry_wait: float = Field(60.0, ge=0)
    eachsense_busy_retry_seconds: float = Field(30.0, ge=0)

    # each::api predictions and each::workflows
    eachlabs_api_url: str = "https://api.eachlabs.ai/v1"
    eachlabs_workflows_url: str = "https://workflows.eachlabs.run/api/v1"
    workflows_api: Literal["current", "legacy"] = "current"
    job_poll_initial: float = Field(2.0, gt=0)
    job_poll_max: float = Field(15.0, gt=0)
    job_timeout: float = Field(1800.0, gt=0)
    public_url: str | None = None

    # storage
    database_url: str = "sqlite:///eachsense-bot.db"
    # several replicas on one database (PostgreSQL): see bot/replicas.py
    replica_id: str | None = None
    replica_ttl: float = Field(60.0, gt=0)
    coordinate_replicas: Literal["auto", "on", "off"] = "auto"

    # Slack
    slack_bot_token: SecretStr | None = None
    slack_app_token: SecretStr | None = None
    slack_signing_secret: SecretStr | None = None
    slack_api_url: str = "https://slack.com/api/"
    slack_native_streaming: bool = False
    # offered when a person opens the assistant (at most 4, separated by `|`)
    slack_suggested_prompts: Annotated[list[str], NoDecode] = Field(
        default_factory=lambda: [
            "Draw a lighthouse at dawn",
            "Make a 5 second video of ocean waves",
            "What can you make for me?",
        ]
    )

    # Discord
    discord_token: SecretStr | None = None
    discord_api_url: str = "https://discord.com/api/v10"
    discord_gateway_url: str = "wss://gateway.discord.gg"
    discord_guild_ids: Annotated[list[int], NoDecode] = Field(default_factory=list)
    discord_message_content: bool = True
    discord_shard_count: int | None = Field(None, gt=0)
    discord_shard_ids: Annotated[list[int], NoDecode] = Field(default_factory=list)

    # the bot's own HTTP server (Slack HTTP mode, webhooks, health)
    http_host: str = "0.0.0.0"
    http_port: int = 8080

    # behaviour
    bot_admins: Annotated[list[str], NoDecode] = Field(default_factory=list)
    max_prompt_chars: int = Field(10_000, gt=0)  # each::sense accepts up to 10,000
    max_concurrent_turns: int = Field(64, gt=0)
    max_turns_per_user: int = Field(3, gt=0)
    max_turn_seconds: float = Field(900.0, gt=0)
    shutdown_grace: float = Field(8.0, ge=0)
    live_edits_per_second: float = Field(100.0, ge=0)
    event_dedupe_ttl: float = Field(24 * 3600.0, gt=0)
    media_allow_insecure: bool = False
    media_max_bytes: int = Field(200 * 1024 * 1024, gt=0)
    media_fetch_timeout: float = Field(120.0, gt=0)
    media_fetch_deadline: float = Field(300.0, gt=0)
    # how long each::storage keeps a re-hosted reference image (seconds; 60 s to 1 year)
    reference_image_ttl: int = Field(30 * 24 * 3600, ge=60, le=31_536_000)

    # operators: access lists (ids; deny beats allow; admins are never locked out), daily
    # quotas per UTC day (0 = off; admins may override them per workspace and channel with
    # `/sense-admin`) and how long usage events are kept
    access_allow_users: Annotated[list[str], NoDecode] = Field(default_factory=list)
    access_deny_users: Annotated[list[str], NoDecode] = Field(default_factory=list)
    access_allow_roles: Annotated[list[str], NoDecode] = Field(default_factory=list)
    access_deny_roles: Annotated[list[str], NoDecode] = Field(default_factory=list)
    access_allow_channels: Annotated[list[str], NoDecode] = Field(default_factory=list)
    access_deny_channels: Annotated[list[str], NoDecode] = Field(default_factory=list)
    access_roles_cache_seconds: float = Field(300.0, ge=0)
    quota_turns_per_user_day: int = Field(0, ge=0)
    quota_runs_per_user_day: int = Field(0, ge=0)
    quota_turns_per_channel_day: int = Field(0, ge=0)
    quota_runs_per_channel_day: int = Field(0, ge=0)
    usage_keep_days: int = Field(400, ge=31)

    # The language of people whose own the platform does not say, and of the shell (which
    # else follows LC_ALL / LC_MESSAGES / LANG): en, fr or ja (a locale like fr-FR is fine).
    bot_language: str | None = None

    # the offline simulator
    simulator_host: str = "127.0.0.1"
    simulator_port: int = 8765
    simulator_shape: Literal["openai", "raw"] = "openai"
    simulator_speed: float = Field(1.0, gt=0)

    log_level: str = "INFO"
    log_format: Literal["text", "json"] = "text"

    @field_validator("discord_guild_ids", "discord_shard_ids", "bot_admins", mode="before")
    @classmethod
    def _csv(cls, value: object) -> object:
        return _split_csv(value)

    @field_validator(
        "access_allow_users",
        "access_deny_users",
        "access_allow_roles",
        "access_deny_roles",
        "access_allow_channels",
        "access_deny_channels",
        mode="before",
    )
    @classmethod
    def _access_csv(cls, value: object) -> object:
        return _split_csv(value)

    @field_validator("slack_suggested_prompts", mode="before")
    @classmethod
    def _prompts(cls, value: object) -> object:
        if isinstance(value, str):
            value = [part.strip() for part in value.split("|") if part.strip()]
        if isinstance(value, list) and len(value) > 4:
            raise ValueError(f"Slack shows at most 4 suggested prompts, not {len(value)}")
        return value

    @field_validator("bot_language", mode="before")
    @classmethod
    def _language(cls, value: object) -> object:
        """`fr-FR` is `fr`; empty is unset; a language without a catalog is refused."""
        if not isinstance(value, str):
            return value
        if not value.strip():
            return None
        language = supported(value)
        if language is None:
            raise ValueError(f"must be one of {', '.join(LANGUAGES)} (or a locale like fr-FR)")
        return language

    @property
    def has_eachsense_key(self) -> bool:
        return bool(self.eachsense_api_key and self.eachsense_api_key.get_secret_value())

    @property
    def slack_enabled(self) -> bool:
        return bool(self.slack_bot_token and (self.slack_app_token or self.slack_signing_secret))

    @property
    def discord_enabled(self) -> bool:
        return bool(self.discord_token)

    @property
    def coordinated(self) -> bool:
        """Whether per-thread order, caps and Stop go through the database: on for
        PostgreSQL (`auto`), where several replicas share it."""
        if self.coordinate_replicas == "auto":
            return self.database_url.lower().startswith(("postgresql:", "postgres:"))
        return self.coordinate_replicas == "on"
