# safebox — the two commands a newcomer needs are `make run` and `make test`.

CARGO ?= cargo

.PHONY: run build build-mysql test test-bench test-mysql test-redis test-all test-notices fmt lint bench contract

# The MySQL backend needs the system MySQL client library (Debian:
# libmariadb-dev-compat). Where it is installed, tests and lints build it too;
# where it is not, everything else still builds and passes.
MYSQL_FEATURES := --features safebox-infra/mysql,safebox-api/mysql,safebox-server/mysql
HAVE_MYSQL_LIB := $(shell pkg-config --exists mysqlclient 2>/dev/null && echo yes)
TEST_FEATURES ?= $(if $(HAVE_MYSQL_LIB),$(MYSQL_FEATURES))
NEXTEST := $(shell $(CARGO) nextest --version >/dev/null 2>&1 && echo yes)

## run: build a release binary, then create the data dir and development keys,
##      migrate and serve on http://127.0.0.1:49999 (embedded SQLite)
run: build
	./target/release/safebox serve

## build: release build of every crate; the binary is target/release/safebox
build:
	$(CARGO) build --release

## build-mysql: release build that also serves mysql:// URLs (needs the
##              MySQL client library: apt-get install libmariadb-dev-compat)
build-mysql:
	$(CARGO) build --release -p safebox-server --features mysql

## test: every test; those that need MySQL or Redis run when
##       SAFEBOX_TEST_MYSQL_URL / SAFEBOX_TEST_REDIS_URL are set and skip with a
##       notice otherwise (under CI=true they fail instead). nextest when installed.
# The bench driver's tests and the doc tests first: nextest runs neither, and its
# summary should close the run.
test: test-bench
	$(CARGO) test --workspace $(TEST_FEATURES) --doc
	@if [ -n "$(NEXTEST)" ]; then \
		$(CARGO) nextest run --workspace $(TEST_FEATURES) --no-fail-fast; \
	else \
		$(CARGO) test --workspace $(TEST_FEATURES) --no-fail-fast; \
	fi
	@$(MAKE) --no-print-directory test-notices

## test-bench: unit tests of the benchmark driver's parsing and PASS/MISS verdicts
##             (crates/bench/test_run.py; python3, no server, under a second)
test-bench:
	@if command -v python3 >/dev/null 2>&1; then \
		python3 -m unittest discover -s crates/bench -p 'test_*.py'; \
	elif [ "$$CI" = true ]; then \
		echo "error: python3 is missing, so the benchmark driver's tests cannot run" >&2; exit 1; \
	else \
		echo "note: the benchmark driver's tests were skipped: python3 is missing"; \
	fi

# Says which service tests were skipped, after the summary where it is seen.
test-notices:
	@if [ -z "$(HAVE_MYSQL_LIB)" ]; then \
		echo "note: built without MySQL: the client library is missing (apt-get install libmariadb-dev-compat)"; \
	fi
	@if [ -z "$$SAFEBOX_TEST_MYSQL_URL" ]; then \
		echo "note: the MySQL tests were skipped: SAFEBOX_TEST_MYSQL_URL is not set (make test-mysql)"; \
	fi
	@if [ -z "$$SAFEBOX_TEST_REDIS_URL" ]; then \
		echo "note: the Redis tests were skipped: SAFEBOX_TEST_REDIS_URL is not set (make test-redis)"; \
	fi
	@if ! command -v python3 >/dev/null 2>&1; then \
		echo "note: the benchmark driver's tests were skipped: python3 is missing"; \
	fi

# Runs the tests that nextest's filter $(1) selects, with the services $(2)
# made ready by .ci/services (which needs root: it may install and start them).
# Without nextest, every test runs.
define service_tests
	@set -e; services="$$(.ci/services $(2))"; eval "$$services"; \
	if [ -n "$(NEXTEST)" ]; then \
		$(CARGO) nextest run --workspace $(MYSQL_FEATURES) --no-fail-fast -E '$(1)'; \
	else \
		$(CARGO) test --workspace $(MYSQL_FEATURES) --no-fail-fast; \
	fi
endef

## test-mysql: set up MariaDB and a test user (.ci/services), then run the
##             tests that need MySQL
test-mysql:
	$(call service_tests,test(/mysql/),mysql redis)

## test-redis: set up Redis (.ci/services), then run the tests that need Redis
test-redis:
	$(call service_tests,test(/redis/) | binary(redis_adapters),mysql redis)

## test-all: set up MariaDB and Redis, then run every test with both
test-all:
	@set -e; services="$$(.ci/services mysql redis)"; eval "$$services"; \
	$(MAKE) --no-print-directory test TEST_FEATURES="$(MYSQL_FEATURES)"

## fmt: format the code
fmt:
	$(CARGO) fmt --all

## lint: clippy on every target with warnings as errors (with MySQL where its
##       client library is installed)
lint:
	$(CARGO) clippy --workspace --all-targets $(TEST_FEATURES) -- -D warnings

## bench: release build, then load-test safebox against a minimal actix-web baseline
##        and the bcrypt bound on a throwaway database (about 4 minutes); prints
##        the table and writes target/bench/report.{md,json}. BENCH_ARGS passes
##        options to crates/bench/run.py (see `python3 crates/bench/run.py --help`).
BENCH_ARGS ?=
bench:
	$(CARGO) build --release -p safebox-server -p safebox-bench
	python3 crates/bench/run.py $(BENCH_ARGS)

## contract: debug build, then run schemathesis (pinned, installed into
##           target/contract-venv) against openapi.yaml on a throwaway server:
##           no 5xx, and every status code, Content-Type and body as documented.
##           CONTRACT_ARGS passes options to `schemathesis run`.
CONTRACT_VENV ?= target/contract-venv
SCHEMATHESIS_VERSION ?= 4.32.5
CONTRACT_ARGS ?=
contract:
	$(CARGO) build -p safebox-server
	@if ! $(CONTRACT_VENV)/bin/schemathesis --version 2>/dev/null | grep -qF "$(SCHEMATHESIS_VERSION)"; then \
		python3 -m venv $(CONTRACT_VENV) && \
		$(CONTRACT_VENV)/bin/pip install --quiet --disable-pip-version-check "schemathesis==$(SCHEMATHESIS_VERSION)"; \
	fi
	python3 crates/bench/contract.py $(CONTRACT_ARGS)
