# safebox — the two commands a newcomer needs are `make run` and `make test`.

CARGO ?= cargo

.PHONY: run build test fmt lint

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
