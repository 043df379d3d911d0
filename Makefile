# Development tasks. `luarocks make` builds the rock; this file drives it.
#   make test   installs what is missing (Debian packages), builds for every
#               Lua, runs the C unit tests and the busted suite on 5.4, 5.3,
#               5.1 and LuaJIT
#   make test-stress  the busted suite again with four busy loops on the CPUs
#   make demo   a streamed chat and a tool call (local server unless
#               BASETEN_API_KEY is set)
CC ?= cc
CFLAGS_DEV = -std=c99 -O1 -g -Wall -Wextra -Wpedantic -Werror -fPIC -fvisibility=hidden
SAN = -fsanitize=address,undefined -fno-sanitize-recover=all -fno-omit-frame-pointer

.PHONY: all deps deps-test build test test-stress test-c test-lua demo lint sanitize valgrind fuzz bench docs clean love-kit release dist dist-test

all: build

deps:
	@bash scripts/deps.sh

build: deps
	@bash scripts/build.sh

# test_sse.c includes sse.c and buf.c itself, to swap in an allocator that fails
build/test_sse: csrc/sse.c csrc/sse.h csrc/buf.c csrc/buf.h csrc/test/test_sse.c csrc/test/test_util.h
	@mkdir -p build
	$(CC) $(CFLAGS_DEV) $(SAN) -Icsrc -o $@ csrc/test/test_sse.c

# the JSON scanner alone (no Lua); inputs sit right before an unmapped page
build/test_json_scan: csrc/json_scan.c csrc/json.h csrc/test/test_json_scan.c csrc/test/test_util.h
	@mkdir -p build
	$(CC) $(CFLAGS_DEV) $(SAN) -Icsrc -o $@ csrc/test/test_json_scan.c csrc/json_scan.c

# the SSE parser fed one byte (and seven) at a time: work per byte counted,
# the same for a 1 KiB and a 256 KiB event (nothing quadratic in the buffer)
build/test_sse_work: csrc/sse.c csrc/sse.h csrc/buf.c csrc/buf.h csrc/test/test_sse_work.c csrc/test/test_util.h
	@mkdir -p build
	$(CC) $(CFLAGS_DEV) $(SAN) -Icsrc -o $@ csrc/test/test_sse_work.c

# the text fast path's extractor alone (no Lua); inputs before an unmapped page
build/test_delta: csrc/delta.c csrc/delta.h csrc/json_scan.c csrc/json.h csrc/test/test_delta.c csrc/test/test_util.h
	@mkdir -p build
	$(CC) $(CFLAGS_DEV) $(SAN) -Icsrc -o $@ csrc/test/test_delta.c csrc/delta.c csrc/json_scan.c

# the resumable JSON parser alone (no Lua): every split of a corpus against
# the prefixes fed whole and against the decoder's scanner
build/test_jpartial: csrc/jpartial.c csrc/jpartial.h csrc/json_scan.c csrc/json.h csrc/buf.c \
  csrc/test/test_jpartial.c csrc/test/jpartial_oracle.h csrc/test/test_util.h
	@mkdir -p build
	$(CC) $(CFLAGS_DEV) $(SAN) -Icsrc -o $@ csrc/test/test_jpartial.c csrc/jpartial.c \
	  csrc/json_scan.c csrc/buf.c

# the OS layer alone; float-cast-overflow catches a double slept out of range
build/test_platform: csrc/platform.c csrc/platform.h csrc/test/test_platform.c
	@mkdir -p build
	$(CC) $(CFLAGS_DEV) $(SAN) -fsanitize=float-cast-overflow -I/usr/include/lua5.4 -Icsrc \
	  -o $@ csrc/test/test_platform.c csrc/platform.c -llua5.4 -lcurl -lm

# child processes (MCP's stdio transport) alone: real children, under the sanitizers
build/test_proc: csrc/proc.c csrc/lines.c csrc/proc.h csrc/buf.c csrc/platform.c csrc/test/test_proc.c
	@mkdir -p build
	$(CC) $(CFLAGS_DEV) $(SAN) -I/usr/include/lua5.4 -Icsrc -o $@ csrc/test/test_proc.c csrc/proc.c csrc/lines.c \
	  csrc/buf.c csrc/platform.c -llua5.4 -lcurl -lm

# the vector math alone (no Lua)
build/test_vecmath: csrc/vecmath.c csrc/vecmath.h csrc/test/test_vecmath.c
	@mkdir -p build
	$(CC) $(CFLAGS_DEV) $(SAN) -fsanitize=float-cast-overflow -Icsrc \
	  -o $@ csrc/test/test_vecmath.c csrc/vecmath.c -lm

