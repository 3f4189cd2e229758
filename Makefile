# Two commands on a fresh Debian machine: `make demo` and `make test`.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

.PHONY: demo test test-fast lint venv system-deps bench clean install uninstall wheelhouse bundle

$(BIN)/python:
	@$(PYTHON) -m venv --help >/dev/null 2>&1 && $(PYTHON) -c 'import ensurepip' 2>/dev/null \
	  || ($(SUDO) apt-get update && $(SUDO) apt-get install -y python3-venv)
	$(PYTHON) -m venv $(VENV)

$(VENV)/.installed: $(BIN)/python pyproject.toml setup.py
	@echo "==> installing the agent and its dependencies into $(VENV) (first run: a minute or two)"
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install -e '.[dev]' 2>&1 | tee $(VENV)/install.log \
	  | grep --line-buffered -E '^(Collecting|Successfully|ERROR)' || true
	@# The pipe hides pip's exit code: the install is proven by importing it from elsewhere.
	@cd / && $(abspath $(BIN))/python -c 'import edge, onnxruntime, paho.mqtt, pytest' \
	  || (tail -30 $(abspath $(VENV))/install.log; exit 1)
	touch $@

venv: $(VENV)/.installed

# Mosquitto is the broker the tests (and the demo) start on free ports.
system-deps:
	@command -v mosquitto >/dev/null 2>&1 || [ -x /usr/sbin/mosquitto ] \
	  || ($(SUDO) apt-get update && $(SUDO) apt-get install -y --no-install-recommends mosquitto mosquitto-clients)
	@# systemd-analyze checks the unit files (tests/ops/test_units.py).
	@command -v systemd-analyze >/dev/null 2>&1 \
	  || ($(SUDO) apt-get update && $(SUDO) apt-get install -y --no-install-recommends systemd)
	@# openssl makes the broker certificates of the TLS diag test (tests/diag/test_tls.py).
	@command -v openssl >/dev/null 2>&1 \
	  || ($(SUDO) apt-get update && $(SUDO) apt-get install -y --no-install-recommends openssl)
	@# initdb/pg_ctl start the register's private PostgreSQL (tests/site, edge/devtools/localdb.py).
	@command -v initdb >/dev/null 2>&1 || ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 \
	  || ($(SUDO) apt-get update && $(SUDO) apt-get install -y --no-install-recommends postgresql)
	@# nats-server runs the JetStream cluster of the forwarding tests (tests/site/test_forward.py).
	@command -v nats-server >/dev/null 2>&1 \
	  || ($(SUDO) apt-get update && $(SUDO) apt-get install -y --no-install-recommends nats-server)

demo: venv system-deps
	$(BIN)/lane demo

lint: venv
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

test: venv system-deps lint
	$(BIN)/python -m pytest

# The quick tier (under a minute): pure tests, no broker, no device, no agent process.
FAST_TESTS := tests/unit tests/fusion tests/drivers/test_codecs.py tests/recognition/test_grammar.py \
  tests/recognition/test_region.py tests/site/test_intake.py
test-fast: venv
	$(BIN)/python -m pytest -q -m "not slow" $(FAST_TESTS)

bench: venv system-deps
	$(BIN)/python -m bench.publish

# A lane controller: venv under /opt, the systemd unit, an example config under /etc.
# Offline: `make install WHEELHOUSE=build/wheelhouse` (docs/operations.md).
install:
	$(SUDO) $(PYTHON) -m edge.install $(if $(WHEELHOUSE),--wheelhouse $(WHEELHOUSE))

uninstall:
	$(SUDO) $(PYTHON) -m edge.install uninstall

# Wheels of the agent and every dependency, for a controller with the same OS, CPU, Python.
BUILD ?= build
wheelhouse: venv
	$(BIN)/python -m pip wheel --quiet --wheel-dir $(BUILD)/wheelhouse .

# One tarball to carry to a controller without internet: the source tree and the wheels
# (inside it always under build/wheelhouse, whatever BUILD is here).
bundle: wheelhouse
	tar czf $(abspath $(BUILD))/lane-agent-bundle.tar.gz \
	  --transform 's,^wheelhouse,build/wheelhouse,;s,^,lane-agent/,' \
	  $$(git ls-files) -C $(BUILD) wheelhouse
	@echo "bundle: $(BUILD)/lane-agent-bundle.tar.gz"

clean:
	rm -rf $(VENV) .pytest_cache build *.egg-info
