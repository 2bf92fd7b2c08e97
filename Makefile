# Stamp's tasks. Every target installs what it needs (the pinned Terraform goes to .tools/).
#   make demo                 build, check and render every fixture account, then apply, clone,
#                             migrate, reap and destroy the offline local-staging environment
#   make test                 the whole test suite, with the real (pinned) Terraform and checkov
#   make bench                time check, render and the build cache on synthetic 1,000- and
#                             10,000-account organisations
#   make check                stamp check
#   make render ACCOUNT=x     stamp render x
#   make plan ACCOUNT=x       stamp plan x            (make apply / make destroy ACCOUNT=x alike)
#   make stage                apply the staging environment (STAGE, default local-staging)
#   make destroy-stage        destroy it again
#   make ci                   what CI runs: format, lints, tests
#   make fuzz                 run every fuzz target for FUZZ_SECONDS (default 60) each (needs nightly Rust)

SHELL := bash
.SHELLFLAGS := -euo pipefail -c
.DEFAULT_GOAL := help

CARGO ?= cargo
STAMP := target/debug/stamp
TOOLS := $(CURDIR)/.tools
TERRAFORM := $(TOOLS)/bin/terraform
export TF_CLI_CONFIG_FILE := $(TOOLS)/terraformrc
export CHECKPOINT_DISABLE := 1
export PATH := $(TOOLS)/bin:$(PATH)

.PHONY: help build terraform demo test lint ci check render plan apply destroy stage destroy-stage bench fuzz clean

STAGE ?= local-staging

help:
	@sed -n '1,/^$$/p' Makefile | sed 's/^# \{0,1\}//'

build:
	$(CARGO) build --quiet

$(TERRAFORM): scripts/install-terraform.sh
	scripts/install-terraform.sh >/dev/null
	@touch $@

terraform: $(TERRAFORM)

demo: build terraform
	@echo "== stamp list: the accounts of this project"
	@$(STAMP) list
	@echo
	@echo "== stamp check: every account validated, rendered in memory and HCL-checked"
	@$(STAMP) check
	@echo
	@echo "== stamp check on a broken account: every error at once, with its place"
	@$(STAMP) check fixtures/invalid/several-errors.yaml || true
	@echo
	@echo "== stamp render --all: one plain Terraform root module per account in build/"
	@$(STAMP) render --all
	@ls build/production
	@echo
	@echo "== the whole lifecycle of $(STAGE) with the real Terraform ($$($(TERRAFORM) version | head -n1))"
	@echo "-- stamp plan $(STAGE): changes (exit code 2)"
	@$(STAMP) plan $(STAGE) || test $$? -eq 2
	@echo "-- stamp apply $(STAGE): apply, then the archetype's smoke test"
	@$(STAMP) apply $(STAGE) --auto-approve
	@echo "-- stamp plan $(STAGE) again: no changes (exit code 0)"
	@$(STAMP) plan $(STAGE)
	@echo "-- stamp output $(STAGE): the version running there"
	@$(STAMP) output $(STAGE)
	@echo
	@echo "== production-like copies and safe migrations (data hooks of local-platform, SQLite)"
	@echo "-- stamp clone $(STAGE) local-qa --data: local-qa built from the version $(STAGE) runs, its data copied, scrubbed, counted"
	@$(STAMP) --quiet clone $(STAGE) local-qa --data --auto-approve
	@echo "-- stamp migrate $(STAGE) --to-version 1.1.0: standby, snapshot, new version alongside, restore, compare, switch, retire"
	@$(STAMP) --quiet migrate $(STAGE) --to-version 1.1.0 --auto-approve | tail -n 12
	@echo "-- stamp history $(STAGE): who deployed which version where, newest first (the ledger)"
	@$(STAMP) history $(STAGE) --limit 5
	@echo "-- stamp playground new demo-play, then the kill switch reaps it"
	@$(STAMP) --quiet playground new demo-play --from $(STAGE) --owner demo@acme.example --ttl 1h --auto-approve | tail -n 3
	@$(STAMP) reap --dry-run
	@$(STAMP) --quiet reap --all-ephemeral --confirm kill-switch
	@echo "-- stamp destroy local-qa $(STAGE)"
	@$(STAMP) destroy local-qa $(STAGE) --auto-approve

# The tests use real components: the pinned Terraform, a PostgreSQL server (state backend test),
# Chromium (HTML report test), the pinned checkov (policy test of the AWS blueprints) and a
# real provider built from a Python provider framework, served from a filesystem mirror that
# stands in for the registry (provider cache test). Each install script is quick when its tool
# is already there.
test: build terraform
	pg="$$(scripts/install-postgres.sh)"; \
	chromium="$$(scripts/install-chromium.sh)"; \
	checkov="$$(scripts/install-checkov.sh)"; \
	provider_origin="$$(scripts/install-test-provider.sh)"; \
	STAMP_TEST_TERRAFORM=$(TERRAFORM) STAMP_TEST_PG="$$pg" STAMP_TEST_CHROMIUM="$$chromium" \
	STAMP_TEST_CHECKOV="$$checkov" STAMP_TEST_PROVIDER_ORIGIN="$$provider_origin" \
	$(CARGO) test --all-targets

lint:
	$(CARGO) fmt --check
	$(CARGO) clippy --all-targets --quiet -- -D warnings

ci: lint test

check: build
	$(STAMP) check

render: build
	@test -n "$(ACCOUNT)" || { echo "usage: make render ACCOUNT=<name>"; exit 2; }
	$(STAMP) render $(ACCOUNT)

plan apply destroy: build terraform
	@test -n "$(ACCOUNT)" || { echo "usage: make $@ ACCOUNT=<name>"; exit 2; }
	$(STAMP) $@ $(ACCOUNT)

stage: build terraform
	$(STAMP) apply $(STAGE) --auto-approve

destroy-stage: build terraform
	$(STAMP) destroy $(STAGE) --auto-approve

bench: terraform
	$(CARGO) build --release --quiet
	scripts/bench.py

# cargo-fuzz (libFuzzer) on the targets in fuzz/: the YAML loader, the account loader (load,
# validate, render), the output guard and templates. New inputs go to fuzz/work/ (not kept),
# inputs that fail to fuzz/artifacts/: once fixed, copy them into fuzz/corpus/<target>/, the
# seed corpus `make test` replays.
FUZZ_SECONDS ?= 60
FUZZ_TARGETS ?= yaml account guard template
fuzz:
	@command -v cargo-fuzz >/dev/null || $(CARGO) install cargo-fuzz --locked
	@for target in $(FUZZ_TARGETS); do \
	  echo "== fuzz $$target for $(FUZZ_SECONDS)s"; \
	  mkdir -p fuzz/work/$$target; \
	  (cd fuzz && $(CARGO) +nightly fuzz run -O $$target work/$$target corpus/$$target -- -max_total_time=$(FUZZ_SECONDS) -max_len=8192) || exit 1; \
	done

clean:
	rm -rf build dist .stamp
