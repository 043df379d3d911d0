rockspec_format = "3.0"
package = "baseten"
version = "0.1.0-1"
source = {
   url = "git+https://github.com/basetenlabs/baseten-lua.git",
   tag = "v0.1.0",
}
description = {
   summary = "Fast, non-blocking client for Baseten Model APIs and OpenAI-compatible chat completions",
   detailed = [[
A Lua client for Baseten's Model APIs and any OpenAI-compatible
chat-completions server (vLLM, Ollama, llama.cpp, OpenAI). A small C core
does HTTP over libcurl, Server-Sent Events and a one-pass JSON codec; the Lua layer
gives blocking chat, streaming iterators, structured outputs, a tool-calling
loop and non-blocking requests for game loops and editors. The rock also
installs the `baseten` command-line tool (chat, structured output, model
list) and LuaLS type definitions (baseten/types.lua) for editor completion.
]],
   homepage = "https://github.com/basetenlabs/baseten-lua",
   license = "MIT",
   labels = { "llm", "openai", "http", "sse", "json" },
}
-- where the C core builds: Linux (CI builds and tests it), Windows (CI
-- cross-builds it with MinGW-w64 and tests it under Wine; README "Windows")
-- and macOS (plain POSIX C99 over libcurl; built, not tested in CI)
supported_platforms = { "linux", "macosx", "windows" }
dependencies = {
   "lua >= 5.1, < 5.5",
}
external_dependencies = {
   -- no header check for CURL: Debian and Ubuntu keep curl/curl.h in a
   -- multiarch include folder that LuaRocks does not search, but the compiler does
   CURL = { library = "curl" },
   -- Windows: libcurl's import library is libcurl.lib with MSVC (vcpkg) and
   -- libcurl.dll.a or libcurl.a with MinGW (MSYS2); README "Windows"
   platforms = {
      windows = { CURL = { library = "libcurl" } },
      mingw32 = { CURL = { library = "curl" } },
   },
}
build = {
   type = "builtin",
   modules = {
      ["baseten.core"] = {
         sources = {
            "csrc/core.c", "csrc/buf.c", "csrc/lend.c", "csrc/http_curl.c", "csrc/http_opts.c",
            "csrc/http_engine.c", "csrc/http_transfer.c", "csrc/http_fail.c", "csrc/sse.c", "csrc/lsse.c",
            "csrc/json_enc.c", "csrc/json_mod.c", "csrc/json_dec.c", "csrc/json_scan.c", "csrc/platform.c",
            "csrc/vecmath.c", "csrc/vector.c",
            "csrc/proc.c", "csrc/lproc.c", "csrc/lines.c",
            "csrc/delta.c", "csrc/ldelta.c",
            "csrc/jpartial.c", "csrc/jpartial_lua.c",
         },
         libraries = { "curl" },
         incdirs = { "$(CURL_INCDIR)" },
         libdirs = { "$(CURL_LIBDIR)" },
      },
      ["baseten"] = "lua/baseten/init.lua",
      ["baseten.client"] = "lua/baseten/client.lua",
      ["baseten.errors"] = "lua/baseten/errors.lua",
      ["baseten.stream"] = "lua/baseten/stream.lua",
      ["baseten.stream_text"] = "lua/baseten/stream_text.lua",
      ["baseten.chunk_text"] = "lua/baseten/chunk_text.lua",
      ["baseten.accumulate"] = "lua/baseten/accumulate.lua",
      ["baseten.tool"] = "lua/baseten/tool.lua",
      ["baseten.async"] = "lua/baseten/async.lua",
      ["baseten.schema"] = "lua/baseten/schema.lua",
      ["baseten.schema_keywords"] = "lua/baseten/schema_keywords.lua",
      ["baseten.jsonvalue"] = "lua/baseten/jsonvalue.lua",
      ["baseten.regex"] = "lua/baseten/regex.lua",
      ["baseten.batchfile"] = "lua/baseten/batchfile.lua",
      ["baseten.request"] = "lua/baseten/request.lua",
      ["baseten.structured"] = "lua/baseten/structured.lua",
      ["baseten.partial"] = "lua/baseten/partial.lua",
      ["baseten.agent"] = "lua/baseten/agent.lua",
      ["baseten.toolloop"] = "lua/baseten/toolloop.lua",
      ["baseten.toolopts"] = "lua/baseten/toolopts.lua",
      ["baseten.chatbody"] = "lua/baseten/chatbody.lua",
      ["baseten.batch"] = "lua/baseten/batch.lua",
      ["baseten.embed"] = "lua/baseten/embed.lua",
      ["baseten.embed_shapes"] = "lua/baseten/embed_shapes.lua",
      ["baseten.abi"] = "lua/baseten/abi.lua",
      ["baseten.uv"] = "lua/baseten/uv.lua",
      ["baseten.health"] = "lua/baseten/health.lua",
      ["baseten.mend"] = "lua/baseten/mend.lua",
      ["baseten.options"] = "lua/baseten/options.lua",
      ["baseten.runtime"] = "lua/baseten/runtime.lua",
      ["baseten.task"] = "lua/baseten/task.lua",
      ["baseten.mcp"] = "lua/baseten/mcp.lua",
      ["baseten.mcp_stdio"] = "lua/baseten/mcp_stdio.lua",
      ["baseten.mcp_http"] = "lua/baseten/mcp_http.lua",
      ["baseten.mcp_tools"] = "lua/baseten/mcp_tools.lua",
      ["baseten.mcp_cli"] = "lua/baseten/mcp_cli.lua",
      ["baseten.mcp_track"] = "lua/baseten/mcp_track.lua",
      ["baseten.mcp_incoming"] = "lua/baseten/mcp_incoming.lua",
      ["baseten.mcp_registry"] = "lua/baseten/mcp_registry.lua",
      ["baseten.mcp_opts"] = "lua/baseten/mcp_opts.lua",
   },
   -- the same library names for the link line (see external_dependencies)
   platforms = {
      windows = { modules = { ["baseten.core"] = { libraries = { "libcurl" } } } },
      mingw32 = { modules = { ["baseten.core"] = { libraries = { "curl" } } } },
   },
   install = {
      -- the command-line tool; LuaRocks wraps it with the paths of the tree
      bin = { baseten = "bin/baseten" },
      -- LuaLS definitions (---@meta) for editors; never required at run time
      lua = { ["baseten.types"] = "lua/baseten/types.lua" },
   },
}
