# The two set-up commands of the README. Both work on a fresh machine with Python 3.11.
PYTHON ?= python3
VENV ?= .venv
DEMO_HOME ?= .siamrec-demo
SIAMREC = SIAMREC_HOME=$(DEMO_HOME) $(VENV)/bin/siamrec
DEMO_PLAYLIST ?= Orchestral fantasy (Battle for Wesnoth)

.PHONY: demo test ffmpeg chromium

# pip keeps no second copy of the wheels (torch's CUDA build alone is about 4.6 GB installed): a small CI disk
# holds the venv once, not twice.
export PIP_NO_CACHE_DIR := 1

# Install siamrec (inference and bench: no torch) and recommend for an example playlist on the embedded store;
# then `SIAMREC_HOME=.siamrec-demo .venv/bin/siamrec bench --mask 15/5` scores it (20-track example playlists).
demo:
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install -q --disable-pip-version-check ".[bench]"
	$(SIAMREC) add-track examples/audio
	$(SIAMREC) playlist import examples/playlists/*.m3u
	$(SIAMREC) recommend --playlist "$(DEMO_PLAYLIST)" -k 8

# ffmpeg decodes the formats libsndfile cannot read (m4a, webm, aac, wma; tests use them).
ffmpeg:
	@command -v ffmpeg >/dev/null || { [ "$$(id -u)" = 0 ] && apt-get update -qq && \
		apt-get install -y -qq --no-install-recommends ffmpeg >/dev/null; } || \
		{ echo "install ffmpeg (apt-get install ffmpeg)"; exit 1; }

# The web page's tests drive the OS's Chromium with Playwright (no browser download); without it they skip.
chromium:
	@[ -x /usr/bin/chromium ] || { [ "$$(id -u)" = 0 ] && apt-get update -qq && \
		apt-get install -y -qq --no-install-recommends chromium >/dev/null; } || \
		echo "the browser tests will skip: install chromium (apt-get install chromium)"

# Install everything (training stack, dev tools) and run the linters and the default test suite.
test: ffmpeg chromium
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install -q --disable-pip-version-check -e ".[train,dev]"
	$(VENV)/bin/ruff check .
	$(VENV)/bin/pytest -q --numprocesses auto --maxprocesses 4
