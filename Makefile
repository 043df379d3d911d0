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

clean:
	rm -rf build .rocks .rocks-*.log
