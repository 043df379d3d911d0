# Development tasks. `luarocks make` builds the rock; this file drives it.
#   make test   installs what is missing (Debian packages), builds for every
#               Lua, runs the C unit tests and the busted suite on 5.4, 5.3,
#               5.1 and LuaJIT
#   make demo   a streamed chat and a tool call (local server unless
#               BASETEN_API_KEY is set)
CC ?= cc
CFLAGS_DEV = -std=c99 -O1 -g -Wall -Wextra -Wpedantic -Werror -fPIC -fvisibility=hidden
SAN = -fsanitize=address,undefined -fno-sanitize-recover=all -fno-omit-frame-pointer

.PHONY: all deps build test test-c test-lua demo lint sanitize valgrind fuzz bench docs clean

all: build

deps:
	@bash scripts/deps.sh

build: deps
	@bash scripts/build.sh

# test_sse.c includes sse.c itself, to swap in an allocator that fails
build/test_sse: csrc/sse.c csrc/sse.h csrc/test/test_sse.c
	@mkdir -p build
	$(CC) $(CFLAGS_DEV) $(SAN) -Icsrc -o $@ csrc/test/test_sse.c

test-c: deps build/test_sse
	@./build/test_sse

test-lua: build
	@bash scripts/test.sh

test: deps build test-c
	@bash scripts/test.sh

demo: deps
	@LUA_VERSIONS=5.4 bash scripts/build.sh
	@bash -c 'source scripts/env.sh 5.4 && lua5.4 examples/demo.lua'

# luacheck (.luacheckrc), clang-format (.clang-format), cppcheck and
# `luarocks lint`. clang-format checks FORMAT_FILES: the C files already in
# the .clang-format style; once csrc/ is reformatted (clang-format -i
# csrc/*.c csrc/*.h), set it to $(wildcard csrc/*.c csrc/*.h).
FORMAT_FILES ?= csrc/core.c csrc/compat.h
lint:
	@bash scripts/deps.sh docs
	luacheck -q --no-color .
	clang-format --dry-run --Werror $(FORMAT_FILES)
	cppcheck -q --enable=warning,performance,portability --error-exitcode=1 --std=c99 \
	  --suppress=missingIncludeSystem --suppress=nullPointer:csrc/test/test_sse.c -I csrc csrc/
	luarocks lint baseten-scm-1.rockspec

# The HTML API reference, with LDoc (config.ld), into build/docs.
docs:
	@bash scripts/deps.sh docs
	@rm -rf build/docs
	ldoc .
	@echo "docs: build/docs/index.html"

clean:
	rm -rf build .rocks .rocks-*.log
