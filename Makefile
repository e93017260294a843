# Thin aliases: dev.py does the work so that a machine without make runs the same commands.
PYTHON ?= python3.11

.PHONY: demo test lint dev bench
demo test lint dev bench:
	$(PYTHON) dev.py $@
