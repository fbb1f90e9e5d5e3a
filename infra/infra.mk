# Infrastructure targets, included by the top-level Makefile (see infra/README.md).
# Usable alone too: make -f infra/infra.mk deploy-local

VENV ?= .venv
PY ?= $(VENV)/bin/python
# Parameters of make deploy: copy infra/params.example.json to infra/params.json.
INFRA_PARAMS ?= infra/params.json
LAMBDA_RUST_TARGET ?= aarch64-unknown-linux-gnu
LAMBDA_FUNCTIONS := replicate verify restore
# make deploy-local: the moto server ($AWS_ENDPOINT_URL, or started on this one) and names.
LOCAL_ENDPOINT ?= $(or $(AWS_ENDPOINT_URL),http://127.0.0.1:5000)
LOCAL_STACK ?= lifeboat
LOCAL_SOURCE_BUCKETS ?= lifeboat-source
LOCAL_BACKUP_BUCKET ?= lifeboat-backup
LOCAL_STATE_DIR ?= target

.PHONY: lint-infra build deploy deploy-local

lint-infra: ## cfn-lint on the CloudFormation templates (infra/*.yaml)
	$(VENV)/bin/cfn-lint infra/*.yaml

build: ## arm64 Lambda zips with cargo lambda: dist/replicate.zip, dist/verify.zip, dist/restore.zip
	@rustup target list --installed 2>/dev/null | grep -qx '$(LAMBDA_RUST_TARGET)' \
	  || rustup target add $(LAMBDA_RUST_TARGET) \
	  || { echo "make build: the Rust target $(LAMBDA_RUST_TARGET) is not installed and 'rustup target add $(LAMBDA_RUST_TARGET)' failed; the arm64 Lambda zips need it (install it where rustup can reach the network, then rerun make build)" >&2; exit 1; }
	@test -x $(VENV)/bin/cargo-lambda || { echo "make build: $(VENV)/bin/cargo-lambda is missing: run make setup (pip install cargo-lambda)" >&2; exit 1; }
	PATH="$(abspath $(VENV))/bin:$$PATH" $(VENV)/bin/cargo-lambda lambda build --release --arm64 --output-format zip $(foreach f,$(LAMBDA_FUNCTIONS),--bin $(f))
	@mkdir -p dist
	@for f in $(LAMBDA_FUNCTIONS); do cp target/lambda/$$f/bootstrap.zip dist/$$f.zip && echo "dist/$$f.zip"; done

deploy: ## deploy the backup and source stacks to AWS with the AWS CLI (parameters: infra/params.json, see infra/README.md)
	$(PY) infra/lifeboat_infra.py deploy --params $(INFRA_PARAMS)

deploy-local: ## deploy both stacks into the local moto server (started if none answers) and apply what moto skips
	$(PY) infra/lifeboat_infra.py deploy-local --endpoint $(LOCAL_ENDPOINT) --stack-name $(LOCAL_STACK) \
	  --source-buckets $(LOCAL_SOURCE_BUCKETS) --backup-bucket $(LOCAL_BACKUP_BUCKET) --state-dir $(LOCAL_STATE_DIR)
