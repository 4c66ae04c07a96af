# The two commands: `make run` and `make test`. Both set up everything they need
# on a fresh machine (virtualenv, Python packages, Debian packages for tests).

# The interpreter: the distribution's CPython when it is 3.11 or newer and can make a virtualenv, else the
# first python3 on PATH. Debian's is built with PGO and LTO and linked statically; a CPython compiled without
# them (pyenv's default) spent 20-45% more CPU on the same letter here (bench/crypto.py, bench/e2e.py; README,
# "Running in production"). PYTHON=... chooses another.
PYTHON ?= $(shell for p in /usr/bin/python3 python3; do \
            $$p -c 'import sys, ensurepip, venv; sys.exit(sys.version_info < (3, 11))' 2>/dev/null && { echo $$p; break; }; \
          done)
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp
# Debian packages the tests need: SoftHSM2 (PKCS#11 signer), Thai fonts (stamps),
# poppler (render stamped PDFs), Chromium (browser tests of the console), Prometheus (promtool checks and
# tests the alert rules in config/prometheus; the server the package starts under systemd is stopped),
# xmlsec1 (a second libxmlsec1 build that must verify the signatures the gateway writes).
DEBS   := softhsm2 fonts-thai-tlwg poppler-utils chromium prometheus xmlsec1

.PHONY: run test test-fast lint venv system-deps bench conformance fuzz-explore clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[test]'
	touch $(STAMP)

venv: $(STAMP)

system-deps:
	@missing=""; for p in $(DEBS); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
	  if [ "$$(id -u)" = 0 ]; then \
	    echo "installing Debian packages:$$missing"; \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $$missing >/dev/null; \
	    case "$$missing" in *" prometheus"*) [ -d /run/systemd/system ] && systemctl disable --now -q prometheus || true;; esac; \
	  else echo "please install (as root): apt-get install$$missing" >&2; exit 1; fi; \
	fi

# The national example directory (11,174 agencies, config/national/) is imported on the first start.
run: $(STAMP)
	GATEWAY_DIRECTORY_PATH=$${GATEWAY_DIRECTORY_PATH:-config/directory.national.json} $(BIN)/gateway serve

# The house: pyflakes/isort/bugbear/pyupgrade, types, and the stage layers (pyproject.toml).
lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/mypy
	$(BIN)/lint-imports

# Two workers (pytest-xdist): the whole suite passed three runs out of three on two cores, 599, 381 and 304 s,
# against 547 s serial (loads 1-5 from other work on the machine); each worker starts its own embedded
# PostgreSQL, development PKI and Chromium.
test: $(STAMP) system-deps lint
	$(BIN)/pytest -q -p no:cacheprovider -n 2

test-fast: $(STAMP)
	$(BIN)/pytest -q -p no:cacheprovider -m "not slow and not browser"

bench: $(STAMP)
	$(BIN)/python bench/submit.py --quick
	$(BIN)/python bench/console.py --quick

conformance: $(STAMP)
	$(BIN)/pytest -q conformance

# API fuzzing, exploring: 1,000 random examples per operation of the OpenAPI document (make test runs 50,
# the same every run), and ten times the property tests' examples. Findings: test-artifacts/fuzz/.
fuzz-explore: $(STAMP)
	SCHEMATHESIS_EXAMPLES=1000 HYPOTHESIS_PROFILE=explore $(BIN)/pytest -q -p no:cacheprovider \
	    tests/fuzz/test_schemathesis.py tests/fuzz/test_console_ecms_properties.py

clean:
	rm -rf $(VENV) build *.egg-info test-artifacts
