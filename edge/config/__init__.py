"""Lane configuration: typed models, loading with precise errors, secrets, JSON Schema.

One YAML file describes one lane. Unknown keys are errors. Every error names the file, the
line and column in it, and the key path (``mqtt.tls.ca_file``). Secrets are never written
inline: a secret field holds a reference to an environment variable, a file, or a systemd
credential (a file in ``$CREDENTIALS_DIRECTORY``, loaded with ``LoadCredential=``).

One module per section, beside the models it needs: ``lane`` (the root: identity, devices,
telemetry, metrics, scripted), ``mqtt``, ``storage``, ``recognition``, ``fusion``,
``devices``; ``secret`` (secret references), ``base`` (strict models, ids); ``load``
(parse, load, overrides, the JSON schema) and ``problems`` (errors located in the YAML,
shared with the broker and register configs). Callers import from ``edge.config``.
"""

from __future__ import annotations

from edge.config.base import IDENTIFIER, StrictModel
from edge.config.devices import DeviceConfig
from edge.config.fusion import FusionConfig
from edge.config.lane import (
    DUPLICATE_DEVICE,
    Direction,
    LaneConfig,
    LaneType,
    MetricsConfig,
    ScriptedConfig,
    TelemetryConfig,
)
from edge.config.load import (
    SecretsMode,
    config_json_schema,
    load_config,
    parse_config,
    with_overrides,
)
from edge.config.mqtt import MqttConfig, TlsConfig
from edge.config.problems import _clean_loc, _Locator, _message
from edge.config.recognition import RecognitionConfig
from edge.config.secret import MISSING_CREDENTIAL, SecretRef
from edge.config.storage import StorageConfig

__all__ = [
    "DUPLICATE_DEVICE",
    "IDENTIFIER",
    "MISSING_CREDENTIAL",
    "DeviceConfig",
    "Direction",
    "FusionConfig",
    "LaneConfig",
    "LaneType",
    "MetricsConfig",
    "MqttConfig",
    "RecognitionConfig",
    "ScriptedConfig",
    "SecretRef",
    "SecretsMode",
    "StorageConfig",
    "StrictModel",
    "TelemetryConfig",
    "TlsConfig",
    "_Locator",  # the error locator, shared by edge.broker and edge.site.config
    "_clean_loc",
    "_message",
    "config_json_schema",
    "load_config",
    "parse_config",
    "with_overrides",
]
