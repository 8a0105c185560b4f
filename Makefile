# The front door. Each target is a line or two calling a script a person can also read.
.PHONY: run test fault cluster-test lint bench bench-store bench-ocr infra stop-infra format asyncapi

run:            ## run the whole platform locally on http://127.0.0.1:8000
	scripts/run.sh

test:           ## run every test against a real RabbitMQ and store, but the fault and cluster suites
	scripts/test.sh -m "not fault and not cluster"

fault:          ## the fault suite: load while processes, broker and store fail; prints a table
	scripts/test.sh -m fault tests/fault

cluster-test:   ## a three-node RabbitMQ cluster on this machine loses a node under load; prints a table
	scripts/cluster-test.sh

lint:           ## ruff, mypy strict, import boundaries
	scripts/lint.sh

bench:          ## drive full sagas through the gateway and print throughput and latency
	scripts/bench.sh $(BENCH_ARGS)

bench-store:    ## time the store's hot queries at 1k, 10k and 100k documents (ARGS="--sizes 1000")
	scripts/bench-store.sh $(ARGS)

bench-ocr:      ## read a generated set of printed prescriptions: CER, lines right, wrong and unflagged (ARGS="--quick")
	scripts/bench-ocr.sh $(ARGS)

asyncapi:       ## write the AsyncAPI documents of every service to docs/asyncapi/
	.venv/bin/python -m contracts.asyncapi --out docs/asyncapi

infra:          ## start only RabbitMQ and FerretDB
	scripts/infra.sh start

stop-infra:     ## stop what `make infra` started
	scripts/infra.sh stop

format:
	.venv/bin/ruff format . && .venv/bin/ruff check --fix .