# the whole core linked into a program: each libcurl allocation of a
# request fails in turn (ASan's leak check at exit catches a dropped list),
# and two threads open the module at once under ThreadSanitizer
CORE_SRC = $(wildcard csrc/*.c)
CORE_HDR = $(wildcard csrc/*.h)
build/test_nomem: $(CORE_SRC) $(CORE_HDR) csrc/test/test_nomem.c
	@mkdir -p build
	$(CC) $(CFLAGS_DEV) $(SAN) -I/usr/include/lua5.4 -Icsrc -o $@ csrc/test/test_nomem.c $(CORE_SRC) \
	  -llua5.4 -lcurl -lm

# libcurl refusing the protocol options, and a forked child, through
# libcurl functions wrapped at link time
GUARD_WRAPS = -Wl,--wrap=curl_easy_setopt,--wrap=curl_multi_cleanup,--wrap=curl_multi_remove_handle,--wrap=curl_easy_cleanup
build/test_guards: $(CORE_SRC) $(CORE_HDR) csrc/test/test_guards.c
	@mkdir -p build
	$(CC) $(CFLAGS_DEV) $(SAN) -D_POSIX_C_SOURCE=200809L -I/usr/include/lua5.4 -Icsrc -o $@ \
	  csrc/test/test_guards.c $(CORE_SRC) -llua5.4 -lcurl -lm $(GUARD_WRAPS)

build/test_threads: $(CORE_SRC) $(CORE_HDR) csrc/test/test_threads.c
	@mkdir -p build
	$(CC) $(CFLAGS_DEV) -fsanitize=thread -I/usr/include/lua5.4 -Icsrc -o $@ csrc/test/test_threads.c \
	  $(CORE_SRC) -llua5.4 -lcurl -lm -lpthread

test-c: deps build/test_sse build/test_json_scan build/test_delta build/test_sse_work build/test_jpartial build/test_platform build/test_vecmath build/test_proc \
  build/test_nomem build/test_guards build/test_threads
	@./build/test_sse
	@./build/test_vecmath
	@./build/test_json_scan
	@./build/test_delta
	@./build/test_sse_work
	@./build/test_jpartial csrc/fuzz/corpus/json
	@./build/test_platform
	@./build/test_proc
	@./build/test_nomem
	@./build/test_guards
	@./build/test_threads

test-lua: build
	@bash scripts/test.sh

# what the whole suite needs, as CI installs it: Neovim, LÖVE and xvfb for
# the host specs, nginx for TLS, and locales whose decimal point is ',' (de_DE)
# and two bytes (ps_AF) for the JSON spec. scripts/test.sh fails on a pending spec, saying why.
deps-test:
	@bash scripts/deps.sh hosts tls locale mcp
	@locale -a 2>/dev/null | grep -qi '^de_DE.utf8$$' || { echo "deps: generating the de_DE.UTF-8 locale" >&2; \
	  $$( [ "$$(id -u)" -eq 0 ] || echo sudo ) localedef -i de_DE -f UTF-8 de_DE.UTF-8; }
	@locale -a 2>/dev/null | grep -qi '^ps_AF.utf8$$' || { echo "deps: generating the ps_AF.UTF-8 locale" >&2; \
	  $$( [ "$$(id -u)" -eq 0 ] || echo sudo ) localedef -i ps_AF -f UTF-8 ps_AF.UTF-8; }

test: deps deps-test build test-c
	@bash scripts/test.sh

# The busted suite with four busy-loop processes competing for the CPUs
# (scripts/test_stress.sh): specs must count events, not seconds.
test-stress: deps deps-test build
	@bash scripts/test_stress.sh

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
	@echo
	@echo "Your own script, with this build: source scripts/env.sh 5.4 && lua5.4 myscript.lua"
	@echo "With no key, the bundled server: python3 spec/support/server.py --port 8000 &"
	@echo "  then: export BASETEN_BASE_URL=http://127.0.0.1:8000/v1 BASETEN_API_KEY=local"

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
# `make love-kit` gives one kit per platform in build/love-kit/{linux,windows}/:
# in-the-love/baseten/*.lua, beside-the-love/baseten/core.so or core.dll,
# README.txt (scripts/love_kit.sh; the Windows kit runs `make windows`).
# `make love-demo` runs the example game against the bundled local server.
LUAJIT ?= luajit
lua/baseten/core.so: build.lua $(wildcard csrc/*.c csrc/*.h)
	@$(LUAJIT) build.lua

.PHONY: love-kit-linux love-kit-windows love-demo
love-kit: love-kit-linux love-kit-windows

love-kit-linux: deps lua/baseten/core.so
	@bash scripts/love_kit.sh linux

love-kit-windows:
	@bash scripts/love_kit.sh windows

love-demo: deps lua/baseten/core.so
	@bash scripts/love_demo.sh

# The release archives: dist/baseten-V-{linux,windows}-x86_64-{lua5.4,luajit}.zip
# and dist/SHA256SUMS (scripts/dist.sh; the Windows ones need `make windows`,
# which it runs). `make dist-test` unpacks each into an empty folder and runs
# a chat and a stream with the system lua5.4 and luajit, in a Debian 11 root,
# and under Wine (scripts/dist_test.sh).
dist: deps
	@bash scripts/dist.sh

dist-test:
	@bash scripts/dist_test.sh

# A versioned rockspec, rockspecs/baseten-$(VERSION)-1.rockspec, pinned to tag
# v$(VERSION) and checked with `luarocks lint`, then `make dist`
# (scripts/release.sh), listing the files to attach to the release.
release:
	@VERSION=$(VERSION) bash scripts/release.sh

# everything built in the clone (not the caches in /var/cache/baseten)
clean:
	rm -rf build .rocks .rocks-*.log dist baseten lua/baseten/core.so lua/baseten/core.dll lua/baseten/core.origin
