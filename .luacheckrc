-- luacheck configuration: `make lint` runs `luacheck .`
std = "max"            -- any Lua version's standard globals (5.1 - 5.4, LuaJIT)
globals = {}           -- the library defines no globals
max_line_length = 120
include_files = {
  "lua/**/*.lua", "spec/**/*.lua", "examples/**/*.lua", "bench/**/*.lua",
  "bin/baseten", "*.rockspec", "rockspecs/*.rockspec", ".luacheckrc", "config.ld", "build.lua",
}
exclude_files = { ".rocks/**", "build/**", "bench/node_modules/**", "bench/out/**" }

-- specs and benchmarks hold long literal data and command lines: no line limit
files["spec/**/*.lua"] = { std = "+busted", max_line_length = false }
files["bench/**/*.lua"] = { max_line_length = false }
files["*.rockspec"] = { std = "+rockspec" }
files["config.ld"] = { std = "+ldoc" }
files["examples/nvim/**/*.lua"] = { read_globals = { "vim" } }
files["examples/love/**/*.lua"] = { read_globals = { "love" } }
-- The ---@meta definitions file: functions with empty bodies (212: unused
-- arguments), class tables that are only filled (241), long ---@field lines (631).
files["lua/baseten/types.lua"] = { ignore = { "212", "241", "631" } }

stds.rockspec = {
  globals = { "rockspec_format", "package", "version", "source", "description", "dependencies",
              "build_dependencies", "test_dependencies", "external_dependencies", "supported_platforms",
              "build", "test", "deploy" },
}
stds.ldoc = {
  globals = { "project", "title", "description", "file", "dir", "format", "style", "template", "readme",
              "examples", "topics", "sort", "no_space_before_args", "not_luadoc", "full_description",
              "backtick_references", "custom_tags", "new_type", "kind_names", "wrap", "boilerplate",
              "merge", "no_lua_ref", "no_summary", "use_markdown_titles", "one", "all", "ext",
              "package", "output", "pretty", "charset", "plain", "manual_url", "ignore", "colon",
              "module_file", "vars", "unqualified", "custom_display_name_handler", "sort_modules",
              "postprocess_html", "custom_css", "version", "no_args_infer", "no_return_or_parms" },
  read_globals = { "alias", "tparam_alias", "add_language_extension", "add_section", "custom_see_handler" },
}
