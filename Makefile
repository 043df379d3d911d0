# Development tasks. `luarocks make` builds the rock; this file drives it.
#   make test   installs what is missing (Debian packages), builds for every
#               Lua, runs the C unit tests and the busted suite on 5.4, 5.3,
#               5.1 and LuaJIT
#   make demo   a streamed chat and a tool call (local server unless
#               BASETEN_API_KEY is set)
CC ?= cc
CFLAGS_DEV = -std=c99 -O1 -g -Wall -Wextra -Wpedantic -Werror -fPIC -fvisibility=hidden
SAN = -fsanitize=address,undefined -fno-sanitize-recover=all -fno-omit-frame-pointer

.PHONY: all deps deps-test build test test-c test-lua demo lint sanitize valgrind fuzz bench docs clean love-kit release

all: build

deps:
	@bash scripts/deps.sh

build: deps
	@bash scripts/build.sh

# test_sse.c includes sse.c and buf.c itself, to swap in an allocator that fails
build/test_sse: csrc/sse.c csrc/sse.h csrc/buf.c csrc/buf.h csrc/test/test_sse.c
	@mkdir -p build
	$(CC) $(CFLAGS_DEV) $(SAN) -Icsrc -o $@ csrc/test/test_sse.c

# the JSON scanner alone (no Lua); inputs sit right before an unmapped page
build/test_json_scan: csrc/json_scan.c csrc/json.h csrc/test/test_json_scan.c
	@mkdir -p build
	$(CC) $(CFLAGS_DEV) $(SAN) -Icsrc -o $@ csrc/test/test_json_scan.c csrc/json_scan.c

# the resumable JSON parser alone (no Lua): every split of a corpus against
# the prefixes fed whole and against the decoder's scanner
build/test_jpartial: csrc/jpartial.c csrc/jpartial.h csrc/json_scan.c csrc/json.h csrc/buf.c \
  csrc/test/test_jpartial.c csrc/test/jpartial_oracle.h
	@mkdir -p build
	$(CC) $(CFLAGS_DEV) $(SAN) -Icsrc -o $@ csrc/test/test_jpartial.c csrc/jpartial.c \
	  csrc/json_scan.c csrc/buf.c

# the OS layer alone; float-cast-overflow catches a double slept out of range
build/test_platform: csrc/platform.c csrc/platform.h csrc/test/test_platform.c
	@mkdir -p build
	$(CC) $(CFLAGS_DEV) $(SAN) -fsanitize=float-cast-overflow -I/usr/include/lua5.4 -Icsrc \
	  -o $@ csrc/test/test_platform.c csrc/platform.c -llua5.4 -lcurl -lm

