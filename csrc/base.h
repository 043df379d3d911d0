/*
 * base.h: what every csrc/ file shares and that needs no Lua, so the plain-C
 * parts (buf, sse, json_scan) and their tests and fuzz targets can use it.
 */
#ifndef BT_BASE_H
#define BT_BASE_H

/*
 * Every cross-file function is hidden: hosts such as Neovim export symbols of
 * their own, and ours must never meet them. Only luaopen_baseten_core is
 * exported (see core.c). Declarations carry the attribute so the rule holds
 * even when a build (LuaRocks' builtin type) does not pass -fvisibility=hidden.
 */
#if defined(_WIN32) || defined(__CYGWIN__)
/* A DLL exports only what is marked dllexport, once one symbol is: nothing
 * else needs hiding, and GCC ignores (and warns about) visibility there. */
#define BT_HIDDEN
#define BT_EXPORT __declspec(dllexport)
#elif defined(__GNUC__) || defined(__clang__)
#define BT_HIDDEN __attribute__((visibility("hidden")))
#define BT_EXPORT __attribute__((visibility("default")))
#else
#define BT_HIDDEN
#define BT_EXPORT
#endif

/*
 * 2^53: every integer of smaller magnitude is exactly a double. The JSON
 * encoder writes an integral double below it as an integer and one at or
 * above it with ".0", and the decoder reads back exactly that split, so a
 * float stays a float; options measured in bytes stop below it too.
 */
#define BT_EXACT_INT 9007199254740992.0

/* Whether d is integral and of magnitude below BT_EXACT_INT. */
static inline int bt_exact_int(double d) {
  return d > -BT_EXACT_INT && d < BT_EXACT_INT && (double)(long long)d == d;
}

#endif
