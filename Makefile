# safebox — the two commands a newcomer needs are `make run` and `make test`.

CARGO ?= cargo

.PHONY: run build test fmt lint bench contract

## run: build a release binary, then create the data dir and development keys,
##      migrate and serve on http://127.0.0.1:49999 (embedded SQLite)
run: build
	./target/release/safebox serve

## build: release build of every crate; the binary is target/release/safebox
build:
	$(CARGO) build --release

## test: every test that needs no external service (nextest when installed)
# Doc tests first: nextest does not run them, and its summary should close the run.
test:
	$(CARGO) test --workspace --doc
	@if $(CARGO) nextest --version >/dev/null 2>&1; then \
		$(CARGO) nextest run --workspace --no-fail-fast; \
	else \
		$(CARGO) test --workspace --no-fail-fast; \
	fi

## fmt: format the code
fmt:
	$(CARGO) fmt --all

## lint: clippy on every target with warnings as errors
lint:
	$(CARGO) clippy --workspace --all-targets -- -D warnings

## bench: release build, then load-test safebox against a minimal actix-web baseline
##        and the bcrypt bound on a throwaway database (about 3 minutes); prints
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
