"""Loading a lane config: YAML with precise errors, every problem in one round, the schema.

Unknown keys are errors. Every error names the file, the line and column in it, and the key
path (``mqtt.tls.ca_file``); each device's own keys are checked against its driver's options
model; every secret reference is resolved (``secrets="check"``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal, TypeVar

from pydantic import BaseModel, ValidationError

from edge.config.devices import DeviceConfig
from edge.config.lane import DUPLICATE_DEVICE, LaneConfig
from edge.config.problems import _clean_loc, _Locator, _message
from edge.config.secret import SecretRef
from edge.errors import ConfigError, ConfigProblem, SecretError
from edge.yamlload import MAX_BYTES, decode, load_yaml

SecretsMode = Literal["check", "skip"]
# Where secret references may stand (LaneConfig.secrets() lists the same for a valid config).
_SECRET_PLACES: tuple[tuple[str, ...], ...] = (
    ("mqtt", "password"),
    ("mqtt", "tls", "key"),
    ("mqtt", "tls", "key_password"),
)


M = TypeVar("M", bound=BaseModel)


def with_overrides(model: M, overrides: dict[str, Any], *, section: str) -> M:
    """``model`` with command-line ``overrides`` applied; a bad value is a ConfigError naming
    ``section.key`` in the words a bad config file gets."""
    try:
        return type(model).model_validate({**model.model_dump(), **overrides})
    except ValidationError as exc:
        problems = [
            ConfigProblem(
                "command line",
                None,
                None,
                ".".join([section, *(str(p) for p in _clean_loc(tuple(error["loc"])))]),
                _message(error, type(model)),
            )
            for error in exc.errors()
        ]
        raise ConfigError(problems) from None


def parse_config(
    text: str, *, source: str = "<string>", secrets: SecretsMode = "check"
) -> LaneConfig:
    """Validate a lane config given as YAML text. Raises ConfigError listing every problem of
    the file in one round: YAML duplicates, structure, each device's own keys and, unless
    ``secrets="skip"``, every secret that does not resolve (``ConfigProblem.secret``)."""
    document = load_yaml(text, source=source)
    data = document.data
    if not isinstance(data, dict):
        raise ConfigError(
            [*document.problems, ConfigProblem(source, 1, 1, "", "a lane config is a YAML mapping")]
        )
    locator = _Locator(document.root)

    def problem(loc: tuple[int | str, ...], message: str, *, secret: bool = False) -> ConfigProblem:
        line, column = locator.find(loc)
        return ConfigProblem(source, line, column, ".".join(map(str, loc)), message, secret)

    problems = [*document.problems, *_duplicate_device_ids(data, problem)]
    config: LaneConfig | None = None
    try:
        config = LaneConfig.model_validate(data)
    except ValidationError as exc:
        for error in exc.errors():
            if error["type"] == DUPLICATE_DEVICE:
                continue  # located at the duplicate by _duplicate_device_ids
            loc = _clean_loc(tuple(error["loc"]))
            problems.append(problem(loc, _message(error, LaneConfig)))
    problems += _device_problems(data, problem)
    if secrets == "check":
        problems += _secret_problems(data, problem)
    if problems or config is None:
        problems.sort(key=lambda p: (p.line or 0, p.column or 0))  # in the file's order
        raise ConfigError(problems)
    config._source = source
    return config


_Problem = Any  # the ``problem(loc, message, *, secret)`` closure of parse_config


def _raw_devices(data: dict[str, Any]) -> list[tuple[int, dict[str, Any]]]:
    devices = data.get("devices")
    if not isinstance(devices, list):
        return []
    return [(i, d) for i, d in enumerate(devices) if isinstance(d, dict)]


def _duplicate_device_ids(data: dict[str, Any], problem: _Problem) -> list[ConfigProblem]:
    """A device id used before, at the duplicate's own ``id`` line."""
    first: dict[str, int] = {}
    found = []
    for index, device in _raw_devices(data):
        device_id = device.get("id")
        if not isinstance(device_id, str):
            continue
        if device_id in first:
            found.append(
                problem(
                    ("devices", index, "id"),
                    f"device id {device_id!r} is used twice (first by devices.{first[device_id]})",
                )
            )
        else:
            first[device_id] = index
    return found


def _device_problems(data: dict[str, Any], problem: _Problem) -> list[ConfigProblem]:
    """Each device's own keys, checked against its driver's options model (also when other
    parts of the file are wrong)."""
    from drivers.errors import DriverConfigError, MissingExtraError
    from drivers.registry import get_spec, validate_options

    problems = []
    for index, raw in _raw_devices(data):
        try:
            device = DeviceConfig.model_validate(raw)
        except ValidationError:
            continue  # its own problems are in LaneConfig's
        try:
            options = dict(device.model_extra or {})
            if device.password is not None:
                options["password"] = "(secret)"  # resolved and checked with the secrets
            validate_options(device.kind, options)
        except (DriverConfigError, MissingExtraError) as exc:
            problems.append(problem(("devices", index, "kind"), str(exc)))
        except ValidationError as exc:
            model = get_spec(device.kind).options_model()
            for error in exc.errors():
                loc = ("devices", index, *_clean_loc(tuple(error["loc"])))
                problems.append(
                    problem(loc, _message(error, model, extra=frozenset(DeviceConfig.model_fields)))
                )
    return problems


def _secret_problems(data: dict[str, Any], problem: _Problem) -> list[ConfigProblem]:
    """Every well-formed secret reference that cannot be read here, at its own line."""
    places: list[tuple[tuple[int | str, ...], Any]] = []
    for place in _SECRET_PLACES:
        value: Any = data
        for part in place:
            value = value.get(part) if isinstance(value, dict) else None
        places.append((place, value))
    for index, device in _raw_devices(data):
        places.append((("devices", index, "password"), device.get("password")))
    problems = []
    for loc, value in places:
        if value is None:
            continue
        try:
            ref = SecretRef.model_validate(value)
        except ValidationError:
            continue  # an inline or malformed reference is a structural problem, reported
        try:
            ref.read()
        except SecretError as exc:
            problems.append(problem(loc, str(exc), secret=True))
    return problems


def load_config(path: str | Path, *, secrets: SecretsMode = "check") -> LaneConfig:
    """Read and validate a lane config file (see parse_config)."""
    path = Path(path)
    try:
        with path.open("rb") as handle:
            data = handle.read(MAX_BYTES + 1)
    except OSError as exc:
        raise ConfigError(
            [ConfigProblem(str(path), None, None, "", f"cannot read: {exc.strerror}")]
        ) from None
    return parse_config(decode(data, source=str(path)), source=str(path), secrets=secrets)


def config_json_schema() -> dict[str, Any]:
    schema = LaneConfig.model_json_schema()
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["$id"] = "lane.config/1"
    return schema
