# Stamp's tasks. Every target installs what it needs (the pinned Terraform goes to .tools/).
#   make demo                 build, check and render every fixture account, show a rendered tree
#   make test                 the whole test suite, with the real (pinned) Terraform
#   make bench                time check and render on a synthetic 1,000-account organisation
#   make check                stamp check
#   make render ACCOUNT=x     stamp render x
#   make ci                   what CI runs: format, lints, tests

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

.PHONY: help build terraform demo test lint ci check render bench clean

help:
	@sed -n '1,/^$$/p' Makefile | sed 's/^# \{0,1\}//'

build:
	$(CARGO) build --quiet

$(TERRAFORM): scripts/install-terraform.sh
	scripts/install-terraform.sh >/dev/null
	@touch $@

terraform: $(TERRAFORM)

demo: build
	@echo "== stamp list: the accounts of this project"
	@$(STAMP) list
	@echo
	@echo "== stamp check: every account validated, rendered in memory and HCL-checked"
	@$(STAMP) check
	@echo
	@echo "== stamp check on a broken account (fixtures/invalid/several-errors.yaml): every error, with its place"
	@$(STAMP) check fixtures/invalid/several-errors.yaml || true
	@echo
	@echo "== stamp render --all: one plain Terraform root module per account in build/"
	@$(STAMP) render --all
	@echo
	@echo "== build/production/"
	@ls build/production
	@echo
	@echo "== build/production/network.tf (head)"
	@head -n 40 build/production/network.tf

test: build terraform
	STAMP_TEST_TERRAFORM=$(TERRAFORM) $(CARGO) test --all-targets

lint:
	$(CARGO) fmt --check
	$(CARGO) clippy --all-targets --quiet -- -D warnings

ci: lint test

check: build
	$(STAMP) check

render: build
	@test -n "$(ACCOUNT)" || { echo "usage: make render ACCOUNT=<name>"; exit 2; }
	$(STAMP) render $(ACCOUNT)

bench:
	$(CARGO) build --release --quiet
	scripts/bench.py

clean:
	rm -rf build dist .stamp
