# Convenience targets; every one is a plain command you can also run by hand.
.PHONY: setup test test-slow demo-model bench lint

setup:
	bash scripts/install.sh

test:
	.venv/bin/python -m pytest -q

test-slow:
	CNS_SLOW=1 .venv/bin/python -m pytest -q

# Train the whole pipeline on the synthetic cohort (CPU scale) and install the result as the default bundle.
demo-model:
	bash scripts/demo_model.sh runs/demo runs/demo/bundle
	rm -rf cardiacnets/data/default-bundle && cp -r runs/demo/bundle cardiacnets/data/default-bundle
	.venv/bin/cnexport verify cardiacnets/data/default-bundle

bench:
	.venv/bin/python benchmarks/bench_preprocess.py
	.venv/bin/python benchmarks/bench_readers.py
	.venv/bin/python benchmarks/bench_inference.py
	.venv/bin/python benchmarks/bench_edge.py

lint:
	.venv/bin/ruff check cardiacnets training export edge tests benchmarks scripts
