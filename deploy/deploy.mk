# Packaging and deployment. Included from the Makefile (`include deploy/deploy.mk`), which
# defines VENV, BIN and STAMP. Details and the reasons behind each choice: deploy/README.md.
#
#   make package                      build/sentinel-lambda.zip (python3.12, x86_64), import-checked
#   make deploy ENV=prod              iam check + package + `sam deploy --config-env prod`
#   make deploy-cfn ENV=prod S3_BUCKET=my-artifacts   the same with the AWS CLI only
#   make config-upload ENV=prod CONFIG=sentinel.prod.yaml   validate + preflight + SSM parameter

ENV ?= dev
SAM ?= sam
AWS ?= aws
LAMBDA_ZIP ?= build/sentinel-lambda.zip
# e.g. PACKAGE_ARGS="--no-boto3" or "--config sentinel.prod.yaml --include certs"
PACKAGE_ARGS ?=
CONFIG ?=
S3_BUCKET ?=

.PHONY: package deploy deploy-cfn config-upload iam-check iam-write

package: $(STAMP)
	$(BIN)/python -m deploy.build --out $(LAMBDA_ZIP) --verify $(PACKAGE_ARGS)

# The function's policy must equal what the code declares (and the code must declare what it calls).
iam-check: $(STAMP)
	$(BIN)/python -m deploy.iam --check

iam-write: $(STAMP)
	$(BIN)/python -m deploy.iam --write

deploy: iam-check package
	cd deploy && $(SAM) deploy --config-file samconfig.toml --config-env $(ENV) --template-file template.yaml

deploy-cfn: iam-check package
	@test -n "$(S3_BUCKET)" || { echo "deploy-cfn needs S3_BUCKET=<artifact bucket>"; exit 2; }
	$(AWS) cloudformation package --template-file deploy/template.yaml --s3-bucket $(S3_BUCKET) \
	  --s3-prefix sentinel-$(ENV) --output-template-file build/packaged-$(ENV).yaml
	$(AWS) cloudformation deploy --template-file build/packaged-$(ENV).yaml --stack-name sentinel-$(ENV) \
	  --capabilities CAPABILITY_IAM CAPABILITY_AUTO_EXPAND --no-fail-on-empty-changeset \
	  --parameter-overrides $$($(BIN)/python -m deploy.stack params --env $(ENV))

config-upload: $(STAMP)
	@test -n "$(CONFIG)" || { echo "config-upload needs CONFIG=<file>"; exit 2; }
	$(BIN)/sentinel validate -c $(CONFIG)
	$(BIN)/python -m deploy.stack preflight -c $(CONFIG) --env $(ENV)
	$(AWS) ssm put-parameter --name /sentinel/$(ENV)/config --type String --tier Intelligent-Tiering \
	  --overwrite --value file://$(CONFIG)