# the whole core linked into a program: each libcurl allocation of a
# request fails in turn (ASan's leak check at exit catches a dropped list),
# and two threads open the module at once under ThreadSanitizer
CORE_SRC = $(wildcard csrc/*.c)
CORE_HDR = $(wildcard csrc/*.h)
build/test_nomem: $(CORE_SRC) $(CORE_HDR) csrc/test/test_nomem.c
	@mkdir -p build
	$(CC) $(CFLAGS_DEV) $(SAN) -I/usr/include/lua5.4 -Icsrc -o $@ csrc/test/test_nomem.c $(CORE_SRC) \
	  -llua5.4 -lcurl -lm

build/test_threads: $(CORE_SRC) $(CORE_HDR) csrc/test/test_threads.c
	@mkdir -p build
	$(CC) $(CFLAGS_DEV) -fsanitize=thread -I/usr/include/lua5.4 -Icsrc -o $@ csrc/test/test_threads.c \
	  $(CORE_SRC) -llua5.4 -lcurl -lm -lpthread

test-c: deps build/test_sse build/test_json_scan build/test_jpartial build/test_platform build/test_nomem build/test_threads
	@./build/test_sse
	@./build/test_json_scan
	@./build/test_jpartial csrc/fuzz/corpus/json
	@./build/test_platform
	@./build/test_nomem
	@./build/test_threads

test-lua: build
	@bash scripts/test.sh

# what the whole suite needs, as CI installs it: Neovim, LÖVE and xvfb for
# the host specs, nginx for TLS, and a locale with a ',' decimal point for
# the JSON spec. scripts/test.sh fails on a pending spec, saying why.
deps-test:
	@bash scripts/deps.sh hosts tls locale
	@locale -a 2>/dev/null | grep -qi '^de_DE.utf8$$' || { echo "deps: generating the de_DE.UTF-8 locale" >&2; \
	  $$( [ "$$(id -u)" -eq 0 ] || echo sudo ) localedef -i de_DE -f UTF-8 de_DE.UTF-8; }

test: deps deps-test build test-c
	@bash scripts/test.sh

# Hardening. `make fuzz`: libFuzzer targets (clang, ASan + UBSan) for the SSE
# parser and for JSON decode then encode, FUZZ_TIME seconds each; findings
# land in build/fuzz/artifacts. `make sanitize`: the busted suite on Lua 5.4
# against an ASan + UBSan build of baseten.core, once as is and once with the
# garbage collector running all the time. `make valgrind`: the suite on 5.4
# under memcheck. Each fails on any report (scripts/fuzz.sh, sanitize.sh,
# valgrind.sh say more).
FUZZ_TIME ?= 120
fuzz:
	@bash scripts/deps.sh tools
	@FUZZ_TIME=$(FUZZ_TIME) bash scripts/fuzz.sh

sanitize: build
	@bash scripts/sanitize.sh

valgrind: build
	@bash scripts/deps.sh tools
	@bash scripts/valgrind.sh

# Windows: `make windows` cross-builds libcurl (Schannel), LuaJIT, Lua 5.4
# and baseten/core.dll for each with MinGW-w64, from Debian's source
# packages, into build/windows (scripts/windows.sh); `make windows-smoke`
# runs spec/windows/smoke.lua under Wine with both interpreters.
.PHONY: windows windows-smoke
windows:
	@bash scripts/windows.sh

windows-smoke:
	@bash scripts/windows_smoke.sh

demo: deps
	@LUA_VERSIONS=5.4 bash scripts/build.sh
	@bash -c 'source scripts/env.sh 5.4 && lua5.4 examples/demo.lua'

# luacheck (.luacheckrc), clang-format (.clang-format), cppcheck and
# `luarocks lint`. clang-format checks every C file (.clang-format).
FORMAT_FILES ?= $(wildcard csrc/*.c csrc/*.h csrc/test/*.c csrc/fuzz/*.c)
lint:
	@bash scripts/deps.sh docs
	luacheck -q --no-color .
	clang-format --dry-run --Werror $(FORMAT_FILES)
	cppcheck -q --enable=warning,performance,portability --error-exitcode=1 --std=c99 \
	  --suppress=missingIncludeSystem --suppress=nullPointer:csrc/test/test_sse.c -I csrc csrc/
	luarocks lint baseten-scm-1.rockspec
	@for r in rockspecs/*.rockspec; do [ -e "$$r" ] || continue; echo "luarocks lint $$r"; luarocks lint "$$r" || exit 1; done

# The HTML API reference, with LDoc (config.ld), into build/docs.
docs:
	@bash scripts/deps.sh docs
	@rm -rf build/docs
	ldoc .
	@echo "docs: build/docs/index.html"

# The benchmark, not part of `make test`: baseten on Lua 5.4 and LuaJIT
# against a plain C consumer, openai-node and curl on the local test server;
# prints a table of ratios and writes it to bench/RESULTS.md (bench/run.lua
# says what is measured; BENCH_N, BENCH_REPS, ... tune it). Installs
# openai-node into bench/node_modules from bench/package-lock.json.
bench: build
	@bash bench/run.sh

# LÖVE (README, "LÖVE"): build.lua builds the core for LuaJIT into
# lua/baseten/core.so (what `love examples/love` loads in a clone), and
# build/love-kit/baseten/ gets what a game copies in: the Lua files and core.so.
LUAJIT ?= luajit
lua/baseten/core.so: build.lua $(wildcard csrc/*.c csrc/*.h)
	@$(LUAJIT) build.lua

love-kit: deps lua/baseten/core.so
	@rm -rf build/love-kit && mkdir -p build/love-kit/baseten
	@cp lua/baseten/*.lua lua/baseten/core.so build/love-kit/baseten/
	@rm -f build/love-kit/baseten/types.lua build/love-kit/baseten/health.lua
	@echo "love-kit: build/love-kit/baseten (the README's LÖVE section says where each part goes)"

# A versioned rockspec, rockspecs/baseten-$(VERSION)-1.rockspec, pinned to tag
# v$(VERSION) and checked with `luarocks lint` (scripts/release.sh).
release:
	@VERSION=$(VERSION) bash scripts/release.sh

clean:
	rm -rf build .rocks .rocks-*.log
