# The two commands a newcomer needs (see README.md):
#   make run    set up .venv if needed, then start the app on the embedded default model
#   make test   set up .venv (and the browser-test tools) if needed, then run every test
# Also: make bench (the benchmark), make bench-quick (under a minute).
.PHONY: run test bench bench-quick setup

run:
	@scripts/setup.sh
	.venv/bin/python app.py

test:
	@scripts/setup.sh --dev
	.venv/bin/python -m pytest

bench:
	@scripts/setup.sh --dev
	.venv/bin/python -m playground bench

bench-quick:
	@scripts/setup.sh --dev
	.venv/bin/python -m playground bench --quick
