"""Where alerts go, as a Dagster resource: Slack (through dagster-slack), a webhook, or the sensor's Dagster log.

Why a resource: the alert and delivery sensors used to read the environment and build Slack's client inside
every tick. Now the destination is configuration the code location declares once (``definitions.py``), the UI
shows it on the resource page, its secrets (Slack's token, a webhook URL, which for Slack's incoming webhooks
is itself a secret) are ``EnvVar``s whose names the UI shows instead of their values, and a test or another
deployment hands the sensors a different one. Dagster builds the resource for each sensor evaluation (that
is how sensor resources work: initialized per tick, EnvVars resolved then), so a rotated secret is picked up
without a restart.

Which destination: Slack when a token and a channel are set (``slack_api_url`` optionally replaces
``https://slack.com/api/``), else the webhook (a POST of one JSON object per alert), else the Dagster log.
"""

from __future__ import annotations

import json
import urllib.request
from collections.abc import Callable
from typing import Protocol

import dagster as dg
from dagster_slack import SlackResource
from pydantic import Field

from customer360 import settings

WEBHOOK_TIMEOUT_SECONDS = 10


class Alert(Protocol):
    """What a destination sends: a rejected file (``customer360.defs.sensors.alerts``) or a day's deliveries."""

    @property
    def text(self) -> str: ...

    def payload(self) -> dict[str, object]: ...


class AlertDestination(Protocol):
    name: str

    def send(self, alert: Alert) -> None:
        """Deliver one alert; raise when it was not delivered."""
        ...


class SlackDestination:
    name = "slack"

    def __init__(self, slack: SlackResource, channel: str, api_url: str | None = None) -> None:
        self.client = slack.get_client()
        if api_url:
            # A Slack-compatible gateway or egress proxy instead of https://slack.com/api/.
            self.client.base_url = api_url
        self.channel = channel

    def send(self, alert: Alert) -> None:
        # slack_sdk raises SlackApiError on a response with ok=false.
        self.client.chat_postMessage(channel=self.channel, text=alert.text)


class WebhookDestination:
    name = "webhook"

    def __init__(self, url: str) -> None:
        self.url = url

    def send(self, alert: Alert) -> None:
        request = urllib.request.Request(
            self.url,
            data=json.dumps(alert.payload()).encode(),
            headers={"Content-Type": "application/json"},
            method="POST",
        )
        # urlopen raises HTTPError for any status >= 400.
        with urllib.request.urlopen(request, timeout=WEBHOOK_TIMEOUT_SECONDS) as response:  # noqa: S310 - configured URL
            response.read()


class LogDestination:
    name = "dagster_log"

    def __init__(self, warn: Callable[[str], object]) -> None:
        self.warn = warn

    def send(self, alert: Alert) -> None:
        self.warn(alert.text)


class AlertsResource(dg.ConfigurableResource):
    """Where the sensors send alerts; ``destination(warn)`` gives the one configured."""

    slack_token: str | None = Field(default=None, description="Slack bot token (an EnvVar: SLACK_TOKEN).")
    slack_channel: str | None = Field(default=None, description="Slack channel the alerts are posted to.")
    slack_api_url: str | None = Field(
        default=None, description="A Slack-compatible API instead of https://slack.com/api/ (a gateway, a proxy)."
    )
    webhook_url: str | None = Field(
        default=None, description="URL receiving one JSON object per alert (an EnvVar: it may hold a secret)."
    )

    def destination(self, warn: Callable[[str], object]) -> AlertDestination:
        """Slack, else the webhook, else ``warn`` (the sensor's Dagster log)."""
        # Resolves the EnvVars when used outside a sensor evaluation (in one, Dagster resolved them already).
        resolved = self.process_config_and_initialize()
        token, channel, url = (
            (value or "").strip() for value in (resolved.slack_token, resolved.slack_channel, resolved.webhook_url)
        )
        if token and channel:
            return SlackDestination(SlackResource(token=token), channel, (resolved.slack_api_url or "").strip() or None)
        if url:
            return WebhookDestination(url)
        return LogDestination(warn)


def alerts_resource_from_env() -> AlertsResource:
    """The destination the environment configures (``customer360.settings``); secrets as EnvVars."""
    token, webhook = settings.env(settings.SLACK_TOKEN_ENV), settings.env(settings.ALERT_WEBHOOK_URL_ENV)
    return AlertsResource(
        slack_token=dg.EnvVar(settings.SLACK_TOKEN_ENV) if token else None,
        slack_channel=settings.env(settings.SLACK_CHANNEL_ENV),
        slack_api_url=settings.env(settings.SLACK_API_URL_ENV),
        webhook_url=dg.EnvVar(settings.ALERT_WEBHOOK_URL_ENV) if webhook else None,
    )
